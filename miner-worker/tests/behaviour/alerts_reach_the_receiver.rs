//! The promise behind the dashboards: a worker going down reaches a real receiver.
//!
//! pool-server and two workers run in-process; the real `prometheus` and
//! `prometheus-alertmanager` binaries run on loopback with the committed `monitoring/`
//! rules and routing, only their durations shortened. Stopping one worker must deliver a
//! firing `WorkerDown` for it to the webhook; restarting it must deliver the resolution.

use crate::common;

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::post;
use axum::Router;
use serde_json::Value;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn repo(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
}

/// The committed rules with every `for:` shortened to seconds.
fn fast_rules() -> String {
    let text = std::fs::read_to_string(repo("monitoring/alerts.yml")).unwrap();
    text.lines()
        .map(|l| match l.trim_start().strip_prefix("for: ") {
            Some(_) => format!("{}for: 3s", &l[..l.len() - l.trim_start().len()]),
            None => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The committed routing with the receiver pointed at `url` and the timers shortened.
fn fast_routing(url: &str) -> String {
    let text = std::fs::read_to_string(repo("monitoring/alertmanager.yml")).unwrap();
    assert!(text.contains("url: http://alert-receiver:9095/alerts"));
    text.replace("http://alert-receiver:9095/alerts", url)
        .replace("group_wait: 30s", "group_wait: 1s")
        .replace("group_interval: 5m", "group_interval: 1s")
        .replace("repeat_interval: 4h", "repeat_interval: 1m")
        .replace("resolve_timeout: 5m", "resolve_timeout: 10s")
}

fn spawn(cmd: &str, args: &[String]) -> Child {
    Command::new(cmd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{cmd} must be installed (scripts/prepare/monitoring-tools): {e}")
        })
}

/// Wait for a webhook delivery about WorkerDown for `worker` with `status`.
async fn delivery(
    rx: &mut mpsc::UnboundedReceiver<Value>,
    worker: &str,
    status: &str,
    limit: Duration,
) -> Value {
    let until = Instant::now() + limit;
    loop {
        let left = until
            .checked_duration_since(Instant::now())
            .unwrap_or_default();
        let body = tokio::time::timeout(left, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no {status} WorkerDown for {worker} within {limit:?}"))
            .expect("receiver open");
        let hit = body["alerts"].as_array().unwrap().iter().any(|a| {
            a["labels"]["alertname"] == "WorkerDown"
                && a["labels"]["worker"] == worker
                && a["status"] == status
        });
        if hit {
            return body;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_down_alert_fires_and_resolves_at_the_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let pool = common::start_pool(dir.path(), &[]).await;
    let stratum = pool.stratum[0];

    // The webhook receiver.
    let (tx, mut rx) = mpsc::unbounded_channel::<Value>();
    let tx = Arc::new(tx);
    let hook = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/alerts", hook.local_addr().unwrap());
    tokio::spawn(async move {
        let app = Router::new().route(
            "/alerts",
            post(move |body: axum::Json<Value>| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(body.0);
                    "ok"
                }
            }),
        );
        axum::serve(hook, app).await.unwrap();
    });

    let am_port = free_port();
    std::fs::write(dir.path().join("alertmanager.yml"), fast_routing(&hook_url)).unwrap();
    let _alertmanager = spawn(
        "prometheus-alertmanager",
        &[
            format!("--config.file={d}/alertmanager.yml"),
            format!("--storage.path={d}/am"),
            format!("--web.listen-address=127.0.0.1:{am_port}"),
            "--cluster.listen-address=".into(),
        ],
    );
    std::fs::write(dir.path().join("alerts.yml"), fast_rules()).unwrap();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [alerts.yml]\n\
             alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{am_port}']\n\
             scrape_configs:\n  - job_name: pool-server\n    static_configs:\n      - targets: ['{}']\n",
            pool.http
        ),
    )
    .unwrap();
    let _prometheus = spawn(
        "prometheus",
        &[
            format!("--config.file={d}/prometheus.yml"),
            format!("--storage.tsdb.path={d}/tsdb"),
            format!("--web.listen-address=127.0.0.1:{}", free_port()),
        ],
    );

    let w1 = common::start_worker(stratum, "w1.rig", &[]).await;
    let w2 = common::start_worker(stratum, "w2.rig", &[]).await;
    // Both mining and scraped for a while.
    let t = Instant::now();
    while w1
        .status
        .accepted
        .load(std::sync::atomic::Ordering::Relaxed)
        == 0
        || w2
            .status
            .accepted
            .load(std::sync::atomic::Ordering::Relaxed)
            == 0
    {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "workers never got shares"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;

    w2.stop().await;
    let fired = delivery(&mut rx, "w2.rig", "firing", Duration::from_secs(60)).await;
    assert_eq!(
        fired["groupLabels"]["worker"], "w2.rig",
        "grouped by worker"
    );

    let w2 = common::start_worker(stratum, "w2.rig", &[]).await;
    delivery(&mut rx, "w2.rig", "resolved", Duration::from_secs(60)).await;

    w1.stop().await;
    w2.stop().await;
    pool.stop().await.unwrap();
}
