//! Vardiff raises a fast miner's difficulty toward the target share interval; a share found at
//! the old difficulty stays valid for the job it was issued with, but not for newer jobs.

use crate::common;

use std::time::{Duration, Instant};

use common::*;
use protocol::{ErrorCode, Extranonce2};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_miner_is_steered_toward_the_target_interval() {
    let pool = start_pool(&[
        "--start-difficulty",
        "0.000001",
        "--vardiff-target",
        "1s",
        "--vardiff-retarget",
        "3s",
    ])
    .await;
    let mut c = Client::login(pool.stratum()).await;
    let start = c.difficulty.unwrap().as_f64();
    let en1 = c.extranonce1.clone().unwrap();

    // Keep one share found at the start difficulty for the first job.
    let first_job = c.job.clone().unwrap();
    let kept = mine(
        &first_job,
        &en1,
        &Extranonce2::from_counter(1_000_000, c.extranonce2_size),
        c.difficulty_of(&first_job).to_target(),
        0,
    );

    let began = Instant::now();
    let mut counter = 0;
    let mut times = Vec::new();
    let mut kept = Some(kept);
    let mut late = 0;
    while began.elapsed() < Duration::from_secs(20) {
        counter += 1;
        // This client reads notifications only while it waits for an answer, so a share it
        // found on a job replaced meanwhile can reach the pool after the re-issue grace when the
        // host is busy: stale then, as for any miner that late. Only that, and rarely.
        let mined_on = c.job.as_ref().unwrap().job_id.clone();
        let (r, _) = c.share(counter).await;
        if code(&r) == Some(ErrorCode::JobNotFound) && c.job.as_ref().unwrap().job_id != mined_on {
            late += 1;
            continue;
        }
        assert_eq!(r, Ok(Value::Bool(true)));
        times.push(began.elapsed());
        // Right after the first raise, the share found at the start difficulty for the first
        // job is still credited at that job's (lower) difficulty.
        if c.difficulty.unwrap().as_f64() > start {
            if let Some(k) = kept.take() {
                assert_eq!(c.submit(k.submit).await, Ok(Value::Bool(true)));
            }
        }
    }
    assert!(kept.is_none(), "the difficulty never rose");
    assert!(late <= 3, "{late} of {counter} shares were stale");
    let end = c.difficulty.unwrap().as_f64();
    assert!(end > start * 16.0, "difficulty rose from {start} to {end}");

    // The last few seconds: shares arrive near the 1 s target (broad bounds: shared CPU).
    let recent: Vec<_> = times
        .iter()
        .filter(|t| **t > Duration::from_secs(14))
        .collect();
    let rate = recent.len() as f64 / 6.0;
    assert!(
        (0.2..=5.0).contains(&rate),
        "{rate} shares/s at difficulty {end}"
    );

    // The start difficulty on the current job is too low now.
    let job = c.job.clone().unwrap();
    let current = c.difficulty_of(&job).to_target();
    let en2 = Extranonce2::from_counter(2_000_000, c.extranonce2_size);
    let start_target = protocol::Difficulty::new(start).unwrap().to_target();
    let mut from = 0;
    let low = loop {
        let f = mine(&job, &en1, &en2, start_target, from);
        if !current.is_met_by(&f.hash) {
            break f;
        }
        from = f.submit.nonce.0 + 1;
    };
    assert_eq!(
        code(&c.submit(low.submit).await),
        Some(ErrorCode::LowDifficulty)
    );
    pool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suggest_difficulty_sets_the_start_difficulty() {
    let pool = start_pool(&[]).await;
    let mut c = Client::connect(pool.stratum()).await;
    c.subscribe().await;
    c.request(protocol::ClientRequest::SuggestDifficulty(
        protocol::Difficulty::new(0.004).unwrap(),
    ))
    .await
    .unwrap();
    c.authorize(WORKER).await.unwrap();
    c.wait_job().await;
    assert_eq!(c.difficulty.unwrap().as_f64(), 0.004);
    pool.stop().await;
}

/// Notifications that arrive within `wait`: (set_difficulty values, jobs).
async fn heard(c: &mut Client, wait: std::time::Duration) -> (Vec<f64>, usize) {
    let (mut diffs, mut jobs) = (Vec::new(), 0);
    let until = tokio::time::Instant::now() + wait;
    while let Some(m) = c.read(until - tokio::time::Instant::now()).await {
        if let protocol::Message::Call(call) = m {
            match protocol::ServerNotification::from_call(&call) {
                Ok(protocol::ServerNotification::SetDifficulty(d)) => diffs.push(d.as_f64()),
                Ok(protocol::ServerNotification::Notify(_)) => jobs += 1,
                _ => {}
            }
        }
    }
    (diffs, jobs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suggestions_never_take_vardiffs_place() {
    use protocol::{ClientRequest, Difficulty};
    use std::time::Duration;
    let pool = start_pool(&["--vardiff-retarget", "2s", "--job-refresh", "1h"]).await;
    let mut c = Client::login(pool.stratum()).await;
    c.drain().await;
    let suggest = |d: f64| ClientRequest::SuggestDifficulty(Difficulty::new(d).unwrap());
    // Higher than vardiff's: fewer shares, applied at once (one new job).
    c.send_raw(
        &protocol::Message::Call(suggest(0.0001).to_call(protocol::Id::number(500))).to_json(),
    )
    .await;
    let (diffs, jobs) = heard(&mut c, Duration::from_millis(500)).await;
    assert_eq!((diffs, jobs), (vec![0.0001], 1));
    // A flood of suggestions inside the retarget window: answered, but no job is rebuilt.
    for i in 0..200u64 {
        let d = if i % 2 == 0 { 0.001 } else { 0.0000001 };
        c.send_raw(
            &protocol::Message::Call(suggest(d).to_call(protocol::Id::number(600 + i))).to_json(),
        )
        .await;
    }
    let (diffs, jobs) = heard(&mut c, Duration::from_millis(800)).await;
    assert_eq!(
        (diffs.len(), jobs),
        (0, 0),
        "nothing rebuilt inside the window"
    );
    // The last one was lower: nothing waits. A higher one now waits for the window.
    c.send_raw(
        &protocol::Message::Call(suggest(0.001).to_call(protocol::Id::number(900))).to_json(),
    )
    .await;
    let (diffs, jobs) = heard(&mut c, Duration::from_millis(3000)).await;
    assert_eq!(diffs, vec![0.001], "applied once the window passed");
    assert_eq!(jobs, 1);
    // Lower than the current difficulty: it stays; vardiff alone may lower it, never below.
    c.send_raw(
        &protocol::Message::Call(suggest(0.000001).to_call(protocol::Id::number(901))).to_json(),
    )
    .await;
    let (diffs, _) = heard(&mut c, Duration::from_millis(1000)).await;
    assert!(
        diffs.is_empty(),
        "a lower suggestion changed the difficulty: {diffs:?}"
    );
    pool.stop().await;
}
