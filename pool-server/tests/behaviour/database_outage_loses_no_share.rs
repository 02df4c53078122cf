//! With the database cut off mid-stream, every share the pool answered `true` still reaches
//! the database: batches go to the spool while it is away and are replayed when it returns,
//! and a pool restarted during the outage replays its spool at start.
//!
//! The outage is a TCP proxy between the pool and a real PostgreSQL that drops every
//! connection and refuses new ones. `POOL_TEST_OUTAGE_SECS` lengthens it (default 3 s).

use crate::common;

use std::time::Duration;

use common::*;
use pool_server::store::Backend;
use serde_json::Value;

fn outage() -> Duration {
    Duration::from_secs(
        std::env::var("POOL_TEST_OUTAGE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3),
    )
}

/// Submit valid shares for `for_how_long`; returns how many were answered `true`.
async fn mine_for(c: &mut Client, counter: &mut u64, for_how_long: Duration) -> u64 {
    let until = tokio::time::Instant::now() + for_how_long;
    let mut ok = 0;
    while tokio::time::Instant::now() < until {
        *counter += 1;
        let (r, _) = c.share(*counter).await;
        if r == Ok(Value::Bool(true)) {
            ok += 1;
        }
    }
    ok
}

async fn accepted_in_db(url: &str) -> i64 {
    let b = Backend::connect(url).await.unwrap();
    b.share_counts().await.unwrap().0
}

async fn wait_accepted(url: &str, want: i64) -> i64 {
    let mut got = 0;
    for _ in 0..200 {
        got = accepted_in_db(url).await;
        if got == want {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_mid_stream_spools_then_replays_exactly() {
    let db = PgTestDb::create().await;
    let proxy = Proxy::start(db.target()).await;
    let via = db.url_via(proxy.addr);
    let pool = start_pool(&["--database-url", &via, "--store-flush", "100ms"]).await;
    let mut c = Client::login(pool.stratum()).await;
    let mut counter = 0;

    let mut answered = mine_for(&mut c, &mut counter, Duration::from_secs(1)).await;
    proxy.cut();
    answered += mine_for(&mut c, &mut counter, outage()).await;
    // While the database is away the pool still answers, and the spool grows.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        pool.metric("pool_store_spool_depth").await > 0.0,
        "shares were spooled"
    );
    assert_eq!(pool.metric("pool_store_up").await, 0.0);
    proxy.restore();
    answered += mine_for(&mut c, &mut counter, Duration::from_secs(1)).await;

    assert!(
        answered > 10,
        "the test mined too little to mean anything: {answered}"
    );
    assert_eq!(
        wait_accepted(&db.url, answered as i64).await,
        answered as i64
    );
    assert_eq!(pool.metric("pool_store_spool_depth").await, 0.0);
    pool.stop().await;
    assert_eq!(
        accepted_in_db(&db.url).await,
        answered as i64,
        "no share counted twice"
    );
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_during_outage_replays_the_spool_at_start() {
    let db = PgTestDb::create().await;
    let proxy = Proxy::start(db.target()).await;
    let via = db.url_via(proxy.addr);
    let pool = start_pool(&["--database-url", &via, "--store-flush", "100ms"]).await;
    let mut c = Client::login(pool.stratum()).await;
    let mut counter = 0;
    let mut answered = mine_for(&mut c, &mut counter, Duration::from_millis(500)).await;
    proxy.cut();
    answered += mine_for(&mut c, &mut counter, Duration::from_secs(1)).await;
    drop(c);
    // Shutdown flushes into the spool: the database is still away.
    let (dir, args) = pool.stop().await;
    assert!(
        dir.path()
            .join("spool/shares.spool")
            .metadata()
            .unwrap()
            .len()
            > 0
    );
    proxy.restore();
    let pool = start_pool_with(dir.clone(), args).await;
    // The pool serves at once and replays the spool behind.
    assert_eq!(pool.wait_metric("pool_store_spool_depth", 0.0).await, 0.0);
    assert_eq!(accepted_in_db(&db.url).await, answered as i64);
    assert_eq!(
        dir.path()
            .join("spool/shares.spool")
            .metadata()
            .unwrap()
            .len(),
        0
    );
    pool.stop().await;
    db.drop_db().await;
}

/// A pool whose database is down at start starts anyway (the issue: it exited after 31 s):
/// in spool mode, its embedded chain resumed from the chain file at the tip it had, and every
/// share answered meanwhile reaches the database once it answers (schema migrated then).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_starts_while_its_database_is_down() {
    let db = PgTestDb::create().await;
    let proxy = Proxy::start(db.target()).await;
    let via = db.url_via(proxy.addr);
    let pool = start_pool(&["--database-url", &via, "--store-flush", "100ms"]).await;
    let tip = pool.get("/api/pool").await["prev_hash"].clone();
    let mut c = Client::login(pool.stratum()).await;
    let mut counter = 0;
    let mut answered = mine_for(&mut c, &mut counter, Duration::from_millis(500)).await;
    drop(c);
    let (dir, args) = pool.stop().await;

    proxy.cut();
    let began = std::time::Instant::now();
    let pool = start_pool_with(dir, args).await;
    assert!(
        began.elapsed() < Duration::from_secs(15),
        "started in {:?}",
        began.elapsed()
    );
    assert_eq!(
        pool.get("/api/pool").await["prev_hash"],
        tip,
        "the embedded chain resumed at its tip, not anew"
    );
    assert_eq!(pool.metric("pool_store_up").await, 0.0);
    let mut c = Client::login(pool.stratum()).await;
    answered += mine_for(&mut c, &mut counter, Duration::from_secs(1)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(pool.metric("pool_store_spool_depth").await > 0.0);
    proxy.restore();
    answered += mine_for(&mut c, &mut counter, Duration::from_millis(500)).await;
    assert_eq!(
        wait_accepted(&db.url, answered as i64).await,
        answered as i64
    );
    assert_eq!(pool.metric("pool_store_up").await, 1.0);
    pool.stop().await;
    db.drop_db().await;
}

/// A pool that never saw its database, and has no chain file, refuses to start a chain that
/// may already exist there, and says why; a node-backed pool has no such chain and would
/// start (covered by the spool tests).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_chain_is_never_started_anew_blind() {
    let db = PgTestDb::create().await;
    let proxy = Proxy::start(db.target()).await;
    proxy.cut();
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let mut args = base_args(&dir);
    args.extend(["--database-url".to_string(), db.url_via(proxy.addr)]);
    let cfg = <pool_server::config::Config as clap::Parser>::try_parse_from(&args).unwrap();
    let err = match pool_server::app::start(cfg).await {
        Ok(_) => panic!("started a new chain without knowing the stored one"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("no chain file"), "{err}");
    db.drop_db().await;
}
