//! What one session has heard from its pool, believed only after it is checked, and the work
//! it publishes from it. No I/O here: the session feeds it answers and notifications (and
//! the fuzz target feeds it arbitrary lines), it updates the work board and the status.
//!
//! The rules a pool cannot bend:
//! - sizes are bounded by the protocol's parse (extranonce1 at most 32 bytes, extranonce2 at
//!   most 16); a subscribe answer that breaks them ends the session;
//! - the version mask rolled is what the worker asked AND what the pool granted;
//! - a job republished with the same terms (a raised difficulty, the same extranonce1 sent
//!   again) continues where it was, and under another version mask it takes extranonce2
//!   values not searched yet, so no header is searched twice in a session;
//! - the search difficulty never drops below the worker's floor (see `submit_cap`).

use std::collections::{HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use protocol::{
    ConfigureResult, Difficulty, Extranonce1, Notify, ServerNotification, StratumError,
    SubscribeResult, SubscriptionId, VersionMask,
};
use serde_json::Value;

use super::log_limit::LogLimit;
use super::pool_text::PoolText;
use super::submit_cap::{self, SubmitCap};
use crate::config::PoolUrl;
use crate::status::Status;
use crate::work::{JobWork, Terms, UnitSource, WorkBoard};

/// What an answer is the answer to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pending {
    Configure,
    Subscribe,
    Authorize,
    Submit,
    Other,
}

/// What the session must do after a notification.
#[derive(Debug, PartialEq)]
pub enum Heard {
    Nothing,
    /// `client.reconnect`: to `to` when named, after `wait` (capped at 10 minutes).
    Reconnect {
        to: Option<PoolUrl>,
        wait: Duration,
    },
}

/// Block candidates per second submitted beyond the share cap.
const BLOCK_RATE: f64 = 10.0;

/// Unit counters kept per job and terms; this many at most (the oldest go first).
const COUNTERS: usize = 64;

/// Values kept per key, at most [`COUNTERS`] (the oldest go first).
struct Kept<T> {
    values: HashMap<u64, Arc<T>>,
    order: VecDeque<u64>,
}

impl<T> Default for Kept<T> {
    fn default() -> Self {
        Kept {
            values: HashMap::new(),
            order: VecDeque::new(),
        }
    }
}

/// What the worker remembers from one session to the next: the subscription id to present
/// when it reconnects (a pool that resumes the session gives back the same extranonce1, and
/// one of several edges hands the session over), and the search counters per job and
/// extranonce1, so a resumed session carries on where it stopped instead of sending shares
/// it already sent (a fresh extranonce1 keys fresh counters).
#[derive(Default)]
pub struct Memory {
    inner: parking_lot::Mutex<Remembered>,
}

#[derive(Default)]
struct Remembered {
    subscription: Option<SubscriptionId>,
    extranonce2s: Kept<AtomicU64>,
    cursors: Kept<parking_lot::Mutex<Option<(u64, u64)>>>,
}

impl Memory {
    /// The subscription id of the last session, to present at the next subscribe.
    pub fn subscription(&self) -> Option<SubscriptionId> {
        self.inner.lock().subscription.clone()
    }
}

/// The entry under `key` of one of the bounded maps, made when new.
fn kept<T: Default>(m: &mut Kept<T>, key: u64) -> Arc<T> {
    if let Some(v) = m.values.get(&key) {
        return v.clone();
    }
    if m.order.len() >= COUNTERS {
        if let Some(old) = m.order.pop_front() {
            m.values.remove(&old);
        }
    }
    m.order.push_back(key);
    m.values.entry(key).or_default().clone()
}

/// The pool's terms and the current job, as far as this session knows them.
pub struct PoolState {
    pub connection: u64,
    /// The mask asked for in `mining.configure` (none: no version rolling asked).
    asked_mask: Option<VersionMask>,
    rolling_agreed: bool,
    extranonce1: Option<Extranonce1>,
    extranonce2_size: usize,
    difficulty: Difficulty,
    floor: Option<Difficulty>,
    version_mask: Option<VersionMask>,
    job: Option<Notify>,
    memory: Arc<Memory>,
    cap: SubmitCap,
    /// Room for block candidates beyond the cap (a few per second: on a real network blocks
    /// are far rarer; on an easy test network the cap is still bounded).
    block_cap: SubmitCap,
    /// Whether any work was published (the session delivered something to mine).
    pub mined: bool,
    pub logs: LogLimit,
}

