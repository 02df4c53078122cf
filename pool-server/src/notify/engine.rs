//! The rules over every worker, at each look: read the live statistics (what sessions
//! recorded), feed each worker's [`Watch`] what it did since the last look, and turn what
//! changed into [`Alert`]s, each firing with its resolve. The engine only reads the
//! statistics; nothing on the share path waits for it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::events::POOL;
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
}

impl Rule {
    /// The rules that fire and resolve (counted in `pool_alerts_firing`).
    pub const ALL: [Rule; 8] = [
        Rule::WorkerOffline,
        Rule::HashrateDropped,
        Rule::RejectsHigh,
        Rule::StoreDown,
        Rule::TemplateStale,
        Rule::PeersGone,
        Rule::PayoutsFailing,
        Rule::SharesLost,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Rule::WorkerOffline => "worker_offline",
            Rule::HashrateDropped => "hashrate_dropped",
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

/// The rules over every worker, and what is firing.
pub struct Engine {
    cfg: WatchConfig,
    workers: HashMap<String, Tracked>,
    firing: BTreeMap<(String, Rule), Alert>,
    history: VecDeque<Alert>,
    pool: PoolWatch,
    /// Workers forgotten after a week away, with their sessions opened by then (no more
    /// than the statistics hold).
    forgotten: HashMap<String, u64>,
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
            forgotten: HashMap::new(),
        }
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
        let mut current: HashMap<String, (Seen, f64, u32)> = HashMap::new();
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
            current.insert(name, (seen, n.difficulty, n.sessions));
        });
        // A worker is watched from its first session in this run, even one that came and
        // went between two looks: one that was already gone before the pool started was
        // reported by the run that saw it go.
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
        for (name, t) in self.workers.iter_mut() {
            // A worker the statistics forgot has no session and sends nothing.
            let (seen, difficulty, sessions) =
                current.get(name).copied().unwrap_or((t.seen, 0.0, 0));
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
            if t.idle >= FORGET_AFTER {
                forget.push(name.clone());
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
    let account = worker.split_once('.').map_or(worker, |(a, _)| a).to_owned();
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
mod tests {
    use super::*;

    fn offline_alerts(e: &mut Engine, stats: &Stats, looks: usize) -> Vec<Alert> {
        let now = Utc::now();
        (0..looks)
            .flat_map(|_| e.look(stats, now, Duration::from_secs(1)))
            .filter(|a| a.rule == Rule::WorkerOffline && a.state == AlertState::Firing)
            .collect()
    }

    /// Rules with a 3 s grace, and statistics where alice.rig1 came and went before a look.
    fn came_and_went() -> (Engine, Stats) {
        let e = Engine::new(WatchConfig {
            disconnect_grace: Duration::from_secs(3),
            ..WatchConfig::default()
        });
        let stats = Stats::new();
        stats.session_opened("alice.rig1", Utc::now());
        stats.session_closed("alice.rig1");
        (e, stats)
    }

    #[test]
    fn a_worker_that_came_and_went_between_two_looks_is_still_reported() {
        let (mut e, stats) = came_and_went();
        let fired = offline_alerts(&mut e, &stats, 5);
        assert_eq!(fired.len(), 1, "{fired:?}");
        assert_eq!(fired[0].worker, "alice.rig1");
    }

    #[test]
    fn a_worker_forgotten_after_a_week_away_is_not_reported_again_until_it_returns() {
        let (mut e, stats) = came_and_went();
        assert_eq!(offline_alerts(&mut e, &stats, 5).len(), 1);
        // A week away: forgotten, and not told again.
        let week = FORGET_AFTER.as_secs() as usize;
        let now = Utc::now();
        for _ in 0..(week / 3600 + 1) {
            e.look(&stats, now, Duration::from_secs(3600));
        }
        assert!(e.workers.is_empty(), "forgotten");
        assert!(offline_alerts(&mut e, &stats, 10).is_empty());
        // Back and gone again: watched, and told.
        stats.session_opened("alice.rig1", Utc::now());
        stats.session_closed("alice.rig1");
        assert_eq!(offline_alerts(&mut e, &stats, 5).len(), 1);
    }
}
