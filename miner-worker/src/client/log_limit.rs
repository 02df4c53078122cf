//! Log lines a pool can cause, rate-limited per kind: a few lines per window, then one
//! summary ("N similar in 10 s"). A pool that sends two million junk lines, or a share
//! accepted every millisecond, costs a handful of log lines, not a disk.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Lines of one kind shown per window before the rest are only counted.
const PER_WINDOW: u32 = 5;
/// The window.
pub const WINDOW: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Kind {
    since: Option<Instant>,
    shown: u32,
    suppressed: u64,
}

/// Per-kind counters; one per session (no locking: the session task owns it).
#[derive(Default)]
pub struct LogLimit {
    kinds: BTreeMap<&'static str, Kind>,
}

impl LogLimit {
    /// Whether a line of `kind` may be logged now; if not, it is counted for the summary.
    pub fn allow(&mut self, kind: &'static str) -> bool {
        self.allow_at(kind, Instant::now())
    }

    fn allow_at(&mut self, kind: &'static str, now: Instant) -> bool {
        let k = self.kinds.entry(kind).or_default();
        let since = *k.since.get_or_insert(now);
        if now.duration_since(since) >= WINDOW && k.suppressed == 0 {
            k.since = Some(now);
            k.shown = 0;
        }
        if k.shown < PER_WINDOW {
            k.shown += 1;
            true
        } else {
            k.suppressed += 1;
            false
        }
    }

    /// Kinds whose window has ended with lines left out, and how many: log each once
    /// ("N similar in 10 s"); their windows start again.
    pub fn summaries(&mut self) -> Vec<(&'static str, u64)> {
        self.summaries_at(Instant::now())
    }

    fn summaries_at(&mut self, now: Instant) -> Vec<(&'static str, u64)> {
        let mut out = Vec::new();
        for (name, k) in &mut self.kinds {
            let ended = k.since.is_some_and(|s| now.duration_since(s) >= WINDOW);
            if ended && k.suppressed > 0 {
                out.push((*name, k.suppressed));
                *k = Kind {
                    since: Some(now),
                    ..Kind::default()
                };
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_a_few_lines_and_one_summary_per_window() {
        let mut l = LogLimit::default();
        let t0 = Instant::now();
        let shown = (0..100_000).filter(|_| l.allow_at("junk", t0)).count();
        assert_eq!(shown, PER_WINDOW as usize);
        assert!(l.allow_at("accepted", t0), "kinds are counted apart");
        assert!(l.summaries_at(t0 + Duration::from_secs(5)).is_empty());
        assert_eq!(
            l.summaries_at(t0 + WINDOW),
            vec![("junk", 100_000 - PER_WINDOW as u64)]
        );
        assert!(
            l.allow_at("junk", t0 + WINDOW),
            "a new window shows lines again"
        );
        assert!(
            l.summaries_at(t0 + WINDOW * 3).is_empty(),
            "nothing left out"
        );
    }
}
