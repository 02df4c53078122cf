//! One task per connection: the Stratum V1 state machine of a single miner.
//!
//! A session subscribes (gets its own extranonce1), authorizes one or more workers, may
//! negotiate version rolling and suggest a difficulty, then receives jobs and submits shares.
//! It reads lines and job updates in one `select!` loop and writes whole batches of replies, so
//! there are no locks across awaits and no per-session writer task. Bad lines and invalid
//! shares are answered in Stratum's terms; past the offense threshold the IP is banned.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bitcoin::BlockHash;
use chrono::Utc;
use futures::StreamExt;
use protocol::{
    Call, ClientRequest, ConfigureResult, Difficulty, ErrorCode, Extranonce1, FrameError, Id,
    Message, ParamsError, ServerNotification, StratumError, Submit, SubscribeResult,
    SubscriptionId, Target, VersionMask, WorkerName,
};
use serde_json::{json, Map, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use super::account::AccountPolicy;
use super::bans::BanList;
use super::extranonce::{ExtranonceAllocator, Lease};
use super::resume::{Parked, ResumeTable};
use super::vardiff::{Vardiff, VardiffConfig};
use crate::blocks::FoundBlock;
use crate::jobs::{Job, JobFeed, JobIds};
use crate::metrics::Metrics;
use crate::share::{validate, Dedup, IssuedJob, Reject, ShareContext};
use crate::stats::Stats;
use crate::store::{storable_job_id, ShareRecord, StoreEvent, StoreHandle};

/// Jobs a session remembers; shares for older ones are "job not found".
const MAX_ISSUED: usize = 8;
/// Worker names one connection may authorize (proxies carry a few rigs each; every name is
/// a metric series, a stats entry and a database row).
pub const MAX_WORKERS: usize = 64;
/// A write that takes longer than this means the miner stopped reading.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// What every session shares.
pub struct SessionContext {
    pub extranonce2_size: usize,
    pub version_mask: VersionMask,
    pub vardiff: VardiffConfig,
    /// How long shares for jobs replaced by a difficulty change are still accepted.
    pub reissue_grace: Duration,
    pub idle_timeout: Duration,
    pub auth_timeout: Duration,
    pub max_line: usize,
    pub accounts: AccountPolicy,
    pub jobs: JobFeed,
    pub job_ids: JobIds,
    pub resume: ResumeTable,
    pub store: StoreHandle,
    pub stats: Arc<Stats>,
    pub metrics: Arc<Metrics>,
    pub bans: Arc<BanList>,
    pub extranonces: Arc<ExtranonceAllocator>,
    pub blocks: mpsc::Sender<FoundBlock>,
    pub session_ids: AtomicU64,
}

struct Session {
    ctx: Arc<SessionContext>,
    id: u64,
    peer: SocketAddr,
    lease: Option<Lease>,
    /// The id `mining.subscribe` returned, under which the session can be resumed.
    subscription: Option<SubscriptionId>,
    /// Picked up from a parked session: the difficulty and estimate carry on.
    resumed: bool,
    authorized: Vec<WorkerName>,
    started: bool,
    version_mask: Option<VersionMask>,
    difficulty: Difficulty,
    target: Target,
    vardiff: Vardiff,
    issued: VecDeque<IssuedJob>,
    dedup: Dedup,
    last_prev: Option<BlockHash>,
    /// Offences this session counted against its address (forgiven by accepted shares).
    offenses: u32,
    /// Stale and unknown-job rejects allowed before they count as offences.
    free_rejects: RejectAllowance,
    /// Unknown methods a session may send without offence (the same allowance).
    free_unknown: RejectAllowance,
    /// When a miner's suggestion last changed the difficulty, and one waiting for the window.
    suggested_at: Option<std::time::Instant>,
    pending_suggestion: Option<Difficulty>,
    banned: bool,
    out: Vec<u8>,
}

fn unix_now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

/// Run one connection to its end. Returns why it ended (a metrics label).
pub async fn run(
    ctx: Arc<SessionContext>,
    stream: TcpStream,
    peer: SocketAddr,
    start_difficulty: Difficulty,
    shutdown: CancellationToken,
) -> &'static str {
    let id = ctx.session_ids.fetch_add(1, Ordering::Relaxed);
    let now = Instant::now().into_std();
    let vardiff = Vardiff::new(ctx.vardiff, start_difficulty, now);
    let difficulty = vardiff.clamp(start_difficulty);
    let session = Session {
        ctx,
        id,
        peer,
        lease: None,
        subscription: None,
        resumed: false,
        authorized: Vec::new(),
        started: false,
        version_mask: None,
        difficulty,
        target: difficulty.to_target(),
        vardiff,
        issued: VecDeque::with_capacity(MAX_ISSUED),
        dedup: Dedup::default(),
        last_prev: None,
        offenses: 0,
        free_rejects: RejectAllowance::new(Instant::now().into_std()),
        free_unknown: RejectAllowance::new(Instant::now().into_std()),
        suggested_at: None,
        pending_suggestion: None,
        banned: false,
        out: Vec::new(),
    };
    let span = tracing::info_span!("session", session = id, peer = %peer);
    session.run(stream, shutdown).instrument(span).await
}

