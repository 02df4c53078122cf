//! Public reads whose cost once grew with the pool's data (an outside review: 1.3 s per
//! worker-table request at 200,000 workers, so a few addresses could hold every HTTP slot):
//! the worker table, the workers list and the accounts list read one snapshot that a crowd of
//! requests shares, built at most every few seconds, and a worker that starts mining shows up
//! in it soon after. `scripts/bench-api` measures the same at 200,000 workers.

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use common::*;
use pool_server::store::{Backend, Batch, ShareRecord, StoreEvent};
use serde_json::Value;
use uuid::Uuid;

const SEEDED: usize = 3_000;

/// One accepted share each for `SEEDED` workers of 100 accounts.
async fn seed(url: &str) {
    let b = Backend::connect(url).await.unwrap();
    b.migrate().await.unwrap();
    let events: Vec<StoreEvent> = (0..SEEDED)
        .map(|i| {
            StoreEvent::Share(ShareRecord {
                id: Uuid::now_v7(),
                worker: format!("acct{:02}.rig{}", i % 100, i / 100),
                session_id: i as i64,
                job_id: "1".into(),
                height: 5,
                assigned_difficulty: 0.5,
                achieved_difficulty: 0.75,
                accepted: true,
                reason: None,
                block_hash: None,
                created_at: Utc::now(),
            })
        })
        .collect();
    b.write(&[Batch::new(events)]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_of_table_reads_shares_one_snapshot_and_new_workers_show_up() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    seed(&format!("sqlite://{}/pool.sqlite", dir.path().display())).await;
    let pool = start_pool_with(dir.clone(), base_args(&dir)).await;
    let http = pool.http();
    let paths = [
        "/api/worker-table?limit=50",
        "/api/worker-table?sort=accepted&order=desc&group=account",
        "/api/worker-table?q=RIG1&sort=hashrate_5m",
        "/api/workers?limit=100",
        "/api/workers?limit=100&after=acct50",
        "/api/accounts?limit=10",
    ];
    // 12 clients (under the per-address cap), 20 requests each, all at once.
    let client = reqwest::Client::new();
    let mut crowd = Vec::new();
    for c in 0..12 {
        let (client, http) = (client.clone(), http.clone());
        crowd.push(tokio::spawn(async move {
            for k in 0..20 {
                let path = paths[(c + k) % paths.len()];
                let r = client.get(format!("{http}{path}")).send().await.unwrap();
                assert_eq!(r.status(), 200, "{path}");
                let v: Value = r.json().await.unwrap();
                match path {
                    "/api/worker-table?limit=50" => assert_eq!(v["total"], SEEDED),
                    // rig1, rig10..rig19: 11 rigs of each of the 100 accounts.
                    "/api/worker-table?q=RIG1&sort=hashrate_5m" => assert_eq!(v["total"], 1_100),
                    "/api/workers?limit=100" => assert_eq!(v.as_array().unwrap().len(), 100),
                    _ => {}
                }
            }
        }));
    }
    for c in crowd {
        c.await.unwrap();
    }
    // 240 requests: one build of each shared view, or a few if the crowd outlived a
    // snapshot's few seconds on a loaded machine; never one per request.
    for view in ["workers", "balances"] {
        let builds = pool
            .metric(&format!("pool_http_view_builds_total{{view=\"{view}\"}}"))
            .await;
        assert!(
            (1.0..=4.0).contains(&builds),
            "{builds} builds of {view} for 240 requests"
        );
    }

    // A worker that starts mining is listed within a few seconds.
    let mut miner = Client::login(pool.stratum()).await;
    assert_eq!(miner.share(1).await.0, Ok(Value::Bool(true)));
    let t = Instant::now();
    loop {
        let v = pool.get(&format!("/api/worker-table?q={WORKER}")).await;
        if v["total"] == 1 {
            assert_eq!(v["rows"][0]["sessions"], 1);
            assert_eq!(v["rows"][0]["accepted"], 1);
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "{WORKER} never listed: {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let all = pool.get("/api/worker-table?limit=1").await;
    assert_eq!(all["total"], SEEDED + 1);
    pool.stop().await;
}
