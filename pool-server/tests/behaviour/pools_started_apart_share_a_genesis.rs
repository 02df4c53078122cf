//! The embedded chain's genesis is a pure function of the network's name, the genesis bits
//! and a proof-of-work limit other than the genesis target: two pools started apart, with the
//! same values, record the same genesis block; another name, other bits or another limit is
//! another chain. (The ground for the network of pools: nodes that
//! disagree on the genesis could never share a chain.)

use crate::common;

use std::time::Duration;

use common::*;
use serde_json::Value;

/// The genesis hash a pool recorded (height 0 in `/api/blocks`).
async fn genesis_of(pool: &TestPool) -> String {
    for _ in 0..100 {
        let blocks = pool.get("/api/blocks").await;
        if let Some(g) = blocks.as_array().unwrap().iter().find(|b| b["height"] == 0) {
            assert_eq!(g["detail"], Value::from("genesis"), "{g}");
            return g["hash"].as_str().unwrap().to_owned();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no genesis recorded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_name_and_bits_give_the_same_genesis_and_others_another() {
    let first = start_pool(&["--p2p-network", "eu-pools", "--genesis-bits", "1f00ffff"]).await;
    let genesis = genesis_of(&first).await;
    first.stop().await;
    // Started apart: a genesis made from the clock would differ by now.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let again = start_pool(&["--p2p-network", "eu-pools", "--genesis-bits", "1f00ffff"]).await;
    assert_eq!(genesis_of(&again).await, genesis);
    again.stop().await;
    let renamed = start_pool(&["--p2p-network", "us-pools", "--genesis-bits", "1f00ffff"]).await;
    assert_ne!(genesis_of(&renamed).await, genesis);
    renamed.stop().await;
    let harder = start_pool(&["--p2p-network", "eu-pools", "--genesis-bits", "1e00ffff"]).await;
    assert_ne!(genesis_of(&harder).await, genesis);
    harder.stop().await;
    // The genesis target as the limit is the default, said or not; an easier limit is a
    // network of its own (its nodes and ours refuse each other at the first frame).
    let said = [
        "--p2p-network",
        "eu-pools",
        "--genesis-bits",
        "1f00ffff",
        "--pow-limit",
        "1f00ffff",
    ];
    let same = start_pool(&said).await;
    assert_eq!(genesis_of(&same).await, genesis);
    same.stop().await;
    let mut easier = said;
    easier[5] = "207fffff";
    let easier = start_pool(&easier).await;
    assert_ne!(genesis_of(&easier).await, genesis);
    easier.stop().await;
}

#[test]
fn a_pow_limit_harder_than_the_genesis_is_refused_naming_the_flags() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pool-server"))
        .args(["--genesis-bits", "1f00ffff", "--pow-limit", "1e00ffff"])
        .output()
        .expect("run pool-server");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--pow-limit") && err.contains("harder than --genesis-bits"),
        "{err}"
    );
}

#[test]
fn a_network_name_that_cannot_be_one_is_refused_naming_the_flag() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pool-server"))
        .args(["--p2p-network", "eu pools"])
        .output()
        .expect("run pool-server");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--p2p-network") && err.contains("printable ASCII"),
        "{err}"
    );
}
