//! The built-in alert rules, end to end on the one-command default (no Prometheus): a worker
//! that disconnects, or stays connected but stops sending shares, is reported offline once
//! and resolved when it is back, to its own account only; with a webhook configured, each
//! alert reaches it once, grouped by account, and is sent again until it is confirmed.

use std::time::Duration;

use serde_json::Value;

use crate::common::process::PoolProcess;
use crate::common::receiver::Receiver;
use crate::common::*;

const ALERTS: [&str; 4] = ["--alert-look", "100ms", "--alert-offline-grace", "1s"];

/// The rules' test flags with every alert sent to `url`, grouped for 100 ms.
fn hooked(url: &str) -> Vec<&str> {
    let mut args = ALERTS.to_vec();
    args.extend(["--alert-webhook", url, "--alert-group-wait", "100ms"]);
    args
}

/// Polls `/api/alerts?QUERY` until `done` holds (10 s at most); the answer.
async fn alerts_until(pool: &TestPool, query: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..200 {
        let v = pool.get(&format!("/api/alerts?{query}")).await;
        if done(&v) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "alerts never got there: {}",
        pool.get(&format!("/api/alerts?{query}")).await
    );
}

fn firing(v: &Value, rule: &str, worker: &str) -> bool {
    v["firing"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["rule"] == rule && a["worker"] == worker)
}

fn said(v: &Value, rule: &str, state: &str) -> usize {
    v["recent"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["rule"] == rule && a["state"] == state)
        .count()
}

async fn miner(pool: &TestPool, worker: &str) -> Client {
    let mut c = Client::connect(pool.stratum()).await;
    c.subscribe().await;
    assert_eq!(c.authorize(worker).await.unwrap(), Value::Bool(true));
    c.wait_job().await;
    c
}

#[tokio::test]
async fn a_worker_that_disconnects_is_reported_offline_once_and_back_when_it_returns() {
    let pool = start_pool(&ALERTS).await;
    let mut alice = miner(&pool, "alice.rig1").await;
    let _bob = miner(&pool, "bob.rig1").await;
    for i in 0..3 {
        assert_eq!(alice.share(i).await.0.unwrap(), Value::Bool(true));
    }
    // Give the rules a look while it is connected, then let it go.
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(alice);
    let v = alerts_until(&pool, "account=alice", |v| {
        firing(v, "worker_offline", "alice.rig1")
    })
    .await;
    assert!(
        v["firing"][0]["summary"]
            .as_str()
            .unwrap()
            .contains("no connection"),
        "{v}"
    );
    assert_eq!(
        pool.metric("pool_alerts_firing{rule=\"worker_offline\"}")
            .await,
        1.0
    );
    // Another account hears nothing of it.
    let bob = pool.get("/api/alerts?account=bob").await;
    assert_eq!(bob["firing"], Value::Array(vec![]), "{bob}");
    assert_eq!(bob["recent"], Value::Array(vec![]), "{bob}");
    // Still offline a while later: said once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let v = pool.get("/api/alerts?worker=alice.rig1").await;
    assert_eq!(said(&v, "worker_offline", "firing"), 1, "{v}");
    // Back: resolved.
    let _alice = miner(&pool, "alice.rig1").await;
    let v = alerts_until(&pool, "worker=alice.rig1", |v| {
        said(v, "worker_offline", "resolved") == 1
    })
    .await;
    assert!(!firing(&v, "worker_offline", "alice.rig1"), "{v}");
    assert_eq!(
        pool.metric("pool_alerts_firing{rule=\"worker_offline\"}")
            .await,
        0.0
    );
    pool.stop().await;
}

