//! Shares at scale, against the real engines: the rollups equal the sums of the raw shares
//! they summarise (replays add nothing), PostgreSQL's `shares` is partitioned by day with
//! partitions made ahead and old days dropped by the (injected) clock, SQLite deletes what
//! is past the retention in batches, rollups outlive the raw shares, and the migration from
//! the first schema keeps every existing share.

use crate::common;

use std::borrow::Cow;

use chrono::{DateTime, Duration, TimeZone, Utc};
use common::PgTestDb;
use pool_server::store::retention::{self, Policy};
use pool_server::store::rollup::{self, Range};
use pool_server::store::{Backend, Batch, ShareRecord, StoreEvent};
use sqlx::Row;
use uuid::Uuid;

fn share(worker: &str, reason: Option<&str>, difficulty: f64, at: DateTime<Utc>) -> ShareRecord {
    ShareRecord {
        id: Uuid::now_v7(),
        worker: worker.into(),
        session_id: 3,
        job_id: "2f".into(),
        height: 12,
        assigned_difficulty: difficulty,
        achieved_difficulty: difficulty * 3.0,
        accepted: reason.is_none(),
        reason: reason.map(str::to_owned),
        block_hash: None,
        created_at: at,
    }
}

fn events(shares: &[ShareRecord]) -> Vec<StoreEvent> {
    shares.iter().cloned().map(StoreEvent::Share).collect()
}

fn policy() -> Policy {
    let days = |d: u64| std::time::Duration::from_secs(d * 86_400);
    Policy {
        shares: days(7),
        minutes: days(8),
        hours: days(400),
    }
}

/// 2,000 shares over two hours and a bit, three workers, accepted and two reject reasons.
fn mix(t0: DateTime<Utc>) -> Vec<ShareRecord> {
    (0..2000)
        .map(|i| {
            let worker = ["alice.rig1", "alice.rig2", "bob.x"][i % 3];
            let reason = match i % 10 {
                3 => Some("stale"),
                7 => Some("low-difficulty"),
                _ => None,
            };
            share(
                worker,
                reason,
                0.5 + (i % 4) as f64,
                t0 + Duration::seconds(4 * i as i64),
            )
        })
        .collect()
}

/// Sums over the rollups of `table` against sums over the raw shares, per worker (0: pool).
async fn assert_rollups_match(b: &Backend, shares: &[ShareRecord]) {
    let want = |worker: Option<&str>, accepted: bool| -> (i64, f64) {
        shares
            .iter()
            .filter(|s| worker.is_none_or(|w| w == s.worker) && s.accepted == accepted)
            .fold((0, 0.0), |(n, d), s| (n + 1, d + s.assigned_difficulty))
    };
    let now = shares.iter().map(|s| s.created_at).max().unwrap() + Duration::seconds(1);
    for worker in [None, Some("alice.rig1"), Some("bob.x")] {
        for range in [Range::Day, Range::Week] {
            let points = rollup::history(b, worker, range, now)
                .await
                .unwrap()
                .unwrap();
            let accepted: u64 = points.iter().map(|p| p.accepted).sum();
            let rejected: u64 = points.iter().map(|p| p.rejected).sum();
            let difficulty: f64 = points.iter().map(|p| p.difficulty).sum();
            let stale: u64 = points
                .iter()
                .map(|p| p.rejected_by_reason.get("stale").copied().unwrap_or(0))
                .sum();
            let (n, d) = want(worker, true);
            assert_eq!(accepted as i64, n, "{worker:?} {range:?}");
            assert!((difficulty - d).abs() < 1e-6, "{worker:?} {range:?}");
            assert_eq!(rejected as i64, want(worker, false).0, "{worker:?}");
            let want_stale = shares
                .iter()
                .filter(|s| {
                    worker.is_none_or(|w| w == s.worker) && s.reason.as_deref() == Some("stale")
                })
                .count();
            assert_eq!(stale as usize, want_stale);
            let best = points.iter().map(|p| p.best_difficulty).fold(0.0, f64::max);
            assert_eq!(best, 3.5 * 3.0);
        }
    }
    assert!(rollup::history(b, Some("nobody"), Range::Day, now)
        .await
        .unwrap()
        .is_none());
}

