//! The built-in alert rules, end to end on the one-command default (no Prometheus): a worker
//! that disconnects, or stays connected but stops sending shares, is reported offline once
//! and resolved when it is back, to its own account only.

use std::time::Duration;

use serde_json::Value;

use crate::common::*;

const ALERTS: [&str; 4] = ["--alert-look", "100ms", "--alert-offline-grace", "1s"];

/// Polls `/api/alerts?QUERY` until `done` holds (10 s at most); the answer.
async fn alerts_until(pool: &TestPool, query: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..200 {
        let v = pool.get(&format!("/api/alerts?{query}")).await;
        if done(&v) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "alerts never got there: {}",
        pool.get(&format!("/api/alerts?{query}")).await
    );
}

fn firing(v: &Value, rule: &str, worker: &str) -> bool {
    v["firing"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["rule"] == rule && a["worker"] == worker)
}

fn said(v: &Value, rule: &str, state: &str) -> usize {
    v["recent"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["rule"] == rule && a["state"] == state)
        .count()
}

async fn miner(pool: &TestPool, worker: &str) -> Client {
    let mut c = Client::connect(pool.stratum()).await;
    c.subscribe().await;
    assert_eq!(c.authorize(worker).await.unwrap(), Value::Bool(true));
    c.wait_job().await;
    c
}

#[tokio::test]
async fn a_worker_that_disconnects_is_reported_offline_once_and_back_when_it_returns() {
    let pool = start_pool(&ALERTS).await;
    let mut alice = miner(&pool, "alice.rig1").await;
    let _bob = miner(&pool, "bob.rig1").await;
    for i in 0..3 {
        assert_eq!(alice.share(i).await.0.unwrap(), Value::Bool(true));
    }
    // Give the rules a look while it is connected, then let it go.
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(alice);
    let v = alerts_until(&pool, "account=alice", |v| {
        firing(v, "worker_offline", "alice.rig1")
    })
    .await;
    assert!(
        v["firing"][0]["summary"]
            .as_str()
            .unwrap()
            .contains("no connection"),
        "{v}"
    );
    assert_eq!(
        pool.metric("pool_alerts_firing{rule=\"worker_offline\"}")
            .await,
        1.0
    );
    // Another account hears nothing of it.
    let bob = pool.get("/api/alerts?account=bob").await;
    assert_eq!(bob["firing"], Value::Array(vec![]), "{bob}");
    assert_eq!(bob["recent"], Value::Array(vec![]), "{bob}");
    // Still offline a while later: said once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let v = pool.get("/api/alerts?worker=alice.rig1").await;
    assert_eq!(said(&v, "worker_offline", "firing"), 1, "{v}");
    // Back: resolved.
    let _alice = miner(&pool, "alice.rig1").await;
    let v = alerts_until(&pool, "worker=alice.rig1", |v| {
        said(v, "worker_offline", "resolved") == 1
    })
    .await;
    assert!(!firing(&v, "worker_offline", "alice.rig1"), "{v}");
    assert_eq!(
        pool.metric("pool_alerts_firing{rule=\"worker_offline\"}")
            .await,
        0.0
    );
    pool.stop().await;
}

#[tokio::test]
async fn a_connected_worker_that_stops_sending_shares_is_offline_until_its_next_share() {
    // Vardiff held still: the expected rate is then the one the shares showed.
    let mut args = ALERTS.to_vec();
    args.extend(["--vardiff-max", "0.00001"]);
    let pool = start_pool(&args).await;
    let mut carol = miner(&pool, WORKER).await;
    // A steady worker for a few seconds: its baseline is learnt from these shares.
    let mut counter = 0;
    let started = tokio::time::Instant::now();
    while started.elapsed() < Duration::from_secs(4) {
        let (r, _) = carol.share(counter).await;
        assert!(r.is_ok(), "{r:?}");
        counter += 1;
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    // Silent, still connected: offline, for the silence, not the connection.
    let v = alerts_until(&pool, &format!("worker={WORKER}"), |v| {
        firing(v, "worker_offline", WORKER)
    })
    .await;
    let summary = v["firing"][0]["summary"].as_str().unwrap().to_owned();
    assert!(summary.contains("no share while"), "{summary}");
    // Its next share resolves it.
    carol.drain().await;
    let (r, _) = carol.share(counter).await;
    assert!(r.is_ok(), "{r:?}");
    alerts_until(&pool, &format!("worker={WORKER}"), |v| {
        said(v, "worker_offline", "resolved") == 1 && !firing(v, "worker_offline", WORKER)
    })
    .await;
    pool.stop().await;
}
