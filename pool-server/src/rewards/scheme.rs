//! How a block's reward is shared: pure functions from shares and a reward to credits in
//! integer satoshis. No I/O, no clock: the ledger that stores credits calls these once per
//! block and keeps the result, so a block's credits are never computed two ways.
//!
//! - **Work** is what a share proves: its credited (assigned) difficulty, as an integer number
//!   of 2^-64 difficulty units ([`Work::of_difficulty`]), so sums are exact and independent of
//!   the order they are added in.
//! - **PPLNS**: walking back from the block, newest share first, the accepted shares until
//!   their work reaches the window (`factor` x the block's network difficulty); the share that
//!   crosses the window's edge counts only for the part inside it.
//! - **PROP**: every accepted share since the pool's previous block.
//! - **SOLO**: the finder's account alone.
//!
//! **The split**: the fee is `floor(reward x fee_bps / 10,000)`; each account gets
//! `floor((reward - fee) x its work / all work)`; the satoshis those floors leave over go one
//! each to the accounts with the largest fractional parts, ties to the account whose name sorts
//! first. So the credits always sum to exactly `reward - fee`, and the same shares give the same
//! credits however they were stored or ordered.

use std::collections::BTreeMap;

/// Share work in 2^-64 difficulty units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Work(pub u128);

/// 2^64: work units per unit of difficulty.
const UNITS_PER_DIFFICULTY: f64 = 18_446_744_073_709_551_616.0;

impl Work {
    /// Back to a difficulty (for display and records; sums stay in units).
    pub fn as_difficulty(self) -> f64 {
        self.0 as f64 / UNITS_PER_DIFFICULTY
    }

    /// The work of a share credited at `difficulty` (negative, NaN: none; huge: saturates).
    pub fn of_difficulty(difficulty: f64) -> Work {
        if difficulty.is_nan() || difficulty <= 0.0 {
            return Work(0);
        }
        // f64 -> u128 saturates; 2^64 scale keeps 1e-12 shares (about 1.8e7 units) exact
        // enough and 1e15 ones (1.8e34) far from the top.
        Work((difficulty * UNITS_PER_DIFFICULTY).round() as u128)
    }
}

/// One share as the schemes see it.
#[derive(Debug, Clone, PartialEq)]
pub struct ShareWork {
    pub account: String,
    pub work: Work,
    pub accepted: bool,
    /// When it was received (microseconds since the epoch) and its id: the order of shares.
    pub at_micros: i64,
    pub id: u128,
}

/// Accounts and the work credited to each.
pub type Weights = BTreeMap<String, Work>;

/// A window filled share by share, newest first (the order the ledger walks the store): each
/// accepted share counts until `window` work is reached, the one crossing the edge for the
/// part that fits. With an unbounded window it sums every share given (PROP).
#[derive(Debug, Clone)]
pub struct WindowFill {
    left: u128,
    weights: Weights,
    /// Shares counted (in part or whole).
    pub shares: u64,
    /// Work counted.
    pub credited: Work,
}

impl WindowFill {
    pub fn new(window: Work) -> WindowFill {
        WindowFill {
            left: window.0,
            weights: Weights::new(),
            shares: 0,
            credited: Work(0),
        }
    }

    /// No edge: every share given counts in whole.
    pub fn unbounded() -> WindowFill {
        WindowFill::new(Work(u128::MAX))
    }

    /// Count the next older accepted share; the work of it that counted.
    pub fn take(&mut self, account: &str, work: Work) -> Work {
        let part = work.0.min(self.left);
        if part == 0 {
            return Work(0);
        }
        self.left -= part;
        self.shares += 1;
        self.credited.0 = self.credited.0.saturating_add(part);
        let w = self.weights.entry(account.to_owned()).or_default();
        w.0 = w.0.saturating_add(part);
        Work(part)
    }

    /// Whether the window holds all the work it can: older shares would not count.
    pub fn is_full(&self) -> bool {
        self.left == 0
    }

    pub fn weights(&self) -> &Weights {
        &self.weights
    }

    pub fn into_weights(self) -> Weights {
        self.weights
    }
}

