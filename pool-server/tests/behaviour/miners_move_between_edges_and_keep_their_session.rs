//! Several pool-servers on one PostgreSQL are edges of one pool: a miner that a load
//! balancer moves to another edge (its connection dropped, its edge killed or drained)
//! presents its subscription id there and keeps its extranonce1 and difficulty; an edge that
//! drains tells its miners where to go; a ban on one edge is a ban on all; `/api/edges` lists
//! them with their load and health; two processes cannot run as one edge.

use crate::common;

use std::time::{Duration, Instant};

use common::process::PoolProcess;
use common::*;
use protocol::{
    ClientRequest, Difficulty, Extranonce1, Message, ServerNotification, SubscriptionId,
};
use serde_json::{json, Value};

fn edge_flags<'a>(db: &'a PgTestDb, id: &'a str) -> Vec<&'a str> {
    vec![
        "--database-url",
        &db.url,
        "--edge-id",
        id,
        "--api-token",
        "t0ken",
    ]
}

/// Log in on `addr`, raise the difficulty to `d`, and have one share accepted: the session's
/// id, extranonce1 and the client.
async fn mining_session(
    addr: std::net::SocketAddr,
    d: Difficulty,
) -> (SubscriptionId, Extranonce1, Client) {
    let mut c = Client::connect(addr).await;
    let sub = c.subscribe_resuming(None).await;
    let sid = SubscriptionId::parse(&sub.subscriptions[1].1).expect("a subscription id");
    c.authorize(WORKER).await.unwrap();
    c.wait_job().await;
    c.request(ClientRequest::SuggestDifficulty(d))
        .await
        .unwrap();
    c.wait_job().await;
    assert_eq!(c.share(1).await.0, Ok(Value::Bool(true)));
    (sid, sub.extranonce1, c)
}