async fn rollups_follow_the_new_rows_only(b: &Backend) {
    b.migrate().await.unwrap();
    let t0 = Utc::now() - Duration::hours(3);
    let shares = mix(t0);
    let batches: Vec<Batch> = events(&shares)
        .chunks(300)
        .map(|c| Batch::new(c.to_vec()))
        .collect();
    for batch in &batches {
        b.write(std::slice::from_ref(batch)).await.unwrap();
    }
    // A replay of everything, grouped otherwise (as a spool replay reads it), and one batch
    // twice in one write: the rollups must not move.
    for group in batches.chunks(3) {
        b.write(group).await.unwrap();
    }
    b.write(&[batches[0].clone(), batches[0].clone()])
        .await
        .unwrap();
    assert_eq!(b.share_counts().await.unwrap(), (1600, 400));
    assert_rollups_match(b, &shares).await;
    // The warm-up reads the recent minutes: the pool's and each worker's.
    let since = t0 - Duration::minutes(1);
    let warm = rollup::warm_minutes(b, since, since).await.unwrap();
    let pool: f64 = warm
        .iter()
        .filter(|m| m.worker.is_none())
        .map(|m| m.difficulty)
        .sum();
    let total: f64 = shares
        .iter()
        .filter(|s| s.accepted)
        .map(|s| s.assigned_difficulty)
        .sum();
    assert!((pool - total).abs() < 1e-6);
    assert!(warm.iter().any(|m| m.worker.as_deref() == Some("bob.x")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_rollups_equal_the_sums_of_the_raw_shares() {
    let db = PgTestDb::create().await;
    let b = Backend::connect(&db.url).await.unwrap();
    rollups_follow_the_new_rows_only(&b).await;
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_rollups_equal_the_sums_of_the_raw_shares() {
    let dir = tempfile::tempdir().unwrap();
    let b = Backend::connect(&format!("sqlite://{}/s.sqlite", dir.path().display()))
        .await
        .unwrap();
    rollups_follow_the_new_rows_only(&b).await;
}

async fn partitions(b: &Backend) -> Vec<String> {
    let Backend::Postgres(p) = b else {
        unreachable!()
    };
    sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'shares'::regclass ORDER BY 1",
    )
    .fetch_all(p)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_partitions_are_made_ahead_and_old_days_dropped_by_the_clock() {
    let db = PgTestDb::create().await;
    let b = Backend::connect(&db.url).await.unwrap();
    b.migrate().await.unwrap();
    let Backend::Postgres(p) = &b else {
        unreachable!()
    };
    let kind: String = sqlx::query_scalar(
        "SELECT partstrat::text FROM pg_partitioned_table WHERE partrelid = 'shares'::regclass",
    )
    .fetch_one(p)
    .await
    .unwrap();
    assert_eq!(kind, "r", "shares is range-partitioned");

    // The clock says 2031-03-10 12:00 UTC.
    let now = Utc.with_ymd_and_hms(2031, 3, 10, 12, 0, 0).unwrap();
    let r = retention::maintain(&b, now, &policy()).await.unwrap();
    assert_eq!(
        r.partitions_created,
        ["shares_p20310310", "shares_p20310311", "shares_p20310312"]
    );
    // Shares ten days back, two days back, and today: the old day gets a partition on demand.
    let old = mix(now - Duration::days(10));
    let recent = mix(now - Duration::days(2));
    b.write(&[Batch::new(events(&old))]).await.unwrap();
    b.write(&[Batch::new(events(&recent))]).await.unwrap();
    assert!(partitions(&b)
        .await
        .contains(&"shares_p20310228".to_string()));

    let r = retention::maintain(&b, now, &policy()).await.unwrap();
    assert!(r.partitions_created.is_empty());
    assert!(r
        .partitions_dropped
        .contains(&"shares_p20310228".to_string()));
    assert!(!r
        .partitions_dropped
        .contains(&"shares_p20310308".to_string()));
    let left = retention::oldest_share(&b).await.unwrap().unwrap();
    assert!(left >= now - Duration::days(7), "{left}");
    assert_eq!(b.share_counts().await.unwrap(), (1600, 400));
    // The rollups outlive the raw shares: the old day is still in the hourly history.
    let year = rollup::history(&b, Some("bob.x"), Range::Year, now)
        .await
        .unwrap()
        .unwrap();
    let accepted: u64 = year.iter().map(|p| p.accepted).sum();
    assert_eq!(
        accepted as usize,
        2 * old
            .iter()
            .filter(|s| s.worker == "bob.x" && s.accepted)
            .count()
    );
    // ... until they too are past their retention.
    let later = now + Duration::days(401);
    retention::maintain(&b, later, &policy()).await.unwrap();
    let hours: i64 = sqlx::query_scalar("SELECT count(*) FROM worker_hours")
        .fetch_one(p)
        .await
        .unwrap();
    assert_eq!(hours, 0);
    assert_eq!(b.share_counts().await.unwrap(), (0, 0));
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_deletes_past_the_retention_in_batches() {
    let dir = tempfile::tempdir().unwrap();
    let b = Backend::connect(&format!("sqlite://{}/s.sqlite", dir.path().display()))
        .await
        .unwrap();
    b.migrate().await.unwrap();
    let now = Utc.with_ymd_and_hms(2031, 3, 10, 12, 0, 0).unwrap();
    // More old shares than one delete takes.
    let old: Vec<ShareRecord> = (0..45_000)
        .map(|i| {
            share(
                "old.rig",
                None,
                1.0,
                now - Duration::days(9) + Duration::milliseconds(i),
            )
        })
        .collect();
    for chunk in events(&old).chunks(5000) {
        b.write(&[Batch::new(chunk.to_vec())]).await.unwrap();
    }
    let recent = mix(now - Duration::days(1));
    b.write(&[Batch::new(events(&recent))]).await.unwrap();
    let r = retention::maintain(&b, now, &policy()).await.unwrap();
    assert_eq!(r.shares_deleted, 45_000);
    assert_eq!(b.share_counts().await.unwrap(), (1600, 400));
    let year = rollup::history(&b, Some("old.rig"), Range::Year, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(year.iter().map(|p| p.accepted).sum::<u64>(), 45_000);
    // Minutes go after 8 days: the old worker's 24 h view is empty, its year is not.
    let minutes = rollup::history(
        &b,
        None,
        Range::Day,
        now - Duration::days(9) + Duration::hours(1),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(minutes.iter().map(|p| p.accepted).sum::<u64>(), 0);
}

/// The first schema's rows, written as the first version of the pool wrote them.
/// (id, worker, job id, accepted, reason, block hash) as the first schema held them.
type V1Row = (
    Uuid,
    &'static str,
    &'static str,
    bool,
    Option<&'static str>,
    Option<String>,
);

fn v1_rows() -> Vec<V1Row> {
    vec![
        (
            Uuid::from_u128(0x5eed_0001),
            "alice.rig1",
            "1a",
            true,
            None,
            None,
        ),
        (
            Uuid::from_u128(0x5eed_0002),
            "alice.rig1",
            "01",
            false,
            Some("stale"),
            None,
        ),
        (
            Uuid::from_u128(0x5eed_0003),
            "bob.x",
            "",
            false,
            Some("malformed"),
            None,
        ),
        (
            Uuid::from_u128(0x5eed_0004),
            "bob.x",
            "ff",
            true,
            None,
            Some(format!("{:064x}", 0xabcdefu64)),
        ),
        (
            Uuid::from_u128(0x5eed_0005),
            "carol.y",
            "7",
            false,
            Some("some-future-reason"),
            None,
        ),
    ]
}

async fn check_migrated(b: &Backend, at: DateTime<Utc>) {
    let rows = v1_rows();
    let stored = b.shares(None, 100).await.unwrap();
    assert_eq!(stored.len(), rows.len());
    for (id, worker, job, accepted, reason, hash) in rows {
        let s = stored
            .iter()
            .find(|s| s.id == id)
            .expect("every share kept");
        assert_eq!(
            (s.worker.as_str(), s.job_id.as_str(), s.accepted),
            (worker, job, accepted)
        );
        let want_reason = match reason {
            Some("some-future-reason") => Some("other"),
            r => r,
        };
        assert_eq!(s.reason.as_deref(), want_reason);
        assert_eq!(s.block_hash, hash);
        assert!((s.created_at - at).num_milliseconds().abs() <= 1);
        assert_eq!(s.assigned_difficulty, 2.0);
    }
    let workers = b.workers("", 10).await.unwrap();
    assert_eq!(workers.len(), 3);
    assert_eq!(workers[0].accepted_shares, 1);
    let day = rollup::history(b, None, Range::Day, at + Duration::minutes(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(day.iter().map(|p| p.accepted).sum::<u64>(), 2);
    assert_eq!(day.iter().map(|p| p.rejected).sum::<u64>(), 3);
}

/// Apply only the first migration, write rows as the first version did, then migrate.
async fn migrate_from_the_first_schema(b: &Backend) -> DateTime<Utc> {
    let at = Utc::now() - Duration::minutes(30);
    let (all, pg) = match b {
        Backend::Postgres(_) => (sqlx::migrate!("../migrations/postgres"), true),
        Backend::Sqlite(_) => (sqlx::migrate!("../migrations/sqlite"), false),
    };
    let first = sqlx::migrate::Migrator {
        migrations: Cow::Owned(all.migrations[..1].to_vec()),
        ..sqlx::migrate::Migrator::DEFAULT
    };
    let dialect = |sql: &str| {
        if pg {
            sql.replace('?', "$")
        } else {
            sql.to_owned()
        }
    };
    let share_sql = dialect(
        "INSERT INTO shares (id, worker, session_id, job_id, height, assigned_difficulty,
             achieved_difficulty, accepted, reason, block_hash, created_at)
         VALUES (?1, ?2, 1, ?3, 5, 2.0, 3.0, ?4, ?5, ?6, ?7)",
    );
    let worker_sql = dialect(
        "INSERT INTO workers (name, account, first_seen, last_seen, accepted_shares,
             rejected_shares, accepted_difficulty)
         VALUES (?1, 'a', ?2, ?2, ?3, ?4, 0)
         ON CONFLICT (name) DO UPDATE SET accepted_shares = workers.accepted_shares + ?3,
             rejected_shares = workers.rejected_shares + ?4",
    );
    macro_rules! seed {
        ($pool:expr) => {{
            first.run($pool).await.unwrap();
            for (id, worker, job, accepted, reason, hash) in v1_rows() {
                sqlx::query(&share_sql)
                    .bind(id)
                    .bind(worker)
                    .bind(job)
                    .bind(accepted)
                    .bind(reason)
                    .bind(hash)
                    .bind(at)
                    .execute($pool)
                    .await
                    .unwrap();
                sqlx::query(&worker_sql)
                    .bind(worker)
                    .bind(at)
                    .bind(i64::from(accepted))
                    .bind(i64::from(!accepted))
                    .execute($pool)
                    .await
                    .unwrap();
            }
        }};
    }
    match b {
        Backend::Postgres(p) => seed!(p),
        Backend::Sqlite(p) => seed!(p),
    }
    b.migrate().await.unwrap();
    at
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_migration_keeps_every_existing_share() {
    let db = PgTestDb::create().await;
    let b = Backend::connect(&db.url).await.unwrap();
    let at = migrate_from_the_first_schema(&b).await;
    check_migrated(&b, at).await;
    let Backend::Postgres(p) = &b else {
        unreachable!()
    };
    let row = sqlx::query(
        "SELECT count(*) FROM pg_partitioned_table WHERE partrelid = 'shares'::regclass",
    )
    .fetch_one(p)
    .await
    .unwrap();
    assert_eq!(row.get::<i64, _>(0), 1);
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_migration_keeps_every_existing_share() {
    let dir = tempfile::tempdir().unwrap();
    let b = Backend::connect(&format!("sqlite://{}/s.sqlite", dir.path().display()))
        .await
        .unwrap();
    let at = migrate_from_the_first_schema(&b).await;
    check_migrated(&b, at).await;
}

/// A block the pool found that has no credits yet holds its window's shares back from the
/// retention (they are what its credits are computed from); once credited, they go.
async fn shares_wait_for_the_credits_of_a_found_block(b: &Backend) {
    use pool_server::store::BlockRecord;
    let now = Utc.with_ymd_and_hms(2031, 3, 10, 12, 0, 0).unwrap();
    // Shares from 8 days ago (03-02 12:00), a whole day past the 7-day retention; the block
    // was found 2 h ago, so its window could reach back to 03-02 10:00 (the ledger looks the
    // retention and a day back): they stay until it is credited.
    let old: Vec<ShareRecord> = (0..500)
        .map(|i| {
            share(
                "miner.rig",
                None,
                1.0,
                now - Duration::days(8) + Duration::seconds(i),
            )
        })
        .collect();
    b.write(&[Batch::new(events(&old))]).await.unwrap();
    let block = BlockRecord {
        hash: "00".repeat(31) + "01",
        height: 7,
        prev_hash: "00".repeat(32),
        chain: "embedded".into(),
        worker: Some("miner.rig".into()),
        network_difficulty: 1.0,
        status: "accepted".into(),
        detail: None,
        raw: vec![0],
        found_at: now - Duration::hours(2),
        coinbase_plan: None,
    };
    b.write(&[Batch::new(vec![StoreEvent::Block(block.clone())])])
        .await
        .unwrap();
    let r = retention::maintain(b, now, &policy()).await.unwrap();
    assert!(r.held_back);
    assert_eq!(r.shares_deleted, 0);
    assert!(!r
        .partitions_dropped
        .contains(&"shares_p20310302".to_owned()));
    assert_eq!(b.share_counts().await.unwrap(), (500, 0));
    // Credited: nothing holds them any more.
    let credited = "INSERT INTO block_rewards (block_hash, height, chain, scheme, reward_sats,
        fee_bps, fee_sats, window_difficulty, credited_difficulty, shares, window_start_us,
        window_end_us, state, confirmations, credited_at, state_at)
        VALUES ('HASH', 7, 'embedded', 'pplns', 1, 0, 0, 1, 1, 1, NULL, 0, 'immature', 0, 'T', 'T')";
    let sql = credited.replace("HASH", &block.hash);
    match b {
        Backend::Postgres(p) => {
            sqlx::query(&sql.replace("'T'", "now()"))
                .execute(p)
                .await
                .unwrap();
        }
        Backend::Sqlite(p) => {
            sqlx::query(&sql).execute(p).await.unwrap();
        }
    }
    // At the same clock: only the credits changed.
    let r = retention::maintain(b, now, &policy()).await.unwrap();
    assert!(!r.held_back);
    assert_eq!(b.share_counts().await.unwrap(), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_keeps_the_shares_a_block_not_yet_credited_needs() {
    let dir = tempfile::tempdir().unwrap();
    let b = Backend::connect(&format!("sqlite://{}/s.sqlite", dir.path().display()))
        .await
        .unwrap();
    b.migrate().await.unwrap();
    shares_wait_for_the_credits_of_a_found_block(&b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keeps_the_shares_a_block_not_yet_credited_needs() {
    let db = PgTestDb::create().await;
    let b = Backend::connect(&db.url).await.unwrap();
    b.migrate().await.unwrap();
    shares_wait_for_the_credits_of_a_found_block(&b).await;
    db.drop_db().await;
}
