//! What an operator relies on: several ports with their own start difficulty, miners told to
//! reconnect on shutdown, idle and login timeouts, offenders banned, the read API and the
//! token-guarded admin API (feeding a transaction makes the merkle branch real).

use crate::common;

use std::time::Duration;

use common::*;
use protocol::{Message, ServerNotification};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_listener_has_its_own_start_difficulty() {
    let pool = start_pool(&["--stratum", "127.0.0.1:0=0.002"]).await;
    assert_eq!(pool.running.stratum.len(), 2);
    let a = Client::login(pool.running.stratum[0]).await;
    let b = Client::login(pool.running.stratum[1]).await;
    assert_eq!(a.difficulty.unwrap().as_f64(), 0.00001);
    assert_eq!(b.difficulty.unwrap().as_f64(), 0.002);
    pool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_tells_miners_to_reconnect() {
    let pool = start_pool(&[]).await;
    let mut c = Client::login(pool.stratum()).await;
    let stopping = tokio::spawn(pool.stop());
    let mut saw_reconnect = false;
    while let Some(m) = c.read(Duration::from_secs(5)).await {
        if let Message::Call(call) = m {
            if matches!(
                ServerNotification::from_call(&call),
                Ok(ServerNotification::Reconnect { .. })
            ) {
                saw_reconnect = true;
            }
        }
    }
    assert!(saw_reconnect, "client.reconnect before the close");
    stopping.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_unauthenticated_connections_are_closed() {
    let pool = start_pool(&["--auth-timeout", "300ms", "--idle-timeout", "700ms"]).await;
    // Connects and never logs in.
    let mut lurker = Client::connect(pool.stratum()).await;
    let t = std::time::Instant::now();
    assert!(lurker.read(Duration::from_secs(5)).await.is_none());
    assert!(t.elapsed() < Duration::from_secs(2));
    // Logs in, then goes quiet.
    let mut idle = Client::login(pool.stratum()).await;
    idle.drain().await;
    let t = std::time::Instant::now();
    while idle.read(Duration::from_secs(5)).await.is_some() {}
    assert!(t.elapsed() < Duration::from_secs(3));
    pool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_floods_get_the_ip_banned() {
    let pool = start_pool(&["--ban-threshold", "5", "--ban-duration", "1m"]).await;
    let mut bad = Client::connect(pool.stratum()).await;
    for _ in 0..20 {
        // Once banned, the pool closes the socket and a write may fail: that is the point.
        if bad.try_send_raw("%%% not stratum %%%").await.is_err() {
            break;
        }
    }
    let mut closed = false;
    for _ in 0..40 {
        if bad.read(Duration::from_secs(2)).await.is_none() {
            closed = true;
            break;
        }
    }
    assert!(closed, "the flooding session is dropped");
    // The same IP is now refused at once.
    let mut again = Client::connect(pool.stratum()).await;
    assert!(again.read(Duration::from_secs(2)).await.is_none());
    let m = reqwest::get(format!("{}/metrics", pool.http()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains("pool_bans_total 1"), "{m}");
    pool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_api_shows_workers_history_and_shares() {
    let pool = start_pool(&[]).await;
    let mut c = Client::login(pool.stratum()).await;
    for i in 0..5 {
        assert_eq!(c.share(i).await.0, Ok(Value::Bool(true)));
    }
    let workers = pool.get("/api/workers").await;
    let w = &workers.as_array().unwrap()[0];
    assert_eq!(w["name"], WORKER);
    assert_eq!(w["accepted"], 5);
    assert_eq!(w["sessions"], 1);
    assert!(w["hashrate"]["1m"].as_f64().unwrap() > 0.0);
    let detail = pool.get(&format!("/api/workers/{WORKER}")).await;
    // History comes from the rollups in 5-minute buckets up to the current one: the shares
    // above fall in one bucket, or in two when they straddle a bucket's edge.
    assert!(detail["history"].as_array().unwrap().len() <= 2);
    assert_eq!(detail["accepted"], 5);
    let missing = reqwest::get(format!("{}/api/workers/nobody", pool.http()))
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    // Shares reach the database within a flush interval.
    let mut shares = Value::Null;
    for _ in 0..40 {
        shares = pool.get(&format!("/api/shares?worker={WORKER}")).await;
        if shares.as_array().unwrap().len() == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(shares.as_array().unwrap().len(), 5);
    assert_eq!(shares[0]["accepted"], true);
    // A worker never seen: an empty list (one index lookup, no walk of the shares).
    assert_eq!(
        pool.get("/api/shares?worker=nobody.here").await,
        serde_json::json!([])
    );
    let bad = reqwest::get(format!("{}/api/shares?limit=0", pool.http()))
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let metrics = reqwest::get(format!("{}/metrics", pool.http()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains(&format!(
        "pool_worker_shares_total{{reason=\"\",result=\"accepted\",worker=\"{WORKER}\"}} 5"
    )));
    assert!(metrics.contains("pool_sessions 1"));
    pool.stop().await;
}

/// Block 170's famous transaction, as a real transaction to feed the embedded mempool.
const TX_170: &str = "0100000001c997a5e56e104102fa209c6a852dd90660a20b2d9c352423edce25857fcd3704000000004847304402204e45e16932b8af514961a1d3a1a25fdf3f4f7732e9d624c6c61548ab5fb8cd410220181522ec8eca07de4860a4acdd12909d831cc56cbbac4622082221a8768d1d0901ffffffff0200ca9a3b00000000434104ae1a62fe09c5f51b13905f07f06b99a2f7159b2225f374cd378d71302fa28414e7aab37397f554a7df5f142c21c1b7303b8a0626f1baded5c72a704f7e6cd84cac00286bee0000000043410411db93e1dcdb8a016b49840f8c53bc1eb68a382e97b1482ecad7b148a6909a5cb2e0eaddfb84ccf9744464f82e160bfa9b8b64f9d4c03f999b8643f656b412a3ac00000000";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_need_the_token_and_fed_transactions_reach_the_branch() {
    let off = start_pool(&[]).await;
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/api/mempool", off.http()))
        .json(&json!({"hex": TX_170}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "off unless configured");
    off.stop().await;

    let pool = start_pool(&["--api-token", "s3cret-token"]).await;
    let mut c = Client::login(pool.stratum()).await;
    assert!(c.job.as_ref().unwrap().merkle_branch.is_empty());
    let url = format!("{}/api/mempool", pool.http());
    let wrong = http
        .post(&url)
        .bearer_auth("nope")
        .json(&json!({"hex": TX_170}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let ok = http
        .post(&url)
        .bearer_auth("s3cret-token")
        .json(&json!({"hex": TX_170}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 201);
    let txid = ok.json::<Value>().await.unwrap()["txid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        txid,
        "f4184fc596403b9d638783cf57adfe4c75c605f6356fbc91338530e9831e9e16"
    );
    let dup = http
        .post(&url)
        .bearer_auth("s3cret-token")
        .json(&json!({"hex": TX_170}))
        .send()
        .await
        .unwrap();
    assert_eq!(dup.status(), 409);
    let junk = http
        .post(&url)
        .bearer_auth("s3cret-token")
        .json(&json!({"hex": "00ff"}))
        .send()
        .await
        .unwrap();
    assert_eq!(junk.status(), 400);
    // The next job carries the transaction in its merkle branch, and shares still validate.
    let job = c.wait_job().await;
    assert_eq!(job.merkle_branch.len(), 1);
    assert_eq!(
        protocol::bitcoin::Txid::from_byte_array(job.merkle_branch[0].to_byte_array()).to_string(),
        txid
    );
    assert_eq!(c.share(1).await.0, Ok(Value::Bool(true)));
    assert_eq!(pool.get("/api/pool").await["transactions"], 1);
    // Bans: list, add, lift.
    let bans = format!("{}/api/bans", pool.http());
    assert_eq!(http.get(&bans).send().await.unwrap().status(), 401);
    let add = http
        .post(&bans)
        .bearer_auth("s3cret-token")
        .json(&json!({"ip": "192.0.2.7"}))
        .send()
        .await
        .unwrap();
    assert_eq!(add.status(), 204);
    let list = get_admin(&bans, "s3cret-token").await;
    assert_eq!(list[0]["ip"], "192.0.2.7");
    let lift = http
        .delete(format!("{bans}/192.0.2.7"))
        .bearer_auth("s3cret-token")
        .send()
        .await
        .unwrap();
    assert_eq!(lift.status(), 204);
    // The token never appears in metrics or the API.
    let m = http
        .get(format!("{}/metrics", pool.http()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!m.contains("s3cret"));
    assert!(!pool.get("/api/pool").await.to_string().contains("s3cret"));
    pool.stop().await;
}

use protocol::bitcoin::hashes::Hash;
