//! The pool as operators run it: three edges on one PostgreSQL behind a real HAProxy (PROXY
//! protocol v2, health checks), miners spread over them. One edge is killed (-9) mid-run and
//! another drained (SIGTERM): every miner is mining again within seconds on a remaining edge,
//! sessions that moved keep their extranonce1, no share answered `true` is lost or stored
//! twice (with `--durable-acks`), a worker's numbers are the same in every edge's API, a ban
//! made on one edge is seen on the others, and Prometheus, on the repository's own config,
//! finds the three edges in its targets file and sums their sessions.
//!
//! The miners model cgminer's documented behaviour: they present their subscription id when
//! they reconnect and follow `client.reconnect` to the host it names.

use crate::common;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::haproxy::Haproxy;
use common::process::{free_port, PoolProcess};
use common::sim_miner::{self, Manners, Tally, ANY_HASH};
use common::{get_admin, PgTestDb};
use pool_server::store::Backend;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const MINERS: usize = 24;

fn edge_flags(db: &PgTestDb, id: u8) -> Vec<String> {
    [
        "--database-url",
        &db.url,
        "--edge-id",
        &id.to_string(),
        "--proxy-protocol-from",
        "127.0.0.1/32",
        "--durable-acks",
        "--store-flush",
        "100ms",
        "--api-token",
        "t0ken",
        "--log",
        "info",
    ]
    .iter()
    .chain(&ANY_HASH)
    .map(|s| s.to_string())
    .collect()
}

fn spawn_edge(db: &PgTestDb, id: u8) -> (tempfile::TempDir, PoolProcess) {
    let dir = tempfile::tempdir().unwrap();
    let flags = edge_flags(db, id);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let edge = PoolProcess::spawn(dir.path(), &flags);
    (dir, edge)
}

