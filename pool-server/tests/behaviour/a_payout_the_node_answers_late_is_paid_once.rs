//! A `sendmany` that reaches the node after the pool gave up on it is still paid once: a proxy
//! between pool and node holds the first `sendmany` for a minute (past the client's 20 s
//! timeout, and past the 45 s after which the pool used to call such a payout failed and pay
//! its balances again), the pool is killed with SIGKILL while the payout is pending and
//! started again, and when the node finally makes the payment the pool finds it in the
//! wallet: the account is paid exactly once, matched against `listtransactions` and what the
//! other node's wallet received.
//!
//! And a `sendmany` that never reaches the node (lost with the node's process) is paid once
//! too: the payout stays pending, its balances held, past the client's timeout; only when the
//! node has restarted without it in the wallet is it failed, and the balances paid again, once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common;

use common::accounts::*;
use common::process::PoolProcess;
use common::regtest::*;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// How long the proxy holds the first `sendmany` before the node sees it.
const HOLD: Duration = Duration::from_secs(60);

/// What the proxy does with the first `sendmany`.
#[derive(Clone, Copy)]
enum Hold {
    /// Passes it on after this long.
    For(Duration),
    /// Never passes it on (the node never sees it).
    Forever,
}

/// One HTTP/1.1 request (headers and a `Content-Length` body), asking the node to close the
/// connection after its answer (so every request comes on a connection of its own and is
/// looked at); `None` at EOF.
async fn http_request<R: tokio::io::AsyncRead + Unpin>(r: &mut BufReader<R>) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            head.extend_from_slice(b"Connection: close\r\n\r\n");
            break;
        }
        match line.split_once(':') {
            Some((k, _)) if k.eq_ignore_ascii_case("connection") => continue,
            Some((k, v)) if k.eq_ignore_ascii_case("content-length") => {
                length = v.trim().parse().ok()?;
            }
            _ => {}
        }
        head.extend_from_slice(line.as_bytes());
    }
    let mut body = vec![0; length];
    r.read_exact(&mut body).await.ok()?;
    head.extend(body);
    Some(head)
}

/// A proxy on loopback to the node's RPC at `node_port`: every request goes through, except
/// the first `sendmany`, which `hold` delays (it still reaches the node when the client has
/// given up by then) or swallows. Returns its URL.
async fn holding_proxy(node_port: u16, held: Arc<AtomicBool>, hold: Hold) -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = l.accept().await else {
                return;
            };
            let held = held.clone();
            tokio::spawn(async move {
                let (cr, mut cw) = client.into_split();
                let mut cr = BufReader::new(cr);
                let Some(request) = http_request(&mut cr).await else {
                    return;
                };
                let text = String::from_utf8_lossy(&request);
                if text.contains("\"sendmany\"") && !held.swap(true, Ordering::SeqCst) {
                    match hold {
                        Hold::For(d) => tokio::time::sleep(d).await,
                        Hold::Forever => return,
                    }
                }
                let Ok(mut server) = TcpStream::connect(("127.0.0.1", node_port)).await else {
                    return;
                };
                if server.write_all(&request).await.is_err() {
                    return;
                }
                // The answer, whole (the node closes after it), to the client if still there.
                let mut response = Vec::new();
                let _ = server.read_to_end(&mut response).await;
                let _ = cw.write_all(&response).await;
            });
        }
    });
    url
}

/// Two regtest nodes, a pool paying from the first's wallet through a [`holding_proxy`], and
/// alice's one block matured: her payout is recorded and its `sendmany` held.
struct Pending {
    _dir: tempfile::TempDir,
    n1: Node,
    n2: Node,
    alice_addr: Value,
    alice: String,
    /// An address of the first node's, to mine confirmations to.
    other: Value,
    pool: PoolProcess,
    pool_dir: std::path::PathBuf,
    http: String,
    /// The account page while the payout is pending.
    page: Value,
}

