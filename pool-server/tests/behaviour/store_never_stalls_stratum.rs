//! A share is answered as soon as it is validated, whatever the store is doing. With the
//! database locked (every write hangs until it times out) and a queue far smaller than the
//! shares sent, every record and every Stratum answer still comes back while the lock is
//! held; what the writer cannot take waits in the spool, and every share lands exactly once
//! when the lock goes. (Before the batcher spooled on its own, sessions waited in
//! `record().await` behind the locked database, and these tests timed out.)

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use common::{Client, PgTestDb, WORKER};
use pool_server::metrics::Metrics;
use pool_server::store::{Backend, ShareRecord, Store, StoreEvent, StoreOptions};
use sqlx::Connection;
use uuid::Uuid;

/// Longer than anything the store may make a session wait, far shorter than the lock holds.
const PATIENCE: Duration = Duration::from_secs(60);

fn share(n: i64) -> StoreEvent {
    StoreEvent::Share(ShareRecord {
        id: Uuid::now_v7(),
        worker: WORKER.into(),
        session_id: n,
        job_id: format!("{n:x}"),
        height: 1,
        assigned_difficulty: 1.0,
        achieved_difficulty: 1.5,
        accepted: true,
        reason: None,
        block_hash: None,
        created_at: Utc::now(),
    })
}

async fn open(url: &str, spool: &std::path::Path, metrics: Arc<Metrics>) -> Store {
    Store::open(
        StoreOptions {
            url,
            spool_dir: spool,
            batch: 16,
            flush: Duration::from_millis(5),
            queue: 64,
            connect_patience: Duration::from_secs(5),
        },
        metrics.store.clone(),
    )
    .await
    .unwrap()
}

async fn wait_accepted(b: &Backend, want: i64) -> i64 {
    let mut got = 0;
    for _ in 0..600 {
        got = b.share_counts().await.map_or(0, |c| c.0);
        if got >= want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    got
}

/// Record many times the queue's size while `locked` holds the database, then release it.
async fn records_while_locked(url: &str, dir: &std::path::Path, release: impl AsyncFnOnce()) {
    const N: i64 = 3_000;
    let metrics = Arc::new(Metrics::new());
    let store = open(url, &dir.join("spool"), metrics.clone()).await;
    let handle = store.handle();
    let recorded = tokio::time::timeout(PATIENCE, async {
        for n in 0..N {
            handle.record(share(n)).await;
        }
    })
    .await;
    assert!(recorded.is_ok(), "recording waited for the locked database");
    // The writer could not take them: they wait on disk, not in memory.
    let mut spooled = 0;
    for _ in 0..100 {
        spooled = metrics.store.spool_depth.get();
        if spooled > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(spooled > 0, "nothing waits in the spool");
    assert_eq!(store.backend.share_counts().await.map_or(0, |c| c.0), 0);
    release().await;
    assert_eq!(wait_accepted(&store.backend, N).await, N);
    let backend = store.backend.clone();
    store.close().await;
    assert_eq!(backend.share_counts().await.unwrap(), (N, 0));
    assert_eq!(metrics.store.spool_depth.get(), 0);
    assert_eq!(metrics.store.store_events_lost.get(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_never_waits_for_a_locked_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pool.sqlite");
    let url = format!("sqlite://{}", path.display());
    // Create the schema first, then take SQLite's one write lock from outside.
    drop(Backend::connect(&url).await.unwrap().migrate().await);
    let mut lock = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut lock)
        .await
        .unwrap();
    records_while_locked(&url, dir.path(), async move || {
        sqlx::query("ROLLBACK").execute(&mut lock).await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_never_waits_for_a_locked_postgres() {
    let db = PgTestDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    Backend::connect(&db.url)
        .await
        .unwrap()
        .migrate()
        .await
        .unwrap();
    let mut lock = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut lock).await.unwrap();
    // EXCLUSIVE: writes wait, reads (the count below) go on.
    sqlx::query("LOCK TABLE shares IN EXCLUSIVE MODE")
        .execute(&mut lock)
        .await
        .unwrap();
    records_while_locked(&db.url, dir.path(), async move || {
        sqlx::query("ROLLBACK").execute(&mut lock).await.unwrap();
        lock.close().await.unwrap();
    })
    .await;
    db.drop_db().await;
}

/// Through Stratum: a miner's shares are all answered while the pool's database is locked,
/// with a queue of 8, and all of them are stored once it is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn miners_are_answered_while_the_database_is_locked() {
    const N: u64 = 120;
    // The difficulty stays put, so mining each share takes the same short time.
    let pool = common::start_pool(&[
        "--store-queue",
        "8",
        "--store-batch",
        "4",
        "--vardiff-max",
        "0.00001",
    ])
    .await;
    let url = format!("sqlite://{}/pool.sqlite", pool.dir.path().display());
    let mut lock = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut lock)
        .await
        .unwrap();
    let mut c = Client::login(pool.stratum()).await;
    let answered = tokio::time::timeout(PATIENCE, async {
        for n in 0..N {
            let (r, _) = c.share(n).await;
            assert_eq!(r.unwrap(), serde_json::json!(true), "share {n}");
        }
    })
    .await;
    assert!(answered.is_ok(), "answers waited for the locked database");
    assert!(pool.metric("pool_store_spool_depth").await > 0.0);
    sqlx::query("ROLLBACK").execute(&mut lock).await.unwrap();
    let backend = Backend::connect(&url).await.unwrap();
    assert_eq!(wait_accepted(&backend, N as i64).await, N as i64);
    pool.stop().await;
    assert_eq!(backend.share_counts().await.unwrap(), (N as i64, 0));
}
