//! The rules over every worker, at each look: read the live statistics (what sessions
//! recorded), feed each worker's [`Watch`] what it did since the last look, and turn what
//! changed into [`Alert`]s, each firing with its resolve. The engine only reads the
//! statistics; nothing on the share path waits for it.
//!
//! Accounts of two workers or more are watched too, as one worker made of all of them: the
//! same drop test on their summed shares. Forty rigs that each lose a tenth are no single
//! rig's drop, but the account has lost a tenth of its forty rigs' worth of shares, and its
//! evidence piles up forty times faster than any one of theirs. Only the drop is told of
//! an account: a rig offline or rejecting is told by the rig's own rules.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Duration;

use chrono::{DateTime, Utc};
use protocol::account_of;
use serde::{Deserialize, Serialize};

use super::pool_watch::{PoolSample, PoolWatch};
use super::watch::{Change, Observation, OfflineCause, Watch, WatchConfig};

use crate::stats::Stats;

/// Alerts kept for the API once resolved.
const HISTORY: usize = 1000;
/// A worker offline this long is forgotten (its alert stays in the history).
const FORGET_AFTER: Duration = Duration::from_secs(7 * 24 * 3600);

/// Which rule an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    WorkerOffline,
    HashrateDropped,
    /// An account's hashrate, summed over its workers, dropped.
    AccountHashrateDropped,
    RejectsHigh,
    /// A test a miner asked for, to see a destination works.
    Test,
    /// Events, told once (see [`super::events`]).
    BlockFound,
    PayoutSent,
    PayoutFailed,
    BalanceMatured,
    /// The operator's rules about the pool as a whole (see [`super::pool_watch`]).
    StoreDown,
    TemplateStale,
    PeersGone,
    PayoutsFailing,
    SharesLost,
    /// A peer's branch left the best chain deeper than a reorganisation may reach.
    DeepForkRefused,
}

impl Rule {
    /// The rules that fire and resolve (counted in `pool_alerts_firing`).
    pub const ALL: [Rule; 10] = [
        Rule::WorkerOffline,
        Rule::HashrateDropped,
        Rule::AccountHashrateDropped,
        Rule::RejectsHigh,
        Rule::StoreDown,
        Rule::TemplateStale,
        Rule::PeersGone,
        Rule::PayoutsFailing,
        Rule::SharesLost,
        Rule::DeepForkRefused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Rule::WorkerOffline => "worker_offline",
            Rule::HashrateDropped => "hashrate_dropped",
            Rule::AccountHashrateDropped => "account_hashrate_dropped",
            Rule::RejectsHigh => "rejects_high",
            Rule::Test => "test",
            Rule::BlockFound => "block_found",
            Rule::PayoutSent => "payout_sent",
            Rule::PayoutFailed => "payout_failed",
            Rule::BalanceMatured => "balance_matured",
            Rule::StoreDown => "store_down",
            Rule::TemplateStale => "template_stale",
            Rule::PeersGone => "peers_gone",
            Rule::PayoutsFailing => "payouts_failing",
            Rule::SharesLost => "shares_lost",
            Rule::DeepForkRefused => "deep_fork_refused",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    Firing,
    Resolved,
    /// An event: said once, with nothing to resolve.
    Notice,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
            AlertState::Notice => "notice",
        }
    }
}

/// The account (and worker) of alerts about the pool as a whole: the operator's notices and
/// the pool-wide rules.
pub const POOL: &str = "(pool)";

/// One alert, firing or resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub rule: Rule,
    pub state: AlertState,
    pub worker: String,
    pub account: String,
    pub at: DateTime<Utc>,
    /// One line for people.
    pub summary: String,
}

impl Alert {
    /// The alert a miner's "send a test" sends.
    pub fn test(account: &str, at: DateTime<Utc>) -> Alert {
        Alert {
            rule: Rule::Test,
            state: AlertState::Firing,
            worker: account.to_owned(),
            account: account.to_owned(),
            at,
            summary: format!("a test alert for {account}: this destination works"),
        }
    }
}

/// What one worker's counters were at the last look.
#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    accepted: u64,
    rejected: u64,
    work: f64,
}

struct Tracked {
    watch: Watch,
    seen: Seen,
    idle: Duration,
}

/// What one look saw of one account: its tracked workers' observations summed.
#[derive(Default)]
struct AccountLook {
    workers: usize,
    o: Observation,
    /// Hashrate (1 h), and hashrate over difficulty, summed over its workers: their ratio is
    /// the difficulty of the account's average share.
    hashrate: f64,
    shares_rate: f64,
}

impl AccountLook {
    fn add(&mut self, o: &Observation, hashrate: f64) {
        self.workers += 1;
        self.o.accepted += o.accepted;
        self.o.accepted_difficulty += o.accepted_difficulty;
        self.o.rejected += o.rejected;
        self.o.sessions += o.sessions;
        if o.difficulty > 0.0 && hashrate > 0.0 {
            self.hashrate += hashrate;
            self.shares_rate += hashrate / o.difficulty;
        }
    }

