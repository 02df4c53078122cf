//! `pool-loadgen`: many simulated miners on loopback against a running pool-server.
//!
//! Each connection subscribes, authorizes as `load.N`, then submits shares at its slice of
//! `--rate`, pipelined (it does not wait for answers), with `--invalid` of them resent
//! duplicates. Run the pool with a share difficulty so low that every hash meets it
//! (`--start-difficulty 1e-12 --vardiff-min 1e-12 --vardiff-max 1e-12`): shares then cost the
//! generator nothing and the pool everything. Reports accepted shares/s end to end (until the
//! database holds them all), submit-to-answer latency, the time for a new tip to reach every
//! connection, pool RSS per connection and pool CPU per 1,000 shares (from /proc when
//! `--pool-pid` is given). With `--http-clients`, that many HTTP clients read the public API
//! meanwhile, and each path's answer latency is reported beside the miners'.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use parking_lot::Mutex;
use protocol::{
    ClientRequest, Extranonce1, Extranonce2, Id, Message, Nonce, Notify, ServerNotification,
    Submit, SubscribeResult, WorkerName,
};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsConnector;

mod http_load;
mod miners;
mod process;
use http_load::http_load;
use process::{proc_stat, raise_fd_limit};

#[derive(Parser, Debug, Clone)]
#[command(name = "pool-loadgen", about = "Load generator for pool-server")]
struct Args {
    /// Stratum address of the pool.
    #[arg(long, env = "LOADGEN_STRATUM", default_value = "127.0.0.1:3333")]
    stratum: String,
    /// HTTP base URL of the pool (to count stored shares).
    #[arg(long, env = "LOADGEN_HTTP", default_value = "http://127.0.0.1:8080")]
    http: String,
    /// Simulated miners.
    #[arg(long, env = "LOADGEN_CONNECTIONS", default_value_t = 1000)]
    connections: usize,
    /// Shares per second across all connections.
    #[arg(long, env = "LOADGEN_RATE", default_value_t = 10_000.0)]
    rate: f64,
    /// Seconds of submitting.
    #[arg(long, env = "LOADGEN_SECONDS", default_value_t = 20.0)]
    seconds: f64,
    /// Fraction of submits that are duplicates (rejected with 22).
    #[arg(long, env = "LOADGEN_INVALID", default_value_t = 0.02)]
    invalid: f64,
    /// Pool process id, for RSS and CPU figures.
    #[arg(long, env = "LOADGEN_POOL_PID")]
    pool_pid: Option<u32>,
    /// After the load, mine one block and time its notify reaching every connection.
    #[arg(long, env = "LOADGEN_TIP")]
    tip: bool,
    /// HTTP clients reading `--http-paths` while the miners submit, each request after the
    /// last answer (0: none). The pool's per-address HTTP cap must allow them.
    #[arg(long, env = "LOADGEN_HTTP_CLIENTS", default_value_t = 0)]
    http_clients: usize,
    /// Comma-separated paths the HTTP clients request in turn (`{i}` becomes a counter modulo
    /// 20,000, so names and searches change from one request to the next).
    #[arg(long, env = "LOADGEN_HTTP_PATHS", default_value = "/api/pool")]
    http_paths: String,
    /// Connect over TLS, trusting exactly the certificate in this PEM file (the pool's
    /// --tls-cert).
    #[arg(long, env = "LOADGEN_TLS_PIN")]
    tls_pin: Option<std::path::PathBuf>,
    /// Submit lines per write: a burst, as a miner that found several shares (or a proxy in
    /// front of many) sends them back to back. The pool answers a burst in one write.
    #[arg(long, env = "LOADGEN_PIPELINE", default_value_t = 1)]
    pipeline: usize,
    /// Connections whose submitting one task and one timer drive (their reading is a task
    /// each): fewer wake-ups, so the generator leaves the cores to the pool it measures.
    #[arg(long, env = "LOADGEN_PER_TASK", default_value_t = 100)]
    per_task: usize,
    /// Skip waiting for the database to hold every accepted share.
    #[arg(long, env = "LOADGEN_NO_CATCH_UP")]
    no_catch_up: bool,
}

