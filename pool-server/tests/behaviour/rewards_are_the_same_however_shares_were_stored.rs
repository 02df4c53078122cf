//! A block's credits depend on the shares, not on how they reached the database: the same
//! shares stored in time order, or shuffled into other batches (as a spool replayed after an
//! outage stores them), give the same PPLNS and PROP windows from the store, in SQLite and in
//! PostgreSQL, and the same windows as the pure scheme computes from the list itself. The
//! coinbase planner, which keeps its window between reads, finds what a fresh walk finds.

use crate::common;

use chrono::{DateTime, Utc};
use pool_server::rewards::planner::Planner;
use pool_server::rewards::scheme::{pplns_weights, ShareWork, Weights, WindowFill, Work};
use pool_server::rewards::window::{walk, Anchor, Reach};
use pool_server::rewards::{RewardConfig, Scheme};
use pool_server::store::{Backend, Batch, ShareRecord, StoreEvent};
use rand::prelude::*;
use std::time::Duration;
use uuid::Uuid;

/// 600 shares of 4 accounts over about a minute, several at the same microsecond, a fifth
/// of them rejected, difficulties from 1e-6 to 10.
fn history(seed: u64) -> Vec<ShareRecord> {
    let mut rng = StdRng::seed_from_u64(seed);
    let start = 1_790_000_000_000_000i64;
    let mut at = start;
    (0..600)
        .map(|i| {
            if rng.gen_bool(0.7) {
                at += rng.gen_range(1..200_000);
            }
            let accepted = rng.gen_bool(0.8);
            ShareRecord {
                id: Uuid::now_v7(),
                worker: format!("acct{}.rig{}", rng.gen_range(0..4), i % 3),
                session_id: 1,
                job_id: "1a".into(),
                height: 100,
                assigned_difficulty: 10f64.powf(rng.gen_range(-6.0..1.0)),
                achieved_difficulty: 20.0,
                accepted,
                reason: (!accepted).then(|| "low-difficulty".to_owned()),
                block_hash: None,
                created_at: DateTime::<Utc>::from_timestamp_micros(at).unwrap(),
            }
        })
        .collect()
}

async fn store(backend: &Backend, shares: &[ShareRecord], shuffle: Option<u64>) {
    let mut order: Vec<ShareRecord> = shares.to_vec();
    let size = match shuffle {
        Some(seed) => {
            order.shuffle(&mut StdRng::seed_from_u64(seed));
            37
        }
        None => 50,
    };
    for chunk in order.chunks(size) {
        let events = chunk.iter().cloned().map(StoreEvent::Share).collect();
        backend.write(&[Batch::new(events)]).await.unwrap();
    }
}

fn as_work(shares: &[ShareRecord]) -> Vec<ShareWork> {
    shares
        .iter()
        .map(|s| ShareWork {
            account: s.worker.split('.').next().unwrap().to_owned(),
            work: Work::of_difficulty(s.assigned_difficulty),
            accepted: s.accepted,
            at_micros: s.created_at.timestamp_micros(),
            id: s.id.as_u128(),
        })
        .collect()
}

fn anchor_of(s: &ShareRecord) -> Anchor {
    Anchor {
        at_micros: s.created_at.timestamp_micros(),
        id: s.id,
    }
}

async fn windows(
    backend: &Backend,
    anchor: Anchor,
    since: Anchor,
    window: Work,
) -> (Weights, Weights) {
    // As the ledger does: no further back than the retention (here 8 days before the shares).
    let floor = 1_790_000_000_000_000 - 8 * 86_400_000_000;
    let pplns = walk(backend, anchor, Reach::Work(window), floor)
        .await
        .unwrap();
    let prop = walk(backend, anchor, Reach::Since(since), floor)
        .await
        .unwrap();
    (pplns.fill.into_weights(), prop.fill.into_weights())
}

