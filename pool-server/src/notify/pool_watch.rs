//! The operator's rules, about the pool as a whole: the share database away (shares spooled
//! to disk), the template stale, every peer gone while peers were configured, payouts failing,
//! shares lost, a peer's branch refused because it forks deeper than a reorganisation may
//! reach (the network disagrees about blocks whose credits matured: an attack or a split,
//! which only the operator can settle). Read from the pool's own series (the same the Prometheus rules in
//! `monitoring/alerts.yml` read), each firing once its condition has held for
//! `--alert-pool-hold`, and resolved as soon as it no longer holds.

use std::collections::VecDeque;
use std::time::Duration;

use prometheus::core::Collector;

use super::Rule;
use crate::metrics::Metrics;

/// A job older than this means the template source is not refreshing.
const JOB_MAX_AGE_SECS: f64 = 180.0;
/// Payouts are failing when some failed and none was sent within this.
const PAYOUT_WINDOW: Duration = Duration::from_secs(3600);
/// Shares lost within this keep the alert firing.
const LOST_WINDOW: Duration = Duration::from_secs(600);
/// A deep fork refused within this keeps the alert firing.
const DEEP_FORK_WINDOW: Duration = Duration::from_secs(3600);

/// What the pool's series say at one look.
#[derive(Debug, Clone, Copy, Default)]
pub struct PoolSample {
    pub store_up: bool,
    pub template_stale: bool,
    pub job_age_secs: f64,
    pub peers_configured: i64,
    pub peers: i64,
    pub payouts_failed: u64,
    pub payouts_sent: u64,
    pub shares_lost: u64,
    pub deep_forks_refused: u64,
}

impl PoolSample {
    pub fn read(m: &Metrics) -> PoolSample {
        let payouts = |result: &str| {
            m.rewards
                .payouts
                .get_metric_with_label_values(&[result])
                .map(|c| c.get())
                .unwrap_or(0)
        };
        let peers: f64 = m
            .p2p
            .peers
            .collect()
            .iter()
            .flat_map(|family| family.get_metric())
            .map(|metric| metric.get_gauge().get_value())
            .sum();
        PoolSample {
            store_up: m.store.store_up.get() != 0,
            template_stale: m.chain.template_stale.get() != 0,
            job_age_secs: m.job_age.get(),
            peers_configured: m.p2p.peers_configured.get(),
            peers: peers as i64,
            payouts_failed: payouts("failed") + payouts("unknown"),
            payouts_sent: payouts("sent"),
            shares_lost: m.store.store_events_lost.get(),
            deep_forks_refused: m
                .p2p
                .refused_blocks
                .get_metric_with_label_values(&["fork-too-deep"])
                .map(|c| c.get())
                .unwrap_or(0),
        }
    }
}

/// The growing counters the rules read, at one look.
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    at: Duration,
    payouts_failed: u64,
    payouts_sent: u64,
    shares_lost: u64,
    deep_forks: u64,
}

