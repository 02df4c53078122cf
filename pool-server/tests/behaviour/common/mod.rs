//! Shared test harness: a real pool on 127.0.0.1:0, a raw Stratum client, a tiny CPU miner
//! built on the `protocol` crate, throwaway PostgreSQL databases and a TCP proxy that can cut
//! the pool off from its database.
#![allow(dead_code)]

pub mod accounts;
pub mod chromium;
pub mod haproxy;
pub mod p2p;
pub mod pg_cluster;
pub mod process;
pub mod receiver;
pub mod regtest;
pub mod scripted_miner;
pub mod sim_miner;
pub mod smtp;
pub mod tls;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pool_server::app::{self, Running};
use pool_server::config::Config;
use protocol::{
    header_hash, ClientRequest, Difficulty, ErrorCode, Extranonce1, Extranonce2, Id, Message,
    Nonce, Notify, ServerNotification, StratumError, Submit, SubscribeResult, Target, Version,
    WorkerName,
};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

pub const WORKER: &str = "alice.rig1";

/// Compact bits for a network difficulty (tests use tiny ones so blocks come fast).
pub fn bits_for(difficulty: f64) -> String {
    Difficulty::new(difficulty)
        .unwrap()
        .to_target()
        .to_compact()
        .to_string()
}

/// A template on no particular tip whose network difficulty is `difficulty` (for the pieces
/// that read one: the coinbase planner, the job builder).
pub fn template_at(difficulty: f64) -> Arc<pool_server::chain::Template> {
    let gbt = pool_server::chain::block_template::BlockTemplate {
        version: 0x2000_0000,
        previousblockhash: "00".repeat(32),
        transactions: vec![],
        coinbasevalue: 5_000_000_000,
        longpollid: None,
        mintime: 0,
        curtime: 0,
        bits: bits_for(difficulty),
        height: 1,
        default_witness_commitment: None,
    };
    Arc::new(gbt.to_template().unwrap())
}

