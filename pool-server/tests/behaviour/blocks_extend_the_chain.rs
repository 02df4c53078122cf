//! Shares that meet the network target become blocks: the embedded chain grows, miners get a
//! clean job for the new tip, old jobs turn stale, blocks are recorded, and difficulty
//! retargets after the configured number of blocks.

use crate::common;

use std::time::Duration;

use common::*;
use protocol::{ErrorCode, Extranonce2, Notify};
use serde_json::Value;

/// Mine shares on the current job until one is a block; returns its hash and job.
async fn mine_block(c: &mut Client, counter: &mut u64) -> (String, Notify) {
    loop {
        *counter += 1;
        let job = c.job.clone().unwrap();
        let block_target = job.nbits.to_target().unwrap();
        let (r, found) = c.share(*counter).await;
        assert_eq!(r, Ok(Value::Bool(true)));
        if block_target.is_met_by(&found.hash) {
            return (found.hash.to_string(), job);
        }
    }
}

async fn wait_for<F: Fn(&Value) -> bool>(pool: &TestPool, path: &str, ok: F) -> Value {
    for _ in 0..100 {
        let v = pool.get(path).await;
        if ok(&v) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{path} never reached the expected state");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn found_block_extends_chain_and_stales_old_jobs_then_retargets() {
    let block_bits = bits_for(0.0001);
    let pool = start_pool(&[
        "--genesis-bits",
        &block_bits,
        "--start-difficulty",
        "0.00001",
        "--retarget-interval",
        "3",
        "--block-time",
        "60s",
    ])
    .await;
    let mut c = Client::login(pool.stratum()).await;
    assert_eq!(pool.get("/api/pool").await["height"], 1);
    let mut counter = 0;

    let (hash, old_job) = mine_block(&mut c, &mut counter).await;
    let new_job = c.wait_clean_job(&hash).await;
    assert_ne!(new_job.prevhash, old_job.prevhash);
    assert_eq!(new_job.prevhash.block_hash().to_string(), hash);
    wait_for(&pool, "/api/pool", |p| p["height"] == 2).await;
    let blocks = wait_for(&pool, "/api/blocks", |b| {
        b.as_array()
            .unwrap()
            .iter()
            .any(|x| x["hash"] == hash.as_str())
    })
    .await;
    let b = blocks
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["hash"] == hash.as_str())
        .unwrap();
    assert_eq!(b["status"], "accepted");
    assert_eq!(b["height"], 1);
    assert_eq!(b["worker"], WORKER);

    // A share for the job of the old tip is stale (21).
    let en1 = c.extranonce1.clone().unwrap();
    let stale = mine(
        &old_job,
        &en1,
        &Extranonce2::from_counter(9999, c.extranonce2_size),
        c.difficulty_of(&old_job).to_target(),
        0,
    );
    let r = c.submit(stale.submit).await;
    assert_eq!(code(&r), Some(ErrorCode::JobNotFound));
    assert_eq!(r.unwrap_err().message, "Stale job");

    // Two more blocks complete the first retarget interval (heights 1..=3, found in well
    // under the 180 s expected): the next template is four times harder (the clamp).
    let start_bits = new_job.nbits;
    for _ in 0..2 {
        let (hash, _) = mine_block(&mut c, &mut counter).await;
        c.wait_clean_job(&hash).await;
    }
    let job = c.job.clone().unwrap();
    assert_ne!(job.nbits, start_bits, "retarget after 3 blocks");
    let ratio = job.nbits.to_target().unwrap().difficulty().as_f64()
        / start_bits.to_target().unwrap().difficulty().as_f64();
    assert!((ratio - 4.0).abs() < 0.01, "difficulty x{ratio}");
    let p = wait_for(&pool, "/api/pool", |p| p["height"] == 4).await;
    assert!((p["network_difficulty"].as_f64().unwrap() / 0.0004 - 1.0).abs() < 0.01);
    pool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_resumes_the_chain_at_its_tip() {
    let block_bits = bits_for(0.00005);
    let extra = [
        "--genesis-bits",
        block_bits.as_str(),
        "--start-difficulty",
        "0.00001",
    ];
    let pool = start_pool(&extra).await;
    let mut c = Client::login(pool.stratum()).await;
    let mut counter = 0;
    let mut last = String::new();
    for _ in 0..2 {
        last = mine_block(&mut c, &mut counter).await.0;
        c.wait_clean_job(&last).await;
    }
    wait_for(&pool, "/api/pool", |p| p["height"] == 3).await;
    drop(c);
    let (dir, args) = pool.stop().await;

    // A chain file of an earlier layout (a `HEIGHT HEX` line per block) that held only the
    // last blocks (no genesis): the chain is rebuilt from the database then, and the file
    // written anew, whole, in today's layout.
    let file = dir.path().join("spool/embedded.blocks");
    let raw = std::fs::read(&file).unwrap();
    let without_genesis: String = {
        let (f, entries) = pool_server::chain::block_file::BlockFile::open(&file).unwrap();
        entries
            .iter()
            .filter(|e| e.height > 0)
            .map(|e| {
                let b = f.read(&e.header.block_hash()).unwrap().unwrap();
                let hex = hex::encode(bitcoin::consensus::serialize(&b));
                format!("{} {hex}\n", e.height)
            })
            .collect()
    };
    std::fs::write(&file, without_genesis).unwrap();

    let pool = start_pool_with(dir, args).await;
    let p = pool.get("/api/pool").await;
    assert_eq!(p["height"], 3, "mining on top of the stored tip");
    assert_eq!(p["prev_hash"], last.as_str());
    let rewritten = std::fs::read(pool.dir.path().join("spool/embedded.blocks")).unwrap();
    assert!(rewritten == raw, "the file holds the whole chain again");
    // And it keeps extending that chain.
    let mut c = Client::login(pool.stratum()).await;
    assert_eq!(
        c.job.as_ref().unwrap().prevhash.block_hash().to_string(),
        last
    );
    mine_block(&mut c, &mut counter).await;
    wait_for(&pool, "/api/pool", |p| p["height"] == 4).await;
    pool.stop().await;
}