/// The PPLNS window over `shares` (any order; those after the block must be left out by the
/// caller): newest first, accepted shares only, until `window` work is reached, the last one
/// counted for the part that fits.
pub fn pplns_weights(shares: &[ShareWork], window: Work) -> Weights {
    let mut order: Vec<&ShareWork> = shares.iter().filter(|s| s.accepted).collect();
    order.sort_by_key(|s| std::cmp::Reverse((s.at_micros, s.id)));
    let mut fill = WindowFill::new(window);
    for s in order {
        if fill.is_full() {
            break;
        }
        fill.take(&s.account, s.work);
    }
    fill.into_weights()
}

/// PROP: every accepted share given (the caller gives those since the previous block).
pub fn prop_weights(shares: &[ShareWork]) -> Weights {
    let mut weights = Weights::new();
    for s in shares.iter().filter(|s| s.accepted && s.work.0 > 0) {
        let w = weights.entry(s.account.clone()).or_default();
        w.0 = w.0.saturating_add(s.work.0);
    }
    weights
}

/// SOLO: the finder's account takes it all.
pub fn solo_weights(finder: &str) -> Weights {
    Weights::from([(finder.to_owned(), Work(1))])
}

/// A block's reward, shared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub fee_sats: u64,
    /// Satoshis per account; they sum to the reward less the fee.
    pub credits: BTreeMap<String, u64>,
}

/// Why a reward cannot be split.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    #[error("the fee is {0} basis points; at most 10000 (100 %)")]
    FeeTooHigh(u32),
    #[error("no credited work: nobody to pay")]
    NoWork,
}

