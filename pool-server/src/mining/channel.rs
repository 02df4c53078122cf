//! One miner's channel: its extranonce1 lease, authorized workers, difficulty under vardiff,
//! the jobs it was sent (each at the difficulty it went out with), duplicate detection, and the
//! offences it counted against its address.
//!
//! The channel never writes to a socket. What the miner must be told (a new difficulty, a job)
//! is queued as [`ToMiner`] and the transport renders it in its own wire after whatever it was
//! answering: V1 as `mining.set_difficulty` / `mining.notify` lines, V2 as its frames.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::BlockHash;
use chrono::Utc;
use protocol::{Difficulty, Extranonce1, SubscriptionId, Target, VersionMask, WorkerName};

use super::allowance::RejectAllowance;
use super::context::MiningContext;
use super::extranonce::Lease;
use super::resume::Parked;
use super::shared::{Claim, SharedSession};
use super::vardiff::Vardiff;
use crate::jobs::Job;
use crate::share::{Dedup, IssuedJob};
use crate::store::ack::AckBox;

/// Jobs a channel remembers; shares for older ones are "job not found".
const MAX_ISSUED: usize = 8;
/// Worker names one channel may authorize (proxies carry a few rigs each; every name is a
/// metric series, a stats entry and a database row).
pub const MAX_WORKERS: usize = 64;

/// What the miner must be told, in the order it happened.
#[derive(Debug, Clone)]
pub enum ToMiner {
    /// Shares from now on are judged at this difficulty.
    Difficulty(Difficulty),
    /// Work on this job; `clean`: drop the older ones.
    Job { job: Arc<Job>, clean: bool },
}

/// Why a channel could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("No extranonce1 available")]
pub struct NoExtranonce;

/// Why a worker was not authorized (the text is for the miner).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

pub struct Channel {
    pub(super) ctx: Arc<MiningContext>,
    id: u64,
    peer: SocketAddr,
    pub(super) lease: Option<Lease>,
    /// The token the channel can be resumed under (V1: the subscription id).
    resume_token: Option<SubscriptionId>,
    /// Picked up from a parked channel: the difficulty and estimate carry on.
    resumed: bool,
    /// The edges' shared directory knows this channel (it must hear how it ends).
    shared: bool,
    pub(super) authorized: Vec<WorkerName>,
    /// Where the first authorized worker's accepted shares are counted, resolved at its first.
    pub(super) tally: Option<Box<super::tally::ShareTally>>,
    started: bool,
    pub(super) version_mask: Option<VersionMask>,
    pub(super) difficulty: Difficulty,
    pub(super) target: Target,
    pub(super) vardiff: Vardiff,
    pub(super) issued: VecDeque<IssuedJob>,
    pub(super) dedup: Dedup,
    last_prev: Option<BlockHash>,
    /// Offences this channel counted against its address (forgiven by accepted shares).
    pub(super) offenses: u32,
    /// Stale and unknown-job rejects allowed before they count as offences.
    pub(super) free_rejects: RejectAllowance,
    /// Unknown messages a channel may send without offence (the same allowance).
    free_unknown: RejectAllowance,
    /// When a miner's suggestion last changed the difficulty, and one waiting for the window.
    suggested_at: Option<Instant>,
    pending_suggestion: Option<Difficulty>,
    banned: bool,
    sends: Vec<ToMiner>,
    /// With durable answers: the store raises it as this channel's accepted shares land.
    pub(super) acks: Option<Arc<AckBox>>,
    /// Accepted shares sent to the store so far (with durable answers).
    pub(super) acked: u64,
}

