//! Which alerts a route or a silence is about: `key=pattern` words, all of which must hold,
//! over `account`, `worker`, `rule` and `severity`; a pattern may use `*` (any run) and `?`
//! (any one character). No words: every alert.

use std::fmt;

use super::{Alert, Rule};

/// How urgent a rule is: routes may send only what is `critical` to a pager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Critical,
    Warning,
    Info,
}

impl Severity {
    pub fn of(rule: Rule) -> Severity {
        match rule {
            Rule::WorkerOffline
            | Rule::StoreDown
            | Rule::TemplateStale
            | Rule::PeersGone
            | Rule::PayoutsFailing
            | Rule::SharesLost
            | Rule::DeepForkRefused => Severity::Critical,
            Rule::HashrateDropped
            | Rule::AccountHashrateDropped
            | Rule::RejectsHigh
            | Rule::PayoutFailed => Severity::Warning,
            Rule::Test | Rule::BlockFound | Rule::PayoutSent | Rule::BalanceMatured => {
                Severity::Info
            }
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Account,
    Worker,
    Rule,
    Severity,
}

/// `key=pattern` words, all of which must hold.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Matchers {
    words: Vec<(Key, String)>,
}

/// The longest matcher text accepted (a silence comes from the API).
const MAX_TEXT: usize = 512;

impl Matchers {
    pub fn parse(text: &str) -> Result<Matchers, String> {
        if text.len() > MAX_TEXT {
            return Err(format!("matchers are at most {MAX_TEXT} characters"));
        }
        let mut words = Vec::new();
        for word in text.split_whitespace() {
            let (key, pattern) = word
                .split_once('=')
                .ok_or_else(|| format!("{word:?}: a matcher is key=pattern"))?;
            let key = match key {
                "account" => Key::Account,
                "worker" => Key::Worker,
                "rule" => Key::Rule,
                "severity" => Key::Severity,
                _ => {
                    return Err(format!(
                        "{key:?}: match on account, worker, rule or severity"
                    ))
                }
            };
            if pattern.is_empty() {
                return Err(format!("{word:?}: an empty pattern"));
            }
            words.push((key, pattern.to_owned()));
        }
        Ok(Matchers { words })
    }

    /// Whether every word holds for `alert`.
    pub fn matches(&self, alert: &Alert) -> bool {
        self.words.iter().all(|(key, pattern)| {
            let value = match key {
                Key::Account => alert.account.as_str(),
                Key::Worker => alert.worker.as_str(),
                Key::Rule => alert.rule.as_str(),
                Key::Severity => Severity::of(alert.rule).as_str(),
            };
            glob(pattern.as_bytes(), value.as_bytes())
        })
    }

    /// Whether it names exactly one account (`account=NAME`, no wildcard): what a miner may
    /// silence for itself.
    pub fn account(&self) -> Option<&str> {
        self.words.iter().find_map(|(k, p)| {
            (*k == Key::Account && !p.contains(['*', '?'])).then_some(p.as_str())
        })
    }

    /// These matchers and `account=NAME` besides.
    pub fn with_account(mut self, account: &str) -> Matchers {
        self.words.retain(|(k, _)| *k != Key::Account);
        self.words.push((Key::Account, account.to_owned()));
        self
    }
}

impl fmt::Display for Matchers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words: Vec<String> = self
            .words
            .iter()
            .map(|(k, p)| {
                let k = match k {
                    Key::Account => "account",
                    Key::Worker => "worker",
                    Key::Rule => "rule",
                    Key::Severity => "severity",
                };
                format!("{k}={p}")
            })
            .collect();
        f.write_str(&words.join(" "))
    }
}

impl fmt::Debug for Matchers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Matchers({self})")
    }
}

/// `*` any run, `?` any one byte; iterative, with one backtrack point (linear in practice,
/// never exponential).
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::AlertState;
    use chrono::Utc;

    fn alert(worker: &str, rule: Rule) -> Alert {
        Alert {
            rule,
            state: AlertState::Firing,
            worker: worker.into(),
            account: worker.split('.').next().unwrap().into(),
            at: Utc::now(),
            summary: String::new(),
        }
    }

    #[test]
    fn globs_match_runs_and_single_characters() {
        assert!(glob(b"alice*", b"alice"));
        assert!(glob(b"alice*", b"alice.rig7"));
        assert!(glob(b"*.rig?", b"bob.rig3"));
        assert!(!glob(b"*.rig?", b"bob.rig10"));
        assert!(glob(b"a*b*c", b"axxbyyc"));
        assert!(!glob(b"a*b*c", b"axxbyy"));
        assert!(glob(b"*", b""));
    }

    #[test]
    fn every_word_must_hold() {
        let m = Matchers::parse("account=alice* severity=critical").unwrap();
        assert!(m.matches(&alert("alice.rig1", Rule::WorkerOffline)));
        assert!(!m.matches(&alert("alice.rig1", Rule::HashrateDropped)));
        assert!(!m.matches(&alert("bob.rig1", Rule::WorkerOffline)));
        assert!(Matchers::parse("")
            .unwrap()
            .matches(&alert("x.y", Rule::Test)));
        assert_eq!(m.to_string(), "account=alice* severity=critical");
    }

    #[test]
    fn bad_matchers_are_refused_with_the_reason() {
        for bad in ["account", "colour=red", "rule=", &"a".repeat(600)] {
            assert!(Matchers::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_miner_silences_its_own_account_only() {
        let m = Matchers::parse("account=* rule=worker_offline").unwrap();
        assert_eq!(m.account(), None);
        let m = m.with_account("alice");
        assert_eq!(m.account(), Some("alice"));
        assert!(!m.matches(&alert("bob.rig1", Rule::WorkerOffline)));
    }
}
