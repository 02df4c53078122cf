//! The Stratum client against a scripted peer over TCP: clean jobs stop stale work within
//! milliseconds, set_extranonce switches the coinbase, client.reconnect is followed, a dead
//! primary fails over to the backup and the worker returns when the primary is back, and a
//! pool that never answers is left after the response timeout.

use std::time::{Duration, Instant};

use clap::Parser;
use miner_worker::app;
use miner_worker::config::Config;
use protocol::{Difficulty, Extranonce1, Message, ServerNotification};
use serde_json::json;
use tokio::net::TcpListener;

use crate::common::scripted_pool::{job, valid, Peer};

fn worker(pools: &[String], extra: &[&str]) -> Config {
    let mut args = vec![
        "miner-worker".to_string(),
        "-u".into(),
        "tester.rig".into(),
        "-t".into(),
        "1".into(),
        // Normal priority: other tests share the machine (the default, idle, yields to them).
        "--cpu-priority".into(),
        "normal".into(),
        "--log".into(),
        "warn".into(),
    ];
    for p in pools {
        args.push("-o".into());
        args.push(p.clone());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    Config::try_parse_from(args).unwrap()
}

const DIFF: f64 = 0.0005;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_jobs_stop_stale_work_within_milliseconds() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let w = app::start(&worker(
        &[format!("stratum+tcp://{}", l.local_addr().unwrap())],
        &[],
    ))
    .await
    .unwrap();
    let mut p = Peer::accept(&l, Duration::from_secs(10)).await;
    let en1 = [1, 2, 3, 4];
    p.handshake(&en1, true).await;
    p.notify(ServerNotification::SetDifficulty(
        Difficulty::new(DIFF).unwrap(),
    ))
    .await;
    let a = job("a", true);
    p.notify(ServerNotification::Notify(a.clone())).await;
    let s = p
        .submit(Duration::from_secs(20))
        .await
        .expect("a share for job a");
    assert_eq!(s.job_id, a.job_id);
    assert!(valid(&a, &en1, &s, DIFF), "the share is real");

    let b = job("b", true);
    p.notify(ServerNotification::Notify(b.clone())).await;
    let switched = Instant::now();
    let mut late_a = 0;
    let mut b_shares = 0;
    while switched.elapsed() < Duration::from_secs(3) {
        let Some(s) = p.submit(Duration::from_millis(500)).await else {
            continue;
        };
        if s.job_id == a.job_id {
            if switched.elapsed() > Duration::from_millis(100) {
                late_a += 1;
            }
        } else {
            assert!(valid(&b, &en1, &s, DIFF));
            b_shares += 1;
        }
    }
    assert_eq!(
        late_a, 0,
        "shares for the old job more than 100 ms after clean_jobs"
    );
    assert!(b_shares > 0, "mining the new job");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_extranonce_switches_the_coinbase() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let w = app::start(&worker(
        &[format!("stratum+tcp://{}", l.local_addr().unwrap())],
        &["--extranonce-subscribe", "--no-version-rolling"],
    ))
    .await
    .unwrap();
    let mut p = Peer::accept(&l, Duration::from_secs(10)).await;
    p.handshake(&[9, 9, 9, 9], false).await;
    p.notify(ServerNotification::SetDifficulty(
        Difficulty::new(DIFF).unwrap(),
    ))
    .await;
    let a = job("a", true);
    p.notify(ServerNotification::Notify(a.clone())).await;
    let s = p.submit(Duration::from_secs(20)).await.unwrap();
    assert!(valid(&a, &[9, 9, 9, 9], &s, DIFF));
    assert_eq!(s.version_bits, None, "no rolling when not asked");

    let new_en1 = [0xaa, 0xbb, 0xcc];
    p.notify(ServerNotification::SetExtranonce {
        extranonce1: Extranonce1(new_en1.to_vec()),
        extranonce2_size: 5,
    })
    .await;
    let changed = Instant::now();
    let mut with_new = 0;
    while changed.elapsed() < Duration::from_secs(3) {
        let Some(s) = p.submit(Duration::from_millis(500)).await else {
            continue;
        };
        if changed.elapsed() > Duration::from_millis(100) {
            assert_eq!(s.extranonce2.len(), 5, "the new extranonce2 size");
            assert!(
                valid(&a, &new_en1, &s, DIFF),
                "shares use the new extranonce1"
            );
            with_new += 1;
        }
    }
    assert!(with_new > 0);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_reconnect_is_followed_to_the_named_host() {
    let first = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let second = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let w = app::start(&worker(
        &[format!("stratum+tcp://{}", first.local_addr().unwrap())],
        &[],
    ))
    .await
    .unwrap();
    let mut p = Peer::accept(&first, Duration::from_secs(10)).await;
    p.handshake(&[1, 1, 1, 1], true).await;
    p.notify(ServerNotification::Reconnect {
        host: Some("127.0.0.1".into()),
        port: Some(second.local_addr().unwrap().port()),
        wait_secs: Some(0),
    })
    .await;
    let mut q = Peer::accept(&second, Duration::from_secs(5)).await;
    q.handshake(&[2, 2, 2, 2], true).await;
    q.notify(ServerNotification::SetDifficulty(
        Difficulty::new(DIFF).unwrap(),
    ))
    .await;
    let j = job("r", true);
    q.notify(ServerNotification::Notify(j.clone())).await;
    let s = q.submit(Duration::from_secs(20)).await.unwrap();
    assert!(valid(&j, &[2, 2, 2, 2], &s, DIFF));
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_primary_fails_over_and_the_worker_returns_when_it_is_back() {
    // A port with nobody listening: the primary is down.
    let primary_addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let backup = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let w = app::start(&worker(
        &[
            format!("stratum+tcp://{primary_addr}"),
            format!("stratum+tcp://{}", backup.local_addr().unwrap()),
        ],
        &["--retry-max", "300ms", "--failback-interval", "1s"],
    ))
    .await
    .unwrap();
    let mut b = Peer::accept(&backup, Duration::from_secs(10)).await;
    b.handshake(&[3, 3, 3, 3], true).await;
    b.notify(ServerNotification::SetDifficulty(
        Difficulty::new(DIFF).unwrap(),
    ))
    .await;
    b.notify(ServerNotification::Notify(job("b", true))).await;
    assert!(
        b.submit(Duration::from_secs(20)).await.is_some(),
        "mining on the backup"
    );

    // The primary comes back: the worker returns to it and leaves the backup.
    let primary = TcpListener::bind(primary_addr).await.unwrap();
    let back = Instant::now();
    let mut p = loop {
        let (s, _) = tokio::time::timeout(Duration::from_secs(10), primary.accept())
            .await
            .expect("returns to the primary")
            .unwrap();
        // The failback probe connects and drops; the real session sends a call.
        let mut peer = Peer::from(s);
        if let Some(c) = peer.call(Duration::from_secs(2)).await {
            peer.send(Message::ok(
                c.id.clone(),
                if c.method == "mining.configure" {
                    json!({"version-rolling": false})
                } else {
                    json!(true)
                },
            ))
            .await;
            break peer;
        }
    };
    assert!(
        back.elapsed() < Duration::from_secs(5),
        "failback within the interval"
    );
    p.handshake(&[4, 4, 4, 4], false).await;
    assert!(
        b.closed(Duration::from_secs(2)).await,
        "the backup connection is closed"
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_that_never_answers_is_left_after_the_timeout() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let w = app::start(&worker(
        &[format!("stratum+tcp://{}", l.local_addr().unwrap())],
        &["--timeout", "1s", "--retry-max", "200ms"],
    ))
    .await
    .unwrap();
    let mut silent = Peer::accept(&l, Duration::from_secs(5)).await;
    let t = Instant::now();
    while silent.call(Duration::from_millis(100)).await.is_some() {}
    // A second connection arrives once the subscribe went unanswered for the timeout.
    let _again = Peer::accept(&l, Duration::from_secs(6)).await;
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "not before the timeout"
    );
    assert!(
        silent.closed(Duration::from_secs(1)).await,
        "the silent pool was left"
    );
    w.stop().await;
}
