//! The share store against the real engines: PostgreSQL and SQLite behave the same, batches are
//! idempotent (a replayed batch never counts twice), worker totals follow the rows, and the
//! chain's blocks come back in order.

use crate::common;

use std::sync::Arc;

use chrono::{Duration, Utc};
use common::PgTestDb;
use pool_server::metrics::Metrics;
use pool_server::store::{Backend, Batch, BlockRecord, ShareRecord, StoreEvent};
use uuid::Uuid;

fn share(worker: &str, accepted: bool, difficulty: f64, secs: i64) -> StoreEvent {
    StoreEvent::Share(ShareRecord {
        id: Uuid::new_v4(),
        worker: worker.into(),
        session_id: 7,
        job_id: "1a".into(),
        height: 10,
        assigned_difficulty: difficulty,
        achieved_difficulty: difficulty * 1.5,
        accepted,
        reason: (!accepted).then(|| "low-difficulty".into()),
        block_hash: None,
        created_at: Utc::now() - Duration::seconds(100 - secs),
    })
}

fn block(height: i64, raw: Vec<u8>) -> StoreEvent {
    StoreEvent::Block(BlockRecord {
        hash: format!("{height:064x}"),
        height,
        prev_hash: format!("{:064x}", height - 1),
        chain: "embedded".into(),
        worker: Some("alice.rig1".into()),
        network_difficulty: 0.5,
        status: "accepted".into(),
        detail: None,
        raw,
        found_at: Utc::now(),
        coinbase_plan: None,
    })
}

async fn exercise(b: &Backend) {
    b.migrate().await.unwrap();
    let batch: Vec<StoreEvent> = (0..500)
        .map(|i| {
            share(
                if i % 2 == 0 { "alice.rig1" } else { "bob.rig" },
                i % 5 != 0,
                2.0,
                i,
            )
        })
        .chain((1..=3).map(|h| block(h, vec![h as u8; 81])))
        .collect();
    let batch = [Batch::new(batch)];
    b.write(&batch).await.unwrap();
    // The same batch again (a spool replay after a partial write): nothing doubles.
    b.write(&batch).await.unwrap();
    assert_eq!(b.share_counts().await.unwrap(), (400, 100));

    let workers = b.workers("", 1000).await.unwrap();
    assert_eq!(workers.len(), 2);
    let alice = workers.iter().find(|w| w.name == "alice.rig1").unwrap();
    assert_eq!(alice.account, "alice");
    assert_eq!(alice.accepted_shares + alice.rejected_shares, 250);
    assert_eq!(
        alice.accepted_difficulty,
        2.0 * alice.accepted_shares as f64
    );
    assert!(alice.first_seen < alice.last_seen);

    let shares = b.shares(Some("bob.rig"), 1000).await.unwrap();
    assert_eq!(shares.len(), 250);
    assert!(
        shares
            .windows(2)
            .all(|w| w[0].created_at >= w[1].created_at),
        "newest first"
    );
    assert!(b
        .shares(Some("nobody.here"), 1000)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(b.shares(None, 10).await.unwrap().len(), 10);
    let rejected = shares.iter().find(|s| !s.accepted).unwrap();
    assert_eq!(rejected.reason.as_deref(), Some("low-difficulty"));
    if let StoreEvent::Share(orig) = &batch[0].events[1] {
        let back = shares.iter().find(|s| s.id == orig.id).unwrap();
        assert_eq!(back.achieved_difficulty, orig.achieved_difficulty);
        assert_eq!(back.job_id, orig.job_id);
    }

    let chain = b.load_chain("embedded", 2).await.unwrap();
    assert_eq!(
        chain.iter().map(|(h, _)| *h).collect::<Vec<_>>(),
        vec![2, 3]
    );
    assert_eq!(chain[1].1, vec![3u8; 81]);
    assert!(b.load_chain("node", 10).await.unwrap().is_empty());
    assert_eq!(b.blocks(10).await.unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_is_idempotent_and_complete() {
    let db = PgTestDb::create().await;
    let b = Backend::connect(&db.url).await.unwrap();
    assert_eq!(b.kind(), "postgres");
    exercise(&b).await;
    if let Backend::Postgres(p) = b {
        p.close().await;
    }
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_is_idempotent_and_complete() {
    let dir = tempfile::tempdir().unwrap();
    let b = Backend::connect(&format!("sqlite://{}/s.sqlite", dir.path().display()))
        .await
        .unwrap();
    assert_eq!(b.kind(), "sqlite");
    exercise(&b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_database_url_is_refused_clearly() {
    let err = Backend::connect("mysql://nope")
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("postgres://") && err.contains("sqlite:"),
        "{err}"
    );
    let _ = Arc::new(Metrics::new());
}

/// Every connection readers may use is busy (slow API reads): a batch still goes straight to
/// SQLite on the writer's own connection, not to the spool after a 3 s acquire timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_readers_cannot_starve_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("pool.db").display());
    let metrics = Arc::new(Metrics::new());
    let store = pool_server::store::Store::open(
        pool_server::store::StoreOptions {
            url: &url,
            spool_dir: &dir.path().join("spool"),
            batch: 100,
            flush: std::time::Duration::from_millis(50),
            queue: 1000,
            connect_patience: std::time::Duration::from_secs(1),
        },
        metrics.store.clone(),
    )
    .await
    .unwrap();
    let Backend::Sqlite(readers) = &store.backend else {
        unreachable!()
    };
    let mut held = Vec::new();
    while let Ok(Ok(c)) =
        tokio::time::timeout(std::time::Duration::from_millis(200), readers.acquire()).await
    {
        held.push(c);
    }
    assert!(!held.is_empty());
    store.handle().record(share("w.1", true, 1.0, 1)).await;
    let counter = Backend::connect(&url).await.unwrap();
    let mut written = (0, 0);
    for _ in 0..15 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        written = counter.share_counts().await.unwrap();
        if written.0 == 1 {
            break;
        }
    }
    assert_eq!(written, (1, 0), "the share reached the database at once");
    assert_eq!(metrics.store.spool_depth.get(), 0, "nothing was spooled");
    drop(held);
    store.close().await;
}