/// Wait until every miner in `which` has more accepted shares than `before`; the time it took.
async fn all_mining_again(tallies: &[Arc<Tally>], before: &[u64], what: &str) -> Duration {
    let t = Instant::now();
    loop {
        let behind = tallies
            .iter()
            .zip(before)
            .filter(|(t, b)| t.accepted() <= **b)
            .count();
        if behind == 0 {
            return t.elapsed();
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "{behind} miners not mining 30 s after {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Prometheus on the repository's own `monitoring/prometheus.yml` (its target files in
/// `dir`, scraping every second), with `edges` (HTTP address, edge id) as the pool's targets
/// file: as an operator lists their edges. Killed when dropped.
struct Prometheus {
    child: std::process::Child,
    api: String,
}

impl Prometheus {
    fn start(dir: &std::path::Path, edges: &[(&str, u8)]) -> Prometheus {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let targets = dir.join("targets");
        std::fs::create_dir_all(&targets).unwrap();
        let groups: Vec<Value> = edges
            .iter()
            .map(|(http, id)| {
                json!({ "targets": [http.trim_start_matches("http://")], "labels": { "edge": id.to_string() } })
            })
            .collect();
        std::fs::write(
            targets.join("pool-edges.json"),
            Value::from(groups).to_string(),
        )
        .unwrap();
        std::fs::write(targets.join("workers.json"), "[]").unwrap();
        let cfg = std::fs::read_to_string(root.join("monitoring/prometheus.yml"))
            .unwrap()
            .replace("/etc/prometheus/targets", targets.to_str().unwrap())
            .replace("scrape_interval: 15s", "scrape_interval: 1s");
        std::fs::write(dir.join("prometheus.yml"), cfg).unwrap();
        std::fs::copy(root.join("monitoring/alerts.yml"), dir.join("alerts.yml")).unwrap();
        let port = free_port();
        let child = std::process::Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("prometheus (scripts/prepare/monitoring-tools installs it)");
        Prometheus {
            child,
            api: format!("http://127.0.0.1:{port}/api/v1/query"),
        }
    }

    /// The value of an instant query with one result (`None` until it has one).
    async fn value(&self, query: &str) -> Option<f64> {
        let v: Value = reqwest::Client::new()
            .get(&self.api)
            .query(&[("query", query)])
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn edges_seen(http: &str) -> Value {
    reqwest::get(format!("{http}/api/edges"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_edges_behind_haproxy_keep_every_miner_and_every_share() {
    let db = PgTestDb::create().await;
    let (dir_a, a) = spawn_edge(&db, 1);
    let (_dir_b, b) = spawn_edge(&db, 2);
    let (_dir_c, c) = spawn_edge(&db, 3);
    let front: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let servers: String = [(1, a.stratum), (2, b.stratum), (3, c.stratum)]
        .iter()
        .map(|(n, addr)| {
            format!("  server edge{n} {addr} send-proxy-v2 check check-send-proxy inter 300 fall 1 rise 2\n")
        })
        .collect();
    let _lb = Haproxy::start(
        &format!(
            "frontend stratum\n  bind {front}\n  default_backend edges\n\
             backend edges\n  balance roundrobin\n  option redispatch\n  retries 3\n{servers}"
        ),
        front,
    );

    let prom_dir = tempfile::tempdir().unwrap();
    let prometheus =
        Prometheus::start(prom_dir.path(), &[(&a.http, 1), (&b.http, 2), (&c.http, 3)]);

    let stop = CancellationToken::new();
    let tallies: Vec<Arc<Tally>> = (0..MINERS).map(|_| Arc::new(Tally::default())).collect();
    let tasks: Vec<_> = tallies
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let manners = Manners {
                from: Some(IpAddr::from([127, 0, 1, 10 + i as u8])),
                resume: true,
                follow_redirects: true,
            };
            tokio::spawn(sim_miner::run_with(
                front,
                format!("edge.rig{i}"),
                Duration::from_millis(20),
                manners,
                stop.clone(),
                t.clone(),
            ))
        })
        .collect();
    let zero = vec![0; MINERS];
    all_mining_again(&tallies, &zero, "the start").await;
    // Spread over the three edges, and each has written its row.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let edges = edges_seen(&c.http).await;
    let sessions: Vec<i64> = edges["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["sessions"].as_i64().unwrap())
        .collect();
    assert_eq!(sessions.len(), 3, "{edges}");
    assert!(sessions.iter().all(|&n| n >= 4), "spread: {sessions:?}");
    // Prometheus finds the three edges in the targets file and sums their sessions.
    let t = Instant::now();
    loop {
        let up = prometheus
            .value(r#"count(up{job="pool-server"} == 1)"#)
            .await;
        let total = prometheus.value("sum(pool_sessions)").await;
        let by_edge = prometheus
            .value(r#"count(count by (edge) (pool_sessions))"#)
            .await;
        if up == Some(3.0) && by_edge == Some(3.0) && total >= Some(MINERS as f64) {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "Prometheus: {up:?} edges up, {by_edge:?} edge labels, {total:?} sessions"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Edge 1 killed mid-run.
    let before: Vec<u64> = tallies.iter().map(|t| t.accepted()).collect();
    let (a_args, a_stratum, a_http) = a.kill_hard();
    let after_kill = all_mining_again(&tallies, &before, "edge 1 was killed").await;

    // Edge 2 drained: its miners are sent to edge 3, the only healthy edge left.
    let before: Vec<u64> = tallies.iter().map(|t| t.accepted()).collect();
    let drained = tokio::task::spawn_blocking(move || b.terminate());
    let after_drain = all_mining_again(&tallies, &before, "edge 2 was drained").await;
    assert!(drained.await.unwrap().success());
    eprintln!(
        "every miner mining again {:.2} s after the kill, {:.2} s after the drain",
        after_kill.as_secs_f64(),
        after_drain.as_secs_f64()
    );
    let sum = |f: fn(&Tally) -> u64| tallies.iter().map(|t| f(t)).sum::<u64>();
    let resumed = sum(|t| t.resumed.load(Ordering::SeqCst));
    let not_resumed = sum(|t| t.not_resumed.load(Ordering::SeqCst));
    let redirected = sum(|t| t.redirected.load(Ordering::SeqCst));
    assert!(
        redirected >= 4,
        "the drained edge's miners were sent on: {redirected}"
    );
    assert!(resumed >= 8, "the moved miners resumed: {resumed}");
    if not_resumed != 0 {
        eprintln!("C:\n{}", c.log_text());
    }
    assert_eq!(not_resumed, 0, "every moved session kept its extranonce1");

    // Edge 1 comes back (an operator's restart): the same numbers on every edge.
    let a = PoolProcess::spawn_with(dir_a.path(), a_args, a_stratum, a_http);
    let r = reqwest::Client::new()
        .post(format!("{}/api/bans", c.http))
        .bearer_auth("t0ken")
        .json(&json!({ "ip": "127.0.2.99", "reason": "seen everywhere" }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());

    stop.cancel();
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(15), t)
            .await
            .expect("miners stop once their last share is answered")
            .unwrap();
    }
    let answered = sum(|t| t.accepted());
    let unanswered = sum(|t| t.unanswered.load(Ordering::SeqCst));
    let backend = Backend::connect(&db.url).await.unwrap();
    let t = Instant::now();
    let stored = loop {
        let (stored, _) = backend.share_counts().await.unwrap();
        if stored as u64 >= answered || t.elapsed() > Duration::from_secs(10) {
            break stored as u64;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Every `true` is a stored share, once. A share whose answer never came (its edge was
    // killed with it in flight) may or may not be stored: the miner did not count it.
    assert!(
        (answered..=answered + unanswered).contains(&stored),
        "{stored} stored, {answered} answered true, {unanswered} unanswered"
    );
    eprintln!("{answered} answered true, {stored} stored, {unanswered} in flight at a cut");

    // One worker, one set of numbers, whichever edge answers.
    let worker = |http: String| async move {
        let v: Value = reqwest::get(format!("{http}/api/workers/edge.rig0?range=1h"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["history"].as_array().map(|h| {
            h.iter()
                .map(|p| p["accepted"].as_u64().unwrap())
                .sum::<u64>()
        })
    };
    let t = Instant::now();
    loop {
        let (on_a, on_c) = (worker(a.http.clone()).await, worker(c.http.clone()).await);
        if on_a.is_some() && on_a == on_c && on_a >= Some(tallies[0].accepted()) {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "edge 1 says {on_a:?}, edge 3 says {on_c:?} for edge.rig0 ({} accepted)",
            tallies[0].accepted()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let t = Instant::now();
    while !get_admin(&format!("{}/api/bans", a.http), "t0ken")
        .await
        .as_array()
        .unwrap()
        .iter()
        .any(|b| b["ip"] == "127.0.2.99")
    {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "edge 1 never heard of the ban"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(a.terminate().success());
    assert!(c.terminate().success());
    db.drop_db().await;
}
