//! Mining on a real node: two Bitcoin SV 1.0.13 regtest nodes on loopback (the only
//! Bitcoin-compatible node in the registries here; `scripts/prepare/regtest-node` fetches it).
//! Twenty blocks found through Stratum are accepted by the node, whose chain and our
//! `/api/blocks` agree; a block with a wrong merkle root is refused and reported with the
//! node's reason; when the node goes away the work is marked stale, and it recovers when the
//! node returns.

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::regtest::*;
use common::*;
use pool_server::chain::node_rpc::NodeSource;
use pool_server::chain::rpc::{NodeConfig, RpcClient};
use pool_server::chain::{BlockVerdict, TemplateSource};
use protocol::bitcoin::hashes::Hash;
use protocol::Extranonce2;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_blocks_through_stratum_are_accepted_by_the_node() {
    let Some(bin) = bitcoind_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (mut n1, _n2, _) = regtest_pair(&bin, dir.path(), &[]).await;

    let pool = pool_on(
        &n1,
        &[
            "--node-template-max-age",
            "1s",
            "--start-difficulty",
            "0.000000001",
            "--vardiff-min",
            "0.000000000001",
        ],
    )
    .await;
    assert_eq!(pool.get("/api/pool").await["source"], "node");
    assert_eq!(pool.get("/api/pool").await["height"], 102);
    let mut c = Client::login(pool.stratum()).await;
    let en1 = c.extranonce1.clone().unwrap();
    let mut found = Vec::new();
    for i in 0..20u64 {
        let job = c.job.clone().unwrap();
        let target = job.nbits.to_target().unwrap();
        let share = mine(
            &job,
            &en1,
            &Extranonce2::from_counter(i, c.extranonce2_size),
            target,
            0,
        );
        assert_eq!(c.submit(share.submit.clone()).await, Ok(Value::Bool(true)));
        let hash = share.hash.to_string();
        until(
            "the node to take our block",
            Duration::from_secs(15),
            || async { n1.call("getbestblockhash", json!([])).await.ok() == Some(json!(hash)) },
        )
        .await;
        // Work for the new tip arrives as a clean job.
        loop {
            let n = c.wait_job().await;
            if n.prevhash.block_hash().to_string() == hash {
                assert!(n.clean_jobs);
                break;
            }
        }
        found.push(hash);
    }
    let info = n1.call("getblockchaininfo", json!([])).await.unwrap();
    assert_eq!(info["blocks"], 121);
    // The node's chain and our record agree, block by block.
    let mut blocks = Value::Null;
    for _ in 0..50 {
        blocks = pool.get("/api/blocks?limit=100").await;
        if blocks.as_array().unwrap().len() == 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let blocks = blocks.as_array().unwrap();
    assert_eq!(blocks.len(), 20);
    for b in blocks {
        assert_eq!(b["status"], "accepted");
        assert_eq!(b["chain"], "node");
        let at = n1.call("getblockhash", json!([b["height"]])).await.unwrap();
        assert_eq!(
            at, b["hash"],
            "node and /api/blocks agree at height {}",
            b["height"]
        );
        assert!(found.contains(&b["hash"].as_str().unwrap().to_owned()));
    }

    // A block with a wrong merkle root: refused by the node, reported with its reason.
    let metrics = Arc::new(pool_server::metrics::Metrics::new());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let cfg = NodeConfig {
        url: n1.url(),
        user: Some("u".into()),
        password: Some("p".into()),
        cookie_file: None,
        poll: Duration::from_millis(500),
        refresh: Duration::from_secs(30),
        max_age: Duration::from_secs(120),
        zmq: None,
        longpoll: true,
    };
    let source = NodeSource::start(
        cfg.clone(),
        metrics.chain.clone(),
        shutdown.clone(),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let job = pool.running.jobs.current();
    let en2 = Extranonce2::from_counter(777, c.extranonce2_size);
    let mut header = job.notify.header(
        &en1,
        &en2,
        job.notify.ntime,
        protocol::Nonce(0),
        job.notify.version,
    );
    header.merkle_root = protocol::bitcoin::TxMerkleNode::from_byte_array([7; 32]);
    while !job.template.target.is_met_by(&header.block_hash()) {
        header.nonce += 1;
    }
    let bad = job.assemble_block(&en1, &en2, header);
    let verdict = source.submit_block(bad).await;
    assert_eq!(verdict, BlockVerdict::Rejected("bad-txnmrklroot".into()));
    assert!(!verdict.is_found());
    let raw = RpcClient::new(cfg).best_block_hash().await.unwrap();
    assert_eq!(
        raw,
        *found.last().unwrap(),
        "the bad block did not move the tip"
    );
    shutdown.cancel();

    // The node goes away: work is served, then marked stale; it comes back: fresh again.
    let _ = n1.child.kill();
    let _ = n1.child.wait();
    until(
        "stale work to be reported",
        Duration::from_secs(20),
        || async { pool.get("/api/pool").await["template_stale"] == true },
    )
    .await;
    let m = reqwest::get(format!("{}/metrics", pool.http()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains("pool_template_stale 1"));
    n1.restart();
    n1.ready().await;
    until(
        "fresh work after the node returns",
        Duration::from_secs(60),
        || async { pool.get("/api/pool").await["template_stale"] == false },
    )
    .await;
    pool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zmq_hashblock_brings_new_tips_without_polling() {
    let Some(bin) = bitcoind_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let zmq = format!("tcp://127.0.0.1:{}", free_port());
    let (n1, _n2, addr) =
        regtest_pair(&bin, dir.path(), &[format!("-zmqpubhashblock={zmq}")]).await;
    // No long polling and a one-minute poll: only ZMQ can bring the next tip quickly.
    let pool = pool_on(
        &n1,
        &[
            "--node-zmq",
            &zmq,
            "--node-no-longpoll",
            "--node-poll",
            "60s",
        ],
    )
    .await;
    let mut c = Client::login(pool.stratum()).await;
    tokio::time::sleep(Duration::from_millis(500)).await; // the subscription settles
    let hashes = n1
        .call("generatetoaddress", json!([1, addr]))
        .await
        .unwrap();
    let tip = hashes[0].as_str().unwrap().to_owned();
    let t = Instant::now();
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), c.wait_job())
            .await
            .expect("the new tip arrived by ZMQ, not by the 60 s poll");
        if n.prevhash.block_hash().to_string() == tip {
            assert!(n.clean_jobs);
            break;
        }
    }
    eprintln!("new tip by ZMQ after {:?}", t.elapsed());
    assert!(t.elapsed() < Duration::from_secs(5));
    pool.stop().await;
}

/// Sockets in CLOSE-WAIT on local `port`: connections the client closed while the node still
/// holds them (an abandoned long poll keeps one of the node's RPC threads so).
fn close_wait_on(port: u16) -> usize {
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap()
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let local_port = f[1].rsplit(':').next().unwrap();
            u16::from_str_radix(local_port, 16) == Ok(port) && f[3] == "08"
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_refreshes_never_abandon_a_long_poll() {
    let Some(bin) = bitcoind_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (n1, _n2, addr) = regtest_pair(&bin, dir.path(), &[]).await;
    let pool = pool_on(&n1, &["--node-template-refresh", "500ms"]).await;
    // Twelve refresh periods with no new block: the one long poll waits throughout.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(close_wait_on(n1.rpc), 0, "a long poll was abandoned");
    // A new block answers it; the next one takes its place, and the node still answers.
    n1.call("generatetoaddress", json!([1, addr]))
        .await
        .unwrap();
    until(
        "the pool follows the new tip",
        Duration::from_secs(10),
        || async { pool.get("/api/pool").await["height"] == 103 },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(close_wait_on(n1.rpc), 0, "a long poll was abandoned");
    assert!(n1.call("getblockcount", json!([])).await.is_ok());
    pool.stop().await;
}