/// Wait until the shared directory says edge `edge` holds `sid` at difficulty `d`.
async fn held_by(db: &PgTestDb, sid: &SubscriptionId, edge: i16, d: Difficulty) {
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let t = Instant::now();
    loop {
        let row: Option<(Option<i16>, f64)> =
            sqlx::query_as("SELECT holder, difficulty FROM edge_sessions WHERE token = $1")
                .bind(sid.as_str())
                .fetch_optional(&pool)
                .await
                .unwrap();
        if row == Some((Some(edge), d.as_f64())) {
            return;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "never held: {row:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Resume `sid` on `addr` (retrying while the old edge's notes are on their way): the
/// extranonce1 it was given and the client, logged in.
async fn resume_on(addr: std::net::SocketAddr, sid: &SubscriptionId) -> (Extranonce1, Client) {
    let mut c = Client::connect(addr).await;
    let again = c.subscribe_resuming(Some(sid.clone())).await;
    c.authorize(WORKER).await.unwrap();
    c.wait_job().await;
    (again.extranonce1, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miner_moved_to_another_edge_keeps_its_extranonce1_and_difficulty() {
    let db = PgTestDb::create().await;
    let one = start_pool(&edge_flags(&db, "1")).await;
    let two = start_pool(&edge_flags(&db, "2")).await;
    let raised = Difficulty::new(0.00002).unwrap();
    let (sid, en1, a) = mining_session(one.stratum(), raised).await;
    assert_eq!(en1.0[0], 1);
    drop(a);
    one.wait_sessions_closed().await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (again, mut b) = resume_on(two.stratum(), &sid).await;
    assert_eq!(again, en1, "edge 2 carries on with edge 1's extranonce1");
    assert_eq!(b.difficulty, Some(raised), "and its difficulty");
    assert_eq!(b.share(2).await.0, Ok(Value::Bool(true)));
    assert!(two.metric("pool_session_resumes_total").await >= 1.0);

    // While edge 2 holds it, nobody gets that session or value on edge 1.
    let mut c = Client::connect(one.stratum()).await;
    let other = c.subscribe_resuming(Some(sid.clone())).await;
    assert_ne!(other.extranonce1, en1);

    // /api/edges on either edge: both, alive and healthy, with their sessions.
    let mut edges = Value::Null;
    for _ in 0..50 {
        edges = one.get("/api/edges").await;
        let list = edges["edges"].as_array().cloned().unwrap_or_default();
        if list.len() == 2 && list.iter().all(|e| e["sessions"].as_i64() >= Some(1)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(edges["this"], 1);
    let list = edges["edges"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{edges}");
    for (e, id) in list.iter().zip([1, 2]) {
        assert_eq!(e["id"], id);
        assert_eq!(e["alive"], true, "{e}");
        assert_eq!(e["healthy"], true, "{e}");
        assert!(e["sessions"].as_i64().unwrap() >= 1, "{e}");
        assert!(e["stratum"].as_str().unwrap().starts_with("127.0.0.1:"));
    }
    assert_eq!(
        two.get("/api/edges").await["edges"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Edge 1 stops: edge 2 says so.
    drop(c);
    one.stop().await;
    let list = two.get("/api/edges").await;
    let first = &list["edges"][0];
    assert_eq!(first["alive"], false, "{list}");
    assert_eq!(first["healthy"], false, "{list}");
    two.stop().await;
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_miners_of_a_killed_edge_resume_on_another_at_once() {
    let db = PgTestDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let mut flags = edge_flags(&db, "1");
    flags.extend(["--start-difficulty", "0.00001", "--vardiff-min", "0.000001"]);
    let one = PoolProcess::spawn(dir.path(), &flags);
    let two = start_pool(&edge_flags(&db, "2")).await;
    let raised = Difficulty::new(0.00003).unwrap();
    let (sid, en1, _a) = mining_session(one.stratum, raised).await;
    // Its row is written within 100 ms (later on a loaded machine): wait for it.
    held_by(&db, &sid, 1, raised).await;
    one.kill_hard();

    let t = Instant::now();
    let (again, mut b) = resume_on(two.stratum(), &sid).await;
    assert_eq!(again, en1, "a killed edge's session is taken over");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert_eq!(b.difficulty, Some(raised));
    assert_eq!(b.share(7).await.0, Ok(Value::Bool(true)));
    two.stop().await;
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_edge_sends_its_miners_to_another_edge() {
    let db = PgTestDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let two = start_pool(&edge_flags(&db, "2")).await;
    let mut flags = edge_flags(&db, "1");
    flags.extend(["--start-difficulty", "0.00001", "--vardiff-min", "0.000001"]);
    let one = PoolProcess::spawn(dir.path(), &flags);
    let raised = Difficulty::new(0.00004).unwrap();
    let (sid, en1, mut a) = mining_session(one.stratum, raised).await;
    // Edge 2 has written its row: it is a place to drain to.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let stopping = tokio::task::spawn_blocking(move || one.terminate());
    let mut told = None;
    while let Some(m) = a.read(Duration::from_secs(15)).await {
        if let Message::Call(call) = m {
            if let Ok(ServerNotification::Reconnect { host, port, .. }) =
                ServerNotification::from_call(&call)
            {
                told = Some((host, port));
            }
        }
    }
    assert!(stopping.await.unwrap().success());
    let (host, port) = told.expect("client.reconnect before the close");
    assert_eq!(host.as_deref(), Some("127.0.0.1"));
    assert_eq!(port, Some(two.stratum().port()), "sent to edge 2");

    let (again, mut b) = resume_on(two.stratum(), &sid).await;
    assert_eq!(again, en1, "the drained session resumes on edge 2");
    assert_eq!(b.difficulty, Some(raised));
    assert_eq!(b.share(9).await.0, Ok(Value::Bool(true)));
    two.stop().await;
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_on_one_edge_is_a_ban_on_every_edge() {
    let db = PgTestDb::create().await;
    let one = start_pool(&edge_flags(&db, "1")).await;
    let two = start_pool(&edge_flags(&db, "2")).await;
    let http = reqwest::Client::new();
    let banned = "127.0.0.41";
    let r = http
        .post(format!("{}/api/bans", one.http()))
        .bearer_auth("t0ken")
        .json(&json!({ "ip": banned, "reason": "test" }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());

    let listed = |v: &Value| {
        v.as_array()
            .is_some_and(|a| a.iter().any(|b| b["ip"] == banned))
    };
    let t = Instant::now();
    while !listed(&get_admin(&format!("{}/api/bans", two.http()), "t0ken").await) {
        assert!(t.elapsed() < Duration::from_secs(10), "edge 2 never heard");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut c = Client::connect_from(banned.parse().unwrap(), two.stratum()).await;
    assert!(
        c.read(Duration::from_secs(5)).await.is_none(),
        "edge 2 closes the banned address"
    );

    let r = http
        .delete(format!("{}/api/bans/{banned}", one.http()))
        .bearer_auth("t0ken")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let t = Instant::now();
    while listed(&get_admin(&format!("{}/api/bans", two.http()), "t0ken").await) {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "edge 2 never lifted it"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut c = Client::connect_from(banned.parse().unwrap(), two.stratum()).await;
    c.subscribe().await;
    one.stop().await;
    two.stop().await;
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_cannot_run_as_one_edge() {
    let db = PgTestDb::create().await;
    let one = start_pool(&edge_flags(&db, "5")).await;
    let dir = tempfile::tempdir().unwrap();
    let mut args = base_args(&dir);
    args.extend(edge_flags(&db, "5").iter().map(|s| s.to_string()));
    let cfg = <pool_server::config::Config as clap::Parser>::try_parse_from(&args).unwrap();
    let err = pool_server::app::start(cfg)
        .await
        .err()
        .expect("a second edge 5 is refused")
        .to_string();
    assert!(err.contains("edge 5 is already running"), "{err}");
    one.stop().await;
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_moved_to_another_edge_is_not_called_offline() {
    let db = PgTestDb::create().await;
    let fast = ["--alert-look", "100ms", "--alert-offline-grace", "1s"];
    let mut flags = edge_flags(&db, "1");
    flags.extend(fast);
    let one = start_pool(&flags).await;
    let mut flags = edge_flags(&db, "2");
    flags.extend(fast);
    let two = start_pool(&flags).await;
    let d = Difficulty::new(0.00002).unwrap();
    let (sid, _, a) = mining_session(one.stratum(), d).await;
    // Edge 1 has watched the worker for a few looks.
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(a);
    one.wait_sessions_closed().await;
    let (_, mut b) = resume_on(two.stratum(), &sid).await;
    assert_eq!(b.share(3).await.0, Ok(Value::Bool(true)));

    // Well past edge 1's offline grace: the worker mines on edge 2, so edge 1 says nothing.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let said = one.get(&format!("/api/alerts?worker={WORKER}")).await;
    let offline = |v: &Value| {
        ["firing", "recent"].iter().any(|k| {
            v[k].as_array()
                .is_some_and(|a| a.iter().any(|x| x["rule"] == "worker_offline"))
        })
    };
    assert!(
        !offline(&said),
        "edge 1 called a moved worker offline: {said}"
    );

    // It stops for good on edge 2: edge 2 says it is offline.
    drop(b);
    let t = Instant::now();
    loop {
        let v = two.get(&format!("/api/alerts?worker={WORKER}")).await;
        if v["firing"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["rule"] == "worker_offline"))
        {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "edge 2 never said it: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    one.stop().await;
    two.stop().await;
    db.drop_db().await;
}