async fn a_pending_payout(hold: Hold) -> Option<Pending> {
    let bin = bitcoind_or_skip()?;
    let dir = tempfile::tempdir().unwrap();
    let (n1, n2, pool_addr) = regtest_pair(&bin, dir.path(), &[]).await;
    let alice_addr = n2.call("getnewaddress", json!([])).await.unwrap();
    let alice = alice_addr.as_str().unwrap().to_owned();
    let pool_addr_text = pool_addr.as_str().unwrap().to_owned();
    let held = Arc::new(AtomicBool::new(false));
    let url = holding_proxy(n1.rpc, held.clone(), hold).await;
    let pool_dir = dir.path().join("pool");
    let pool = payout_pool_at(
        &pool_dir,
        &url,
        &[
            "--payout-address",
            &pool_addr_text,
            "--payout-method",
            "wallet",
            "--payout-interval",
            "1s",
            "--payout-threshold",
            "0.001",
            "--log",
            "info",
        ],
    );
    let http = pool.http.clone();
    let worker = format!("{alice}.rig");
    let mut miners = [(miner(pool.stratum, &worker).await, worker.as_str())];
    // One block: one credit maturing at one height, so one payout covers it all.
    mine_blocks(&mut miners, 1).await;
    drop(miners);
    until_account(&http, &alice, "credits", |v| {
        v["balance"]["immature_sats"].as_i64().unwrap_or(0) > 0
    })
    .await;
    let other = n1.call("getnewaddress", json!([])).await.unwrap();
    n1.call("generatetoaddress", json!([100, other.clone()]))
        .await
        .unwrap();

    // The payout is recorded and its sendmany held: pending, not due.
    let page = until_account(&http, &alice, "a pending payout", |v| {
        v["payouts"][0]["state"] == "pending"
    })
    .await;
    assert!(held.load(Ordering::SeqCst), "the proxy holds the sendmany");
    assert_eq!(page["balance"]["due_sats"], 0, "pending is not due");
    Some(Pending {
        _dir: dir,
        n1,
        n2,
        alice_addr,
        alice,
        other,
        pool,
        pool_dir,
        http,
        page,
    })
}