#[derive(Default)]
struct Totals {
    sent: AtomicU64,
    accepted: AtomicU64,
    rejected: AtomicU64,
    latencies_us: Mutex<Vec<u32>>,
    tip_us: Mutex<Vec<u64>>,
}

fn pct(v: &mut [u32], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_unstable();
    v[((v.len() - 1) as f64 * p) as usize] as f64 / 1000.0
}

type Reader = Box<dyn AsyncRead + Unpin + Send>;
type Writer = Box<dyn AsyncWrite + Unpin + Send>;

struct Conn {
    reader: BufReader<Reader>,
    writer: Writer,
    en1: Extranonce1,
    en2_size: usize,
    job: Option<Notify>,
    line: String,
}

impl Conn {
    async fn open(addr: &str, name: &str, tls: Option<&TlsConnector>) -> anyhow::Result<Conn> {
        let s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        let (r, w): (Reader, Writer) = match tls {
            None => {
                let (r, w) = s.into_split();
                (Box::new(r), Box::new(w))
            }
            Some(tls) => {
                let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
                let (r, w) =
                    tokio::io::split(tls.connect(protocol::tls::server_name(host)?, s).await?);
                (Box::new(r), Box::new(w))
            }
        };
        let mut c = Conn {
            reader: BufReader::with_capacity(2048, r),
            writer: w,
            en1: Extranonce1(vec![]),
            en2_size: 0,
            job: None,
            line: String::new(),
        };
        let sub = ClientRequest::Subscribe {
            user_agent: Some("pool-loadgen".into()),
            resume: None,
        };
        let auth = ClientRequest::Authorize {
            worker: WorkerName::new(name),
            password: None,
        };
        let mut out = Message::Call(sub.to_call(Id::number(1))).to_json();
        out.push('\n');
        out.push_str(&Message::Call(auth.to_call(Id::number(2))).to_json());
        out.push('\n');
        c.writer.write_all(out.as_bytes()).await?;
        while c.job.is_none() {
            match c.next().await? {
                Message::Response(r) if r.id == Id::number(1) => {
                    let v = r.outcome.map_err(|e| anyhow::anyhow!("subscribe: {e}"))?;
                    let s = SubscribeResult::from_value(&v)?;
                    c.en1 = s.extranonce1;
                    c.en2_size = s.extranonce2_size;
                }
                Message::Call(call) => {
                    if let Ok(ServerNotification::Notify(n)) = ServerNotification::from_call(&call)
                    {
                        c.job = Some(n);
                    }
                }
                _ => {}
            }
        }
        Ok(c)
    }

    async fn next(&mut self) -> anyhow::Result<Message> {
        Ok(Message::from_json(self.next_line().await?)?)
    }

    async fn next_line(&mut self) -> anyhow::Result<&str> {
        self.line.clear();
        if self.reader.read_line(&mut self.line).await? == 0 {
            anyhow::bail!("pool closed the connection");
        }
        Ok(self.line.trim_end())
    }

    fn record_tip(&self, n: &Notify, tip_from: &Mutex<Option<Instant>>, totals: &Totals) {
        if n.clean_jobs {
            if let Some(t0) = *tip_from.lock() {
                totals.tip_us.lock().push(t0.elapsed().as_micros() as u64);
            }
        }
    }
}

/// `(id, accepted)` of a plain answer to a submit, as the pool writes it
/// (`{"error":null,"id":N,"result":true}`); `None` for anything else, which is then parsed
/// as JSON (rejections carry an error object and are read that way).
fn quick_answer(line: &str) -> Option<(u64, bool)> {
    let rest = line.strip_prefix("{\"error\":null,\"id\":")?;
    let digits = rest.find(|c: char| !c.is_ascii_digit())?;
    let id = rest[..digits].parse().ok()?;
    (&rest[digits..] == ",\"result\":true}").then_some((id, true))
}

struct Shared {
    args: Args,
    totals: Totals,
    tip_from: Mutex<Option<Instant>>,
    /// Request ids carry their send time from here (see `miners`).
    started: Instant,
}