impl Session {
    async fn run(mut self, stream: TcpStream, shutdown: CancellationToken) -> &'static str {
        let _ = stream.set_nodelay(true);
        let (reader, mut writer) = stream.into_split();
        let mut lines = FramedRead::with_capacity(
            reader,
            protocol::StratumCodec::with_max_line(self.ctx.max_line),
            512,
        );
        let mut jobs = self.ctx.jobs.subscribe();
        let mut bans = self.ctx.bans.changes();
        let opened = Instant::now();
        let mut last_rx = opened;
        let mut tick = tokio::time::interval(
            self.ctx
                .vardiff
                .target_interval
                .min(self.ctx.vardiff.retarget_window)
                .max(Duration::from_millis(50)),
        );
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let cause = loop {
            let deadline = if self.started {
                last_rx + self.ctx.idle_timeout
            } else {
                (opened + self.ctx.auth_timeout).min(last_rx + self.ctx.idle_timeout)
            };
            let mut ended = None;
            tokio::select! {
                _ = shutdown.cancelled() => {
                    self.say_reconnect();
                    ended = Some("shutdown");
                }
                item = lines.next() => match item {
                    None => break "closed",
                    Some(Err(_)) => break "io-error",
                    Some(Ok(frame)) => {
                        last_rx = Instant::now();
                        match frame {
                            Ok(msg) => self.on_message(msg).await,
                            Err(e) => self.on_bad_line(e),
                        }
                    }
                },
                changed = jobs.changed(), if self.started => {
                    if changed.is_err() {
                        // The job feed ends only at shutdown, and this branch may win the race
                        // with the one above: the miner is told to reconnect either way.
                        self.say_reconnect();
                        ended = Some("shutdown");
                    } else {
                        let job = jobs.borrow_and_update().clone();
                        self.send_job(job);
                    }
                }
                _ = tick.tick(), if self.started => {
                    if let Some(d) = self.vardiff.on_tick(self.difficulty, Instant::now().into_std()) {
                        self.change_difficulty(d);
                    }
                    self.apply_suggestion();
                }
                _ = bans.changed() => {
                    // Someone was banned: if it is this address, this session goes too.
                    if self.ctx.bans.is_banned(self.peer.ip()) {
                        ended = Some("banned");
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    ended = Some(if self.started { "idle-timeout" } else { "auth-timeout" });
                }
            }
            if ended.is_none() && self.banned {
                let msg =
                    ServerNotification::ShowMessage("banned: too many invalid messages".into());
                self.push(&Message::Call(msg.to_call()));
                ended = Some("banned");
            }
            if !self.out.is_empty() {
                match tokio::time::timeout(WRITE_TIMEOUT, writer.write_all(&self.out)).await {
                    Ok(Ok(())) => self.out.clear(),
                    Ok(Err(_)) => break "io-error",
                    Err(_) => break "write-timeout",
                }
                if self.out.capacity() > 64 * 1024 {
                    self.out = Vec::new();
                }
            }
            if let Some(cause) = ended {
                break cause;
            }
        };
        let _ = writer.shutdown().await;
        self.park(cause);
        if let Some(w) = self.authorized.first() {
            self.ctx.stats.session_closed(w.as_str());
            self.ctx
                .metrics
                .worker_sessions
                .with_label_values(&[w.as_str()])
                .dec();
        }
        tracing::debug!(cause, "session ended");
        cause
    }