#[tokio::test]
async fn a_connected_worker_that_stops_sending_shares_is_offline_until_its_next_share() {
    // Vardiff held still: the expected rate is then the one the shares showed.
    let mut args = ALERTS.to_vec();
    args.extend(["--vardiff-max", "0.00001"]);
    let pool = start_pool(&args).await;
    let mut carol = miner(&pool, WORKER).await;
    // A steady worker for a few seconds: its baseline is learnt from these shares.
    let mut counter = 0;
    let started = tokio::time::Instant::now();
    while started.elapsed() < Duration::from_secs(4) {
        let (r, _) = carol.share(counter).await;
        assert!(r.is_ok(), "{r:?}");
        counter += 1;
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    // Silent, still connected: offline, for the silence, not the connection.
    let v = alerts_until(&pool, &format!("worker={WORKER}"), |v| {
        firing(v, "worker_offline", WORKER)
    })
    .await;
    let summary = v["firing"][0]["summary"].as_str().unwrap().to_owned();
    assert!(summary.contains("no share while"), "{summary}");
    // Its next share resolves it.
    carol.drain().await;
    let (r, _) = carol.share(counter).await;
    assert!(r.is_ok(), "{r:?}");
    alerts_until(&pool, &format!("worker={WORKER}"), |v| {
        said(v, "worker_offline", "resolved") == 1 && !firing(v, "worker_offline", WORKER)
    })
    .await;
    pool.stop().await;
}

fn workers_in(body: &Value) -> Vec<String> {
    let mut w: Vec<String> = body["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["worker"].as_str().unwrap().to_owned())
        .collect();
    w.sort();
    w
}

#[tokio::test]
async fn alerts_reach_a_webhook_once_grouped_by_account_with_their_resolve() {
    let rx = Receiver::start(0).await;
    let mut args = ALERTS.to_vec();
    args.extend(["--alert-webhook", &rx.url, "--alert-group-wait", "500ms"]);
    let pool = start_pool(&args).await;
    let rig1 = miner(&pool, "alice.rig1").await;
    let rig2 = miner(&pool, "alice.rig2").await;
    let _bob = miner(&pool, "bob.rig1").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop((rig1, rig2));
    let hits = rx.until(1).await;
    let (key, body) = &hits[0];
    assert_eq!(
        body["id"],
        Value::String(key.clone()),
        "the id is the Idempotency-Key"
    );
    assert_eq!(body["status"], "firing");
    assert_eq!(body["account"], "alice");
    assert_eq!(body["rule"], "worker_offline");
    assert_eq!(
        workers_in(body),
        ["alice.rig1", "alice.rig2"],
        "one message for both"
    );
    assert!(
        body["text"]
            .as_str()
            .unwrap()
            .contains("alice.rig2 is offline"),
        "{body}"
    );
    let _rig1 = miner(&pool, "alice.rig1").await;
    let _rig2 = miner(&pool, "alice.rig2").await;
    let hits = rx.until(2).await;
    assert_eq!(hits[1].1["status"], "resolved");
    assert_eq!(workers_in(&hits[1].1), ["alice.rig1", "alice.rig2"]);
    assert_ne!(hits[0].0, hits[1].0);
    // Nothing more: each went once, and bob, still mining, was never mentioned.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rx.hits().len(), 2, "{:?}", rx.hits());
    assert_eq!(
        pool.metric("pool_alerts_delivered_total{channel=\"webhook\",outcome=\"sent\"}")
            .await,
        2.0
    );
    pool.stop().await;
}

#[tokio::test]
async fn an_unconfirmed_alert_is_sent_again_as_the_same_message_until_confirmed_then_never() {
    let rx = Receiver::start(2).await;
    let mut args = hooked(&rx.url);
    args.extend(["--api-token", OPERATOR]);
    let pool = start_pool(&args).await;
    let rig = miner(&pool, WORKER).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(rig);
    // Refused twice (500), confirmed the third time: 1 s then 2 s apart.
    let hits = rx.until(3).await;
    assert!(
        hits.iter().all(|(k, b)| *k == hits[0].0 && b == &hits[0].1),
        "{hits:?}"
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(rx.hits().len(), 3, "confirmed once, sent no more");
    // The history says so: one message, sent at the third attempt, for the operator only.
    let path = "/api/alerts/deliveries";
    assert_eq!(
        call(&pool, reqwest::Method::GET, path, "", None).await.0,
        401
    );
    let (status, h) = call(&pool, reqwest::Method::GET, path, OPERATOR, None).await;
    assert_eq!(status, 200, "{h}");
    let d = &h["deliveries"];
    assert_eq!(d.as_array().unwrap().len(), 1, "{h}");
    assert_eq!(d[0]["state"], "sent");
    assert_eq!(d[0]["attempts"], 3);
    assert_eq!(d[0]["message"], Value::String(hits[0].0.clone()));
    assert_eq!(d[0]["alert"]["rule"], "worker_offline");
    assert_eq!(
        pool.metric("pool_alerts_delivered_total{channel=\"webhook\",outcome=\"retry\"}")
            .await,
        2.0
    );
    pool.stop().await;
}

#[tokio::test]
async fn a_kill_mid_delivery_resends_the_same_message_once_and_nothing_once_confirmed() {
    // The first answer is held: the pool is killed while its request waits.
    let rx = Receiver::start_with(0, Duration::from_secs(3), 1).await;
    let dir = tempfile::tempdir().unwrap();
    let args = hooked(&rx.url);
    let pool = PoolProcess::spawn(dir.path(), &args);
    let mut c = Client::connect(pool.stratum).await;
    c.subscribe().await;
    assert_eq!(c.authorize(WORKER).await.unwrap(), Value::Bool(true));
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(c);
    rx.until(1).await;
    let (args, stratum, http) = pool.kill_hard();
    // Restarted on the same database: the unconfirmed message goes again, the same one.
    let pool = PoolProcess::spawn_with(dir.path(), args, stratum, http);
    let hits = rx.until(2).await;
    assert_eq!(
        hits[0], hits[1],
        "the same message, the same Idempotency-Key"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rx.hits().len(), 2);
    // Confirmed: another restart sends nothing.
    let (_, pool) = pool.restart(dir.path());
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(rx.hits().len(), 2, "{:?}", rx.hits());
    pool.terminate();
}

#[tokio::test]
async fn two_pools_on_one_postgres_send_each_alert_once() {
    // Slow answers: a second sender would find each message still unconfirmed, and send it too.
    let rx = Receiver::start_with(0, Duration::from_millis(1500), 2).await;
    let db = PgTestDb::create().await;
    let mut args = hooked(&rx.url);
    args.extend(["--database-url", &db.url]);
    let a = start_pool(&args).await;
    let b = start_pool(&args).await;
    let on_a = miner(&a, "alice.rig1").await;
    let on_b = miner(&b, "bob.rig1").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop((on_a, on_b));
    let hits = rx.until(2).await;
    let mut accounts: Vec<&str> = hits
        .iter()
        .map(|(_, b)| b["account"].as_str().unwrap())
        .collect();
    accounts.sort();
    assert_eq!(accounts, ["alice", "bob"]);
    // Both pools read the one outbox; only the one holding the sender's lock sends.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    assert_eq!(rx.hits().len(), 2, "{:?}", rx.hits());
    a.stop().await;
    b.stop().await;
}

const ALICE_KEY: &str = "alice-secret-key-0001";
const BOB_KEY: &str = "bob-secret-key-000002";
const OPERATOR: &str = "operator-token-000005";

/// A miner that logs in as `worker` with `key=KEY` in its password.
async fn keyed_miner(pool: &TestPool, worker: &str, key: &str) -> Client {
    keyed_client(pool.stratum(), worker, key).await
}

/// [`keyed_miner`] on the Stratum address `stratum`.
async fn keyed_client(stratum: std::net::SocketAddr, worker: &str, key: &str) -> Client {
    let mut c = Client::connect(stratum).await;
    c.subscribe().await;
    let r = c
        .request(protocol::ClientRequest::Authorize {
            worker: protocol::WorkerName::new(worker),
            password: Some(format!("x,key={key}")),
        })
        .await;
    assert_eq!(r.unwrap(), Value::Bool(true));
    c.wait_job().await;
    c
}

/// An API call with `bearer`: its status and JSON body (null when none).
async fn call(
    pool: &TestPool,
    method: reqwest::Method,
    path: &str,
    bearer: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .request(method, format!("{}{path}", pool.http()))
        .bearer_auth(bearer);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Waits until `account`'s key, set from its miner's password, is stored.
async fn until_key(pool: &TestPool, account: &str, key: &str) {
    let path = format!("/api/accounts/{account}/subscriptions");
    for _ in 0..100 {
        if call(pool, reqwest::Method::GET, &path, key, None).await.0 == 200 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{account}'s key was never stored");
}

#[tokio::test]
async fn a_miner_sets_its_key_from_stratum_and_hears_only_about_its_own_workers() {
    let alice_rx = Receiver::start(0).await;
    let bob_rx = Receiver::start(0).await;
    let mut args = ALERTS.to_vec();
    args.extend([
        "--alert-group-wait",
        "100ms",
        "--alert-allow-private-destinations",
        "--api-token",
        OPERATOR,
    ]);
    let pool = start_pool(&args).await;
    let alice = keyed_miner(&pool, "alice.rig1", ALICE_KEY).await;
    let _bob = keyed_miner(&pool, "bob.rig1", BOB_KEY).await;
    until_key(&pool, "alice", ALICE_KEY).await;
    until_key(&pool, "bob", BOB_KEY).await;
    let subs = "/api/accounts/alice/subscriptions";
    use reqwest::Method;
    // Nobody else manages alice's alerts: no key, a wrong one, bob's.
    for wrong in ["", "alice-secret-key-0002", BOB_KEY] {
        let (status, _) = call(&pool, Method::GET, subs, wrong, None).await;
        assert_eq!(status, 401, "{wrong:?}");
        let add = Some(serde_json::json!({ "url": bob_rx.url }));
        assert_eq!(call(&pool, Method::POST, subs, wrong, add).await.0, 401);
    }
    // Each adds its own webhook; the URL is never shown back whole.
    let (status, a) = call(
        &pool,
        Method::POST,
        subs,
        ALICE_KEY,
        Some(serde_json::json!({ "url": alice_rx.url })),
    )
    .await;
    assert_eq!(status, 201, "{a}");
    assert_eq!(a["shown"], "http://127.0.0.1");
    let bob_subs = "/api/accounts/bob/subscriptions";
    let add = Some(serde_json::json!({ "url": bob_rx.url }));
    assert_eq!(
        call(&pool, Method::POST, bob_subs, BOB_KEY, add).await.0,
        201
    );
    let (_, listed) = call(&pool, Method::GET, subs, ALICE_KEY, None).await;
    assert_eq!(listed["subscriptions"].as_array().unwrap().len(), 1);
    assert!(!listed.to_string().contains("/hook"), "{listed}");
    // "Send a test": it arrives.
    let test = format!("{subs}/{}/test", a["id"].as_str().unwrap());
    assert_eq!(
        call(&pool, Method::POST, &test, ALICE_KEY, None).await.0,
        202
    );
    let hits = alice_rx.until(1).await;
    assert_eq!(hits[0].1["rule"], "test");
    // Alice's history lists it, sent; bob's key does not open it.
    let history = "/api/accounts/alice/deliveries";
    assert_eq!(
        call(&pool, Method::GET, history, BOB_KEY, None).await.0,
        401
    );
    let mut h = Value::Null;
    for _ in 0..50 {
        h = call(&pool, Method::GET, history, ALICE_KEY, None).await.1;
        if h["deliveries"][0]["state"] == "sent" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(h["deliveries"][0]["state"], "sent", "{h}");
    assert_eq!(h["deliveries"][0]["alert"]["rule"], "test");
    // Alice's rig stops: alice hears it, bob hears nothing of it.
    drop(alice);
    let hits = alice_rx.until(2).await;
    assert_eq!(hits[1].1["rule"], "worker_offline");
    assert_eq!(workers_in(&hits[1].1), ["alice.rig1"]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(bob_rx.hits().len(), 0, "{:?}", bob_rx.hits());
    // The first key wins: a later password cannot take the account over.
    let _again = keyed_miner(&pool, "alice.rig1", "mallory-secret-key-03").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, _) = call(&pool, Method::GET, subs, "mallory-secret-key-03", None).await;
    assert_eq!(status, 401);
    assert_eq!(call(&pool, Method::GET, subs, ALICE_KEY, None).await.0, 200);
    // Removed: gone from the list.
    let one = format!("{subs}/{}", a["id"].as_str().unwrap());
    assert_eq!(
        call(&pool, Method::DELETE, &one, ALICE_KEY, None).await.0,
        204
    );
    let (_, listed) = call(&pool, Method::GET, subs, ALICE_KEY, None).await;
    assert_eq!(listed["subscriptions"], Value::Array(vec![]));
    // The operator may forget a key (lost, or set first by someone else); the next login
    // with a key sets it anew. An account's key is no admin token.
    let reset = "/api/accounts/alice/key";
    assert_eq!(
        call(&pool, Method::DELETE, reset, ALICE_KEY, None).await.0,
        401
    );
    assert_eq!(
        call(&pool, Method::DELETE, reset, OPERATOR, None).await.0,
        204
    );
    let _new = keyed_miner(&pool, "alice.rig1", "alice-new-secret-key4").await;
    until_key(&pool, "alice", "alice-new-secret-key4").await;
    assert_eq!(call(&pool, Method::GET, subs, ALICE_KEY, None).await.0, 401);
    pool.stop().await;
}

#[tokio::test]
async fn a_miners_webhook_into_the_pools_own_network_is_refused() {
    let pool = start_pool(&ALERTS).await;
    let _alice = keyed_miner(&pool, "alice.rig1", ALICE_KEY).await;
    until_key(&pool, "alice", ALICE_KEY).await;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://localhost:9/hook",
        "http://169.254.169.254/latest",
    ] {
        let (status, body) = call(
            &pool,
            reqwest::Method::POST,
            "/api/accounts/alice/subscriptions",
            ALICE_KEY,
            Some(serde_json::json!({ "url": url })),
        )
        .await;
        assert_eq!(status, 400, "{url}: {body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("not a public address"),
            "{body}"
        );
    }
    pool.stop().await;
}

#[tokio::test]
async fn each_kind_of_receiver_gets_the_shape_it_reads() {
    let rx = Receiver::start(0).await;
    let base = rx.url.trim_end_matches("/hook").to_owned();
    let destinations = [
        format!("{base}/json"),
        format!("slack:{base}/slack"),
        format!("discord:{base}/discord"),
        format!("wecom:{base}/wecom?key=k"),
        format!("ntfy:{base}/ntfy-topic"),
        format!("telegram:{base}/bot123:abc?chat_id=-42"),
    ]
    .join(",");
    let mut args = ALERTS.to_vec();
    args.extend([
        "--alert-webhook",
        &destinations,
        "--alert-group-wait",
        "100ms",
        "--alert-link-base",
        "https://pool.example/",
    ]);
    let pool = start_pool(&args).await;
    let rig = miner(&pool, "alice.rig1").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(rig);
    rx.until(6).await;
    let link = "https://pool.example/worker?name=alice.rig1";
    let (json, _) = rx.to("/json");
    assert_eq!(json["rule"], "worker_offline");
    assert_eq!(json["link"], link);
    let (slack, _) = rx.to("/slack");
    let text = slack["text"].as_str().unwrap();
    assert!(
        text.starts_with("[firing] alice: 1 worker offline"),
        "{text}"
    );
    assert!(
        text.contains("alice.rig1 is offline") && text.contains(link),
        "{text}"
    );
    let (discord, _) = rx.to("/discord");
    assert_eq!(discord["content"].as_str().unwrap(), text);
    let (wecom, _) = rx.to("/wecom?key=k");
    assert_eq!(wecom["msgtype"], "text");
    assert_eq!(wecom["text"]["content"].as_str().unwrap(), text);
    let (ntfy, title) = rx.to("/ntfy-topic");
    assert_eq!(title, "[firing] alice: 1 worker offline");
    assert_eq!(ntfy.as_str().unwrap(), text);
    let (telegram, _) = rx.to("/bot123:abc/sendMessage");
    assert_eq!(telegram["chat_id"], "-42");
    assert_eq!(telegram["text"].as_str().unwrap(), text);
    for kind in ["webhook", "slack", "discord", "robot", "ntfy", "telegram"] {
        assert_eq!(
            pool.metric(&format!(
                "pool_alerts_delivered_total{{channel=\"{kind}\",outcome=\"sent\"}}"
            ))
            .await,
            1.0,
            "{kind}"
        );
    }
    pool.stop().await;
}

/// The header `name` of a mail as received.
fn header<'a>(mail: &'a str, name: &str) -> &'a str {
    mail.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name} in {mail}"))
}

#[tokio::test]
async fn alerts_are_mailed_over_starttls_to_the_operator_and_to_a_miner_who_asked() {
    let smtp = crate::common::smtp::SmtpServer::start().await;
    let ca = smtp.ca.display().to_string();
    let url = smtp.url();
    let mut args = ALERTS.to_vec();
    args.extend([
        "--alert-webhook",
        "mailto:ops@pool.example",
        "--alert-smtp-url",
        &url,
        "--alert-smtp-ca",
        &ca,
        "--alert-mail-from",
        "Pool alerts <alerts@pool.example>",
        "--alert-group-wait",
        "100ms",
    ]);
    let pool = start_pool(&args).await;
    let rig = keyed_miner(&pool, "alice.rig1", ALICE_KEY).await;
    until_key(&pool, "alice", ALICE_KEY).await;
    let (status, sub) = call(
        &pool,
        reqwest::Method::POST,
        "/api/accounts/alice/subscriptions",
        ALICE_KEY,
        Some(serde_json::json!({ "kind": "email", "url": "alice@miner.example" })),
    )
    .await;
    assert_eq!(status, 201, "{sub}");
    assert_eq!(sub["kind"], "email");
    assert_eq!(sub["shown"], "mailto:…@miner.example");
    drop(rig);
    for _ in 0..300 {
        if smtp.mails().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let retried = pool
        .metric("pool_alerts_delivered_total{channel=\"email\",outcome=\"retry\"}")
        .await;
    assert!(
        smtp.mails().len() >= 2,
        "mails never came (retried {retried} times): {}",
        pool.get("/api/alerts?account=alice").await
    );
    let mails = smtp.mails();
    let mut to: Vec<&str> = mails.iter().map(|m| header(m, "To")).collect();
    to.sort();
    assert_eq!(to, ["alice@miner.example", "ops@pool.example"]);
    for m in &mails {
        assert_eq!(header(m, "Subject"), "[firing] alice: 1 worker offline");
        assert!(m.contains("alice.rig1 is offline"), "{m}");
        assert!(header(m, "Message-ID").ends_with("@pool.example>"), "{m}");
    }
    // Back: one resolve each, and nothing more.
    let _rig = keyed_miner(&pool, "alice.rig1", ALICE_KEY).await;
    let mails = smtp.until(4).await;
    let resolved = mails
        .iter()
        .filter(|m| header(m, "Subject") == "[resolved] alice: 1 worker offline")
        .count();
    assert_eq!(resolved, 2, "{mails:?}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(smtp.mails().len(), 4);
    assert_eq!(
        pool.metric("pool_alerts_delivered_total{channel=\"email\",outcome=\"sent\"}")
            .await,
        4.0
    );
    pool.stop().await;
}

#[tokio::test]
async fn a_miner_cannot_subscribe_an_email_where_the_pool_has_no_relay() {
    let pool = start_pool(&ALERTS).await;
    let _alice = keyed_miner(&pool, "alice.rig1", ALICE_KEY).await;
    until_key(&pool, "alice", ALICE_KEY).await;
    let (status, body) = call(
        &pool,
        reqwest::Method::POST,
        "/api/accounts/alice/subscriptions",
        ALICE_KEY,
        Some(serde_json::json!({ "url": "mailto:alice@miner.example" })),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("no SMTP relay"),
        "{body}"
    );
    pool.stop().await;
}

/// Shares from `c` as `worker` until `blocks` blocks are found; their hashes.
async fn find_blocks(c: &mut Client, worker: &str, blocks: usize) -> Vec<String> {
    let mut found = Vec::new();
    let mut counter = 0u64;
    let t = tokio::time::Instant::now();
    while found.len() < blocks {
        assert!(t.elapsed() < Duration::from_secs(120), "blocks in time");
        counter += 1;
        let job = c.job.clone().unwrap();
        let (accepted, share) = c.share_as(worker, counter).await;
        if accepted != Ok(Value::Bool(true)) {
            continue;
        }
        if job.nbits.to_target().unwrap().is_met_by(&share.hash) {
            let hash = share.hash.to_string();
            c.wait_clean_job(&hash).await;
            found.push(hash);
        }
    }
    found
}

fn rules_in(hits: &[(String, Value)]) -> Vec<(String, String, String)> {
    let mut v: Vec<(String, String, String)> = hits
        .iter()
        .flat_map(|(_, b)| b["alerts"].as_array().unwrap().clone())
        .map(|a| {
            (
                a["rule"].as_str().unwrap().to_owned(),
                a["account"].as_str().unwrap().to_owned(),
                a["summary"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn a_block_found_and_its_reward_maturing_are_told_once_to_the_operator_and_its_account() {
    let operator = Receiver::start(0).await;
    let alice_rx = Receiver::start(0).await;
    let bob_rx = Receiver::start(0).await;
    let dir = tempfile::tempdir().unwrap();
    let bits = bits_for(0.00002);
    let args = [
        "--alert-look",
        "100ms",
        "--alert-group-wait",
        "100ms",
        "--alert-webhook",
        &operator.url,
        "--alert-allow-private-destinations",
        "--genesis-bits",
        &bits,
        "--retarget-interval",
        "1000000",
        "--start-difficulty",
        "0.000001",
        "--vardiff-min",
        "0.000001",
        "--vardiff-max",
        "0.000001",
        "--credit-delay",
        "1s",
        "--maturity",
        "2",
    ];
    let pool = PoolProcess::spawn(dir.path(), &args);
    let http = pool.http.clone();
    let subscribe = |account: &'static str, key: &'static str, url: String| {
        let http = http.clone();
        async move {
            let r = reqwest::Client::new()
                .post(format!("{http}/api/accounts/{account}/subscriptions"))
                .bearer_auth(key)
                .json(&serde_json::json!({ "url": url }))
                .send()
                .await
                .unwrap();
            r.status().as_u16()
        }
    };
    let mut alice = keyed_client(pool.stratum, "alice.rig1", ALICE_KEY).await;
    let bob = keyed_client(pool.stratum, "bob.rig1", BOB_KEY).await;
    for _ in 0..100 {
        if subscribe("alice", ALICE_KEY, alice_rx.url.clone()).await == 201 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..100 {
        if subscribe("bob", BOB_KEY, bob_rx.url.clone()).await == 201 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Three blocks, all alice's: the first is then 2 deep (mature), the second 1 deep.
    let blocks = find_blocks(&mut alice, "alice.rig1", 3).await;
    // The operator: a notice per block found, and one for the block that matured.
    let mut hits = Vec::new();
    for _ in 0..300 {
        hits = rules_in(&operator.hits());
        if hits.iter().filter(|h| h.0 == "block_found").count() == 3
            && hits.iter().any(|h| h.0 == "balance_matured")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let found: Vec<&(String, String, String)> =
        hits.iter().filter(|h| h.0 == "block_found").collect();
    assert_eq!(found.len(), 3, "{hits:?}");
    for b in &blocks {
        assert!(
            found
                .iter()
                .any(|h| h.1 == "(pool)" && h.2.contains(b.as_str())),
            "{b}: {hits:?}"
        );
    }
    // The notices of blocks that matured, once each (more may mature meanwhile).
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let hits = rules_in(&operator.hits());
    let matured: Vec<_> = hits.iter().filter(|h| h.0 == "balance_matured").collect();
    assert!(!matured.is_empty() && matured.len() < 3, "{hits:?}");
    assert!(matured.iter().all(|h| h.1 == "(pool)"), "{hits:?}");
    let mut said: Vec<&String> = matured.iter().map(|h| &h.2).collect();
    said.dedup();
    assert_eq!(said.len(), matured.len(), "each block once: {hits:?}");
    // Alice: her blocks, and her share of the matured one in coins.
    let mut mine_told = Vec::new();
    for _ in 0..100 {
        mine_told = rules_in(&alice_rx.hits());
        if mine_told.len() >= 3 + matured.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        mine_told.iter().filter(|h| h.0 == "block_found").count(),
        3,
        "{mine_told:?}"
    );
    let hers: Vec<_> = mine_told
        .iter()
        .filter(|h| h.0 == "balance_matured")
        .collect();
    assert_eq!(hers.len(), matured.len(), "{mine_told:?}");
    assert!(
        hers.iter()
            .all(|h| h.2.contains("of alice's balance is final")),
        "{hers:?}"
    );
    assert!(mine_told.iter().all(|h| h.1 == "alice"), "{mine_told:?}");
    // Bob found nothing and was credited nothing: told nothing.
    assert!(bob_rx.hits().is_empty(), "{:?}", bob_rx.hits());
    // Restarted on the same record: nothing is told again.
    let (told_operator, told_alice) = (operator.hits().len(), alice_rx.hits().len());
    drop((alice, bob));
    let (_, pool) = pool.restart(dir.path());
    tokio::time::sleep(Duration::from_millis(4000)).await;
    let again: Vec<_> = rules_in(&operator.hits()[told_operator..])
        .into_iter()
        .filter(|h| h.0 != "worker_offline")
        .collect();
    assert!(again.is_empty(), "{again:?}");
    let again: Vec<_> = rules_in(&alice_rx.hits()[told_alice..])
        .into_iter()
        .filter(|h| h.0 != "worker_offline")
        .collect();
    assert!(again.is_empty(), "{again:?}");
    pool.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_hears_the_share_database_go_away_and_come_back() {
    let pg = crate::common::pg_cluster::PgCluster::start();
    let rx = Receiver::start(0).await;
    let dir = tempfile::tempdir().unwrap();
    let url = pg.url();
    let mut args = ALERTS.to_vec();
    args.extend(crate::common::sim_miner::ANY_HASH);
    args.extend([
        "--database-url",
        &url,
        "--store-flush",
        "100ms",
        "--alert-pool-hold",
        "1s",
        "--alert-webhook",
        &rx.url,
        "--alert-group-wait",
        "100ms",
    ]);
    let pool = PoolProcess::spawn(dir.path(), &args);
    let mut c = Client::connect(pool.stratum).await;
    c.subscribe().await;
    assert_eq!(c.authorize(WORKER).await.unwrap(), Value::Bool(true));
    c.wait_job().await;
    // Shares keep coming; the store notices the database is gone at its next write.
    let mining = tokio::spawn(async move {
        for i in 0.. {
            let _ = c.share(i).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    pg.kill();
    let pool_alerts = |pool: &PoolProcess| {
        let http = pool.http.clone();
        async move {
            match reqwest::get(format!("{http}/api/alerts?account=%28pool%29")).await {
                Ok(r) => r.json::<Value>().await.unwrap_or(Value::Null),
                Err(e) => Value::String(e.to_string()),
            }
        }
    };
    let mut v = Value::Null;
    for _ in 0..300 {
        v = pool_alerts(&pool).await;
        if firing(&v, "store_down", "(pool)") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        firing(&v, "store_down", "(pool)"),
        "{v} {}",
        pool.log_text()
    );
    assert_eq!(
        pool.metric("pool_alerts_firing{rule=\"store_down\"}").await,
        1.0
    );
    pg.restart();
    for _ in 0..300 {
        v = pool_alerts(&pool).await;
        if said(&v, "store_down", "resolved") == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(said(&v, "store_down", "resolved"), 1, "{v}");
    // The outbox lives in the database that was away: both reach the webhook once it is back.
    let hits = rx.until(2).await;
    let states: Vec<(&str, &str)> = hits
        .iter()
        .map(|(_, b)| (b["rule"].as_str().unwrap(), b["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        [("store_down", "firing"), ("store_down", "resolved")],
        "{hits:?}"
    );
    mining.abort();
    pool.terminate();
}

#[tokio::test]
async fn silences_keep_matching_alerts_back_until_they_end_and_a_miner_silences_only_its_own() {
    let rx = Receiver::start(0).await;
    let mut args = hooked(&rx.url);
    args.extend(["--api-token", OPERATOR]);
    let pool = start_pool(&args).await;
    use reqwest::Method;
    // The operator's silence needs the token.
    let silence = serde_json::json!({ "matchers": "account=alice", "duration": "1h", "comment": "moving racks" });
    let (status, _) = call(
        &pool,
        Method::POST,
        "/api/silences",
        "",
        Some(silence.clone()),
    )
    .await;
    assert_eq!(status, 401);
    let (status, s) = call(
        &pool,
        Method::POST,
        "/api/silences",
        OPERATOR,
        Some(silence),
    )
    .await;
    assert_eq!(status, 201, "{s}");
    let (_, listed) = call(&pool, Method::GET, "/api/silences", "", None).await;
    assert_eq!(listed["silences"][0]["matchers"], "account=alice");
    let bad = serde_json::json!({ "matchers": "colour=red", "duration": "1h" });
    let (status, body) = call(&pool, Method::POST, "/api/silences", OPERATOR, Some(bad)).await;
    assert_eq!(status, 400, "{body}");
    // Alice's rig goes and comes back under the silence: nothing sent, still listed.
    let alice = keyed_miner(&pool, "alice.rig1", ALICE_KEY).await;
    let bob = miner(&pool, "bob.rig1").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(alice);
    alerts_until(&pool, "account=alice", |v| {
        firing(v, "worker_offline", "alice.rig1")
    })
    .await;
    let alice = keyed_miner(&pool, "alice.rig1", ALICE_KEY).await;
    alerts_until(&pool, "account=alice", |v| {
        said(v, "worker_offline", "resolved") == 1
    })
    .await;
    // Bob's is not silenced.
    drop(bob);
    let hits = rx.until(1).await;
    assert_eq!(hits[0].1["account"], "bob");
    // A miner's own silence is narrowed to its account, whatever it asks.
    let own =
        serde_json::json!({ "matchers": "account=bob rule=worker_offline", "duration": "30m" });
    let (status, mine) = call(
        &pool,
        Method::POST,
        "/api/accounts/alice/silences",
        ALICE_KEY,
        Some(own.clone()),
    )
    .await;
    assert_eq!(status, 201, "{mine}");
    assert_eq!(mine["matchers"], "rule=worker_offline account=alice");
    assert_eq!(mine["account"], "alice");
    let (status, _) = call(
        &pool,
        Method::POST,
        "/api/accounts/bob/silences",
        ALICE_KEY,
        Some(own),
    )
    .await;
    assert_eq!(status, 401, "alice's key is not bob's");
    // The operator ends its silence: alice's next offline is told.
    let end = format!("/api/silences/{}", s["id"].as_str().unwrap());
    assert_eq!(
        call(&pool, Method::DELETE, &end, OPERATOR, None).await.0,
        204
    );
    let end_own = format!(
        "/api/accounts/alice/silences/{}",
        mine["id"].as_str().unwrap()
    );
    assert_eq!(
        call(&pool, Method::DELETE, &end_own, ALICE_KEY, None)
            .await
            .0,
        204
    );
    drop(alice);
    let hits = rx.until(2).await;
    assert_eq!(hits[1].1["account"], "alice");
    assert_eq!(hits[1].1["status"], "firing");
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Alice's silenced firing and resolve never went out.
    let alices: Vec<_> = rx
        .hits()
        .into_iter()
        .filter(|(_, b)| b["account"] == "alice")
        .collect();
    assert_eq!(alices.len(), 1, "{alices:?}");
    pool.stop().await;
}

#[tokio::test]
async fn routes_send_what_their_matchers_select_and_a_firing_alert_is_told_again_while_it_lasts() {
    let rx = Receiver::start(0).await;
    let base = rx.url.trim_end_matches("/hook").to_owned();
    let critical = format!("severity=critical -> {base}/pager");
    let bobs = format!("account=bob* rule=worker_offline -> {base}/bob");
    let mut args = ALERTS.to_vec();
    args.extend([
        "--alert-route",
        &critical,
        "--alert-route",
        &bobs,
        "--alert-group-wait",
        "100ms",
        "--alert-repeat",
        "1500ms",
    ]);
    let pool = start_pool(&args).await;
    let alice = miner(&pool, "alice.rig1").await;
    let bob = miner(&pool, "bob.rig1").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop((alice, bob));
    rx.until(3).await;
    let paths = |rx: &Receiver| -> Vec<(String, String, String)> {
        let mut v: Vec<(String, String, String)> = rx
            .meta()
            .into_iter()
            .zip(rx.hits())
            .map(|((path, _), (_, b))| {
                (
                    path,
                    b["account"].as_str().unwrap().to_owned(),
                    b["text"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let first = paths(&rx);
    let routed: Vec<(&str, &str)> = first
        .iter()
        .map(|(p, a, _)| (p.as_str(), a.as_str()))
        .collect();
    assert_eq!(
        routed,
        [("/bob", "bob"), ("/pager", "alice"), ("/pager", "bob")]
    );
    // Still offline 1.5 s later: told again, once per destination, as "still".
    rx.until(6).await;
    let again = paths(&rx);
    let reminders: Vec<_> = again
        .iter()
        .filter(|(_, _, t)| t.contains("- still: "))
        .collect();
    assert_eq!(reminders.len(), 3, "{again:?}");
    pool.stop().await;
}

#[tokio::test]
async fn a_destination_is_sent_no_more_than_its_rate_and_the_rest_wait_their_turn() {
    let rx = Receiver::start(0).await;
    let mut args = hooked(&rx.url);
    args.extend(["--alert-rate-limit", "1"]);
    let pool = start_pool(&args).await;
    let rigs = [
        miner(&pool, "alice.rig1").await,
        miner(&pool, "bob.rig1").await,
        miner(&pool, "carol.rig1").await,
    ];
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(rigs);
    rx.until(1).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(rx.hits().len(), 1, "one a minute: {:?}", rx.hits());
    assert_eq!(pool.metric("pool_alerts_outbox_pending").await, 2.0);
    pool.stop().await;
}

#[tokio::test]
async fn the_account_page_lists_its_destinations_with_a_test_button_and_what_was_sent() {
    let rx = Receiver::start(0).await;
    let mut args = ALERTS.to_vec();
    args.extend([
        "--alert-allow-private-destinations",
        "--alert-group-wait",
        "100ms",
    ]);
    let pool = start_pool(&args).await;
    let _alice = keyed_miner(&pool, "alice.rig1", ALICE_KEY).await;
    until_key(&pool, "alice", ALICE_KEY).await;
    let subs = "/api/accounts/alice/subscriptions";
    let (status, sub) = call(
        &pool,
        reqwest::Method::POST,
        subs,
        ALICE_KEY,
        Some(serde_json::json!({ "kind": "slack", "url": rx.url })),
    )
    .await;
    assert_eq!(status, 201, "{sub}");
    let id = sub["id"].as_str().unwrap();
    let test = format!("{subs}/{id}/test");
    assert_eq!(
        call(&pool, reqwest::Method::POST, &test, ALICE_KEY, None)
            .await
            .0,
        202
    );
    rx.until(1).await;
    let history = "/api/accounts/alice/deliveries";
    for _ in 0..50 {
        let (_, h) = call(&pool, reqwest::Method::GET, history, ALICE_KEY, None).await;
        if h["deliveries"][0]["state"] == "sent" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // With the key after #key= (no server sees it): the destination, its test button, and
    // the test sent.
    let page = format!("{}/account?name=alice#key={ALICE_KEY}", pool.http());
    let dom = crate::common::chromium::dom(page).await;
    assert!(
        dom.contains(&format!(r#"data-subscription="{id}""#)),
        "{dom}"
    );
    assert!(dom.contains(&format!(r#"data-test="{id}""#)), "{dom}");
    assert!(dom.contains("slack:http://127.0.0.1"), "{dom}");
    assert!(!dom.contains("/hook"), "the URL is never shown whole");
    assert!(
        dom.contains(r#"data-state="sent" data-rule="test""#),
        "{dom}"
    );
    // Without the key: nothing of it.
    let dom = crate::common::chromium::dom(format!("{}/account?name=alice", pool.http())).await;
    assert!(!dom.contains("data-subscription="), "{dom}");
    assert!(dom.contains("give the account key"), "{dom}");
    pool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hashrate_that_falls_to_a_third_reaches_the_webhook_once_and_its_return_resolves_it() {
    let rx = Receiver::start(0).await;
    let mut args = hooked(&rx.url);
    // A fixed difficulty: the share rate is the hashrate.
    args.extend(crate::common::sim_miner::ANY_HASH);
    let pool = start_pool(&args).await;
    let mut c = miner(&pool, WORKER).await;
    let mut counter = 0u64;
    // Shares at `per_second` until `done` holds or `limit` passes; whether it held.
    async fn mine_at(
        c: &mut Client,
        counter: &mut u64,
        per_second: f64,
        limit: Duration,
        done: impl Fn() -> bool,
    ) -> bool {
        let t = tokio::time::Instant::now();
        let gap = Duration::from_secs_f64(1.0 / per_second);
        let mut next = t;
        while t.elapsed() < limit {
            if done() {
                return true;
            }
            let (r, _) = c.share(*counter).await;
            assert!(r.is_ok(), "{r:?}");
            *counter += 1;
            next += gap;
            tokio::time::sleep_until(next).await;
        }
        done()
    }
    // A steady 20 shares a second for a minute: its baseline (a young worker's is its
    // average since it connected, so it must be longer than the drop takes to show).
    mine_at(&mut c, &mut counter, 20.0, Duration::from_secs(60), || {
        false
    })
    .await;
    // A third of it: told once.
    let told = mine_at(
        &mut c,
        &mut counter,
        20.0 / 3.0,
        Duration::from_secs(90),
        || !rx.hits().is_empty(),
    )
    .await;
    assert!(told, "the drop was never told");
    let hits = rx.hits();
    assert_eq!(hits[0].1["rule"], "hashrate_dropped", "{hits:?}");
    assert_eq!(hits[0].1["status"], "firing");
    // Back to its usual rate: resolved, once.
    let resolved = mine_at(&mut c, &mut counter, 20.0, Duration::from_secs(120), || {
        rx.hits().len() >= 2
    })
    .await;
    assert!(resolved, "the return was never told: {:?}", rx.hits());
    let hits = rx.hits();
    assert_eq!(hits.len(), 2, "{hits:?}");
    assert_eq!(hits[1].1["rule"], "hashrate_dropped");
    assert_eq!(hits[1].1["status"], "resolved");
    pool.stop().await;
}