    /// The account as one worker: its shares come at the rate of all of its workers' shares
    /// together, each of the average difficulty.
    fn observation(&self) -> Observation {
        Observation {
            difficulty: if self.shares_rate > 0.0 {
                self.hashrate / self.shares_rate
            } else {
                0.0
            },
            ..self.o
        }
    }
}

/// The rules over every worker, and what is firing.
pub struct Engine {
    cfg: WatchConfig,
    workers: HashMap<String, Tracked>,
    firing: BTreeMap<(String, Rule), Alert>,
    history: VecDeque<Alert>,
    pool: PoolWatch,
    /// Accounts of two tracked workers or more, watched as one.
    accounts: HashMap<String, Watch>,
    /// Workers forgotten after a week away, with their sessions opened by then (no more
    /// than the statistics hold).
    forgotten: HashMap<String, u64>,
    /// Workers mining on another edge of the pool now: that edge watches them; here they
    /// are forgotten (not offline), and watched again from a new session here.
    elsewhere: HashSet<String>,
}

fn hashrate(h: f64) -> String {
    protocol::Hashrate(h).to_string()
}

impl Engine {
    pub fn new(cfg: WatchConfig) -> Engine {
        Engine {
            cfg,
            workers: HashMap::new(),
            firing: BTreeMap::new(),
            history: VecDeque::new(),
            pool: PoolWatch::new(cfg.pool_hold),
            accounts: HashMap::new(),
            forgotten: HashMap::new(),
            elsewhere: HashSet::new(),
        }
    }

    /// The workers mining on other edges now (several pool-servers on one database).
    pub fn set_elsewhere(&mut self, workers: HashSet<String>) {
        self.elsewhere = workers;
    }

    /// One look at the pool as a whole, `dt` after the last; the alerts that changed.
    pub fn look_pool(&mut self, s: &PoolSample, now: DateTime<Utc>, dt: Duration) -> Vec<Alert> {
        let out: Vec<Alert> = self
            .pool
            .observe(dt, s)
            .into_iter()
            .map(|c| Alert {
                rule: c.rule,
                state: if c.firing {
                    AlertState::Firing
                } else {
                    AlertState::Resolved
                },
                worker: POOL.to_owned(),
                account: POOL.to_owned(),
                at: now,
                summary: c.summary,
            })
            .collect();
        self.record(&out);
        out
    }

    /// Keep `alerts` in what fires and in the history.
    fn record(&mut self, alerts: &[Alert]) {
        for a in alerts {
            let key = (a.worker.clone(), a.rule);
            match a.state {
                AlertState::Firing => self.firing.insert(key, a.clone()),
                AlertState::Resolved | AlertState::Notice => self.firing.remove(&key),
            };
            if self.history.len() == HISTORY {
                self.history.pop_front();
            }
            self.history.push_back(a.clone());
        }
    }

    /// What fires now, by worker and rule.
    pub fn firing(&self) -> Vec<Alert> {
        self.firing.values().cloned().collect()
    }

    /// The last alerts (firing and resolved), newest first.
    pub fn history(&self) -> Vec<Alert> {
        self.history.iter().rev().cloned().collect()
    }