/// One sample's value from a pool's `/metrics` (NaN when absent).
pub async fn metric(http_base: &str, name: &str) -> f64 {
    let text = reqwest::get(format!("{http_base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(f64::NAN)
}

/// GET a JSON admin endpoint with its bearer token.
pub async fn get_admin(url: &str, token: &str) -> Value {
    reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

pub struct TestPool {
    pub running: Running,
    pub dir: Arc<tempfile::TempDir>,
    pub args: Vec<String>,
}

impl TestPool {
    pub fn stratum(&self) -> SocketAddr {
        self.running.stratum[0]
    }

    pub fn http(&self) -> String {
        format!("http://{}", self.running.http)
    }

    pub async fn get(&self, path: &str) -> Value {
        reqwest::get(format!("{}{}", self.http(), path))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn metric(&self, name: &str) -> f64 {
        metric(&self.http(), name).await
    }

    /// Wait (up to a minute) until a metric reads `want`; the value it last read.
    /// Until the pool has seen every connection go (and parked those it parks).
    pub async fn wait_sessions_closed(&self) {
        for _ in 0..200 {
            if self.metric("pool_sessions").await == 0.0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the session did not end");
    }

    pub async fn wait_metric(&self, name: &str, want: f64) -> f64 {
        let mut got = f64::NAN;
        for _ in 0..600 {
            got = self.metric(name).await;
            if got == want {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        got
    }

    pub async fn stop(self) -> (Arc<tempfile::TempDir>, Vec<String>) {
        self.running.stop().await.unwrap();
        (self.dir, self.args)
    }
}

/// Default test flags: loopback, port 0, SQLite in a temp dir, tiny difficulties.
pub fn base_args(dir: &tempfile::TempDir) -> Vec<String> {
    let d = dir.path().display();
    [
        "pool-server",
        "--stratum",
        "127.0.0.1:0",
        "--http",
        "127.0.0.1:0",
        "--start-difficulty",
        "0.00001",
        "--vardiff-min",
        "0.000001",
        "--genesis-bits",
        "1d00ffff",
        "--log",
        "warn",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        "--database-url".into(),
        format!("sqlite://{d}/pool.sqlite"),
        "--spool-dir".into(),
        format!("{d}/spool"),
    ])
    .collect()
}

pub async fn start_pool_with(dir: Arc<tempfile::TempDir>, args: Vec<String>) -> TestPool {
    let cfg = Config::try_parse_from_args(&args);
    let running = app::start(cfg).await.expect("pool starts");
    TestPool { running, dir, args }
}

/// A pool with the default test flags plus `extra` (later flags win).
pub async fn start_pool(extra: &[&str]) -> TestPool {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut args = base_args(&dir);
    args.extend(extra.iter().map(|s| s.to_string()));
    start_pool_with(dir, args).await
}

trait ParseArgs {
    fn try_parse_from_args(args: &[String]) -> Config;
}

impl ParseArgs for Config {
    fn try_parse_from_args(args: &[String]) -> Config {
        let cfg = <Config as clap::Parser>::try_parse_from(args).expect("valid test flags");
        cfg.check().expect("consistent test flags");
        cfg
    }
}

/// A raw Stratum V1 client, speaking lines as cpuminer does.
pub struct Client {
    reader: BufReader<Box<dyn AsyncRead + Unpin + Send>>,
    writer: Box<dyn AsyncWrite + Unpin + Send>,
    next_id: u64,
    pub notifications: VecDeque<ServerNotification>,
    pub extranonce1: Option<Extranonce1>,
    pub extranonce2_size: usize,
    pub difficulty: Option<Difficulty>,
    pub job: Option<Notify>,
    /// Difficulty in force when each job arrived.
    pub job_difficulty: Vec<(String, Difficulty)>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        Self::from_stream(TcpStream::connect(addr).await.unwrap())
    }

    /// Connect from the loopback address `src` (127.0.0.x): bans and offences count per
    /// address, so tests that ban keep to an address of their own.
    pub async fn connect_from(src: std::net::IpAddr, addr: SocketAddr) -> Client {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(SocketAddr::new(src, 0)).unwrap();
        Self::from_stream(sock.connect(addr).await.unwrap())
    }

    pub fn from_stream(s: TcpStream) -> Client {
        s.set_nodelay(true).unwrap();
        let (r, w) = s.into_split();
        Self::from_halves(Box::new(r), Box::new(w))
    }

    /// A client over any transport (Stratum over TLS: `tokio::io::split` of the stream).
    pub fn from_halves(
        r: Box<dyn AsyncRead + Unpin + Send>,
        w: Box<dyn AsyncWrite + Unpin + Send>,
    ) -> Client {
        Client {
            reader: BufReader::new(r),
            writer: w,
            next_id: 1,
            notifications: VecDeque::new(),
            extranonce1: None,
            extranonce2_size: 0,
            difficulty: None,
            job: None,
            job_difficulty: Vec::new(),
        }
    }

    /// One line in one write, as miners send it (two small writes would meet Nagle's
    /// algorithm and delayed ACKs, adding 40 ms to every request).
    pub async fn send_raw(&mut self, line: &str) {
        self.try_send_raw(line).await.unwrap();
    }

    /// [`Client::send_raw`] for a client the pool may already have closed (an offender).
    pub async fn try_send_raw(&mut self, line: &str) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        self.writer.write_all(&buf).await
    }

    /// Close the sending side (a FIN), as a miner that is done but still reads.
    pub async fn close_write(&mut self) {
        self.writer.shutdown().await.unwrap();
    }

    /// Read one message; `None` on EOF or after `wait`.
    pub async fn read(&mut self, wait: Duration) -> Option<Message> {
        let mut line = String::new();
        match tokio::time::timeout(wait, self.reader.read_line(&mut line)).await {
            Ok(Ok(0)) | Err(_) | Ok(Err(_)) => None,
            Ok(Ok(_)) => Some(Message::from_json(line.trim_end()).expect("pool sends valid JSON")),
        }
    }

    pub fn absorb(&mut self, n: ServerNotification) {
        match &n {
            ServerNotification::SetDifficulty(d) => self.difficulty = Some(*d),
            ServerNotification::Notify(job) => {
                self.job = Some(job.clone());
                self.job_difficulty.push((
                    job.job_id.to_string(),
                    self.difficulty.expect("difficulty before job"),
                ));
            }
            _ => {}
        }
        self.notifications.push_back(n);
    }

    /// Read until the response to `id`, keeping notifications that arrive meanwhile.
    pub async fn response(&mut self, id: &Id) -> Result<Value, StratumError> {
        loop {
            match self
                .read(Duration::from_secs(10))
                .await
                .expect("response in time")
            {
                Message::Response(r) if &r.id == id => return r.outcome,
                Message::Response(r) => panic!("unexpected response {r:?}"),
                Message::Call(c) => {
                    if let Ok(n) = ServerNotification::from_call(&c) {
                        self.absorb(n);
                    }
                }
            }
        }
    }

    pub async fn request(&mut self, req: ClientRequest) -> Result<Value, StratumError> {
        let id = Id::number(self.next_id);
        self.next_id += 1;
        let line = Message::Call(req.to_call(id.clone())).to_json();
        self.send_raw(&line).await;
        self.response(&id).await
    }

    pub async fn subscribe(&mut self) {
        self.subscribe_resuming(None).await;
    }

    /// Subscribe, asking to resume the session `resume` names; returns the pool's answer.
    pub async fn subscribe_resuming(
        &mut self,
        resume: Option<protocol::SubscriptionId>,
    ) -> SubscribeResult {
        let r = self
            .request(ClientRequest::Subscribe {
                user_agent: Some("test-miner/1.0".into()),
                resume,
            })
            .await
            .unwrap();
        let s = SubscribeResult::from_value(&r).unwrap();
        self.extranonce1 = Some(s.extranonce1.clone());
        self.extranonce2_size = s.extranonce2_size;
        s
    }

    pub async fn authorize(&mut self, worker: &str) -> Result<Value, StratumError> {
        self.request(ClientRequest::Authorize {
            worker: WorkerName::new(worker),
            password: Some("x".into()),
        })
        .await
    }

    /// Subscribe, authorize `WORKER` and wait for the first job.
    pub async fn login(addr: SocketAddr) -> Client {
        let mut c = Client::connect(addr).await;
        c.subscribe().await;
        assert_eq!(c.authorize(WORKER).await.unwrap(), Value::Bool(true));
        c.wait_job().await;
        c
    }

    /// Wait for a notify (returns immediately if one is already known and unseen).
    pub async fn wait_job(&mut self) -> Notify {
        loop {
            if let Some(ServerNotification::Notify(n)) = self.notifications.pop_front() {
                return n;
            }
            if !self.notifications.is_empty() {
                continue;
            }
            match self
                .read(Duration::from_secs(10))
                .await
                .expect("a job in time")
            {
                Message::Call(c) => {
                    let n = ServerNotification::from_call(&c).unwrap();
                    self.absorb(n);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    /// Wait for the clean job on the tip `hash` (a difficulty change is clean too, but keeps
    /// the tip).
    pub async fn wait_clean_job(&mut self, hash: &str) -> Notify {
        loop {
            let n = self.wait_job().await;
            if n.clean_jobs && n.prevhash.block_hash().to_string() == hash {
                return n;
            }
        }
    }

    /// Drain notifications that are already waiting (short timeout).
    pub async fn drain(&mut self) {
        while let Some(m) = self.read(Duration::from_millis(200)).await {
            if let Message::Call(c) = m {
                if let Ok(n) = ServerNotification::from_call(&c) {
                    self.absorb(n);
                }
            }
        }
    }

    pub async fn submit(&mut self, s: Submit) -> Result<Value, StratumError> {
        self.request(ClientRequest::Submit(s)).await
    }

    /// The difficulty the pool issued `job` at.
    pub fn difficulty_of(&self, job: &Notify) -> Difficulty {
        self.job_difficulty
            .iter()
            .rev()
            .find(|(id, _)| id == job.job_id.as_str())
            .map(|(_, d)| *d)
            .expect("known job")
    }
}

/// A share found by brute force for `job`, meeting `target` (and optionally not `not`).
pub struct Found {
    pub submit: Submit,
    pub hash: protocol::bitcoin::BlockHash,
}

/// Search nonces from `start` for a header whose hash meets `target`, with extranonce2 `en2`.
pub fn mine(
    job: &Notify,
    en1: &Extranonce1,
    en2: &Extranonce2,
    target: Target,
    start: u32,
) -> Found {
    let mut header = job.header(en1, en2, job.ntime, Nonce(0), job.version);
    for nonce in start..=u32::MAX {
        header.nonce = nonce;
        let hash = header_hash(&header);
        if target.is_met_by(&hash) {
            return Found {
                submit: Submit {
                    worker: WorkerName::new(WORKER),
                    job_id: job.job_id.clone(),
                    extranonce2: en2.clone(),
                    ntime: job.ntime,
                    nonce: Nonce(nonce),
                    version_bits: None,
                },
                hash,
            };
        }
    }
    panic!("no nonce found")
}

/// A nonce whose hash does *not* meet `target` (for low-difficulty rejections).
pub fn miss(job: &Notify, en1: &Extranonce1, en2: &Extranonce2, target: Target) -> Submit {
    let mut header = job.header(en1, en2, job.ntime, Nonce(0), job.version);
    for nonce in 0..=u32::MAX {
        header.nonce = nonce;
        if !target.is_met_by(&header_hash(&header)) {
            return Submit {
                worker: WorkerName::new(WORKER),
                job_id: job.job_id.clone(),
                extranonce2: en2.clone(),
                ntime: job.ntime,
                nonce: Nonce(nonce),
                version_bits: None,
            };
        }
    }
    unreachable!()
}

impl Client {
    /// Mine and submit one valid share on the current job with extranonce2 = `counter`.
    pub async fn share(&mut self, counter: u64) -> (Result<Value, StratumError>, Found) {
        self.share_as(WORKER, counter).await
    }

    /// [`Client::share`] for a session authorized as `worker`.
    pub async fn share_as(
        &mut self,
        worker: &str,
        counter: u64,
    ) -> (Result<Value, StratumError>, Found) {
        let job = self.job.clone().expect("a job");
        let target = self.difficulty_of(&job).to_target();
        let en2 = Extranonce2::from_counter(counter, self.extranonce2_size);
        let mut found = mine(&job, self.extranonce1.as_ref().unwrap(), &en2, target, 0);
        found.submit.worker = WorkerName::new(worker);
        let r = self.submit(found.submit.clone()).await;
        (r, found)
    }
}

pub fn code(r: &Result<Value, StratumError>) -> Option<ErrorCode> {
    r.as_ref().err().map(|e| e.code)
}

pub fn version(v: u32) -> Version {
    Version(v)
}

/// A database of its own on the PostgreSQL named by `DATABASE_URL` (or 127.0.0.1:5432),
/// dropped by [`PgTestDb::drop_db`].
pub struct PgTestDb {
    pub admin: String,
    pub name: String,
    pub url: String,
}

pub fn admin_url() -> String {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres"))
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

impl PgTestDb {
    pub async fn create() -> PgTestDb {
        Self::create_via(&admin_url()).await
    }

    pub async fn create_via(admin: &str) -> PgTestDb {
        use sqlx::Connection;
        let name = format!("pool_test_{}", uuid::Uuid::new_v4().simple());
        let mut c = sqlx::PgConnection::connect(admin)
            .await
            .expect("PostgreSQL answers (scripts/test starts one if needed)");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut c)
            .await
            .unwrap();
        let base = admin.rsplit_once('/').unwrap().0;
        PgTestDb {
            admin: admin.to_string(),
            url: format!("{base}/{name}"),
            name,
        }
    }

    /// The URL with its host:port swapped for `addr` (to go through a proxy).
    pub fn url_via(&self, addr: SocketAddr) -> String {
        let (scheme_user, rest) = self.url.split_once('@').unwrap();
        let path = rest.split_once('/').unwrap().1;
        format!("{scheme_user}@{addr}/{path}")
    }

    pub fn target(&self) -> SocketAddr {
        use std::net::ToSocketAddrs;
        let rest = self.url.split_once('@').unwrap().1;
        let hostport = rest.split_once('/').unwrap().0;
        hostport
            .to_socket_addrs()
            .unwrap()
            .next()
            .expect("resolvable database host")
    }

    pub async fn drop_db(self) {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&self.admin).await.unwrap();
        let _ = sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&mut c)
        .await;
    }
}

/// A TCP proxy in front of a server that a test can cut (refusing and dropping connections)
/// and restore, to play a database outage against the real database.
pub struct Proxy {
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
    generation: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let (gen_tx, _) = tokio::sync::watch::channel(0u64);
        let generation = Arc::new(gen_tx);
        let (up2, gen2) = (up.clone(), generation.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    break;
                };
                if !up2.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let mut cut = gen2.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Proxy {
            addr,
            up,
            generation,
        }
    }

    /// Drop every connection and refuse new ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}
