//! The dashboard with 10,000 workers, in real headless Chromium: the workers table is
//! searched, sorted, grouped by account and paged by the server (the page holds one page of
//! rows, the same rows in the same order as the API), and a worker's page shows its history
//! over the chosen range with the numbers the API gives.

use crate::common;

use chrono::{Duration, Utc};
use common::*;
use pool_server::store::{Backend, Batch, ShareRecord, StoreEvent};
use regex::Regex;
use serde_json::Value;
use uuid::Uuid;

const ACCOUNTS: usize = 500;
const RIGS: usize = 20;

fn name(i: usize) -> String {
    format!("acct{:03}.rig{:02}", i % ACCOUNTS, i / ACCOUNTS)
}

/// Every worker mined over the last 50 minutes: 1 to 7 accepted shares, every tenth one a
/// stale share and every seventh a low-difficulty one too.
async fn seed(url: &str) {
    let b = Backend::connect(url).await.unwrap();
    b.migrate().await.unwrap();
    let now = Utc::now();
    let mut events = Vec::new();
    for i in 0..ACCOUNTS * RIGS {
        let mut push = |k: usize, reason: Option<&str>| {
            events.push(StoreEvent::Share(ShareRecord {
                id: Uuid::now_v7(),
                worker: name(i),
                session_id: i as i64,
                job_id: format!("{k:x}"),
                height: 5,
                assigned_difficulty: 0.5,
                achieved_difficulty: 0.5 + (i % 13) as f64,
                accepted: reason.is_none(),
                reason: reason.map(str::to_owned),
                block_hash: None,
                created_at: now - Duration::minutes(50 - (k as i64 * 7 + i as i64) % 50),
            }))
        };
        for k in 0..1 + i % 7 {
            push(k, None);
        }
        if i % 10 == 3 {
            push(9, Some("stale"));
        }
        if i % 7 == 2 {
            push(10, Some("low-difficulty"));
        }
    }
    for chunk in events.chunks(20_000) {
        b.write(&[Batch::new(chunk.to_vec())]).await.unwrap();
    }
}

fn rows_in(dom: &str) -> Vec<String> {
    Regex::new(r#"<tr data-worker="([^"]+)">"#)
        .unwrap()
        .captures_iter(dom)
        .map(|c| c[1].to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_workers_are_paged_searched_sorted_and_each_has_a_page() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    seed(&format!("sqlite://{}/pool.sqlite", dir.path().display())).await;
    let pool = start_pool_with(dir.clone(), base_args(&dir)).await;
    // One worker mining live, beside the 10,000 the database and the warmed windows know.
    let mut c = Client::login(pool.stratum()).await;
    for n in 1..=3 {
        assert_eq!(c.share(n).await.0, Ok(Value::Bool(true)));
    }
    let http = pool.http();

    // The server pages: the whole list is never sent.
    let all = pool.get("/api/worker-table?limit=500").await;
    assert_eq!(all["total"], 10_001);
    assert_eq!(all["rows"].as_array().unwrap().len(), 500);
    let bad = reqwest::get(format!("{http}/api/worker-table?sort=colour"))
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    // Searched, sorted by accepted shares (descending), grouped by account: the page shows
    // the API's first 50 rows in the API's order, under their accounts' header rows.
    let view = "q=ACCT01&sort=accepted&order=desc&group=account";
    let api = pool
        .get(&format!("/api/worker-table?limit=50&{view}"))
        .await;
    assert_eq!(api["total"], 200, "acct010..acct019, 20 rigs each");
    let want: Vec<String> = api["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    let dom = chromium::dom(format!("{http}/?{view}")).await;
    assert!(dom.contains(r#"data-loaded="true""#), "the page loaded");
    assert_eq!(rows_in(&dom), want);
    assert!(Regex::new(r#"id="page-info" data-total="200""#)
        .unwrap()
        .is_match(&dom));
    assert!(dom.contains(r#"data-sort="accepted" aria-sort="descending""#));
    let headers: Vec<&str> = Regex::new(r#"<tr class="account" data-account="([^"]+)">"#)
        .unwrap()
        .captures_iter(&dom)
        .map(|c| c.get(1).unwrap().as_str())
        .collect();
    let mut accounts: Vec<&str> = want.iter().map(|n| &n[..7]).collect();
    accounts.dedup();
    assert_eq!(headers, accounts, "one header per account, in page order");
    for a in &accounts {
        assert_eq!(api["accounts"][a]["workers"], 20, "{a} sums all its rigs");
    }

    // The last page by name: 50 rows, the last of them the last name.
    let dom = chromium::dom(format!("{http}/?offset=9951")).await;
    let rows = rows_in(&dom);
    assert_eq!(rows.len(), 50);
    assert_eq!(rows.last().unwrap(), "alice.rig1");
    assert!(dom.contains(r#"data-total="10001" data-offset="9951""#));

    // A seeded worker's page over 24 h: the numbers are the API's sums over the range.
    let worker = name(4_321);
    let api = pool.get(&format!("/api/workers/{worker}?range=24h")).await;
    let history = api["history"].as_array().unwrap();
    let sum = |k: &str| history.iter().map(|p| p[k].as_f64().unwrap()).sum::<f64>();
    let url = format!("{http}/worker?name={worker}&range=24h");
    let dom = chromium::dom(url.clone()).await;
    assert!(dom.contains(r#"data-loaded="true""#), "the page loaded");
    assert_eq!(chromium::data_value(&dom, "w-accepted"), sum("accepted"));
    assert_eq!(
        chromium::data_value(&dom, "w-accepted"),
        (1 + 4_321 % 7) as f64
    );
    assert_eq!(chromium::data_value(&dom, "w-rejected"), sum("rejected"));
    assert_eq!(
        chromium::data_value(&dom, "w-best"),
        0.5 + (4_321 % 13) as f64
    );
    assert!(dom.contains(r#"id="ranges" data-value="24h""#));
    // 4321 % 10 == 1 and 4321 % 7 == 2: one low-difficulty share, no stale one.
    assert!(dom.contains(r#"<tr data-reason="low-difficulty"><td>low-difficulty</td><td class="num" data-value="1">"#), "{dom}");
    assert!(!dom.contains(r#"data-reason="stale""#));
    let png = chromium::screenshot(
        url,
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("worker-page.png"),
    )
    .await;
    assert!(png.len() > 20_000, "a rendered page, not a blank one");

    // The live worker's page lists its latest shares from the database.
    let dom = chromium::dom(format!("{http}/worker?name={WORKER}&range=1h")).await;
    assert_eq!(chromium::data_value(&dom, "w-sessions"), 1.0);
    let shares = Regex::new(r#"<tr data-share="#)
        .unwrap()
        .find_iter(&dom)
        .count();
    assert_eq!(shares, 3, "its three shares");
    pool.stop().await;
}
