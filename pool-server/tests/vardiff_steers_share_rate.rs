//! Vardiff raises a fast miner's difficulty toward the target share interval; a share found at
//! the old difficulty stays valid for the job it was issued with, but not for newer jobs.

mod common;

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
    while began.elapsed() < Duration::from_secs(20) {
        counter += 1;
        let (r, _) = c.share(counter).await;
        assert_eq!(r, Ok(Value::Bool(true)));
        times.push(began.elapsed());
    }
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

    // The old share is credited at its job's (lower) difficulty...
    assert_eq!(c.submit(kept.submit.clone()).await, Ok(Value::Bool(true)));
    // ...but the same low difficulty on the current job is too low.
    let job = c.job.clone().unwrap();
    let low = mine(
        &job,
        &en1,
        &Extranonce2::from_counter(2_000_000, c.extranonce2_size),
        protocol::Difficulty::new(start).unwrap().to_target(),
        0,
    );
    if !c.difficulty_of(&job).to_target().is_met_by(&low.hash) {
        assert_eq!(
            code(&c.submit(low.submit).await),
            Some(ErrorCode::LowDifficulty)
        );
    }
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
