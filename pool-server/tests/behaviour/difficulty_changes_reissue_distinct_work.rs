//! A difficulty change re-issues the session's job under a fresh id that every miner reads as
//! new (plain lowercase hex, a new number), with `clean_jobs` and a coinbase of its own, so
//! no share found for one id is valid for another: work withheld at a low difficulty cannot be
//! credited at a higher one.

use crate::common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use protocol::{ClientRequest, Difficulty, ErrorCode, Extranonce2, ServerNotification};
use serde_json::Value;

fn is_plain_hex(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 16
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_ids_are_plain_hex_numbers_never_repeated() {
    let pool = start_pool(&["--job-refresh", "150ms"]).await;
    let mut c = Client::login(pool.stratum()).await;
    for d in [0.00002, 0.00004, 0.00003, 0.00005] {
        c.request(ClientRequest::SuggestDifficulty(
            Difficulty::new(d).unwrap(),
        ))
        .await
        .unwrap();
        // Jobs keep coming every 150 ms: read them for a while.
        let until = tokio::time::Instant::now() + Duration::from_millis(300);
        while let Some(m) = c.read(until - tokio::time::Instant::now()).await {
            if let protocol::Message::Call(call) = m {
                if let Ok(n) = ServerNotification::from_call(&call) {
                    c.absorb(n);
                }
            }
        }
    }
    let ids: Vec<String> = c.job_difficulty.iter().map(|(id, _)| id.clone()).collect();
    assert!(ids.len() >= 8, "{ids:?}");
    for id in &ids {
        assert!(is_plain_hex(id), "{id:?} is not plain lowercase hex");
    }
    let numbers: HashSet<u64> = ids
        .iter()
        .map(|id| u64::from_str_radix(id, 16).unwrap())
        .collect();
    assert_eq!(numbers.len(), ids.len(), "an id was sent twice: {ids:?}");
    pool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withheld_shares_are_not_credited_at_a_raised_difficulty() {
    let pool = start_pool(&["--reissue-grace", "700ms"]).await;
    let mut c = Client::login(pool.stratum()).await;
    let en1 = c.extranonce1.clone().unwrap();
    let low_job = c.job.clone().unwrap();
    let low = c.difficulty_of(&low_job);
    let high = Difficulty::new(low.as_f64() * 100.0).unwrap();

    // Shares found at the low difficulty, withheld, none meeting the high one.
    let withheld: Vec<_> = (1..=2)
        .map(|i| {
            let en2 = Extranonce2::from_counter(i, c.extranonce2_size);
            let mut from = 0;
            loop {
                let f = mine(&low_job, &en1, &en2, low.to_target(), from);
                if !high.to_target().is_met_by(&f.hash) {
                    break f;
                }
                from = f.submit.nonce.0 + 1;
            }
        })
        .collect();

    // Ask for the high difficulty: the job comes back under a new id, clean, other work.
    c.request(ClientRequest::SuggestDifficulty(high))
        .await
        .unwrap();
    let re = c.wait_job().await;
    assert_eq!(c.difficulty, Some(high));
    assert_ne!(re.job_id, low_job.job_id);
    assert!(is_plain_hex(re.job_id.as_str()));
    assert!(
        re.clean_jobs,
        "a re-issued job must make every miner switch"
    );
    assert_eq!(re.prevhash, low_job.prevhash);
    assert_ne!(re.coinb2, low_job.coinb2, "the same coinbase under two ids");

    // Under the new id the withheld share is other work, and far too weak.
    let mut replay = withheld[0].submit.clone();
    replay.job_id = re.job_id.clone();
    assert_eq!(
        code(&c.submit(replay).await),
        Some(ErrorCode::LowDifficulty)
    );
    // Under its own id it is still accepted during the grace, at its own difficulty.
    assert_eq!(
        c.submit(withheld[0].submit.clone()).await,
        Ok(Value::Bool(true))
    );
    let mut credited = None;
    for _ in 0..50 {
        let shares = pool.get("/api/shares?limit=10").await;
        credited = shares.as_array().unwrap().iter().find_map(|s| {
            (s["accepted"] == Value::Bool(true))
                .then(|| s["assigned_difficulty"].as_f64())
                .flatten()
        });
        if credited.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        credited,
        Some(low.as_f64()),
        "credited at the low difficulty"
    );
    // After the grace the replaced job is stale.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        code(&c.submit(withheld[1].submit.clone()).await),
        Some(ErrorCode::JobNotFound)
    );
    pool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_difficulty_change_reaches_a_miner_that_waits_for_clean_jobs() {
    let pool = start_pool(&[]).await;
    let mut c = Client::login(pool.stratum()).await;
    c.drain().await;
    c.request(ClientRequest::SuggestDifficulty(
        Difficulty::new(0.00003).unwrap(),
    ))
    .await
    .unwrap();
    c.drain().await;
    let order: Vec<&ServerNotification> = c.notifications.iter().collect();
    let set = order
        .iter()
        .position(|n| matches!(n, ServerNotification::SetDifficulty(_)))
        .expect("set_difficulty");
    let notify = order
        .iter()
        .position(|n| matches!(n, ServerNotification::Notify(j) if j.clean_jobs))
        .expect("a clean notify");
    assert!(
        set < notify,
        "set_difficulty first, then the job: {order:?}"
    );
    pool.stop().await;
}