async fn check(backends: [Backend; 2]) {
    let shares = history(7);
    store(&backends[0], &shares, None).await;
    store(&backends[1], &shares, Some(99)).await;
    let mut sorted = shares.clone();
    sorted.sort_by_key(|s| (s.created_at, s.id));
    let anchor = anchor_of(&sorted[450]);
    let since = anchor_of(&sorted[120]);
    let upto: Vec<ShareWork> = as_work(&sorted[..=450]);
    for window in [1e-5, 3.0, 40.0, 1e9] {
        let w = Work::of_difficulty(window);
        let a = windows(&backends[0], anchor, since, w).await;
        let b = windows(&backends[1], anchor, since, w).await;
        assert_eq!(a, b, "window {window}: stored in order and shuffled agree");
        assert_eq!(
            a.0,
            pplns_weights(&upto, w),
            "window {window}: as the pure scheme"
        );
        let mut prop = WindowFill::unbounded();
        for s in as_work(&sorted[121..=450]).iter().filter(|s| s.accepted) {
            prop.take(&s.account, s.work);
        }
        assert_eq!(
            a.1,
            prop.into_weights(),
            "PROP: the shares after the previous block"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_shares_give_the_same_windows_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let mut backends = Vec::new();
    for name in ["in-order", "shuffled"] {
        let url = format!("sqlite://{}/{name}.sqlite", dir.path().display());
        let b = Backend::connect(&url).await.unwrap();
        b.migrate().await.unwrap();
        backends.push(b);
    }
    check(backends.try_into().ok().unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_shares_give_the_same_windows_in_postgresql() {
    let dbs = [
        common::PgTestDb::create().await,
        common::PgTestDb::create().await,
    ];
    let mut backends = Vec::new();
    for db in &dbs {
        let b = Backend::connect(&db.url).await.unwrap();
        b.migrate().await.unwrap();
        backends.push(b);
    }
    check(backends.try_into().ok().unwrap()).await;
    for db in dbs {
        db.drop_db().await;
    }
}

/// The coinbase planner walks its window once and then reads only the shares stored since:
/// after each read its window is the one a fresh walk from the same moment finds, for a
/// window of a fifth of the history (the edge moving through buckets) and one holding all.
async fn planner_keeps_the_walks_window(backend: Backend) {
    let mut sorted = history(11);
    sorted.sort_by_key(|s| (s.created_at, s.id));
    // Network difficulty 1.5: the PPLNS window (x 2) is 3 difficulty units.
    let template = common::template_at(1.5);
    let network_difficulty = template.target.difficulty().as_f64();
    let (_tx, rx) = tokio::sync::watch::channel(template);
    let floor = 1_790_000_000_000_000 - 8 * 86_400_000_000;
    let planner = |window: f64| {
        Planner::new(
            backend.clone(),
            rx.clone(),
            "embedded",
            RewardConfig {
                scheme: Scheme::Pplns,
                pplns_window: window,
                fee_bps: 0,
                maturity: 100,
                credit_delay: Duration::ZERO,
                share_retention: Duration::from_secs(7 * 86_400),
            },
            protocol::bitcoin::Network::Regtest,
            Duration::from_secs(1),
            Duration::ZERO,
        )
    };
    // A window of 3 difficulty units (about a fifth of the history), and one that holds all.
    let mut planners = [
        (planner(2.0), 2.0 * network_difficulty),
        (planner(1e12), 1e12 * network_difficulty),
    ];
    let mut stored = 0;
    for upto in [100usize, 150, 230, 400, 401, 600] {
        store(&backend, &sorted[stored..upto], None).await;
        stored = upto;
        // Every share received before `now` is stored (the planner's lag is zero here).
        let now_us = match sorted.get(upto) {
            Some(next) => next.created_at.timestamp_micros(),
            None => sorted[upto - 1].created_at.timestamp_micros() + 1,
        };
        let now = DateTime::<Utc>::from_timestamp_micros(now_us).unwrap();
        for (planner, window) in planners.iter_mut() {
            let plan = planner.read(now).await.unwrap();
            let fresh = walk(
                &backend,
                Anchor {
                    at_micros: now_us - 1,
                    id: Uuid::max(),
                },
                Reach::Work(Work::of_difficulty(*window)),
                floor,
            )
            .await
            .unwrap()
            .fill
            .into_weights();
            let accounts: std::collections::BTreeSet<&String> =
                plan.weights.keys().chain(fresh.keys()).collect();
            for a in accounts {
                let (x, y) = (
                    plan.weights
                        .get(a)
                        .copied()
                        .unwrap_or_default()
                        .as_difficulty(),
                    fresh.get(a).copied().unwrap_or_default().as_difficulty(),
                );
                // Exact but for sums of difficulties the database made (in floating point).
                assert!(
                    (x - y).abs() <= 1e-9 * y.max(1.0),
                    "{a} at {upto}: {x} vs {y}"
                );
            }
            let total: f64 = plan.weights.values().map(|w| w.as_difficulty()).sum();
            let fresh_total: f64 = fresh.values().map(|w| w.as_difficulty()).sum();
            assert!(
                (total - fresh_total).abs() <= 1e-6 * fresh_total.max(1.0),
                "{total} vs {fresh_total} at {upto}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_coinbase_planner_keeps_the_window_a_walk_finds_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/planner.sqlite", dir.path().display());
    let b = Backend::connect(&url).await.unwrap();
    b.migrate().await.unwrap();
    planner_keeps_the_walks_window(b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_coinbase_planner_keeps_the_window_a_walk_finds_in_postgresql() {
    let db = common::PgTestDb::create().await;
    let b = Backend::connect(&db.url).await.unwrap();
    b.migrate().await.unwrap();
    planner_keeps_the_walks_window(b).await;
    db.drop_db().await;
}