impl Counters {
    /// How much each grew since `old`.
    fn since(&self, old: &Counters) -> Counters {
        Counters {
            at: self.at.saturating_sub(old.at),
            payouts_failed: self.payouts_failed.saturating_sub(old.payouts_failed),
            payouts_sent: self.payouts_sent.saturating_sub(old.payouts_sent),
            shares_lost: self.shares_lost.saturating_sub(old.shares_lost),
            deep_forks: self.deep_forks.saturating_sub(old.deep_forks),
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Condition {
    bad_for: Duration,
    firing: bool,
}

/// The pool-wide rules and where each stands.
pub struct PoolWatch {
    hold: Duration,
    elapsed: Duration,
    conditions: [Condition; PoolWatch::RULES.len()],
    /// The counters at each look of the last hour.
    counters: VecDeque<Counters>,
}

/// A change of one pool-wide rule: fired (with what it says) or resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolChange {
    pub rule: Rule,
    pub firing: bool,
    pub summary: String,
}

impl PoolWatch {
    pub const RULES: [Rule; 6] = [
        Rule::StoreDown,
        Rule::TemplateStale,
        Rule::PeersGone,
        Rule::PayoutsFailing,
        Rule::SharesLost,
        Rule::DeepForkRefused,
    ];

    pub fn new(hold: Duration) -> PoolWatch {
        PoolWatch {
            hold,
            elapsed: Duration::ZERO,
            conditions: Default::default(),
            counters: VecDeque::new(),
        }
    }

    /// The counters' growth over the last `window`.
    fn growth(&self, window: Duration, now: &Counters) -> Counters {
        let since = self.elapsed.saturating_sub(window);
        let old = self.counters.iter().find(|c| c.at >= since).unwrap_or(now);
        now.since(old)
    }

    /// One look `dt` after the last; what changed.
    pub fn observe(&mut self, dt: Duration, s: &PoolSample) -> Vec<PoolChange> {
        self.elapsed += dt;
        let now = Counters {
            at: self.elapsed,
            payouts_failed: s.payouts_failed,
            payouts_sent: s.payouts_sent,
            shares_lost: s.shares_lost,
            deep_forks: s.deep_forks_refused,
        };
        let payouts = self.growth(PAYOUT_WINDOW, &now);
        let (failed, sent) = (payouts.payouts_failed, payouts.payouts_sent);
        let lost = self.growth(LOST_WINDOW, &now).shares_lost;
        let deep_forks = self.growth(DEEP_FORK_WINDOW, &now).deep_forks;
        self.counters.push_back(now);
        let longest = PAYOUT_WINDOW.max(DEEP_FORK_WINDOW);
        while self
            .counters
            .front()
            .is_some_and(|c| c.at + longest < self.elapsed)
        {
            self.counters.pop_front();
        }
        let verdicts: [(bool, String, String); 6] = [
            (
                !s.store_up,
                "the share database is unreachable: shares are spooled to disk".into(),
                "the share database is back: the spool is being written".into(),
            ),
            (
                s.template_stale || s.job_age_secs > JOB_MAX_AGE_SECS,
                format!(
                    "the block template is stale: the current job is {:.0} s old",
                    s.job_age_secs
                ),
                "the block template is fresh again".into(),
            ),
            (
                s.peers_configured > 0 && s.peers == 0,
                format!(
                    "no P2P peer although {} are configured: the pool mines alone",
                    s.peers_configured
                ),
                format!("{} P2P peers again", s.peers),
            ),
            (
                failed > 0 && sent == 0,
                format!("{failed} payouts failed in the last hour and none was sent"),
                "payouts are being sent again".into(),
            ),
            (
                lost > 0,
                format!("{lost} share events lost in the last 10 minutes"),
                "no share event lost for 10 minutes".into(),
            ),
            (
                deep_forks > 0,
                format!(
                    "peers' blocks refused {deep_forks} times in the last hour: their branch \
                     leaves our best chain deeper than a reorganisation may reach (an attack, or a network \
                     split to settle by hand)"
                ),
                "no deep fork refused for an hour".into(),
            ),
        ];
        let mut out = Vec::new();
        for ((c, rule), (bad, fire, resolve)) in self
            .conditions
            .iter_mut()
            .zip(PoolWatch::RULES)
            .zip(verdicts)
        {
            c.bad_for = if bad { c.bad_for + dt } else { Duration::ZERO };
            if bad && !c.firing && c.bad_for >= self.hold {
                c.firing = true;
                out.push(PoolChange {
                    rule,
                    firing: true,
                    summary: fire,
                });
            } else if !bad && c.firing {
                c.firing = false;
                out.push(PoolChange {
                    rule,
                    firing: false,
                    summary: resolve,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn healthy() -> PoolSample {
        PoolSample {
            store_up: true,
            job_age_secs: 10.0,
            ..PoolSample::default()
        }
    }

    #[test]
    fn a_condition_fires_once_it_has_held_and_resolves_when_it_ends() {
        let mut w = PoolWatch::new(Duration::from_secs(3));
        let down = PoolSample {
            store_up: false,
            ..healthy()
        };
        assert!(w.observe(S, &down).is_empty());
        assert!(w.observe(S, &down).is_empty());
        let c = w.observe(S, &down);
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].rule, c[0].firing), (Rule::StoreDown, true));
        assert!(w.observe(S, &down).is_empty(), "said once");
        let c = w.observe(S, &healthy());
        assert_eq!((c[0].rule, c[0].firing), (Rule::StoreDown, false));
    }

    #[test]
    fn a_blip_shorter_than_the_hold_says_nothing() {
        let mut w = PoolWatch::new(Duration::from_secs(3));
        let stale = PoolSample {
            job_age_secs: 500.0,
            ..healthy()
        };
        for _ in 0..2 {
            assert!(w.observe(S, &stale).is_empty());
            assert!(w.observe(S, &healthy()).is_empty());
        }
    }

    #[test]
    fn payouts_fail_only_while_none_is_sent() {
        let mut w = PoolWatch::new(S);
        let mut s = healthy();
        assert!(w.observe(S, &s).is_empty());
        s.payouts_failed = 2;
        let c = w.observe(S, &s);
        assert_eq!((c[0].rule, c[0].firing), (Rule::PayoutsFailing, true));
        s.payouts_sent = 1;
        let c = w.observe(S, &s);
        assert_eq!((c[0].rule, c[0].firing), (Rule::PayoutsFailing, false));
    }

    #[test]
    fn peers_gone_only_when_some_were_configured() {
        let mut w = PoolWatch::new(S);
        assert!(w.observe(S, &healthy()).is_empty(), "a lone pool is fine");
        let alone = PoolSample {
            peers_configured: 2,
            ..healthy()
        };
        assert_eq!(w.observe(S, &alone)[0].rule, Rule::PeersGone);
    }

    #[test]
    fn a_deep_fork_refused_fires_for_an_hour_after_the_last() {
        let mut w = PoolWatch::new(S);
        let mut s = healthy();
        assert!(w.observe(S, &s).is_empty());
        s.deep_forks_refused = 1;
        let c = w.observe(S, &s);
        assert_eq!((c[0].rule, c[0].firing), (Rule::DeepForkRefused, true));
        assert!(c[0].summary.contains("refused 1 times"), "{}", c[0].summary);
        // A second refusal half an hour later keeps it firing an hour from then.
        let minute = Duration::from_secs(60);
        for _ in 0..30 {
            assert!(w.observe(minute, &s).is_empty());
        }
        s.deep_forks_refused = 2;
        for _ in 0..59 {
            assert!(w.observe(minute, &s).is_empty(), "still firing, said once");
        }
        let c = w.observe(2 * minute, &s);
        assert_eq!((c[0].rule, c[0].firing), (Rule::DeepForkRefused, false));
    }
}