    /// One look over every worker `dt` after the last; the alerts that changed.
    pub fn look(&mut self, stats: &Stats, now: DateTime<Utc>, dt: Duration) -> Vec<Alert> {
        let mut current: HashMap<String, (Seen, f64, u32, f64)> = HashMap::new();
        let mut opened: Vec<(String, u64)> = Vec::new();
        stats.for_each_worker_numbers(now, |name, n| {
            let seen = Seen {
                accepted: n.accepted,
                rejected: n.rejected,
                work: n.accepted_difficulty,
            };
            if n.opened > 0 {
                opened.push((name.clone(), n.opened));
            }
            current.insert(name, (seen, n.difficulty, n.sessions, n.hashrate[2]));
        });
        // A worker is watched from its first session in this run, even one that came and
        // went between two looks: one that was already gone before the pool started was
        // reported by the run that saw it go.
        // A worker that moved to another edge is that edge's to watch: forgotten here,
        // quietly, at the sessions it had opened here.
        let moved: Vec<String> = self
            .workers
            .keys()
            .filter(|n| self.elsewhere.contains(*n) && current.get(*n).is_none_or(|c| c.2 == 0))
            .cloned()
            .collect();
        for name in moved {
            self.workers.remove(&name);
            self.firing.retain(|(w, _), _| *w != name);
            let count = opened
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(0, |(_, c)| *c);
            self.forgotten.insert(name, count);
        }
        for (name, count) in &opened {
            // One forgotten after a week away comes back only with a new session.
            let new_session = self.forgotten.get(name).is_none_or(|at| count > at);
            if new_session && !self.workers.contains_key(name) {
                self.forgotten.remove(name);
                let tracked = Tracked {
                    watch: Watch::new(self.cfg),
                    seen: current[name].0,
                    idle: Duration::ZERO,
                };
                self.workers.insert(name.clone(), tracked);
            }
        }
        let mut out = Vec::new();
        let mut forget = Vec::new();
        let mut accounts: HashMap<&str, AccountLook> = HashMap::new();
        for (name, t) in self.workers.iter_mut() {
            // A worker the statistics forgot has no session and sends nothing.
            let (seen, difficulty, sessions, rate) =
                current.get(name).copied().unwrap_or((t.seen, 0.0, 0, 0.0));
            let o = Observation {
                accepted: seen.accepted.saturating_sub(t.seen.accepted),
                accepted_difficulty: (seen.work - t.seen.work).max(0.0),
                rejected: seen.rejected.saturating_sub(t.seen.rejected),
                difficulty,
                sessions,
            };
            t.seen = seen;
            t.idle = if sessions == 0 {
                t.idle + dt
            } else {
                Duration::ZERO
            };
            for change in t.watch.observe(dt, &o) {
                out.push(alert_for(name, change, now));
            }
            accounts.entry(account_of(name)).or_default().add(&o, rate);
            if t.idle >= FORGET_AFTER {
                forget.push(name.clone());
            }
        }
        // An account is watched from its second worker on, and while it has any.
        self.accounts
            .retain(|name, _| accounts.contains_key(name.as_str()));
        for (name, look) in &accounts {
            let watch = match self.accounts.get_mut(*name) {
                Some(w) => w,
                None if look.workers >= 2 => self
                    .accounts
                    .entry((*name).to_owned())
                    .or_insert_with(|| Watch::new(self.cfg)),
                None => continue,
            };
            for change in watch.observe(dt, &look.observation()) {
                out.extend(account_alert(name, look.workers, change, now));
            }
        }
        let opened: HashMap<String, u64> = opened.into_iter().collect();
        for name in forget {
            self.workers.remove(&name);
            let count = opened.get(&name).copied().unwrap_or(0);
            self.forgotten.insert(name, count);
        }
        self.record(&out);
        out
    }
}

/// The account's alert for `change`: only its hashrate's drop and return.
fn account_alert(
    account: &str,
    workers: usize,
    change: Change,
    at: DateTime<Utc>,
) -> Option<Alert> {
    let (state, summary) = match change {
        Change::HashrateDropped { baseline, recent } => (
            AlertState::Firing,
            format!(
                "{account}'s hashrate dropped: {} over its {workers} workers in the last 10 minutes, its usual {}",
                hashrate(recent),
                hashrate(baseline)
            ),
        ),
        Change::HashrateRestored { baseline, recent, rebaselined } => (
            AlertState::Resolved,
            if rebaselined {
                format!(
                    "{account} has run at {} for a day: that is its usual rate now",
                    hashrate(recent)
                )
            } else {
                format!(
                    "{account}'s hashrate is back: {} over its {workers} workers (usual {})",
                    hashrate(recent),
                    hashrate(baseline)
                )
            },
        ),
        _ => return None,
    };
    Some(Alert {
        rule: Rule::AccountHashrateDropped,
        state,
        worker: account.to_owned(),
        account: account.to_owned(),
        at,
        summary,
    })
}

fn alert_for(worker: &str, change: Change, at: DateTime<Utc>) -> Alert {
    let (rule, state, summary) = match change {
        Change::Offline(OfflineCause::Disconnected) => (
            Rule::WorkerOffline,
            AlertState::Firing,
            format!("{worker} is offline: no connection"),
        ),
        Change::Offline(OfflineCause::Silent { expected_shares }) => (
            Rule::WorkerOffline,
            AlertState::Firing,
            format!(
                "{worker} is offline: connected, but no share while {expected_shares:.0} were expected"
            ),
        ),
        Change::Online => (
            Rule::WorkerOffline,
            AlertState::Resolved,
            format!("{worker} is back online"),
        ),
        Change::HashrateDropped { baseline, recent } => (
            Rule::HashrateDropped,
            AlertState::Firing,
            format!(
                "{worker}'s hashrate dropped: {} in the last 10 minutes, its usual {}",
                hashrate(recent),
                hashrate(baseline)
            ),
        ),
        Change::HashrateRestored { baseline, recent, rebaselined } => (
            Rule::HashrateDropped,
            AlertState::Resolved,
            if rebaselined {
                format!(
                    "{worker} has run at {} for a day: that is its usual rate now",
                    hashrate(recent)
                )
            } else {
                format!(
                    "{worker}'s hashrate is back: {} (usual {})",
                    hashrate(recent),
                    hashrate(baseline)
                )
            },
        ),
        Change::RejectsHigh { ratio } => (
            Rule::RejectsHigh,
            AlertState::Firing,
            format!("{worker} has {:.1} % of its shares rejected", ratio * 100.0),
        ),
        Change::RejectsNormal { ratio } => (
            Rule::RejectsHigh,
            AlertState::Resolved,
            format!("{worker}'s rejects are back to {:.1} %", ratio * 100.0),
        ),
    };
    let account = account_of(worker).to_owned();
    Alert {
        rule,
        state,
        worker: worker.to_owned(),
        account,
        at,
        summary,
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
