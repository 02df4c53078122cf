//! Accounts and blocks on a regtest node, as the reward tests drive and read them: miners that
//! take turns finding blocks through Stratum, account pages read until they say something,
//! blocks confirmed on both nodes.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::process::PoolProcess;
use super::regtest::{rpc_args, until, Node};
use super::Client;

pub async fn get(http: &str, path: &str) -> Value {
    reqwest::get(format!("{http}{path}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

pub fn sats(coins: &Value) -> i64 {
    (coins.as_f64().unwrap() * 1e8).round() as i64
}

pub async fn miner(addr: std::net::SocketAddr, worker: &str) -> Client {
    let mut c = Client::connect(addr).await;
    c.subscribe().await;
    assert_eq!(c.authorize(worker).await.unwrap(), Value::Bool(true));
    c.wait_job().await;
    c
}

/// About four shares per regtest block (difficulty 4.66e-10).
pub const SHARE_DIFFICULTY: &str = "0.0000000001";

/// A pool-server process on `node`, at a fixed share difficulty, crediting blocks at once,
/// with `extra` flags (the payout method and its settings).
pub fn payout_pool(dir: &std::path::Path, node: &Node, extra: &[&str]) -> PoolProcess {
    payout_pool_at(dir, &node.url(), extra)
}

/// [`payout_pool`] with the node's RPC at `url` (a proxy in front of it, say).
pub fn payout_pool_at(dir: &std::path::Path, url: &str, extra: &[&str]) -> PoolProcess {
    let fixed = [
        "--start-difficulty",
        SHARE_DIFFICULTY,
        "--vardiff-min",
        SHARE_DIFFICULTY,
        "--vardiff-max",
        SHARE_DIFFICULTY,
        "--credit-delay",
        "0",
    ];
    let args = rpc_args(url, &[&fixed[..], extra].concat());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    std::fs::create_dir_all(dir).unwrap();
    PoolProcess::spawn(dir, &args)
}

/// Two miners on the pool at `stratum`: `alice_worker` (an address account) and `bob.rig`.
pub async fn alice_and_bob(
    stratum: std::net::SocketAddr,
    alice_worker: &str,
) -> [(Client, &str); 2] {
    [
        (miner(stratum, alice_worker).await, alice_worker),
        (miner(stratum, "bob.rig").await, "bob.rig"),
    ]
}

/// Shares from each miner in turn until each has found `each` blocks; the blocks' hashes.
pub async fn mine_blocks(miners: &mut [(Client, &str)], each: usize) -> Vec<String> {
    let mut hashes = Vec::new();
    let mut found = vec![0usize; miners.len()];
    let mut counter = 0u64;
    let t = Instant::now();
    while found.iter().any(|n| *n < each) {
        assert!(t.elapsed() < Duration::from_secs(120), "blocks in time");
        for i in 0..miners.len() {
            counter += 1;
            let (c, worker) = &mut miners[i];
            let job = c.job.clone().unwrap();
            let (accepted, share) = c.share_as(worker, counter).await;
            if accepted != Ok(Value::Bool(true)) {
                continue;
            }
            if job.nbits.to_target().unwrap().is_met_by(&share.hash) {
                found[i] += 1;
                let hash = share.hash.to_string();
                hashes.push(hash.clone());
                for (c, _) in miners.iter_mut() {
                    c.wait_clean_job(&hash).await;
                }
            }
        }
    }
    hashes
}

pub async fn balance(http: &str, account: &str) -> Value {
    get(http, &format!("/api/accounts/{account}")).await
}

/// Wait until `f` holds of `account`'s page.
pub async fn until_account(
    http: &str,
    account: &str,
    what: &str,
    f: impl Fn(&Value) -> bool,
) -> Value {
    let t = Instant::now();
    loop {
        let v = balance(http, account).await;
        if f(&v) {
            return v;
        }
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "{account}: {what}; last {v}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Mine a block on `n1` and wait until `n2` has it, so both see the payouts confirmed.
pub async fn confirm(n1: &Node, n2: &Node, to: &Value) {
    n1.call("generatetoaddress", json!([1, to])).await.unwrap();
    let tip = n1.call("getbestblockhash", json!([])).await.unwrap();
    until("n2 to follow", Duration::from_secs(30), || async {
        n2.call("getbestblockhash", json!([])).await.ok() == Some(tip.clone())
    })
    .await;
}
