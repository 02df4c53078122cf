//! The worker against a scripted hostile Stratum V1 pool, on the real binary: absurd sizes
//! end a session, never the process; a difficulty that makes every hash a share is held to the
//! submit cap in bounded memory; a pool that stops reading is left after the timeout and
//! cannot hold the worker past SIGTERM; reconnect storms are damped; redirects go only where
//! the operator allows; no unit is searched twice; versions stay inside the mask asked for;
//! pool text cannot flood or forge the log.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use protocol::{
    Difficulty, Extranonce1, Message, ServerNotification, Submit, Version, VersionMask,
};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpSocket};

use crate::common::scripted_pool::{job, valid, Peer};

/// The worker binary, one thread, logging at info, its stdout kept line by line.
struct Worker {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Worker {
    fn start(pool: SocketAddr, extra: &[&str]) -> Worker {
        let mut child = Command::new(env!("CARGO_BIN_EXE_miner-worker"))
            .args(["-o", &format!("stratum+tcp://{pool}"), "-u", "hostile.test"])
            .args(["-t", "1", "--cpu-priority", "normal", "--log", "info"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start miner-worker");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().unwrap();
        let keep = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                keep.lock().unwrap().push(line);
            }
        });
        Worker { child, lines }
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Peak resident memory, in MiB.
    fn peak_rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kb: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM");
        kb / 1024.0
    }

    fn log(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// SIGTERM, and the exit it leads to within `within`: the worker must end cleanly.
    fn terminate(mut self, within: Duration) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let t = Instant::now();
        while t.elapsed() < within {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "exit after SIGTERM: {status}");
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        panic!("still running {within:?} after SIGTERM");
    }
}

async fn listener(ip: &str) -> TcpListener {
    TcpListener::bind(format!("{ip}:0")).await.unwrap()
}

/// Connections take long to arrive when the worker calibrates its kernel first.
const FIRST: Duration = Duration::from_secs(20);
const DIFF: f64 = 0.0005;

fn subscribe_answer(en1: &str, en2_size: serde_json::Value) -> serde_json::Value {
    json!([[["mining.notify", "1"]], en1, en2_size])
}