impl Channel {
    /// A channel from `peer` that will start at `start_difficulty` (within vardiff's bounds).
    pub fn new(ctx: Arc<MiningContext>, peer: SocketAddr, start_difficulty: Difficulty) -> Self {
        let now = Instant::now();
        let vardiff = Vardiff::new(ctx.vardiff, start_difficulty, now);
        let difficulty = vardiff.clamp(start_difficulty);
        let acks = ctx.durable_acks.then(|| Arc::new(AckBox::default()));
        Channel {
            id: ctx.next_channel_id(),
            ctx,
            peer,
            lease: None,
            resume_token: None,
            resumed: false,
            shared: false,
            authorized: Vec::new(),
            tally: None,
            started: false,
            version_mask: None,
            difficulty,
            target: difficulty.to_target(),
            vardiff,
            issued: VecDeque::with_capacity(MAX_ISSUED),
            dedup: Dedup::default(),
            last_prev: None,
            offenses: 0,
            free_rejects: RejectAllowance::new(now),
            free_unknown: RejectAllowance::new(now),
            suggested_at: None,
            pending_suggestion: None,
            banned: false,
            sends: Vec::new(),
            acks,
            acked: 0,
        }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Mining has begun: the channel is open and has a worker.
    pub fn started(&self) -> bool {
        self.started
    }

    /// An offence of this channel banned its address: the transport says so and ends.
    pub fn banned(&self) -> bool {
        self.banned
    }

    /// This channel's address was banned (by it or by another): the channel must end.
    pub fn address_banned(&self) -> bool {
        self.ctx.bans.is_banned(self.peer.ip())
    }

    /// How often [`Channel::on_tick`] should run.
    pub fn tick_every(&self) -> Duration {
        let v = &self.ctx.vardiff;
        v.target_interval
            .min(v.retarget_window)
            .max(Duration::from_millis(50))
    }

    pub fn resume_token(&self) -> Option<&SubscriptionId> {
        self.resume_token.as_ref()
    }

    pub fn extranonce1(&self) -> Option<&Extranonce1> {
        self.lease.as_ref().map(Lease::extranonce1)
    }

    /// With durable answers (`--durable-acks`): the counter the store raises as this channel's
    /// accepted shares are stored, and the number of the last one accepted. The transport
    /// holds each `true` until the counter reaches its share.
    pub fn durable(&self) -> Option<(&Arc<AckBox>, u64)> {
        self.acks.as_ref().map(|a| (a, self.acked))
    }

    /// What to tell the miner, oldest first; the transport renders each in its own wire.
    pub fn sends(&mut self) -> std::vec::Drain<'_, ToMiner> {
        self.sends.drain(..)
    }

    /// Open the channel: resume the session `resume` names (parked here, or handed over by
    /// the edges' shared directory), or lease a fresh extranonce1. Opening an open channel
    /// changes nothing. Mining begins at [`Channel::maybe_start`].
    pub async fn open(&mut self, resume: Option<SubscriptionId>) -> Result<(), NoExtranonce> {
        if self.lease.is_some() {
            return Ok(());
        }
        let claim = match (&resume, &self.ctx.directory) {
            (Some(token), Some(directory)) => directory.claim(token).await,
            _ => Claim::Unavailable,
        };
        let resumed = match (resume, claim) {
            (Some(token), Claim::Granted(shared)) => self.resume_shared(token, shared),
            (Some(token), Claim::Unavailable) => match self.ctx.resume.take(&token) {
                Some(parked) => {
                    self.resume(parked);
                    self.resume_token = Some(token);
                    true
                }
                None => false,
            },
            _ => false,
        };
        if resumed {
            tracing::debug!("channel resumed");
        } else if let Some(l) = self.new_lease() {
            self.lease = Some(l);
            self.resume_token = SubscriptionId::parse(&format!("{:016x}", rand::random::<u64>()));
        } else {
            return Err(NoExtranonce);
        }
        Ok(())
    }