/// Share `reward_sats` less a fee of `fee_bps` basis points among `weights` (see the module
/// doc for the rule of the remainder).
pub fn split(reward_sats: u64, fee_bps: u32, weights: &Weights) -> Result<Split, SplitError> {
    if fee_bps > 10_000 {
        return Err(SplitError::FeeTooHigh(fee_bps));
    }
    // Saturating: work beyond 2^128 units (difficulties past 10^19) cannot be told apart.
    let total: u128 = weights
        .values()
        .fold(0u128, |sum, w| sum.saturating_add(w.0));
    if total == 0 {
        return Err(SplitError::NoWork);
    }
    let fee_sats = (reward_sats as u128 * fee_bps as u128 / 10_000) as u64;
    let pot = (reward_sats - fee_sats) as u128;
    // pot < 2^64 and work sums < 2^128: scale the work down until pot x work cannot overflow.
    let shift = (128 - total.leading_zeros()).saturating_sub(64);
    let scaled: Vec<(&String, u128)> = weights.iter().map(|(a, w)| (a, w.0 >> shift)).collect();
    let scaled_total: u128 = scaled
        .iter()
        .fold(0u128, |sum, (_, w)| sum.saturating_add(*w))
        .max(1);
    let mut credits = BTreeMap::new();
    let mut fractions = Vec::with_capacity(scaled.len());
    let mut given: u128 = 0;
    for (account, w) in &scaled {
        let exact = pot * w;
        let whole = exact / scaled_total;
        given += whole;
        credits.insert((*account).clone(), whole as u64);
        fractions.push((exact % scaled_total, *account));
    }
    // Largest fractional part first; ties to the name that sorts first.
    fractions.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    let mut left = pot - given;
    for (_, account) in fractions.iter().cycle() {
        if left == 0 {
            break;
        }
        *credits.get_mut(*account).expect("listed") += 1;
        left -= 1;
    }
    Ok(Split { fee_sats, credits })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn share(account: &str, difficulty: f64, at: i64, accepted: bool) -> ShareWork {
        ShareWork {
            account: account.into(),
            work: Work::of_difficulty(difficulty),
            accepted,
            at_micros: at,
            id: at as u128,
        }
    }

    #[test]
    fn the_window_takes_the_newest_work_and_the_edge_share_in_part() {
        let shares = vec![
            share("old", 4.0, 1, true),
            share("edge", 4.0, 2, true),
            share("new", 4.0, 3, true),
            share("refused", 100.0, 4, false),
        ];
        let w = pplns_weights(&shares, Work::of_difficulty(6.0));
        assert_eq!(w.get("new"), Some(&Work::of_difficulty(4.0)));
        assert_eq!(w.get("edge"), Some(&Work::of_difficulty(2.0)));
        assert_eq!(w.get("old"), None);
        assert_eq!(w.get("refused"), None);
    }

    #[test]
    fn difficulties_beyond_any_miner_saturate_instead_of_overflowing() {
        let huge = Weights::from([
            ("a".to_owned(), Work::of_difficulty(1e300)),
            ("b".to_owned(), Work::of_difficulty(1e300)),
        ]);
        let s = split(1_000, 0, &huge).unwrap();
        assert_eq!(s.credits.values().sum::<u64>(), 1_000);
        assert_eq!(Work::of_difficulty(f64::NAN), Work(0));
        assert_eq!(Work::of_difficulty(-1.0), Work(0));
    }

    #[test]
    fn the_remainder_goes_to_the_largest_fractions_then_by_name() {
        let weights = Weights::from([
            ("a".to_owned(), Work(1)),
            ("b".to_owned(), Work(1)),
            ("c".to_owned(), Work(1)),
        ]);
        // 100 sats, 1 % fee: 99 left, 33 each exactly.
        let s = split(100, 100, &weights).unwrap();
        assert_eq!(s.fee_sats, 1);
        assert_eq!(
            s.credits.values().copied().collect::<Vec<_>>(),
            [33, 33, 33]
        );
        // 100 sats, no fee: 33 each and one over, to "a" (equal fractions, first name).
        let s = split(100, 0, &weights).unwrap();
        assert_eq!(s.credits["a"], 34);
        assert_eq!(s.credits["b"], 33);
        // Solo: the finder takes the reward less the fee.
        let s = split(625_000_000, 200, &solo_weights("alice")).unwrap();
        assert_eq!(s.fee_sats, 12_500_000);
        assert_eq!(s.credits["alice"], 612_500_000);
        assert_eq!(
            split(1, 10_001, &weights),
            Err(SplitError::FeeTooHigh(10_001))
        );
        assert_eq!(split(1, 0, &Weights::new()), Err(SplitError::NoWork));
    }

    fn arb_shares() -> impl Strategy<Value = Vec<ShareWork>> {
        prop::collection::vec(
            (0usize..6, 1e-12f64..1e6, 0i64..1_000, any::<bool>()),
            1..60,
        )
        .prop_map(|v| {
            v.into_iter()
                .enumerate()
                .map(|(i, (a, d, at, ok))| ShareWork {
                    account: format!("acct{a}"),
                    work: Work::of_difficulty(d),
                    accepted: ok,
                    at_micros: at,
                    id: i as u128,
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn credits_sum_to_the_reward_less_the_fee_whatever_the_order(
            shares in arb_shares(),
            window in 1e-12f64..1e7,
            reward in 0u64..=21_000_000 * 100_000_000,
            fee_bps in 0u32..=10_000,
            seed in any::<u64>(),
        ) {
            let w = pplns_weights(&shares, Work::of_difficulty(window));
            // Rejected shares are never credited; the window never credits more than it holds.
            let rejected_only: Vec<&str> = shares.iter()
                .filter(|s| !shares.iter().any(|t| t.accepted && t.account == s.account))
                .map(|s| s.account.as_str()).collect();
            for a in rejected_only {
                prop_assert!(!w.contains_key(a));
            }
            let credited: u128 = w.values().map(|x| x.0).sum();
            prop_assert!(credited <= Work::of_difficulty(window).0);
            // Stored in another order: the same weights.
            let mut shuffled = shares.clone();
            let n = shuffled.len();
            for i in 0..n {
                let j = ((seed.wrapping_mul(6364136223846793005).wrapping_add(i as u64)) % n as u64) as usize;
                shuffled.swap(i, j);
            }
            prop_assert_eq!(&pplns_weights(&shuffled, Work::of_difficulty(window)), &w);
            if let Ok(s) = split(reward, fee_bps, &w) {
                let paid: u64 = s.credits.values().sum();
                prop_assert_eq!(paid + s.fee_sats, reward);
                prop_assert!(s.credits.keys().all(|a| w.contains_key(a)));
            } else {
                prop_assert!(w.is_empty());
            }
        }

        #[test]
        fn credits_follow_the_work_within_a_satoshi(
            a in 1u64..1_000_000, b in 1u64..1_000_000, reward in 1_000u64..10_000_000_000,
        ) {
            let weights = Weights::from([
                ("a".to_owned(), Work(a as u128)),
                ("b".to_owned(), Work(b as u128)),
            ]);
            let s = split(reward, 0, &weights).unwrap();
            let exact = reward as f64 * a as f64 / (a + b) as f64;
            prop_assert!((s.credits["a"] as f64 - exact).abs() <= 1.0);
        }
    }
}