/// Every submit for `within`, answered `true`.
async fn submits(p: &mut Peer, within: Duration) -> Vec<Submit> {
    let until = Instant::now() + within;
    let mut out = Vec::new();
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        match p.submit(left).await {
            Some(s) => out.push(s),
            None => break,
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_sizes_end_the_session_not_the_process() {
    let l = listener("127.0.0.1").await;
    let mut w = Worker::start(l.local_addr().unwrap(), &["--retry-max", "500ms"]);
    for size in [json!(u64::MAX), json!(1u64 << 40), json!(100_000_000)] {
        let mut p = Peer::accept(&l, FIRST).await;
        p.handshake_answering(
            json!({"version-rolling": false}),
            subscribe_answer("01020304", size.clone()),
        )
        .await;
        // A job, as the review sent one: the size would reach an allocation with it. The
        // worker may already have closed, so a failed write is expected.
        let lines = [
            ServerNotification::SetDifficulty(Difficulty::new(DIFF).unwrap()),
            ServerNotification::Notify(job("x", true)),
        ]
        .map(|n| Message::Call(n.to_call()).to_json() + "\n")
        .concat();
        let _ = p.writer.write_all(lines.as_bytes()).await;
        assert!(
            p.closed(Duration::from_secs(3)).await,
            "the session with extranonce2_size {size} ends"
        );
        assert!(w.alive(), "the worker survives extranonce2_size {size}");
    }
    // A good session, then a set_extranonce of 2^64-1: ignored, mining goes on.
    let mut p = Peer::accept(&l, Duration::from_secs(5)).await;
    let en1 = [5, 6, 7, 8];
    p.handshake(&en1, false).await;
    p.notify(ServerNotification::SetDifficulty(
        Difficulty::new(DIFF).unwrap(),
    ))
    .await;
    let j = job("s", true);
    p.notify(ServerNotification::Notify(j.clone())).await;
    p.send(Message::Call(protocol::Call {
        id: protocol::Id::Null,
        method: "mining.set_extranonce".into(),
        params: vec![json!("00"), json!(u64::MAX)],
    }))
    .await;
    let s = p
        .submit(Duration::from_secs(20))
        .await
        .expect("still mining");
    assert!(valid(&j, &en1, &s, DIFF), "on the extranonce it had");
    assert!(w.alive());
    w.terminate(Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hash_a_share_is_held_to_the_cap_in_bounded_memory() {
    let l = listener("127.0.0.1").await;
    let metrics = {
        let s = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap()
    };
    let w = Worker::start(
        l.local_addr().unwrap(),
        &["--max-share-rate", "50", "--metrics", &metrics.to_string()],
    );
    let mut p = Peer::accept(&l, FIRST).await;
    p.handshake(&[1, 1, 1, 1], true).await;
    p.notify(ServerNotification::SetDifficulty(
        Difficulty::new(1e-300).unwrap(),
    ))
    .await;
    p.notify(ServerNotification::Notify(job("z", true))).await;
    // Reading: the cap (50/s, bursts of one second) holds, whatever the difficulty.
    let got = submits(&mut p, Duration::from_secs(5)).await;
    assert!(
        !got.is_empty() && got.len() <= 50 * 6,
        "{} submits in 5 s at a cap of 50/s",
        got.len()
    );
    // Not reading: memory stays flat while every hash is still a share.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let rss = w.peak_rss_mib();
    eprintln!("{} submits in 5 s; peak RSS {rss:.1} MiB", got.len());
    assert!(rss < 64.0, "peak RSS {rss:.1} MiB");
    let text = reqwest::get(format!("http://{metrics}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let dropped: f64 = text
        .lines()
        .filter(|l| l.starts_with("miner_shares_dropped_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(dropped > 0.0, "drops are counted:\n{text}");
    w.terminate(Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_that_stops_reading_is_left_and_cannot_hold_the_worker_past_sigterm() {
    // A pool socket with a small receive buffer: the worker's answers back up quickly.
    let sock = TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let l = sock.listen(16).unwrap();
    let w = Worker::start(
        l.local_addr().unwrap(),
        &["--timeout", "2s", "--retry-max", "500ms"],
    );

    // The pool asks and asks (client.get_version) and never reads the answers.
    async fn flood(l: &TcpListener, within: Duration) -> tokio::task::JoinHandle<()> {
        let mut p = Peer::accept(l, within).await;
        p.handshake(&[2, 2, 2, 2], false).await;
        let mut writer = p.writer;
        tokio::spawn(async move {
            let _keep_reader_open = p.reader;
            let line = "{\"id\":7,\"method\":\"client.get_version\",\"params\":[]}\n".repeat(1000);
            for _ in 0..400 {
                if writer.write_all(line.as_bytes()).await.is_err() {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_secs(30)).await;
        })
    }
    let first = flood(&l, FIRST).await;
    // Wedged in a write: left after the timeout (2 s) for a new connection.
    let t = Instant::now();
    let second = flood(&l, Duration::from_secs(10)).await;
    eprintln!(
        "a pool that stopped reading was left after {:.1} s",
        t.elapsed().as_secs_f64()
    );
    first.abort();
    // Wedged again, and SIGTERM now: out within 2 s.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    w.terminate(Duration::from_secs(2));
    second.abort();
}

/// Connections arriving at `l` over `span`, each handled by `session`.
async fn count_connections<F, Fut>(l: &TcpListener, span: Duration, session: F) -> usize
where
    F: Fn(Peer) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut peer = Peer::accept(l, FIRST).await;
    let t = Instant::now();
    let mut n = 0;
    loop {
        n += 1;
        tokio::spawn(session(peer));
        let Some(left) = span.checked_sub(t.elapsed()) else {
            return n;
        };
        match tokio::time::timeout(left, l.accept()).await {
            Ok(Ok((s, _))) => peer = Peer::from(s),
            _ => return n,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_storms_are_damped() {
    // A pool that asks for an immediate reconnect after every handshake.
    let l = listener("127.0.0.1").await;
    let w = Worker::start(l.local_addr().unwrap(), &[]);
    let n = count_connections(&l, Duration::from_secs(6), |mut p| async move {
        p.handshake(&[3, 3, 3, 3], false).await;
        p.notify(ServerNotification::Reconnect {
            host: None,
            port: None,
            wait_secs: Some(0),
        })
        .await;
        let _ = p.closed(Duration::from_secs(5)).await;
    })
    .await;
    eprintln!("client.reconnect 0 after each handshake: {n} connections in 6 s");
    assert!(n <= 7, "{n} connections in 6 s");
    w.terminate(Duration::from_secs(2));

    // A pool that sends one job and closes.
    let l = listener("127.0.0.1").await;
    let w = Worker::start(l.local_addr().unwrap(), &[]);
    let n = count_connections(&l, Duration::from_secs(6), |mut p| async move {
        p.handshake(&[4, 4, 4, 4], false).await;
        p.notify(ServerNotification::Notify(job("c", true))).await;
    })
    .await;
    eprintln!("one job and close: {n} connections in 6 s");
    assert!(n <= 8, "{n} connections in 6 s");
    w.terminate(Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_go_only_where_the_operator_allows() {
    let elsewhere = listener("127.0.0.2").await;
    let target = elsewhere.local_addr().unwrap();
    for allowed in [false, true] {
        let l = listener("127.0.0.1").await;
        let extra: &[&str] = if allowed {
            &["--allow-redirect", "127.0.0.2"]
        } else {
            &[]
        };
        let w = Worker::start(l.local_addr().unwrap(), extra);
        let mut p = Peer::accept(&l, FIRST).await;
        p.handshake(&[5, 5, 5, 5], false).await;
        p.notify(ServerNotification::SetDifficulty(
            Difficulty::new(DIFF).unwrap(),
        ))
        .await;
        p.notify(ServerNotification::Notify(job("d", true))).await;
        p.notify(ServerNotification::Reconnect {
            host: Some("127.0.0.2".into()),
            port: Some(target.port()),
            wait_secs: Some(0),
        })
        .await;
        let went = tokio::time::timeout(Duration::from_secs(4), elsewhere.accept()).await;
        if allowed {
            assert!(went.is_ok(), "followed with --allow-redirect");
        } else {
            assert!(went.is_err(), "redirected to another host without leave");
            assert!(
                p.submit(Duration::from_secs(10)).await.is_some(),
                "still mining on the pool it was given"
            );
            assert!(
                w.log().iter().any(|l| l.contains("--allow-redirect")),
                "the ignored redirect is logged"
            );
        }
        w.terminate(Duration::from_secs(2));
    }
}

/// The header a submit stands for, as the pool would dedupe it.
fn unit_key(s: &Submit) -> (String, Vec<u8>, u32, u32, Option<u32>) {
    (
        s.job_id.as_str().to_owned(),
        s.extranonce2.0.clone(),
        s.ntime.0,
        s.nonce.0,
        s.version_bits.map(|v| v.0),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_unit_is_searched_twice() {
    // The same extranonce1 sent again and again: the work goes on, it does not restart.
    let l = listener("127.0.0.1").await;
    let w = Worker::start(l.local_addr().unwrap(), &["--no-version-rolling"]);
    let mut p = Peer::accept(&l, FIRST).await;
    p.handshake(&[6, 6, 6, 6], false).await;
    p.notify(ServerNotification::SetDifficulty(
        Difficulty::new(DIFF).unwrap(),
    ))
    .await;
    p.notify(ServerNotification::Notify(job("e", true))).await;
    let mut seen = HashSet::new();
    let mut total = 0;
    for _ in 0..12 {
        p.notify(ServerNotification::SetExtranonce {
            extranonce1: Extranonce1(vec![6, 6, 6, 6]),
            extranonce2_size: 4,
        })
        .await;
        for s in submits(&mut p, Duration::from_millis(300)).await {
            total += 1;
            assert!(seen.insert(unit_key(&s)), "a share submitted twice: {s:?}");
        }
    }
    assert!(total > 0);
    w.terminate(Duration::from_secs(2));

    // No extranonce2 and no version rolling: one unit per job, searched by one thread only.
    let l = listener("127.0.0.1").await;
    let w = Worker::start(
        l.local_addr().unwrap(),
        &["--no-version-rolling", "-t", "2"],
    );
    let mut p = Peer::accept(&l, FIRST).await;
    p.handshake_answering(
        json!({"version-rolling": false}),
        subscribe_answer("07070707", json!(0)),
    )
    .await;
    p.notify(ServerNotification::SetDifficulty(
        Difficulty::new(DIFF).unwrap(),
    ))
    .await;
    p.notify(ServerNotification::Notify(job("f", true))).await;
    let got = submits(&mut p, Duration::from_secs(3)).await;
    let unique: HashSet<_> = got.iter().map(unit_key).collect();
    assert!(!got.is_empty());
    assert_eq!(
        unique.len(),
        got.len(),
        "duplicates among {} shares",
        got.len()
    );
    w.terminate(Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_stay_inside_the_mask_asked_for() {
    let l = listener("127.0.0.1").await;
    let w = Worker::start(l.local_addr().unwrap(), &["--retry-max", "300ms"]);
    let cases = [
        (json!({"version-rolling": true}), None),
        (
            json!({"version-rolling": true, "version-rolling.mask": "ffffffff"}),
            None,
        ),
        (
            json!({"version-rolling": true, "version-rolling.mask": "1fffe000"}),
            Some(VersionMask(u32::MAX)),
        ),
    ];
    for (i, (configure, later)) in cases.into_iter().enumerate() {
        let mut p = Peer::accept(&l, FIRST).await;
        let en1 = [8, 8, 8, i as u8];
        p.handshake_answering(
            configure.clone(),
            subscribe_answer(&hex::encode(en1), json!(4)),
        )
        .await;
        if let Some(m) = later {
            p.notify(ServerNotification::SetVersionMask(m)).await;
        }
        p.notify(ServerNotification::SetDifficulty(
            Difficulty::new(DIFF).unwrap(),
        ))
        .await;
        let j = job("v", true);
        p.notify(ServerNotification::Notify(j.clone())).await;
        let got = submits(&mut p, Duration::from_secs(3)).await;
        assert!(!got.is_empty(), "case {configure}");
        for s in &got {
            let bits = s.version_bits.unwrap_or(Version(0)).0;
            assert_eq!(bits & !VersionMask::BIP320.0, 0, "case {configure}: {s:?}");
            let version = j.version.rolled(Version(bits), VersionMask::BIP320);
            assert_eq!(version.0 >> 29, 0b001, "a BIP 9 version");
            assert!(valid(&j, &en1, s, DIFF), "a real share");
        }
        drop(p);
    }
    w.terminate(Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_text_cannot_flood_or_forge_the_log() {
    let l = listener("127.0.0.1").await;
    let w = Worker::start(l.local_addr().unwrap(), &[]);
    let mut p = Peer::accept(&l, FIRST).await;
    p.handshake(&[9, 9, 9, 9], false).await;
    let before = w.log().len();
    let junk = "this is not json\n".repeat(20_000);
    p.writer.write_all(junk.as_bytes()).await.unwrap();
    p.notify(ServerNotification::ShowMessage(
        "hello\r\n2026-12-06T00:00:00Z ERROR forged line\0\u{1b}[2J".into(),
    ))
    .await;
    p.notify(ServerNotification::SetDifficulty(
        Difficulty::new(DIFF).unwrap(),
    ))
    .await;
    p.notify(ServerNotification::Notify(job("g", true))).await;
    // Accepted shares for 11 s: past one summary window.
    let got = submits(&mut p, Duration::from_secs(11)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let log = w.log()[before..].to_vec();
    eprintln!("{} accepted, {} log lines", got.len(), log.len());
    assert!(got.len() > 20, "shares were accepted: {}", got.len());
    assert!(
        log.len() < 40,
        "{} log lines:\n{}",
        log.len(),
        log.join("\n")
    );
    assert!(
        !log.iter().any(|l| l.starts_with("2026-12-06T00:00:00Z")),
        "a forged line:\n{}",
        log.join("\n")
    );
    assert!(
        log.iter().any(|l| l.contains(r"hello\r\n2026-12-06")),
        "the message, escaped:\n{}",
        log.join("\n")
    );
    assert!(
        log.iter().any(|l| l.contains("similar in 10 s")),
        "the flood summarised:\n{}",
        log.join("\n")
    );
    w.terminate(Duration::from_secs(2));
}
