//! The built-in dashboard in real headless Chromium (Debian's `chromium`): with two workers
//! mining it renders per-worker hashrate (a screenshot is saved), and once they stop the
//! numbers on the page equal the API's.

use crate::chromium;
use crate::common;

use std::time::{Duration, Instant};

use regex::Regex;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_what_the_api_says() {
    let dir = tempfile::tempdir().unwrap();
    let block_bits = protocol::Difficulty::new(0.01)
        .unwrap()
        .to_target()
        .to_compact()
        .to_string();
    let pool = common::start_pool(dir.path(), &["--genesis-bits", &block_bits]).await;
    let url = format!("http://{}/", pool.http);
    let w1 = common::start_worker(pool.stratum[0], "alice.rig1", &[]).await;
    let w2 = common::start_worker(pool.stratum[0], "bob.rig7", &[]).await;
    let t = Instant::now();
    while w1
        .status
        .accepted
        .load(std::sync::atomic::Ordering::Relaxed)
        < 3
        || w2
            .status
            .accepted
            .load(std::sync::atomic::Ordering::Relaxed)
            < 3
    {
        assert!(t.elapsed() < Duration::from_secs(30));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // While both mine: a screenshot, and a page that lists both with a hashrate.
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    let png = chromium::screenshot(url.clone(), shot.clone()).await;
    assert!(png.len() > 20_000, "a rendered page, not a blank one");
    eprintln!("dashboard screenshot: {}", shot.display());
    let live = chromium::dom(url.clone()).await;
    let five_minutes = Regex::new(r#"data-value="([0-9.e+]+)" data-window="5m""#).unwrap();
    for w in ["alice.rig1", "bob.rig7"] {
        let row = Regex::new(&format!(r#"data-worker="{w}">(.*?)</tr>"#)).unwrap();
        let r = &row
            .captures(&live)
            .unwrap_or_else(|| panic!("{w} not listed"))[1];
        let rate: f64 = five_minutes.captures(r).unwrap()[1].parse().unwrap();
        assert!(rate > 0.0, "{w} shows a hashrate");
    }

    // Frozen numbers: stop mining, then page and API must agree.
    w1.stop().await;
    w2.stop().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Hashrate of stopped workers keeps falling as time passes: the page's value must lie
    // between the API's just before and just after the page loaded.
    let pool_api = format!("http://{}/api/pool", pool.http);
    let workers_api = format!("http://{}/api/workers", pool.http);
    let get = |url: String| async move {
        reqwest::get(url)
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let accepted_cell = Regex::new(r#"class="num accepted" data-value="(\d+)""#).unwrap();
    let page_accepted = |dom: &str, name: &str| -> Option<f64> {
        let row = Regex::new(&format!(r#"data-worker="{name}">(.*?)</tr>"#)).unwrap();
        let r = row.captures(dom)?[1].to_owned();
        accepted_cell.captures(&r)?[1].parse().ok()
    };
    // The worker table is served from a snapshot shared by every reader, a few seconds old
    // at most: one built while the workers still mined may miss their last shares. Load the
    // page until its table holds them (it must within the snapshot's staleness), then compare.
    let t = Instant::now();
    let (before, dom, api, workers) = loop {
        let before = get(pool_api.clone()).await;
        let dom = chromium::dom(url.clone()).await;
        let api = get(pool_api.clone()).await;
        let workers = get(workers_api.clone()).await;
        let settled =
            workers.as_array().unwrap().iter().all(|w| {
                page_accepted(&dom, w["name"].as_str().unwrap()) == w["accepted"].as_f64()
            });
        if settled || t.elapsed() > Duration::from_secs(30) {
            break (before, dom, api, workers);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    assert!(
        dom.contains(r#"data-loaded="true""#),
        "the page loaded its data"
    );
    assert_eq!(
        chromium::data_value(&dom, "pool-accepted"),
        api["accepted"].as_f64().unwrap()
    );
    assert_eq!(
        chromium::data_value(&dom, "pool-rejected"),
        api["rejected"].as_f64().unwrap()
    );
    assert_eq!(
        chromium::data_value(&dom, "pool-height"),
        api["height"].as_f64().unwrap()
    );
    assert_eq!(
        chromium::data_value(&dom, "pool-blocks"),
        api["blocks_found"].as_f64().unwrap()
    );
    let h_page = chromium::data_value(&dom, "pool-hashrate-1h");
    let (h0, h1) = (
        before["hashrate"]["1h"].as_f64().unwrap(),
        api["hashrate"]["1h"].as_f64().unwrap(),
    );
    assert!(
        h_page <= h0.max(h1) * 1.001 && h_page >= h0.min(h1) * 0.999,
        "1 h hashrate on the page {h_page} outside the API's {h1}..{h0}"
    );
    for w in workers.as_array().unwrap() {
        let name = w["name"].as_str().unwrap();
        let accepted = page_accepted(&dom, name).unwrap_or_else(|| panic!("{name} listed"));
        assert_eq!(
            accepted,
            w["accepted"].as_f64().unwrap(),
            "{name} accepted shares"
        );
    }
    pool.stop().await.unwrap();
}