    /// Carry on the session the directory handed this edge: from this edge's own parked
    /// channel when it still has it (its jobs and duplicate check come along), else with
    /// the extranonce1 and difficulty alone. `false` when the value cannot be taken back.
    fn resume_shared(&mut self, token: SubscriptionId, shared: SharedSession) -> bool {
        self.shared = true;
        if let Some(parked) = self.ctx.resume.take(&token) {
            self.resume(parked);
        } else {
            let lease = if self.ctx.extranonces.is_home_of(&shared.extranonce1) {
                self.ctx.extranonces.adopt(&shared.extranonce1)
            } else {
                Some(Lease::foreign(shared.extranonce1.clone()))
            };
            let Some(lease) = lease else {
                if let Some(directory) = &self.ctx.directory {
                    directory.gone(&token);
                }
                self.shared = false;
                return false;
            };
            let now = Instant::now();
            self.lease = Some(lease);
            self.vardiff = Vardiff::new(self.ctx.vardiff, shared.difficulty, now);
            self.vardiff.resumed(now);
            self.resumed = true;
            self.ctx.metrics.resumes.inc();
        }
        let d = self.vardiff.clamp(shared.difficulty);
        if d != self.difficulty {
            // The directory's difficulty is the newer (another edge may have changed it):
            // the estimate goes on at it.
            self.vardiff.changed(d, Instant::now());
        }
        self.difficulty = d;
        self.target = d.to_target();
        self.resume_token = Some(token);
        true
    }

    /// Tell the edges' shared directory that this channel runs here, at its difficulty.
    fn note_held(&mut self) {
        if let (Some(directory), Some(token), Some(lease)) =
            (&self.ctx.directory, &self.resume_token, &self.lease)
        {
            directory.held(
                token,
                lease.extranonce1(),
                self.difficulty,
                self.authorized.first(),
            );
            self.shared = true;
        }
    }

