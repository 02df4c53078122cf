//! A `sendmany` that reaches the node after the pool gave up on it is still paid once: a proxy
//! between pool and node holds the first `sendmany` for a minute (past the client's 20 s
//! timeout, and past the 45 s after which the pool used to call such a payout failed and pay
//! its balances again), the pool is killed with SIGKILL while the payout is pending and
//! started again, and when the node finally makes the payment the pool finds it in the
//! wallet: the account is paid exactly once, matched against `listtransactions` and what the
//! other node's wallet received.

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
/// the first `sendmany`, which waits [`HOLD`] first (and still reaches the node when the
/// client has given up by then). Returns its URL.
async fn holding_proxy(node_port: u16, held: Arc<AtomicBool>) -> String {
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
                    tokio::time::sleep(HOLD).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sendmany_the_node_runs_after_the_timeout_and_a_kill_is_paid_once() {
    let Some(bin) = bitcoind_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (n1, n2, pool_addr) = regtest_pair(&bin, dir.path(), &[]).await;
    let alice_addr = n2.call("getnewaddress", json!([])).await.unwrap();
    let alice = alice_addr.as_str().unwrap().to_owned();
    let pool_addr_text = pool_addr.as_str().unwrap().to_owned();
    let held = Arc::new(AtomicBool::new(false));
    let url = holding_proxy(n1.rpc, held.clone()).await;
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
    n1.call("generatetoaddress", json!([100, other]))
        .await
        .unwrap();

    // The payout is recorded and its sendmany held: pending, not due.
    let pending = until_account(&http, &alice, "a pending payout", |v| {
        v["payouts"][0]["state"] == "pending"
    })
    .await;
    let held_since = Instant::now();
    assert!(held.load(Ordering::SeqCst), "the proxy holds the sendmany");
    assert_eq!(pending["balance"]["due_sats"], 0, "pending is not due");
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
    let a = until_account(&http, &alice, "the held payout sent", |v| {
        v["payouts"][0]["state"] == "sent"
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
    let listed = n1
        .call("listtransactions", json!(["*", 1000, 0, true]))
        .await
        .unwrap();
    let made: Vec<&Value> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["comment"]
                .as_str()
                .is_some_and(|c| c.starts_with("pool payout "))
        })
        .collect();
    let txids: std::collections::BTreeSet<&str> =
        made.iter().map(|e| e["txid"].as_str().unwrap()).collect();
    assert_eq!(
        txids.into_iter().collect::<Vec<_>>(),
        vec![payouts[0]["txid"].as_str().unwrap()],
        "one payout transaction in the wallet"
    );
    drop(pool);
}