    /// One offence against this session's address; past the threshold the address is banned
    /// and every session from it ends (this one after its answer is written).
    fn offend(&mut self, what: &str) {
        self.offenses += 1;
        if self
            .ctx
            .bans
            .offend(self.peer.ip(), 1, &format!("too many {what}"))
        {
            self.ctx.metrics.bans.inc();
            self.ctx.metrics.banned_ips.set(self.ctx.bans.len() as i64);
            tracing::warn!(offenses = self.offenses, what, "banning peer");
            self.banned = true;
        }
    }

    /// `client.reconnect` to this pool in 5 s: we are going away, come back.
    fn say_reconnect(&mut self) {
        let bye = ServerNotification::Reconnect {
            host: None,
            port: None,
            wait_secs: Some(5),
        };
        self.push(&Message::Call(bye.to_call()));
    }

    fn push(&mut self, msg: &Message) {
        serde_json::to_writer(&mut self.out, &msg.to_value()).expect("JSON to a Vec cannot fail");
        self.out.push(b'\n');
    }

    fn reply(&mut self, id: Id, result: Result<Value, StratumError>) {
        self.push(&Message::Response(protocol::Response {
            id,
            outcome: result,
        }));
    }

    fn on_bad_line(&mut self, e: FrameError) {
        self.offend("malformed lines");
        tracing::debug!(error = %e, "malformed line");
        self.reply(
            Id::Null,
            Err(StratumError::new(ErrorCode::Other, e.to_string())),
        );
    }

    async fn on_message(&mut self, msg: Message) {
        let call = match msg {
            Message::Call(c) => c,
            // Answers to calls we never make (client.get_version): nothing to do.
            Message::Response(_) => return,
        };
        match ClientRequest::from_call(&call) {
            Ok(req) => self.on_request(call.id, req).await,
            Err(ParamsError::UnknownMethod(m)) => match super::extensions::answer(&m) {
                Some(answer) => self.reply(call.id, answer),
                None => {
                    // A few are free (a client trying what we support); past that each one
                    // is an offence. The name is not echoed, and logged only escaped and cut.
                    if !self.free_unknown.take(Instant::now().into_std()) {
                        self.offend("unknown methods");
                    }
                    let shown: String = m.chars().take(64).collect();
                    tracing::debug!(method = %shown.escape_debug(), "unknown method");
                    self.reply(
                        call.id,
                        Err(StratumError::new(ErrorCode::Other, "Unknown method")),
                    );
                }
            },
            Err(e) => {
                self.offend("malformed requests");
                if call.method == protocol::client::SUBMIT {
                    self.record_malformed_submit(&call, &e).await;
                }
                self.reply(call.id, Err(e.to_stratum()));
            }
        }
    }

