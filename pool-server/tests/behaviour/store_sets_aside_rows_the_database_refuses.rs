//! A row the database refuses on its own (a NUL byte PostgreSQL will not store, left in the
//! spool by an older pool) no longer blocks the shares behind it or the pool's start: it is
//! set aside in `quarantine.jsonl`, counted, and everything else is stored.

use crate::common;

use chrono::Utc;
use common::*;
use pool_server::store::spool::Spool;
use pool_server::store::{Batch, ShareRecord, StoreEvent};
use uuid::Uuid;

fn share(job_id: &str) -> StoreEvent {
    StoreEvent::Share(ShareRecord {
        id: Uuid::new_v4(),
        worker: WORKER.into(),
        session_id: 1,
        job_id: job_id.into(),
        height: 1,
        assigned_difficulty: 1.0,
        achieved_difficulty: 0.0,
        accepted: false,
        reason: Some("job-not-found".into()),
        block_hash: None,
        created_at: Utc::now(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poisoned_spool_is_replayed_around_the_row_postgres_refuses() {
    let db = PgTestDb::create().await;
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let spool_dir = dir.path().join("spool");
    let mut spool = Spool::open(&spool_dir).unwrap();
    spool
        .append(&[Batch::new(vec![share("a1"), share("\u{0}"), share("a2")])])
        .unwrap();
    drop(spool);

    let mut args = base_args(&dir);
    args.extend(["--database-url".to_string(), db.url.clone()]);
    let pool = start_pool_with(dir.clone(), args).await;
    // The pool serves at once and replays the spool behind.
    assert_eq!(pool.wait_metric("pool_store_spool_depth", 0.0).await, 0.0);
    assert_eq!(pool.metric("pool_store_quarantined_total").await, 1.0);
    let stored = pool.get("/api/shares?limit=10").await;
    let jobs: Vec<&str> = stored
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["job_id"].as_str().unwrap())
        .collect();
    assert_eq!(jobs.len(), 2, "{stored}");
    assert!(jobs.contains(&"a1") && jobs.contains(&"a2"));
    let aside = std::fs::read_to_string(spool_dir.join("quarantine.jsonl")).unwrap();
    assert_eq!(aside.lines().count(), 1);
    assert!(aside.contains("\\u0000"), "{aside}");
    pool.stop().await;
    db.drop_db().await;
}

/// With SQLite, a replayed spool is cut only once the rows are in the database file itself,
/// not just in its write-ahead log (which `synchronous=NORMAL` may lose at a power loss).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_spool_is_cut_only_once_sqlite_has_it_durably() {
    use sqlx::Connection;
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let spool_dir = dir.path().join("spool");
    // Written by a pool from before batch ids: one event per line.
    std::fs::create_dir_all(&spool_dir).unwrap();
    let lines: String = [share("b1"), share("b2"), share("b3")]
        .iter()
        .map(|e| serde_json::to_string(e).unwrap() + "\n")
        .collect();
    std::fs::write(spool_dir.join("shares.spool"), lines).unwrap();
    let pool = start_pool_with(dir.clone(), base_args(&dir)).await;
    assert_eq!(pool.wait_metric("pool_store_spool_depth", 0.0).await, 0.0);
    // The database file alone, without its -wal: what a power loss would leave.
    let alone = dir.path().join("alone.sqlite");
    std::fs::copy(dir.path().join("pool.sqlite"), &alone).unwrap();
    let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", alone.display()))
        .await
        .unwrap();
    // b1..b3 are hex job ids: stored as integers 0xb1..0xb3.
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM shares WHERE job BETWEEN 177 AND 179")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(n, 3);
    pool.stop().await;
}
