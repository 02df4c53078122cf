//! A worker's hashrate comes from a count of shares, and a count is only so sure: the API
//! gives each window's 95 % Poisson interval and what it was counted from, the worker page
//! shows it under each number, the average over the range is over the time the worker has
//! existed in it, and a young worker's (and pool's) chart says how much history there is.

use serde_json::Value;

use crate::common::chromium;
use crate::common::*;

#[tokio::test]
async fn each_window_carries_its_interval_and_a_young_worker_says_how_young() {
    let pool = start_pool(&["--vardiff-max", "0.00001"]).await;
    let mut c = Client::connect(pool.stratum()).await;
    c.subscribe().await;
    assert_eq!(c.authorize(WORKER).await.unwrap(), Value::Bool(true));
    c.wait_job().await;
    let mut idle = Client::connect(pool.stratum()).await;
    idle.subscribe().await;
    assert_eq!(idle.authorize("idle.rig").await.unwrap(), Value::Bool(true));
    for i in 0..20 {
        assert_eq!(c.share(i).await.0.unwrap(), Value::Bool(true));
    }
    let w = pool.get(&format!("/api/workers/{WORKER}")).await;
    let u = &w["uncertainty"];
    assert_eq!(u["confidence"], 0.95);
    let one = &u["windows"]["1m"];
    assert_eq!(one["shares"], 20.0, "{w}");
    let rate = w["hashrate"]["1m"].as_f64().unwrap();
    let (low, high) = (one["low"].as_f64().unwrap(), one["high"].as_f64().unwrap());
    assert!(low < rate && rate < high, "{low} < {rate} < {high}");
    // 20 shares: the exact interval is [12.2, 30.9] shares, so about -39 % / +54 %.
    assert!((low / rate - 12.22 / 20.0).abs() < 0.01, "{low} {rate}");
    assert!((high / rate - 30.89 / 20.0).abs() < 0.01, "{high} {rate}");
    assert!(u["seconds_known"].as_i64().unwrap() < 60, "{u}");
    // No share yet: nothing below zero, and an upper bound that is not zero.
    let w = pool.get("/api/workers/idle.rig").await;
    let none = &w["uncertainty"]["windows"]["5m"];
    assert_eq!(none["shares"], 0.0);
    assert_eq!(none["low"], 0.0);
    assert!(none["high"].as_f64().unwrap() > 0.0, "{w}");

    // The rollups the page's history reads are written within a flush or two.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    // The page: each number with its interval, the average over the worker's own time,
    // and how much of the range there is history for.
    let dom = chromium::dom(format!("{}/worker?name={WORKER}&range=24h", pool.http())).await;
    let interval = regex::Regex::new(r#"id="w-interval-1m"[^>]*>([^<]*)<"#).unwrap();
    let text = &interval.captures(&dom).expect("the 1 m interval")[1];
    assert!(
        text.starts_with("95 %: ") && text.ends_with("(20 shares)"),
        "{text}"
    );
    let note = regex::Regex::new(r#"id="w-history-note"[^>]*>([^<]*)<"#).unwrap();
    let text = &note.captures(&dom).expect("the history note")[1];
    assert!(
        text.starts_with("history: ") && text.contains("of the 24h range"),
        "{text}"
    );
    let average = chromium::data_value(&dom, "w-hashrate-range");
    let live = chromium::data_value(&dom, "w-hashrate-1m");
    // Over its few seconds, as the 1 m window is, not over a day (which would be 1/10,000th).
    assert!(
        average > live / 2.0 && average < live * 2.0,
        "{average} vs {live}"
    );
    // The pool's page says the same of the pool's day.
    let dom = chromium::dom(format!("{}/", pool.http())).await;
    let note = regex::Regex::new(r#"id="pool-history-note"[^>]*>([^<]*)<"#).unwrap();
    let text = &note.captures(&dom).expect("the pool's history note")[1];
    assert!(
        text.starts_with("history: ") && text.ends_with("of the last 24 h"),
        "{text}"
    );
    pool.stop().await;
}

/// An account's numbers are its workers' summed as their shares arrived (not a walk over
/// them), each window with the interval its shares allow; the account page shows both.
#[tokio::test]
async fn an_account_sums_its_workers_and_says_how_sure_the_sum_is() {
    let pool = start_pool(&["--vardiff-max", "0.00001"]).await;
    let mut rigs = Vec::new();
    for name in ["carol.rig1", "carol.rig2"] {
        let mut c = Client::connect(pool.stratum()).await;
        c.subscribe().await;
        assert_eq!(c.authorize(name).await.unwrap(), Value::Bool(true));
        c.wait_job().await;
        rigs.push(c);
    }
    for i in 0..20 {
        let r = rigs[0].share_as("carol.rig1", i).await.0;
        assert_eq!(r.unwrap(), Value::Bool(true));
    }
    for i in 0..10 {
        let r = rigs[1].share_as("carol.rig2", i).await.0;
        assert_eq!(r.unwrap(), Value::Bool(true));
    }
    let a = pool.get("/api/accounts/carol").await;
    let live = &a["live"];
    assert_eq!(live["online"], 2, "{a}");
    assert_eq!(live["accepted"], 30, "{a}");
    let one = &live["uncertainty"]["windows"]["1m"];
    assert_eq!(one["shares"], 30, "{a}");
    let rate = live["hashrate"]["1m"].as_f64().unwrap();
    let sum: f64 = {
        let mut s = 0.0;
        for name in ["carol.rig1", "carol.rig2"] {
            s += pool.get(&format!("/api/workers/{name}")).await["hashrate"]["1m"]
                .as_f64()
                .unwrap();
        }
        s
    };
    // The workers began a moment apart, so their spans differ by that moment.
    assert!((rate / sum - 1.0).abs() < 0.15, "{rate} vs {sum}");
    // 30 shares: the exact interval is [20.24, 42.83] shares.
    let (low, high) = (one["low"].as_f64().unwrap(), one["high"].as_f64().unwrap());
    assert!((low / rate - 20.24 / 30.0).abs() < 0.01, "{low} {rate}");
    assert!((high / rate - 42.83 / 30.0).abs() < 0.01, "{high} {rate}");
    // Another account's workers are not in it.
    assert!(pool.get("/api/accounts/nobody").await["error"].is_string());

    let dom = chromium::dom(format!("{}/account?name=carol", pool.http())).await;
    let interval = regex::Regex::new(r#"id="a-interval-1m"[^>]*>([^<]*)<"#).unwrap();
    let text = &interval.captures(&dom).expect("the 1 m interval")[1];
    assert!(
        text.starts_with("95 %: ") && text.ends_with("(30 shares)"),
        "{text}"
    );
    assert_eq!(chromium::data_value(&dom, "a-online"), 2.0);
    pool.stop().await;
}