/// The wallet's pool payout transactions.
async fn payout_txids(n1: &Node) -> Vec<String> {
    let listed = n1
        .call("listtransactions", json!(["*", 1000, 0, true]))
        .await
        .unwrap();
    let txids: std::collections::BTreeSet<String> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["comment"]
                .as_str()
                .is_some_and(|c| c.starts_with("pool payout "))
        })
        .map(|e| e["txid"].as_str().unwrap().to_owned())
        .collect();
    txids.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sendmany_the_node_runs_after_the_timeout_and_a_kill_is_paid_once() {
    let Some(Pending {
        _dir,
        n1,
        n2,
        alice_addr,
        alice,
        other,
        pool,
        pool_dir,
        http,
        page: pending,
    }) = a_pending_payout(Hold::For(HOLD)).await
    else {
        return;
    };
    let held_since = Instant::now();
    // Past the client's timeout, the pool is killed and started again, still before the node
    // has seen the call.
    tokio::time::sleep(Duration::from_secs(25)).await;
    let (args, stratum, http_again) = pool.kill_hard();
    let pool = PoolProcess::spawn_with(&pool_dir, args, stratum, http_again);
    // Until the node runs the held call, the payout stays pending and nothing else is sent.
    while held_since.elapsed() < HOLD - Duration::from_secs(3) {
        let v = balance(&http, &alice).await;
        if !v.is_null() && v["payouts"].is_array() {
            let payouts = v["payouts"].as_array().unwrap();
            assert!(
                payouts.iter().all(|p| p["state"] == "pending"),
                "a payout other than the held one, or the held one settled, before the node \
                 saw it: {payouts:?}"
            );
            assert_eq!(
                v["balance"]["due_sats"], 0,
                "held balances are not due again"
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // The node makes the payment; the pool finds it in the wallet: sent, once.
    // (The page reads its balance and its payouts one after the other: wait for both.)
    let a = until_account(&http, &alice, "the held payout sent", |v| {
        v["payouts"][0]["state"] == "sent"
            && v["balance"]["paid_sats"] == v["balance"]["mature_sats"]
    })
    .await;
    let payouts = a["payouts"].as_array().unwrap();
    assert_eq!(payouts.len(), 1, "one payout: {payouts:?}");
    assert_eq!(payouts[0]["id"], pending["payouts"][0]["id"]);
    assert_eq!(a["balance"]["due_sats"], 0);
    assert_eq!(a["balance"]["paid_sats"], a["balance"]["mature_sats"]);
    // A few more runs: nothing else goes out.
    tokio::time::sleep(Duration::from_secs(3)).await;
    confirm(&n1, &n2, &other).await;
    let received = n2
        .call("getreceivedbyaddress", json!([alice_addr, 1]))
        .await
        .unwrap();
    assert_eq!(
        sats(&received),
        a["balance"]["paid_sats"].as_i64().unwrap(),
        "the node paid what the API says, once"
    );
    assert_eq!(
        payout_txids(&n1).await,
        vec![payouts[0]["txid"].as_str().unwrap()],
        "one payout transaction in the wallet"
    );
    drop(pool);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sendmany_lost_with_the_nodes_process_is_paid_once_after_its_restart() {
    let Some(Pending {
        _dir,
        mut n1,
        n2,
        alice_addr,
        alice,
        other,
        pool,
        http,
        page: pending,
        ..
    }) = a_pending_payout(Hold::Forever).await
    else {
        return;
    };
    // Past the client's 20 s timeout with no answer: still pending, its balances held (the
    // node may yet make it).
    tokio::time::sleep(Duration::from_secs(25)).await;
    let v = balance(&http, &alice).await;
    assert_eq!(v["payouts"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["payouts"][0]["state"], "pending", "{v}");
    assert_eq!(
        v["balance"]["due_sats"], 0,
        "held balances are not due again"
    );

    // The node's process dies and starts again without the call: the wallet proves it was
    // never made. The payout fails, and its balances are paid by the next one, once.
    n1.restart();
    n1.ready().await;
    // (The page reads its balance and its payouts one after the other: wait for both.)
    let a = until_account(&http, &alice, "a second payout sent", |v| {
        v["payouts"][0]["state"] == "sent"
            && v["balance"]["paid_sats"] == v["balance"]["mature_sats"]
    })
    .await;
    let payouts = a["payouts"].as_array().unwrap();
    // Newest first: one sent; before it only failures (the node, just restarted, may refuse
    // a run or two while its wallet loads: nothing is sent then); the oldest the lost one.
    assert_eq!(
        payouts.iter().filter(|p| p["state"] == "sent").count(),
        1,
        "{payouts:?}"
    );
    assert!(
        payouts[1..].iter().all(|p| p["state"] == "failed"),
        "{payouts:?}"
    );
    let lost = payouts.last().unwrap();
    assert_eq!(lost["id"], pending["payouts"][0]["id"]);
    assert!(
        lost["detail"].as_str().unwrap().contains("restarted"),
        "failed for the restart: {lost}"
    );
    assert_eq!(a["balance"]["due_sats"], 0);
    assert_eq!(a["balance"]["paid_sats"], a["balance"]["mature_sats"]);
    // A few more runs: nothing else goes out.
    tokio::time::sleep(Duration::from_secs(3)).await;
    confirm(&n1, &n2, &other).await;
    let received = n2
        .call("getreceivedbyaddress", json!([alice_addr, 1]))
        .await
        .unwrap();
    assert_eq!(
        sats(&received),
        a["balance"]["paid_sats"].as_i64().unwrap(),
        "the node paid what the API says, once"
    );
    assert_eq!(
        payout_txids(&n1).await,
        vec![payouts[0]["txid"].as_str().unwrap()],
        "one payout transaction in the wallet"
    );
    drop(pool);
}
