//! No header is credited twice on one chain tip, however sessions come and go: an
//! extranonce1 whose session had shares accepted is not handed out again until the tip moves,
//! so a stranger who cycles connections until the value comes round (65,535 of them with
//! `--extranonce1-size 2`) can never resubmit a closed session's shares, whether that session
//! simply closed or was resumed on a connection that closed before authorizing.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::common::*;
use protocol::{Extranonce1, SubscribeResult, SubscriptionId};

/// Connections that subscribe and close, four at a time, until `total` have been made or one
/// is handed `wanted`. Returns whether it was handed, and whether the space wrapped.
async fn cycle_extranonces(pool: &TestPool, wanted: &Extranonce1, total: usize) -> (bool, bool) {
    let made = Arc::new(AtomicUsize::new(0));
    let hit = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(parking_lot::Mutex::new(HashSet::new()));
    let wrapped = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (addr, made, hit, seen, wrapped, wanted) = (
                pool.stratum(),
                made.clone(),
                hit.clone(),
                seen.clone(),
                wrapped.clone(),
                wanted.clone(),
            );
            tokio::spawn(async move {
                while made.fetch_add(1, Ordering::Relaxed) < total && !hit.load(Ordering::Relaxed) {
                    let mut c = Client::connect(addr).await;
                    c.subscribe().await;
                    let en1 = c.extranonce1.clone().unwrap();
                    if en1 == wanted {
                        hit.store(true, Ordering::Relaxed);
                    }
                    if !seen.lock().insert(en1) {
                        wrapped.store(true, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    (hit.load(Ordering::Relaxed), wrapped.load(Ordering::Relaxed))
}

/// The space wraps (70,000 connections for 65,535 values) and `en1` never comes round.
async fn never_handed_out_again(pool: TestPool, en1: &Extranonce1) {
    let (handed, wrapped) = cycle_extranonces(&pool, en1, 70_000).await;
    assert!(wrapped, "the space wrapped");
    assert!(
        !handed,
        "{en1} handed out again on the tip its shares were credited on"
    );
    pool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_sessions_extranonce1_is_not_handed_out_again_on_its_tip() {
    let pool = start_pool(&["--extranonce1-size", "2", "--resume-window", "0"]).await;
    let mut a = Client::login(pool.stratum()).await;
    let en1 = a.extranonce1.clone().unwrap();
    let (r, _share) = a.share(1).await;
    assert_eq!(r.unwrap(), serde_json::Value::Bool(true));
    drop(a);
    pool.wait_sessions_closed().await;
    never_handed_out_again(pool, &en1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_lease_dropped_before_authorizing_still_cools() {
    let pool = start_pool(&["--extranonce1-size", "2", "--resume-window", "60s"]).await;
    let mut a = Client::connect(pool.stratum()).await;
    let sub: SubscribeResult = a.subscribe_resuming(None).await;
    let sid = SubscriptionId::parse(&sub.subscriptions[1].1).expect("a subscription id");
    a.authorize(WORKER).await.unwrap();
    a.wait_job().await;
    let en1 = a.extranonce1.clone().unwrap();
    let (r, _share) = a.share(1).await;
    assert_eq!(r.unwrap(), serde_json::Value::Bool(true));
    drop(a);
    assert_eq!(
        pool.wait_metric("pool_sessions_parked", 1.0).await,
        1.0,
        "parked"
    );
    // Resumed on a connection that closes before it authorizes: the parked lease is let go.
    let mut b = Client::connect(pool.stratum()).await;
    let again = b.subscribe_resuming(Some(sid)).await;
    assert_eq!(again.extranonce1, en1, "resumed");
    drop(b);
    pool.wait_sessions_closed().await;
    never_handed_out_again(pool, &en1).await;
}