    /// Authorize `worker` on this channel (a channel may carry up to [`MAX_WORKERS`]).
    pub fn authorize(&mut self, worker: &WorkerName) -> Result<(), Refused> {
        if let Err(why) = self.ctx.accounts.check(worker) {
            tracing::info!(worker = %worker, reason = %why, "authorization refused");
            self.offend("refused authorizations");
            return Err(Refused(why));
        }
        if !self.authorized.contains(worker) && self.authorized.len() >= MAX_WORKERS {
            self.offend("worker names");
            return Err(Refused(format!(
                "at most {MAX_WORKERS} workers per connection"
            )));
        }
        if !self.authorized.contains(worker) {
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
        tracing::info!(worker = %worker, "authorized");
        Ok(())
    }

    /// The miner of `worker` (authorized) sets its account's key; stored off the share path,
    /// and dropped when that queue is full (the next authorization sets it again).
    pub fn claim_key(&self, worker: &WorkerName, secret: &str) {
        let claim = super::account::KeyClaim {
            account: worker.account().to_owned(),
            digest: super::account::key_digest(worker.account(), secret),
        };
        if self.ctx.key_claims.try_send(claim).is_err() {
            tracing::debug!("account key claims queue full; dropped one");
        }
    }

    /// Begin mining if the channel is open and has a worker (call after authorizing and
    /// after any difficulty the authorization carried).
    pub fn maybe_start(&mut self) {
        if self.started || self.lease.is_none() || self.authorized.is_empty() {
            return;
        }
        self.started = true;
        if !self.resumed {
            self.vardiff.start(self.difficulty, Instant::now());
        }
        self.push_difficulty();
        self.note_held();
        let job = self.ctx.jobs.current();
        self.send_job(job);
    }

    /// The version bits this channel may roll: the pool's mask and the miner's, when they
    /// share at least `min_bits` bits.
    pub fn negotiate_version_rolling(
        &mut self,
        requested: VersionMask,
        min_bits: u32,
    ) -> Option<VersionMask> {
        let mask = VersionMask(self.ctx.version_mask.0 & requested.0);
        if mask.0 != 0 && mask.0.count_ones() >= min_bits {
            self.version_mask = Some(mask);
            return Some(mask);
        }
        None
    }

    /// A new job from the feed.
    pub fn on_job(&mut self, job: Arc<Job>) {
        self.send_job(job);
    }

    /// The periodic tick: vardiff's time-based retarget, and a suggestion that waited.
    pub fn on_tick(&mut self) {
        if let Some(d) = self.vardiff.on_tick(self.difficulty, Instant::now()) {
            self.change_difficulty(d);
        }
        self.apply_suggestion();
    }

    /// One offence against this channel's address; past the threshold the address is banned
    /// and every channel from it ends (this one after its answer is written).
    pub fn offend(&mut self, what: &str) {
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

    /// A message the pool does not know: a few are free (a client trying what we support);
    /// past that each one is an offence.
    pub fn unknown_message(&mut self) {
        if !self.free_unknown.take(Instant::now()) {
            self.offend("unknown methods");
        }
    }

    /// A fresh extranonce1; when the space is full, parked channels give theirs up first.
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

    /// Carry on as the parked channel: its extranonce1, difficulty, estimate and jobs.
    fn resume(&mut self, p: Parked) {
        self.lease = Some(p.lease);
        self.difficulty = p.difficulty;
        self.target = p.difficulty.to_target();
        self.issued = p.issued;
        self.dedup = p.dedup;
        self.vardiff = p.vardiff;
        self.vardiff.resumed(Instant::now());
        self.version_mask = self.version_mask.or(p.version_mask);
        self.resumed = true;
        self.ctx.metrics.resumes.inc();
    }

    /// The channel's end. A channel that was mining and was dropped (not refused, not shut
    /// down) keeps its state for a resume; its worker's session count goes down.
    pub fn close(mut self, resumable: bool) {
        if let (Some(directory), Some(token), Some(lease), true) = (
            &self.ctx.directory,
            &self.resume_token,
            &self.lease,
            self.shared,
        ) {
            if self.started && resumable {
                directory.parked(token, lease.extranonce1(), self.difficulty);
            } else {
                directory.gone(token);
            }
        }
        if self.started && resumable {
            if let (Some(lease), Some(id)) = (self.lease.take(), self.resume_token.take()) {
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
        }
        if let Some(w) = self.authorized.first() {
            self.ctx.stats.session_closed(w.as_str());
            self.ctx
                .metrics
                .worker_sessions
                .with_label_values(&[w.as_str()])
                .dec();
        }
    }

    fn push_difficulty(&mut self) {
        let d = self.difficulty;
        self.sends.push(ToMiner::Difficulty(d));
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
        // An id stands for one difficulty: a job this channel already holds at another one
        // (a resumed channel's) goes out under an id of its own.
        if self
            .issued
            .iter()
            .any(|j| j.job.id == job.id && j.difficulty != self.difficulty)
        {
            job = Arc::new(job.reissue(&self.ctx.job_ids));
        }
        self.sends.push(ToMiner::Job {
            job: job.clone(),
            clean,
        });
        self.issue(IssuedJob::new(job, self.difficulty));
    }

    fn issue(&mut self, issued: IssuedJob) {
        if self.issued.len() == MAX_ISSUED {
            self.issued.pop_front();
        }
        self.issued.push_back(issued);
    }

    /// A difficulty from the miner (V1: suggest_difficulty, `d=` password). Vardiff stays in
    /// charge: the suggestion becomes the miner's floor (vardiff never goes below it) and,
    /// before mining begins, the start difficulty; once mining, it applies only when higher
    /// than the current difficulty (fewer shares), and at most once per retarget window (a
    /// later one waits for the window). A lower one never lowers the current difficulty.
    pub fn suggest(&mut self, d: Difficulty) {
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
        let now = Instant::now();
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
    pub(super) fn change_difficulty(&mut self, d: Difficulty) {
        if d == self.difficulty {
            return;
        }
        tracing::debug!(from = %self.difficulty, to = %d, "difficulty change");
        let now = Instant::now();
        self.difficulty = d;
        self.target = d.to_target();
        self.vardiff.changed(d, now);
        self.push_difficulty();
        if self.started {
            self.note_held();
        }
        let Some(newest) = self.issued.back().map(|j| j.job.clone()) else {
            return;
        };
        let expires = now + self.ctx.reissue_grace;
        for j in &mut self.issued {
            j.expires = Some(j.expires.map_or(expires, |e| e.min(expires)));
        }
        let job = Arc::new(newest.reissue(&self.ctx.job_ids));
        self.sends.push(ToMiner::Job {
            job: job.clone(),
            clean: true,
        });
        self.issue(IssuedJob::new(job, d));
    }
}