impl PoolState {
    pub fn new(connection: u64, asked_mask: Option<VersionMask>, max_share_rate: f64) -> Self {
        PoolState {
            connection,
            asked_mask,
            rolling_agreed: false,
            extranonce1: None,
            extranonce2_size: 0,
            difficulty: Difficulty::ONE,
            floor: None,
            version_mask: None,
            job: None,
            memory: Arc::default(),
            cap: SubmitCap::new(max_share_rate),
            block_cap: SubmitCap::new(BLOCK_RATE),
            mined: false,
            logs: LogLimit::default(),
        }
    }

    /// Remember into `memory` (kept by the caller from one session to the next).
    pub fn remembering(mut self, memory: Arc<Memory>) -> Self {
        self.memory = memory;
        self
    }

    pub fn job(&self) -> Option<&Notify> {
        self.job.as_ref()
    }

    /// Whether one more submit fits under the cap now (block candidates have a little room
    /// of their own beyond it).
    pub fn take_submit(&mut self, is_block: bool) -> bool {
        self.cap.take() || (is_block && self.block_cap.take())
    }

    /// An answer to one of our requests. `Err` ends the session (the pool broke the protocol
    /// in a way the session cannot go on from).
    pub fn on_response(
        &mut self,
        kind: Pending,
        outcome: Result<Value, StratumError>,
        board: &WorkBoard,
        status: &Status,
    ) -> Result<(), String> {
        match kind {
            Pending::Configure => {
                let granted = outcome
                    .ok()
                    .and_then(|v| ConfigureResult::from_value(&v).ok())
                    .and_then(|c| c.version_rolling);
                self.rolling_agreed = granted.is_some() && self.asked_mask.is_some();
                self.version_mask = self.agreed(granted);
                tracing::info!(mask = ?self.version_mask, "version rolling");
            }
            Pending::Subscribe => match outcome.map(|v| SubscribeResult::from_value(&v)) {
                Ok(Ok(s)) => {
                    let id = s
                        .subscriptions
                        .iter()
                        .find(|(method, _)| method == "mining.notify")
                        .or(s.subscriptions.first())
                        .and_then(|(_, id)| SubscriptionId::parse(id));
                    self.memory.inner.lock().subscription = id;
                    self.extranonce1 = Some(s.extranonce1);
                    self.extranonce2_size = s.extranonce2_size;
                    self.publish(board, status, true);
                }
                Ok(Err(e)) => return Err(format!("bad subscribe answer: {e}")),
                Err(e) => return Err(format!("subscribe refused: {}", PoolText(&e.to_string()))),
            },
            Pending::Authorize => match outcome {
                Ok(Value::Bool(true)) => tracing::info!("authorized"),
                Ok(other) => tracing::error!(
                    answer = %PoolText(&other.to_string()),
                    "authorization refused; check the login"
                ),
                Err(e) => tracing::error!(
                    error = %PoolText(&e.to_string()),
                    "authorization refused; check the login"
                ),
            },
            Pending::Submit => match outcome {
                Ok(Value::Bool(true)) => {
                    status.accept();
                    if self.logs.allow("accepted") {
                        tracing::info!("{} yes!", status.line());
                    }
                }
                Ok(other) => {
                    status.reject("rejected");
                    if self.logs.allow("rejected") {
                        tracing::warn!(answer = %PoolText(&other.to_string()), "{} booooo", status.line());
                    }
                }
                Err(e) => {
                    let reason = match e.code {
                        protocol::ErrorCode::JobNotFound => "stale",
                        protocol::ErrorCode::Duplicate => "duplicate",
                        protocol::ErrorCode::LowDifficulty => "low-difficulty",
                        protocol::ErrorCode::Unauthorized => "unauthorized",
                        protocol::ErrorCode::NotSubscribed => "not-subscribed",
                        _ => "other",
                    };
                    status.reject(reason);
                    if self.logs.allow("rejected") {
                        tracing::warn!(reason, message = %PoolText(&e.message), "{} booooo", status.line());
                    }
                }
            },
            Pending::Other => {}
        }
        Ok(())
    }

