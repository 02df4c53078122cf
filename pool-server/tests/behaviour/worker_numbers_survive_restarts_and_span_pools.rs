//! A worker's numbers come from the rollups: a restart (a deploy) leaves no hole in its
//! history and its 1 h hashrate picks up where it was, and several pool-servers writing to
//! one PostgreSQL show one worker one set of numbers.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::{base_args, start_pool_with, Client, PgTestDb, TestPool, WORKER};
use serde_json::Value;

/// Mine `n` shares at a difficulty that stays put.
async fn mine(pool: &TestPool, n: u64, from: u64) {
    let mut c = Client::login(pool.stratum()).await;
    for i in 0..n {
        let (r, _) = c.share(from + i).await;
        assert_eq!(r.unwrap(), serde_json::json!(true));
    }
}

fn accepted_in(history: &Value) -> u64 {
    history
        .as_array()
        .expect("a history")
        .iter()
        .map(|p| p["accepted"].as_u64().unwrap())
        .sum()
}

/// Wait until the worker's history over `range` counts `want` accepted shares.
async fn wait_history(pool: &TestPool, range: &str, want: u64) -> Value {
    let mut last = Value::Null;
    for _ in 0..300 {
        last = pool
            .get(&format!("/api/workers/{WORKER}?range={range}"))
            .await;
        if accepted_in(&last["history"]) >= want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    last
}

fn pinned(dir: &tempfile::TempDir) -> Vec<String> {
    let mut args = base_args(dir);
    args.extend(["--vardiff-max", "0.00001"].map(String::from));
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_every_workers_history_and_hour_window() {
    const N: u64 = 30;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let pool = start_pool_with(dir.clone(), pinned(&dir)).await;
    mine(&pool, N, 0).await;
    let before = wait_history(&pool, "24h", N).await;
    assert_eq!(accepted_in(&before["history"]), N);
    let (dir, args) = pool.stop().await;

    let pool = start_pool_with(dir, args).await;
    let after = pool.get(&format!("/api/workers/{WORKER}?range=24h")).await;
    assert_eq!(accepted_in(&after["history"]), N, "{after}");
    assert!(after["hashrate"]["1h"].as_f64().unwrap() > 0.0, "{after}");
    assert_eq!(
        after["history"].as_array().unwrap().len(),
        288,
        "24 h in 5-minute points"
    );
    let pool_view = pool.get("/api/pool?range=1h").await;
    assert_eq!(accepted_in(&pool_view["history"]), N);
    assert!(pool_view["hashrate"]["1h"].as_f64().unwrap() > 0.0);
    for range in ["7d", "30d", "1y"] {
        let v = pool
            .get(&format!("/api/workers/{WORKER}?range={range}"))
            .await;
        assert_eq!(accepted_in(&v["history"]), N, "{range}");
    }
    let bad = reqwest::get(format!("{}/api/pool?range=2w", pool.http()))
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("1h, 24h, 7d, 30d or 1y"));
    pool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pools_on_one_database_show_one_worker_one_set_of_numbers() {
    const N: u64 = 20;
    let db = PgTestDb::create().await;
    let mut pools = Vec::new();
    for _ in 0..2 {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let mut args = pinned(&dir);
        args.extend(["--database-url".to_string(), db.url.clone()]);
        pools.push(start_pool_with(dir, args).await);
    }
    // The same worker mines on both (its shares carry distinct extranonce1s per pool).
    mine(&pools[0], N, 0).await;
    mine(&pools[1], N, 1000).await;
    for pool in &pools {
        let v = wait_history(pool, "1h", 2 * N).await;
        assert_eq!(accepted_in(&v["history"]), 2 * N, "{v}");
        let listed = pool.get("/api/workers?limit=10").await;
        let me = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["name"] == WORKER)
            .unwrap();
        assert_eq!(me["total"]["accepted_shares"], 2 * N);
        let all = pool.get("/api/pool?range=24h").await;
        assert_eq!(accepted_in(&all["history"]), 2 * N);
    }
    for pool in pools {
        pool.stop().await;
    }
    db.drop_db().await;
}
