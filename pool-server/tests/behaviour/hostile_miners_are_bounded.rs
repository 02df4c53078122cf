//! What one hostile miner can do is bounded: odd job ids never reach the database as sent,
//! floods of rejects of any kind end in a ban, offences add up per address across
//! reconnects (an IPv6 /64 counted as one address, for the connection cap too), unknown methods past a small allowance are offences while stock miners'
//! extensions never are, a ban (automatic or by an operator) ends every session from the address, a
//! connection authorizes at most 64 names, and per-worker series go when the worker does.

use crate::common;

use std::net::IpAddr;
use std::time::Duration;

use common::*;
use protocol::{ClientRequest, ErrorCode, JobId, Message};
use serde_json::{json, Value};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Bytes PostgreSQL holds for the shares table.
async fn shares_bytes(url: &str) -> i64 {
    use sqlx::{Connection, Row};
    let mut c = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query("SELECT pg_total_relation_size('shares')")
        .fetch_one(&mut c)
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_job_id_changes_nothing_in_postgres() {
    let db = PgTestDb::create().await;
    let pool = start_pool(&["--database-url", &db.url]).await;
    let mut c = Client::login(pool.stratum()).await;
    let (_, found) = c.share(1).await;
    let mut nul = found.submit.clone();
    nul.job_id = JobId::new("\u{0}");
    assert_eq!(code(&c.submit(nul).await), Some(ErrorCode::JobNotFound));
    // Honest shares after it are stored, and the store stays up.
    for i in 2..=4 {
        assert_eq!(c.share(i).await.0, Ok(Value::Bool(true)));
    }
    let mut stored = Value::Null;
    for _ in 0..50 {
        stored = pool.get("/api/shares?limit=10").await;
        if stored.as_array().unwrap().len() == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rows = stored.as_array().unwrap();
    assert_eq!(rows.len(), 5, "{stored}");
    let refused = rows.iter().find(|r| r["accepted"] == false).unwrap();
    assert_eq!(refused["job_id"], "", "the NUL id is not stored");
    assert_eq!(pool.metric("pool_store_up").await, 1.0);
    assert_eq!(pool.metric("pool_store_spool_depth").await, 0.0);
    pool.stop().await;
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unknown_job_ids_ends_in_a_ban_and_a_small_database() {
    let db = PgTestDb::create().await;
    let pool = start_pool(&["--database-url", &db.url, "--api-token", "t0ken"]).await;
    let src = ip("127.0.0.21");
    let mut c = Client::connect_from(src, pool.stratum()).await;
    c.subscribe().await;
    c.authorize(WORKER).await.unwrap();
    let job = c.wait_job().await;
    let before = shares_bytes(&db.url).await;
    let big_id = "f".repeat(16 * 1024 - 200);
    let mut sent = 0;
    for i in 0..2000 {
        let line = Message::Call(
            ClientRequest::Submit(protocol::Submit {
                worker: protocol::WorkerName::new(WORKER),
                job_id: JobId::new(&big_id),
                extranonce2: protocol::Extranonce2::from_counter(i, c.extranonce2_size),
                ntime: job.ntime,
                nonce: protocol::Nonce(i as u32),
                version_bits: None,
            })
            .to_call(protocol::Id::number(100 + i)),
        )
        .to_json();
        if c.try_send_raw(&line).await.is_err() {
            break;
        }
        sent += 1;
    }
    // The pool closes the connection once the address is banned.
    while c.read(Duration::from_secs(5)).await.is_some() {}
    let bans = get_admin(&format!("{}/api/bans", pool.http()), "t0ken").await;
    assert!(
        bans.as_array()
            .unwrap()
            .iter()
            .any(|b| b["ip"] == "127.0.0.21"),
        "{bans} after {sent} lines"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    let grown = shares_bytes(&db.url).await - before;
    assert!(grown < 1_000_000, "the shares table grew by {grown} bytes");
    pool.stop().await;
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offences_add_up_across_reconnects() {
    let pool = start_pool(&["--ban-threshold", "20"]).await;
    let src = ip("127.0.0.22");
    // Six connections of five malformed lines: 30 offences from one address.
    let mut banned_at = None;
    for round in 0..6 {
        let mut c = Client::connect_from(src, pool.stratum()).await;
        for _ in 0..5 {
            let _ = c.try_send_raw("{ not json").await;
        }
        while c.read(Duration::from_millis(300)).await.is_some() {}
        let again = tokio::net::TcpSocket::new_v4().unwrap();
        again.bind(std::net::SocketAddr::new(src, 0)).unwrap();
        let s = again.connect(pool.stratum()).await.unwrap();
        let mut buf = [0u8; 1];
        let closed = matches!(
            tokio::time::timeout(Duration::from_millis(300), s.readable()).await,
            Ok(Ok(())) if s.try_read(&mut buf).is_ok_and(|n| n == 0)
        );
        if closed {
            banned_at = Some(round);
            break;
        }
    }
    assert_eq!(
        banned_at,
        Some(4),
        "banned once the address passed 20 offences"
    );
    // Another address is not affected.
    Client::login(pool.stratum()).await;
    pool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_methods_end_in_a_ban_but_stock_extensions_never_do() {
    let pool = start_pool(&["--ban-threshold", "20"]).await;
    // cgminer, bfgminer, ASIC firmware and cpuminer-opt extensions, a thousand times over.
    let mut honest = Client::connect_from(ip("127.0.0.24"), pool.stratum()).await;
    honest.subscribe().await;
    honest.authorize(WORKER).await.unwrap();
    for i in 0..1000u64 {
        let method = [
            "mining.capabilities",
            "mining.multi_version",
            "mining.suggest_target",
            "mining.ping",
            "mining.get_transactions",
        ][i as usize % 5];
        let id = protocol::Id::number(1000 + i);
        honest
            .send_raw(&format!(
                r#"{{"id":{},"method":"{method}","params":[]}}"#,
                1000 + i
            ))
            .await;
        let r = honest.response(&id).await;
        if let Err(e) = r {
            assert!(e.message.starts_with("Not supported"), "{method}: {e:?}");
        }
    }
    assert_eq!(
        honest.share(1).await.0,
        Ok(Value::Bool(true)),
        "still mining"
    );

    // Made-up methods: a few are free, then each is an offence, and the address is banned.
    let mut prober = Client::connect_from(ip("127.0.0.25"), pool.stratum()).await;
    let mut answered = 0;
    for i in 0..5000u64 {
        let line = format!(r#"{{"id":{i},"method":"mining.probe_{i}","params":[]}}"#);
        if prober.try_send_raw(&line).await.is_err() {
            break;
        }
        match prober.read(Duration::from_secs(2)).await {
            Some(Message::Response(r)) => {
                let e = r.outcome.unwrap_err();
                assert_eq!(e.message, "Unknown method", "not echoed");
                answered += 1;
            }
            Some(_) => {}
            None => break,
        }
    }
    assert!(
        (20..100).contains(&answered),
        "banned after the allowance and the threshold: {answered} answered"
    );
    pool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_ends_every_session_from_the_address() {
    let pool = start_pool(&["--api-token", "t0ken"]).await;
    let src = ip("127.0.0.23");
    let mut quiet = Client::connect_from(src, pool.stratum()).await;
    quiet.subscribe().await;
    quiet.authorize(WORKER).await.unwrap();
    quiet.wait_job().await;
    quiet.drain().await;
    let mut bystander = Client::login(pool.stratum()).await;
    bystander.drain().await;
    let r = reqwest::Client::new()
        .post(format!("{}/api/bans", pool.http()))
        .bearer_auth("t0ken")
        .json(&json!({"ip": "127.0.0.23", "reason": "test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let t = std::time::Instant::now();
    while quiet.read(Duration::from_secs(5)).await.is_some() {}
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "the session never offended, and still goes"
    );
    // The other address mines on.
    assert_eq!(bystander.share(1).await.0, Ok(Value::Bool(true)));
    pool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_authorizes_at_most_64_names_and_series_are_pruned() {
    let pool = start_pool(&[]).await;
    let mut c = Client::login(pool.stratum()).await;
    for i in 1..64 {
        assert_eq!(
            c.authorize(&format!("alice.rig{i:03}")).await,
            Ok(Value::Bool(true))
        );
    }
    let r = c.authorize("alice.one-too-many").await;
    assert_eq!(code(&r), Some(ErrorCode::Unauthorized));
    assert!(r.unwrap_err().message.contains("64"));

    // A name that only sent a bad share leaves no series once its session is gone.
    let mut junk = Client::connect(pool.stratum()).await;
    junk.subscribe().await;
    junk.authorize("junk.rig").await.unwrap();
    let job = junk.wait_job().await;
    let bad = miss(
        &job,
        junk.extranonce1.as_ref().unwrap(),
        &protocol::Extranonce2::from_counter(1, junk.extranonce2_size),
        protocol::Difficulty::new(1e-3).unwrap().to_target(),
    );
    let mut bad = bad;
    bad.worker = protocol::WorkerName::new("junk.rig");
    junk.submit(bad).await.unwrap_err();
    let metrics = |pool: &TestPool| {
        let url = format!("{}/metrics", pool.http());
        async move { reqwest::get(url).await.unwrap().text().await.unwrap() }
    };
    assert!(metrics(&pool).await.contains("worker=\"junk.rig\""));
    drop(junk);
    let mut gone = false;
    for _ in 0..50 {
        if !metrics(&pool).await.contains("junk.rig") {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "every junk.rig series is pruned");
    pool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_come_a_page_at_a_time() {
    let pool = start_pool(&[]).await;
    let mut sessions = vec![Client::login(pool.stratum()).await];
    for name in ["alice.b", "alice.c"] {
        let mut c = Client::connect(pool.stratum()).await;
        c.subscribe().await;
        c.authorize(name).await.unwrap();
        c.wait_job().await;
        sessions.push(c);
    }
    let first = reqwest::get(format!("{}/api/workers?limit=2", pool.http()))
        .await
        .unwrap();
    let link = first.headers()["link"].to_str().unwrap().to_owned();
    let page: Value = first.json().await.unwrap();
    let names: Vec<_> = page
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].clone())
        .collect();
    assert_eq!(names, [json!("alice.b"), json!("alice.c")]);
    assert_eq!(link, "</api/workers?limit=2&after=alice.c>; rel=\"next\"");
    let rest = pool.get("/api/workers?limit=2&after=alice.c").await;
    assert_eq!(rest.as_array().unwrap().len(), 1);
    assert_eq!(rest[0]["name"], WORKER);
    let bad = reqwest::get(format!("{}/api/workers?limit=0", pool.http()))
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    pool.stop().await;
}

/// Run `cmd` (in this thread's network namespace), failing the test if it fails.
fn sh(cmd: &str) {
    let ok = std::process::Command::new("sh")
        .args(["-c", cmd])
        .status()
        .unwrap()
        .success();
    assert!(ok, "{cmd}");
}

/// The per-address connection cap counts an IPv6 /64 as one address, as bans do: in a network
/// namespace of the test's own, where every address of two /64s is local, the pool listens on
/// `[::]` and one /64 gets the cap, not the cap per address, while another /64 still connects.
#[test]
fn an_ipv6_slash_64_is_one_address_for_the_connection_cap() {
    std::thread::spawn(|| {
        // This thread alone moves to a new network namespace; commands it starts follow it.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "unshare: {}", std::io::Error::last_os_error());
        sh(
            "ip link set lo up && ip -6 addr add 2001:db8:1::1/64 dev lo nodad \
            && ip -6 route add local 2001:db8:1::/64 dev lo table local \
            && ip -6 route add local 2001:db8:2::/64 dev lo table local \
            && sysctl -qw net.ipv6.ip_nonlocal_bind=1",
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
            let mut args = base_args(&dir);
            let at = args.iter().position(|a| a == "127.0.0.1:0").unwrap();
            args[at] = "[::]:0".into();
            args.extend(["--max-connections-per-ip".into(), "4".into()]);
            let pool = start_pool_with(dir, args).await;
            let pool_at = std::net::SocketAddr::new(ip("2001:db8:1::1"), pool.stratum().port());
            let connect = |src: &str| {
                let src = ip(src);
                async move {
                    let sock = tokio::net::TcpSocket::new_v6().unwrap();
                    sock.bind(std::net::SocketAddr::new(src, 0)).unwrap();
                    let s = sock.connect(pool_at).await.unwrap();
                    // Served: a subscribe is answered. Refused: the pool closes at once.
                    let mut c = Client::from_stream(s);
                    let line = r#"{"id":1,"method":"mining.subscribe","params":[]}"#;
                    let _ = c.try_send_raw(line).await;
                    let served = matches!(
                        c.read(Duration::from_secs(3)).await,
                        Some(Message::Response(_))
                    );
                    (served, c)
                }
            };
            let mut held = Vec::new();
            let mut served = 0;
            for n in 2..12 {
                let (ok, c) = connect(&format!("2001:db8:1::{n:x}")).await;
                served += ok as usize;
                held.push(c);
            }
            assert_eq!(served, 4, "ten addresses of one /64 share the cap of 4");
            let (other, _c) = connect("2001:db8:2::7").await;
            assert!(other, "another /64 is another address");
            drop(held);
            pool.stop().await;
        });
    })
    .join()
    .unwrap();
}
