//! Dashboards and alert rules can only show what exists: every metric name in every PromQL
//! expression of `monitoring/` must be exported by a live pool-server or miner-worker, and the
//! Grafana files must be well formed (datasource, `$worker` variable, unique panel ids).

use crate::common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use regex::Regex;
use serde_json::Value;

fn repo(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
}

fn names_in(text: &str) -> BTreeSet<String> {
    let metric_line = Regex::new(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]").unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| metric_line.captures(l).map(|c| c[1].to_owned()))
        .collect()
}

fn referenced(expr: &str) -> BTreeSet<String> {
    Regex::new(r"\b((?:pool|miner)_[a-z0-9_]+)\b")
        .unwrap()
        .captures_iter(expr)
        .map(|c| c[1].to_owned())
        .collect()
}

fn dashboard_exprs(d: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            out.push(t["expr"].as_str().unwrap().to_owned());
        }
    }
    for v in d["templating"]["list"].as_array().unwrap() {
        if let Some(q) = v["definition"].as_str() {
            out.push(q.to_owned());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_expression_names_only_exported_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let pool = common::start_pool(dir.path(), &[]).await;
    let worker =
        common::start_worker(pool.stratum[0], "w.rig", &["--metrics", "127.0.0.1:0"]).await;
    let t = Instant::now();
    while worker
        .status
        .accepted
        .load(std::sync::atomic::Ordering::Relaxed)
        == 0
    {
        assert!(t.elapsed() < Duration::from_secs(30));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await; // a store batch lands
    let scrape =
        |url: String| async move { reqwest::get(url).await.unwrap().text().await.unwrap() };
    let mut exported = names_in(&scrape(format!("http://{}/metrics", pool.http)).await);
    exported.extend(names_in(
        &scrape(format!("http://{}/metrics", worker.metrics.unwrap())).await,
    ));
    // Histograms export _bucket/_sum/_count under their base name.
    assert!(
        exported.contains("pool_store_batch_seconds_bucket"),
        "{exported:?}"
    );

    let mut exprs: Vec<(String, String)> = Vec::new();
    for file in ["pool-overview.json", "worker.json"] {
        let d: Value = serde_json::from_str(
            &std::fs::read_to_string(repo(&format!("monitoring/grafana/dashboards/{file}")))
                .unwrap(),
        )
        .unwrap();
        assert!(
            d["uid"].is_string() && d["title"].is_string(),
            "{file}: uid and title"
        );
        let mut ids = BTreeSet::new();
        for p in d["panels"].as_array().unwrap() {
            assert!(
                ids.insert(p["id"].as_i64().unwrap()),
                "{file}: duplicate panel id"
            );
            assert_eq!(
                p["datasource"]["uid"], "prometheus",
                "{file}: panels use the provisioned datasource"
            );
        }
        exprs.extend(
            dashboard_exprs(&d)
                .into_iter()
                .map(|e| (file.to_owned(), e)),
        );
        if file == "worker.json" {
            let vars = d["templating"]["list"].as_array().unwrap();
            assert!(
                vars.iter().any(|v| v["name"] == "worker"),
                "worker dashboard has $worker"
            );
            assert!(d["panels"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p.to_string().contains("$worker")));
        }
    }
    let ds: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(repo(
            "monitoring/grafana/provisioning/datasources/prometheus.yml",
        ))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(ds["datasources"][0]["uid"].as_str(), Some("prometheus"));

    let rules: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(repo("monitoring/alerts.yml")).unwrap())
            .unwrap();
    for g in rules["groups"].as_sequence().unwrap() {
        for r in g["rules"].as_sequence().unwrap() {
            exprs.push(("alerts.yml".into(), r["expr"].as_str().unwrap().to_owned()));
        }
    }
    assert!(exprs.len() > 20);
    for (file, e) in &exprs {
        for name in referenced(e) {
            let base = name
                .trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count");
            assert!(
                exported.contains(&name) || exported.contains(&format!("{base}_bucket")),
                "{file}: {name} in `{e}` is not exported by a live pool or worker"
            );
        }
    }
    worker.stop().await;
    pool.stop().await.unwrap();
}