    /// A notification from the pool.
    pub fn on_notification(
        &mut self,
        n: ServerNotification,
        board: &WorkBoard,
        status: &Status,
    ) -> Heard {
        match n {
            ServerNotification::Notify(job) => {
                let clean =
                    job.clean_jobs || self.job.as_ref().is_none_or(|j| j.prevhash != job.prevhash);
                tracing::debug!(job = %PoolText(job.job_id.as_str()), clean, "new job");
                self.job = Some(job);
                self.publish(board, status, clean);
            }
            ServerNotification::SetDifficulty(d) => {
                let raised = d > self.difficulty;
                self.difficulty = d;
                status.set_difficulty(d.as_f64());
                if self.logs.allow("difficulty") {
                    tracing::info!(difficulty = %d, "difficulty");
                }
                // A higher difficulty is honoured at once (never submit shares the pool will
                // refuse); a lower one waits for the next job, as Stratum says.
                if raised {
                    self.publish(board, status, false);
                }
            }
            ServerNotification::SetExtranonce {
                extranonce1,
                extranonce2_size,
            } => {
                let same = self.extranonce1.as_ref() == Some(&extranonce1)
                    && self.extranonce2_size == extranonce2_size;
                if self.logs.allow("extranonce") {
                    tracing::info!(%extranonce1, extranonce2_size, same, "new extranonce");
                }
                self.extranonce1 = Some(extranonce1);
                self.extranonce2_size = extranonce2_size;
                // The same terms again: the work goes on where it was (the counter is kept).
                if !same {
                    self.publish(board, status, true);
                }
            }
            ServerNotification::SetVersionMask(m) => {
                if self.rolling_agreed {
                    self.version_mask = self.agreed(Some(m));
                    if self.logs.allow("version-mask") {
                        tracing::info!(mask = ?self.version_mask, "version mask changed");
                    }
                    self.publish(board, status, true);
                }
            }
            ServerNotification::Reconnect {
                host,
                port,
                wait_secs,
            } => {
                let to = match (host, port) {
                    // The transport (TLS or not) is the session's: the caller keeps it.
                    (Some(h), Some(p)) => Some(PoolUrl {
                        host: h,
                        port: p,
                        tls: false,
                    }),
                    _ => None,
                };
                return Heard::Reconnect {
                    to,
                    wait: Duration::from_secs(wait_secs.unwrap_or(0).min(600)),
                };
            }
            ServerNotification::ShowMessage(m) => {
                if self.logs.allow("message") {
                    tracing::info!(message = %PoolText(&m), "pool says");
                }
            }
        }
        Heard::Nothing
    }

    /// Once a second: the floor follows the measured hashrate; work is rebuilt when the
    /// floor that binds moved by 2x or more.
    pub fn tick(&mut self, board: &WorkBoard, status: &Status) {
        let floor = self.cap.floor(status.hashrate(Duration::from_secs(10)));
        let binding = |f: Option<Difficulty>, d: Difficulty| f.filter(|f| *f > d);
        // `self.floor` stays what the published work uses, so small moves add up to a
        // rebuild instead of drifting past 2x unnoticed.
        if submit_cap::moved(
            binding(self.floor, self.difficulty),
            binding(floor, self.difficulty),
        ) {
            self.floor = floor;
            self.publish(board, status, false);
        }
    }

    /// What is rolled: the bits both sides agreed on.
    fn agreed(&self, granted: Option<VersionMask>) -> Option<VersionMask> {
        match (self.asked_mask, granted) {
            (Some(a), Some(g)) => Some(VersionMask(a.0 & g.0)).filter(|m| m.0 != 0),
            _ => None,
        }
    }

    /// Where this job's units come from under these terms: its extranonce2 counter (per job
    /// and extranonce1, whatever the mask) and its cursor (per mask), kept while they are
    /// among the last [`COUNTERS`] seen.
    fn source(&mut self, job: &Notify, terms: &Terms) -> UnitSource {
        let mut h = DefaultHasher::new();
        // Everything that makes the header but ntime (which follows the clock anyway); not
        // the job id: the same job under a new id is the same search.
        for v in job.to_params().iter().take(7).skip(1) {
            v.to_string().hash(&mut h);
        }
        terms.extranonce1.0.hash(&mut h);
        terms.extranonce2_size.hash(&mut h);
        let job_key = h.finish();
        terms.version_mask.map(|m| m.0).hash(&mut h);
        let mask_key = h.finish();
        let mut memory = self.memory.inner.lock();
        let extranonce2 = kept(&mut memory.extranonce2s, job_key);
        let cursor = kept(&mut memory.cursors, mask_key);
        UnitSource {
            extranonce2,
            cursor,
        }
    }

    fn publish(&mut self, board: &WorkBoard, status: &Status, clean: bool) {
        let (Some(job), Some(en1)) = (self.job.clone(), self.extranonce1.clone()) else {
            return;
        };
        if self.floor.is_none() {
            self.floor = self.cap.floor(status.hashrate(Duration::from_secs(10)));
        }
        let terms = Terms {
            extranonce1: en1,
            extranonce2_size: self.extranonce2_size,
            difficulty: self.difficulty,
            floor: self.floor,
            version_mask: self.version_mask,
        };
        let source = self.source(&job, &terms);
        self.mined = true;
        board.publish(JobWork::new(job, terms, self.connection, source), clean);
    }
}