/// Accepted shares the store holds for the load's workers, page by page.
async fn stored_accepted(http: &str) -> Option<i64> {
    let mut total = 0;
    let mut after = String::new();
    loop {
        let v: serde_json::Value =
            reqwest::get(format!("{http}/api/workers?limit=1000&after={after}"))
                .await
                .ok()?
                .json()
                .await
                .ok()?;
        let page = v.as_array()?;
        total += page
            .iter()
            .filter(|w| w["name"].as_str().is_some_and(|n| n.starts_with("load.")))
            .filter_map(|w| w["total"]["accepted_shares"].as_i64())
            .sum::<i64>();
        match page.last().and_then(|w| w["name"].as_str()) {
            // Load worker names are plain `load.N`: nothing to escape.
            Some(last) if page.len() == 1000 => after = last.to_owned(),
            _ => return Some(total),
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    raise_fd_limit();
    let sh = Arc::new(Shared {
        args: args.clone(),
        totals: Totals::default(),
        tip_from: Mutex::new(None),
        started: Instant::now(),
    });
    let before = args.pool_pid.and_then(proc_stat);
    let stored_before = if args.no_catch_up {
        0
    } else {
        stored_accepted(&args.http).await.unwrap_or(0)
    };
    let tls = match &args.tls_pin {
        Some(pin) => {
            let trust = protocol::tls::ServerTrust::pinned_from(pin)?;
            Some(TlsConnector::from(protocol::tls::client_config(&trust)?))
        }
        None => None,
    };
    let over = if tls.is_some() { " over TLS" } else { "" };
    println!(
        "connecting {} miners to {}{over}",
        args.connections, args.stratum
    );
    let t = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(256));
    let mut opening = Vec::new();
    for i in 0..args.connections {
        let (addr, sem, tls) = (args.stratum.clone(), sem.clone(), tls.clone());
        opening.push(tokio::spawn(async move {
            let _p = sem.acquire().await;
            Conn::open(&addr, &format!("load.{i}"), tls.as_ref()).await
        }));
    }
    let mut conns = Vec::with_capacity(args.connections);
    for (i, o) in opening.into_iter().enumerate() {
        conns.push(o.await?.with_context(|| format!("connection {i}"))?);
    }
    println!("all connected in {:.2} s", t.elapsed().as_secs_f64());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let connected = args.pool_pid.and_then(proc_stat);
    let own_before = proc_stat(std::process::id());
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopping = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    let mut links: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, c)| miners::link(c, i, sh.clone(), stop_rx.clone()))
        .collect();
    let per_task = args.per_task.max(1);
    while !links.is_empty() {
        let group: Vec<_> = links.drain(..per_task.min(links.len())).collect();
        let rate = args.rate * group.len() as f64 / args.connections as f64;
        let (sh, stopping) = (sh.clone(), stopping.clone());
        tasks.push(tokio::spawn(miners::drive(
            group,
            rate,
            args.pipeline.max(1),
            sh,
            stopping,
        )));
    }
    let readers = http_load(&args, stop_rx.clone());
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(args.seconds)).await;
    stopping.store(true, Ordering::Relaxed);
    stop_tx.send_replace(true);
    let submit_secs = started.elapsed().as_secs_f64();
    let read = readers.await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let accepted = sh.totals.accepted.load(Ordering::Relaxed);
    let mut caught_up = None;
    for _ in 0..if args.no_catch_up { 0 } else { 600 } {
        if let Some(n) = stored_accepted(&args.http).await {
            if n - stored_before >= accepted as i64 {
                caught_up = Some(started.elapsed().as_secs_f64());
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = args.pool_pid.and_then(proc_stat);
    let own_after = proc_stat(std::process::id());
    let rejected = sh.totals.rejected.load(Ordering::Relaxed);
    let mut lat = sh.totals.latencies_us.lock().clone();
    println!(
        "submitted {} shares in {submit_secs:.1} s: {accepted} accepted, {rejected} rejected",
        sh.totals.sent.load(Ordering::Relaxed)
    );
    println!(
        "accepted shares/s answered: {:.0}",
        accepted as f64 / submit_secs
    );
    match caught_up {
        Some(s) => println!(
            "accepted shares/s end to end (all in the database {:.1} s after the start): {:.0}",
            s,
            accepted as f64 / s
        ),
        None if args.no_catch_up => {}
        None => println!("the database did not catch up within 60 s"),
    }
    println!(
        "submit-to-answer latency: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.99),
        pct(&mut lat, 1.0)
    );
    for (path, (mut lat, failed)) in read {
        println!(
            "GET {path}: {} answers, {failed} failed; p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            lat.len(),
            pct(&mut lat, 0.5),
            pct(&mut lat, 0.99),
            pct(&mut lat, 1.0)
        );
    }
    if let (Some((rss0, _)), Some((rss1, _))) = (before, connected) {
        println!(
            "pool RSS: {rss0} KiB before, {rss1} KiB with {} connections: {:.1} KiB per connection",
            args.connections,
            (rss1 as f64 - rss0 as f64) / args.connections as f64
        );
    }
    if let (Some((_, cpu0)), Some((_, cpu1))) = (connected, after) {
        println!(
            "pool CPU: {:.2} s for {accepted} accepted shares: {:.3} CPU-s per 1,000 shares",
            cpu1 - cpu0,
            (cpu1 - cpu0) / (accepted as f64 / 1000.0)
        );
        println!(
            "pool CPU per share: {:.2} µs",
            (cpu1 - cpu0) * 1e6 / accepted.max(1) as f64
        );
    }
    if let (Some((_, cpu0)), Some((_, cpu1))) = (own_before, own_after) {
        // On a shared machine the generator's own share of the cores bounds what the pool
        // can get: print it beside the pool's.
        println!(
            "generator CPU: {:.2} s: {:.3} CPU-s per 1,000 shares",
            cpu1 - cpu0,
            (cpu1 - cpu0) / (accepted as f64 / 1000.0)
        );
    }
    if args.tip {
        tip(&sh).await?;
    }
    drop(tasks);
    Ok(())
}

/// Mine a block on the current job from a connection of our own, then time its notify.
async fn tip(sh: &Shared) -> anyhow::Result<()> {
    let mut c = Conn::open(&sh.args.stratum, "load.tip", None).await?;
    let job = c.job.clone().expect("a job");
    let target = job.nbits.to_target()?;
    let en2 = Extranonce2::from_counter(u64::MAX >> 8, c.en2_size);
    let mut header = job.header(&c.en1, &en2, job.ntime, Nonce(0), job.version);
    let started = Instant::now();
    while !target.is_met_by(&protocol::header_hash(&header)) {
        header.nonce += 1;
    }
    println!(
        "mined a block in {:.1} s; submitting",
        started.elapsed().as_secs_f64()
    );
    sh.totals.tip_us.lock().clear();
    let s = Submit {
        worker: WorkerName::new("load.tip"),
        job_id: job.job_id.clone(),
        extranonce2: en2,
        ntime: job.ntime,
        nonce: Nonce(header.nonce),
        version_bits: None,
    };
    let mut line = Message::Call(ClientRequest::Submit(s).to_call(Id::number(99))).to_json();
    line.push('\n');
    *sh.tip_from.lock() = Some(Instant::now());
    c.writer.write_all(line.as_bytes()).await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while sh.totals.tip_us.lock().len() < sh.args.connections && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut v: Vec<u32> = sh
        .totals
        .tip_us
        .lock()
        .iter()
        .map(|x| (*x).min(u32::MAX as u64) as u32)
        .collect();
    println!(
        "new tip reached {} of {} connections: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (from the submit)",
        v.len(),
        sh.args.connections,
        pct(&mut v, 0.5),
        pct(&mut v, 0.99),
        pct(&mut v, 1.0)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_answers_read_accepts_and_leave_the_rest_to_json() {
        let ok = Message::ok(Id::number(12), serde_json::Value::Bool(true)).to_json();
        assert_eq!(quick_answer(&ok), Some((12, true)));
        let err = Message::err(
            Id::number(13),
            protocol::StratumError::new(protocol::ErrorCode::Duplicate, "duplicate"),
        )
        .to_json();
        assert_eq!(quick_answer(&err), None);
        assert_eq!(
            quick_answer(r#"{"id":null,"method":"mining.notify","params":[]}"#),
            None
        );
    }
}
