//! A miner that drops its connection and comes back within the resume window with its
//! subscription id (the second `mining.subscribe` parameter, as cgminer and cpuminer send it)
//! keeps its extranonce1 and difficulty, and its shares found before the drop are accepted
//! once and only once. An unknown id just gets a fresh session.

use crate::common;

use common::*;
use protocol::{ClientRequest, Difficulty, ErrorCode, Extranonce2, SubscriptionId};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miner_that_reconnects_with_its_id_keeps_its_extranonce1_and_shares() {
    let pool = start_pool(&[]).await;
    let mut a = Client::connect(pool.stratum()).await;
    let sub = a.subscribe_resuming(None).await;
    let sid = SubscriptionId::parse(&sub.subscriptions[1].1).expect("a subscription id");
    assert_eq!(sub.subscriptions[1].0, "mining.notify");
    a.authorize(WORKER).await.unwrap();
    a.wait_job().await;
    let raised = Difficulty::new(0.00002).unwrap();
    a.request(ClientRequest::SuggestDifficulty(raised))
        .await
        .unwrap();
    let job = a.wait_job().await;
    assert_eq!(a.difficulty_of(&job), raised);
    let en1 = a.extranonce1.clone().unwrap();
    let target = raised.to_target();
    let found = |n| {
        mine(
            &job,
            &en1,
            &Extranonce2::from_counter(n, a.extranonce2_size),
            target,
            0,
        )
    };
    let (sent, in_flight) = (found(1), found(2));
    assert_eq!(a.submit(sent.submit.clone()).await, Ok(Value::Bool(true)));
    drop(a);
    pool.wait_sessions_closed().await;

    let mut b = Client::connect(pool.stratum()).await;
    let again = b.subscribe_resuming(Some(sid.clone())).await;
    assert_eq!(again.extranonce1, en1, "the same extranonce1");
    assert_eq!(again.subscriptions[1].1, sid.as_str(), "the same id");
    b.authorize(WORKER).await.unwrap();
    b.wait_job().await;
    assert_eq!(b.difficulty, Some(raised), "the same difficulty");
    // The share found before the drop counts; the one already sent is a duplicate.
    assert_eq!(b.submit(in_flight.submit).await, Ok(Value::Bool(true)));
    assert_eq!(
        code(&b.submit(sent.submit).await),
        Some(ErrorCode::Duplicate)
    );
    assert!(pool.metric("pool_session_resumes_total").await >= 1.0);

    // The id is taken: a second miner presenting it gets a session of its own.
    let mut c = Client::connect(pool.stratum()).await;
    let other = c.subscribe_resuming(Some(sid)).await;
    assert_ne!(other.extranonce1, en1);
    pool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_or_expired_id_gets_a_fresh_session() {
    let pool = start_pool(&["--resume-window", "300ms"]).await;
    let mut c = Client::connect(pool.stratum()).await;
    let fresh = c
        .subscribe_resuming(SubscriptionId::parse("00000000deadbeef"))
        .await;
    assert_ne!(fresh.subscriptions[1].1, "00000000deadbeef");
    c.authorize(WORKER).await.unwrap();
    c.wait_job().await;
    let sid = SubscriptionId::parse(&fresh.subscriptions[1].1).unwrap();
    drop(c);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let mut d = Client::connect(pool.stratum()).await;
    let late = d.subscribe_resuming(Some(sid)).await;
    assert_ne!(late.extranonce1, fresh.extranonce1, "the window has passed");
    pool.stop().await;
}