    async fn on_request(&mut self, id: Id, req: ClientRequest) {
        match req {
            ClientRequest::Subscribe { user_agent, resume } => {
                if self.lease.is_none() {
                    if let Some(parked) = resume.as_ref().and_then(|r| self.ctx.resume.take(r)) {
                        self.resume(parked);
                        self.subscription = resume;
                        tracing::debug!("session resumed");
                    } else if let Some(l) = self.new_lease() {
                        self.lease = Some(l);
                        self.subscription =
                            SubscriptionId::parse(&format!("{:016x}", rand::random::<u64>()));
                    } else {
                        self.reply(
                            id,
                            Err(StratumError::new(
                                ErrorCode::Other,
                                "No extranonce1 available",
                            )),
                        );
                        return;
                    }
                }
                let sid = self
                    .subscription
                    .as_ref()
                    .map_or_else(String::new, |s| s.as_str().to_owned());
                let result = SubscribeResult {
                    subscriptions: vec![
                        ("mining.set_difficulty".into(), sid.clone()),
                        ("mining.notify".into(), sid),
                    ],
                    extranonce1: self.extranonce1().clone(),
                    extranonce2_size: self.ctx.extranonce2_size,
                };
                tracing::debug!(agent = user_agent.as_deref().unwrap_or(""), "subscribed");
                self.reply(id, Ok(result.to_value()));
                self.maybe_start();
            }
            ClientRequest::Authorize { worker, password } => {
                if let Err(why) = self.ctx.accounts.check(&worker) {
                    tracing::info!(worker = %worker, reason = %why, "authorization refused");
                    self.offend("refused authorizations");
                    self.reply(id, Err(StratumError::new(ErrorCode::Unauthorized, why)));
                    return;
                }
                if !self.authorized.contains(&worker) && self.authorized.len() >= MAX_WORKERS {
                    self.offend("worker names");
                    self.reply(
                        id,
                        Err(StratumError::new(
                            ErrorCode::Unauthorized,
                            format!("at most {MAX_WORKERS} workers per connection"),
                        )),
                    );
                    return;
                }
                if !self.authorized.contains(&worker) {
                    if self.authorized.is_empty() {
                        self.ctx.stats.session_opened(worker.as_str(), Utc::now());
                        self.ctx
                            .metrics
                            .worker_sessions
                            .with_label_values(&[worker.as_str()])
                            .inc();
                    }
                    self.authorized.push(worker.clone());
                }
                if let Some(d) = password.as_deref().and_then(password_difficulty) {
                    self.suggest(d);
                }
                tracing::info!(worker = %worker, "authorized");
                self.reply(id, Ok(json!(true)));
                self.maybe_start();
            }
            ClientRequest::Configure(c) => {
                let mut result = ConfigureResult {
                    version_rolling: None,
                    other: Map::new(),
                };
                match c.version_rolling_request() {
                    Ok(Some(req)) => {
                        let mask = VersionMask(self.ctx.version_mask.0 & req.mask.0);
                        if mask.0 != 0 && mask.0.count_ones() >= req.min_bit_count {
                            self.version_mask = Some(mask);
                            result.version_rolling = Some(mask);
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        self.reply(id, Err(e.to_stratum()));
                        return;
                    }
                }
                for ext in &c.extensions {
                    if ext != "version-rolling" {
                        result
                            .other
                            .insert(ext.clone(), json!(ext == "subscribe-extranonce"));
                    }
                }
                self.reply(id, Ok(result.to_value()));
            }
            ClientRequest::SuggestDifficulty(d) => {
                self.suggest(d);
                self.reply(id, Ok(json!(true)));
            }
            ClientRequest::ExtranonceSubscribe => {
                // Our extranonce1 never changes mid-session; the subscription is harmless.
                self.reply(id, Ok(json!(true)));
            }
            ClientRequest::Submit(submit) => self.on_submit(id, submit).await,
        }
    }

    /// A fresh extranonce1; when the space is full, parked sessions give theirs up first.
    fn new_lease(&self) -> Option<Lease> {
        loop {
            if let Some(l) = self.ctx.extranonces.lease() {
                return Some(l);
            }
            if !self.ctx.resume.evict_oldest() {
                return None;
            }
        }
    }

    /// Carry on as the parked session: its extranonce1, difficulty, estimate and jobs.
    fn resume(&mut self, p: Parked) {
        self.lease = Some(p.lease);
        self.difficulty = p.difficulty;
        self.target = p.difficulty.to_target();
        self.issued = p.issued;
        self.dedup = p.dedup;
        self.vardiff = p.vardiff;
        self.vardiff.resumed(Instant::now().into_std());
        self.version_mask = self.version_mask.or(p.version_mask);
        self.resumed = true;
        self.ctx.metrics.resumes.inc();
    }

    /// At the end of a connection that was mining, keep its state for a resume.
    fn park(&mut self, cause: &str) {
        let dropped = matches!(
            cause,
            "closed" | "io-error" | "idle-timeout" | "write-timeout"
        );
        if !self.started || !dropped {
            return;
        }
        let (Some(lease), Some(id)) = (self.lease.take(), self.subscription.take()) else {
            return;
        };
        self.ctx.resume.park(
            id,
            Parked {
                lease,
                difficulty: self.difficulty,
                issued: std::mem::take(&mut self.issued),
                dedup: std::mem::take(&mut self.dedup),
                vardiff: self.vardiff.clone(),
                version_mask: self.version_mask,
            },
        );
    }

    fn extranonce1(&self) -> &Extranonce1 {
        self.lease.as_ref().expect("subscribed").extranonce1()
    }

    /// Mining begins once the miner is both subscribed and authorized.
    fn maybe_start(&mut self) {
        if self.started || self.lease.is_none() || self.authorized.is_empty() {
            return;
        }
        self.started = true;
        if !self.resumed {
            self.vardiff
                .start(self.difficulty, Instant::now().into_std());
        }
        self.push_difficulty();
        let job = self.ctx.jobs.current();
        self.send_job(job);
    }

    fn push_difficulty(&mut self) {
        let d = self.difficulty;
        self.push(&Message::Call(
            ServerNotification::SetDifficulty(d).to_call(),
        ));
        if let Some(w) = self.authorized.first() {
            self.ctx.stats.set_difficulty(w.as_str(), d.as_f64());
            self.ctx
                .metrics
                .worker_difficulty
                .with_label_values(&[w.as_str()])
                .set(d.as_f64());
        }
    }

    fn send_job(&mut self, mut job: Arc<Job>) {
        let clean = job.notify.clean_jobs || self.last_prev != Some(job.prev_hash());
        self.last_prev = Some(job.prev_hash());
        // An id stands for one difficulty: a job this session already holds at another one
        // (a resumed session's) goes out under an id of its own.
        if self
            .issued
            .iter()
            .any(|j| j.job.id == job.id && j.difficulty != self.difficulty)
        {
            job = Arc::new(job.reissue(&self.ctx.job_ids));
        }
        self.out.extend_from_slice(&job.notify_line(clean));
        self.issue(IssuedJob::new(job, self.difficulty));
    }

    fn issue(&mut self, issued: IssuedJob) {
        if self.issued.len() == MAX_ISSUED {
            self.issued.pop_front();
        }
        self.issued.push_back(issued);
    }

    /// A difficulty from the miner (suggest_difficulty, `d=` password). Vardiff stays in
    /// charge: the suggestion becomes the miner's floor (vardiff never goes below it) and,
    /// before mining begins, the start difficulty; once mining, it applies only when higher
    /// than the current difficulty (fewer shares), and at most once per retarget window (a
    /// later one waits for the window). A lower one never lowers the current difficulty.
    fn suggest(&mut self, d: Difficulty) {
        self.vardiff.set_floor(d);
        let d = self.vardiff.clamp(d);
        if !self.started {
            self.difficulty = d;
            self.target = d.to_target();
            return;
        }
        if d <= self.difficulty {
            self.pending_suggestion = None;
            return;
        }
        self.pending_suggestion = Some(d);
        self.apply_suggestion();
    }

    /// A pending higher suggestion, once the retarget window since the last one has passed.
    fn apply_suggestion(&mut self) {
        let now = Instant::now().into_std();
        let due = self
            .suggested_at
            .is_none_or(|at| now.saturating_duration_since(at) >= self.ctx.vardiff.retarget_window);
        let Some(d) = self.pending_suggestion.filter(|_| due) else {
            return;
        };
        self.pending_suggestion = None;
        if d > self.difficulty {
            self.suggested_at = Some(now);
            self.change_difficulty(d);
        }
    }

    /// Apply a new difficulty at once: tell the miner, then re-issue the newest job under a
    /// fresh id (and so a coinbase of its own) with `clean_jobs`, so every client switches to
    /// it, whether it watches ids, compares them as hex numbers or waits for a clean job.
    /// Shares already in flight for the jobs it replaces count until the grace ends.
    fn change_difficulty(&mut self, d: Difficulty) {
        if d == self.difficulty {
            return;
        }
        tracing::debug!(from = %self.difficulty, to = %d, "difficulty change");
        let now = Instant::now().into_std();
        self.difficulty = d;
        self.target = d.to_target();
        self.vardiff.changed(d, now);
        self.push_difficulty();
        let Some(newest) = self.issued.back().map(|j| j.job.clone()) else {
            return;
        };
        let expires = now + self.ctx.reissue_grace;
        for j in &mut self.issued {
            j.expires = Some(j.expires.map_or(expires, |e| e.min(expires)));
        }
        let job = Arc::new(newest.reissue(&self.ctx.job_ids));
        self.out.extend_from_slice(&job.notify_line(true));
        self.issue(IssuedJob::new(job, d));
    }

    async fn on_submit(&mut self, id: Id, submit: Submit) {
        let verdict = if let Some(lease) = &self.lease {
            if !self.authorized.contains(&submit.worker) {
                Err(Reject::Unauthorized)
            } else {
                let issued = self.issued.iter().find(|j| j.job.id == submit.job_id);
                let ctx = ShareContext {
                    issued,
                    current_generation: self.ctx.jobs.generation(),
                    current_difficulty: self.difficulty,
                    current_target: self.target,
                    extranonce1: lease.extranonce1(),
                    extranonce2_size: self.ctx.extranonce2_size,
                    version_mask: self.version_mask,
                    now: unix_now(),
                    at: Instant::now().into_std(),
                };
                validate(&ctx, &submit, &mut self.dedup)
            }
        } else {
            Err(Reject::NotSubscribed)
        };
        let issued_job = self
            .issued
            .iter()
            .find(|j| j.job.id == submit.job_id)
            .map(|j| j.job.clone());
        let height = issued_job.as_ref().map_or_else(
            || self.ctx.jobs.current().template.height,
            |j| j.template.height,
        );
        let worker = submit.worker.as_str();
        let now = Utc::now();
        match verdict {
            Ok(acc) => {
                self.reply(id, Ok(json!(true)));
                // Its extranonce1 now cools until the tip moves (see extranonce.rs).
                if let (Some(lease), Some(job)) = (self.lease.as_mut(), issued_job.as_ref()) {
                    lease.credited(job.generation);
                }
                if self.offenses > 0 {
                    self.offenses -= 1;
                    self.ctx.bans.forgive(self.peer.ip(), 1);
                }
                self.ctx.stats.accepted(worker, acc.credited.as_f64(), now);
                self.ctx
                    .metrics
                    .shares
                    .with_label_values(&["accepted", ""])
                    .inc();
                self.ctx
                    .metrics
                    .worker_shares
                    .with_label_values(&[worker, "accepted", ""])
                    .inc();
                self.ctx
                    .metrics
                    .worker_last_share
                    .with_label_values(&[worker])
                    .set(now.timestamp() as f64);
                tracing::debug!(worker, job = %submit.job_id, result = "accepted", difficulty = acc.credited.as_f64(), "share");
                if acc.is_block {
                    let job = issued_job.expect("accepted shares name an issued job");
                    tracing::info!(worker, job = %submit.job_id, block = %acc.hash, height, "share meets the network target");
                    let found = FoundBlock {
                        job,
                        extranonce1: self.extranonce1().clone(),
                        extranonce2: submit.extranonce2.clone(),
                        header: acc.header,
                        worker: submit.worker.clone(),
                    };
                    if self.ctx.blocks.send(found).await.is_err() {
                        tracing::error!("block path is closed; block not submitted");
                    }
                }
                self.ctx
                    .store
                    .record(StoreEvent::Share(ShareRecord {
                        id: Uuid::now_v7(),
                        worker: worker.to_owned(),
                        session_id: self.id as i64,
                        job_id: submit.job_id.to_string(),
                        height: height as i64,
                        assigned_difficulty: acc.credited.as_f64(),
                        achieved_difficulty: acc.achieved.as_f64(),
                        accepted: true,
                        reason: None,
                        block_hash: acc.is_block.then(|| acc.hash.to_string()),
                        created_at: now,
                    }))
                    .await;
                if let Some(d) =
                    self.vardiff
                        .on_share(acc.credited, self.difficulty, Instant::now().into_std())
                {
                    self.change_difficulty(d);
                }
            }
            Err(reject) => {
                // Stale shares happen to honest miners at every new block; a flood of them
                // (or of unknown job ids) past the allowance counts like any invalid share.
                let excused = matches!(reject, Reject::StaleJob | Reject::UnknownJob)
                    && self.free_rejects.take(Instant::now().into_std());
                if !excused {
                    self.offend("invalid shares");
                }
                self.reply(id, Err(reject.to_stratum()));
                self.record_reject(worker, submit.job_id.as_str(), height, &reject)
                    .await;
            }
        }
    }

    async fn record_reject(&mut self, worker: &str, job_id: &str, height: u64, reject: &Reject) {
        let label = reject.label();
        tracing::debug!(
            worker,
            job = job_id,
            result = "rejected",
            reason = label,
            "share"
        );
        self.ctx.stats.rejected(worker, label);
        self.ctx
            .metrics
            .shares
            .with_label_values(&["rejected", label])
            .inc();
        self.ctx
            .metrics
            .worker_shares
            .with_label_values(&[worker, "rejected", label])
            .inc();
        self.ctx
            .store
            .record(StoreEvent::Share(ShareRecord {
                id: Uuid::now_v7(),
                worker: worker.to_owned(),
                session_id: self.id as i64,
                job_id: storable_job_id(job_id),
                height: height as i64,
                assigned_difficulty: self.difficulty.as_f64(),
                achieved_difficulty: 0.0,
                accepted: false,
                reason: Some(label.to_owned()),
                block_hash: None,
                created_at: Utc::now(),
            }))
            .await;
    }

    /// A `mining.submit` whose parameters did not parse: recorded against the worker it
    /// names, when it names one this session authorized.
    async fn record_malformed_submit(&mut self, call: &Call, e: &ParamsError) {
        let Some(worker) = call.params.first().and_then(Value::as_str) else {
            return;
        };
        if !self.authorized.iter().any(|w| w.as_str() == worker) {
            return;
        }
        let job = call
            .params
            .get(1)
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .unwrap_or_default();
        let height = self.ctx.jobs.current().template.height;
        self.record_reject(worker, &job, height, &Reject::Malformed(e.to_string()))
            .await;
    }
}

/// Stale and unknown-job rejects a session may send without offence: a burst of
/// [`RejectAllowance::BURST`] (a new block catches a pipelining miner with a few shares in
/// flight), refilled at one per [`RejectAllowance::REFILL`].
struct RejectAllowance {
    tokens: f64,
    at: std::time::Instant,
}

impl RejectAllowance {
    const BURST: f64 = 20.0;
    const REFILL: Duration = Duration::from_secs(3);

    fn new(now: std::time::Instant) -> Self {
        RejectAllowance {
            tokens: Self::BURST,
            at: now,
        }
    }

    /// `true` while the allowance lasts.
    fn take(&mut self, now: std::time::Instant) -> bool {
        let refill =
            now.saturating_duration_since(self.at).as_secs_f64() / Self::REFILL.as_secs_f64();
        self.tokens = (self.tokens + refill).min(Self::BURST);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// `d=NUM` in a password (`x,d=512` or `d=0.5`) is a requested difficulty.
fn password_difficulty(password: &str) -> Option<Difficulty> {
    password
        .split([',', ';', ' '])
        .find_map(|p| p.trim().strip_prefix("d="))
        .and_then(|d| d.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_can_carry_a_difficulty() {
        assert_eq!(password_difficulty("x,d=512").unwrap().as_f64(), 512.0);
        assert_eq!(password_difficulty("d=0.5").unwrap().as_f64(), 0.5);
        assert!(password_difficulty("x").is_none());
        assert!(password_difficulty("d=-1").is_none());
    }
}
