//! Coinbase payouts, the pure part: who a job's coinbase pays, and how much.
//!
//! Under `--payout-method coinbase` the pool never holds its miners' coins: every job's
//! coinbase pays the accounts of the current window directly. A [`CoinbasePlan`] is the
//! window as the planner last read it (the work per account, their addresses, the mature
//! balances they are owed from earlier blocks); [`CoinbasePlan::resolve`] turns it into the
//! outputs of one coinbase for one reward ([`PaidCoinbase`]), which travels with the job and,
//! when the job finds a block, is what the ledger credits: the block is never re-split later.
//!
//! The rule, for a reward `R` (subsidy and fees):
//! 1. the fee and each account's part `e` come from [`scheme::split`] over the plan's weights
//!    (the same rule, and the same remainder rule, as a block credited from balances);
//! 2. an account with an address is offered `e + carry`, its carry being its mature balance not
//!    paid yet; offers below `--dust-limit` get no output, and only the
//!    `--max-coinbase-outputs` largest offers (ties: the name that sorts first) get one;
//! 3. carries are paid out of what the pool's own output would otherwise keep (the fee and the
//!    parts of accounts without an output): in full when that covers them all, else shared in
//!    proportion to what each account is owed (rounded down), never below zero;
//! 4. the pool's output (`--pool-fee-address`) takes `R` less every paid output. What an
//!    account was owed but not paid stays its balance and is carried into a later coinbase.
//!
//! Carries are offered only on the tip the plan was read for: after a new block, jobs carry no
//! balance until the planner has read the store again (which by then knows what the last block
//! paid), so a balance is never paid in two blocks of one chain.

use std::collections::BTreeMap;

use bitcoin::{Amount, BlockHash, ScriptBuf, TxOut};
use serde::{Deserialize, Serialize};

use super::scheme::{self, Weights};

/// The operator's settings for coinbase payouts.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanSettings {
    pub fee_bps: u32,
    /// Outputs below this are not made; the amount waits as balance.
    pub dust_sats: u64,
    /// At most this many account outputs per coinbase.
    pub max_outputs: usize,
    /// The pool's own output: the fee and whatever is not paid out.
    pub pool_script: ScriptBuf,
}

/// Where an account is paid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payee {
    pub address: String,
    pub script: ScriptBuf,
}

/// The window the planner read: the input of every job's coinbase until the next read.
#[derive(Debug, Clone, PartialEq)]
pub struct CoinbasePlan {
    /// The tip the carries were read for; on any other tip no carry is paid.
    pub tip: Option<BlockHash>,
    pub weights: Weights,
    /// Accounts that have an address (others are credited, never paid in a coinbase).
    pub payees: BTreeMap<String, Payee>,
    /// Mature balances owed, by account (only accounts with an address are ever paid).
    pub carry: BTreeMap<String, u64>,
    pub window: WindowFacts,
}

/// What the window was, for the record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowFacts {
    pub window_difficulty: f64,
    pub credited_difficulty: f64,
    pub shares: u64,
    pub window_start_us: Option<i64>,
    pub window_end_us: i64,
}

/// One account in one coinbase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedCredit {
    pub account: String,
    /// Its part of this block (the credit).
    pub sats: u64,
    /// Its credited difficulty in the window, in 2^-64 units (exact).
    pub work: u128,
    /// Balance from earlier blocks paid in this output.
    pub carry_sats: u64,
    /// The output's value: `sats + carry_sats`, or 0 when it got no output.
    pub paid_sats: u64,
    pub address: Option<String>,
    pub script: Option<ScriptBuf>,
}

/// One coinbase's outputs and what they mean: stored with the block it finds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaidCoinbase {
    pub reward_sats: u64,
    pub fee_sats: u64,
    /// The pool's own output.
    pub pool_sats: u64,
    pub pool_script: ScriptBuf,
    /// Every account with a part or a carry, by name.
    pub credits: Vec<PlannedCredit>,
    pub window: WindowFacts,
}

impl PaidCoinbase {
    /// The transaction outputs, in order: accounts by value (largest first, then name), then
    /// the pool's output when it is not empty.
    pub fn outputs(&self) -> Vec<TxOut> {
        let mut paid: Vec<&PlannedCredit> =
            self.credits.iter().filter(|c| c.paid_sats > 0).collect();
        paid.sort_by(|a, b| {
            b.paid_sats
                .cmp(&a.paid_sats)
                .then_with(|| a.account.cmp(&b.account))
        });
        let mut out: Vec<TxOut> = paid
            .into_iter()
            .map(|c| TxOut {
                value: Amount::from_sat(c.paid_sats),
                script_pubkey: c.script.clone().expect("a paid credit has a script"),
            })
            .collect();
        if self.pool_sats > 0 || out.is_empty() {
            out.push(TxOut {
                value: Amount::from_sat(self.pool_sats),
                script_pubkey: self.pool_script.clone(),
            });
        }
        out
    }

    /// What each account is paid here (accounts with an output).
    pub fn paid(&self) -> BTreeMap<&str, u64> {
        self.credits
            .iter()
            .filter(|c| c.paid_sats > 0)
            .map(|c| (c.account.as_str(), c.paid_sats))
            .collect()
    }

    /// Whether `other` pays differently enough to rebuild the job: another set of accounts
    /// with outputs, or an output that moved by at least `change_bps` of the reward.
    pub fn differs_from(&self, other: &PaidCoinbase, change_bps: u32) -> bool {
        let (a, b) = (self.paid(), other.paid());
        if a.len() != b.len() || a.keys().zip(b.keys()).any(|(x, y)| x != y) {
            return true;
        }
        let step = (u128::from(self.reward_sats.max(other.reward_sats)) * u128::from(change_bps)
            / 10_000)
            .max(1) as u64;
        a.values()
            .zip(b.values())
            .any(|(x, y)| x.abs_diff(*y) >= step)
            || self.pool_sats.abs_diff(other.pool_sats) >= step
    }
}

impl CoinbasePlan {
    /// A plan with no window yet: the pool's output takes the coinbase.
    pub fn empty() -> CoinbasePlan {
        CoinbasePlan {
            tip: None,
            weights: Weights::new(),
            payees: BTreeMap::new(),
            carry: BTreeMap::new(),
            window: WindowFacts::default(),
        }
    }

    /// The coinbase of a job on `tip` claiming `reward_sats` (see the module doc for the rule).
    pub fn resolve(
        &self,
        settings: &PlanSettings,
        reward_sats: u64,
        tip: BlockHash,
    ) -> PaidCoinbase {
        let (fee_sats, parts) = match scheme::split(reward_sats, settings.fee_bps, &self.weights) {
            Ok(s) => (s.fee_sats, s.credits),
            // No work in the window: nobody's part; the ledger gives it to the finder.
            Err(_) => (
                (u128::from(reward_sats) * u128::from(settings.fee_bps.min(10_000)) / 10_000)
                    as u64,
                BTreeMap::new(),
            ),
        };
        let no_carry = BTreeMap::new();
        let carry = if self.tip == Some(tip) {
            &self.carry
        } else {
            &no_carry
        };
        // Offers: part + carry, for accounts with an address, at or above the dust limit.
        let mut offers: Vec<(&str, u64, u64)> = self
            .payees
            .keys()
            .map(|a| {
                let part = parts.get(a).copied().unwrap_or(0);
                let owed = carry.get(a).copied().unwrap_or(0);
                (a.as_str(), part, owed)
            })
            .filter(|(_, part, owed)| part.saturating_add(*owed) >= settings.dust_sats.max(1))
            .collect();
        offers.sort_by(|a, b| (b.1 + b.2).cmp(&(a.1 + a.2)).then_with(|| a.0.cmp(b.0)));
        offers.truncate(settings.max_outputs);
        // Carries come out of what the pool's output would keep: in full when it holds them
        // all, else shared in proportion to what each account is owed (every account's
        // balance goes down, none waits behind a larger one).
        let own_parts: u64 = offers.iter().map(|(_, part, _)| part).sum();
        let budget = u128::from(reward_sats - own_parts);
        let owed_total: u128 = offers.iter().map(|(_, _, owed)| u128::from(*owed)).sum();
        let mut paid: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        for (account, part, owed) in offers {
            let carried = if owed_total <= budget {
                owed
            } else {
                (u128::from(owed) * budget / owed_total) as u64
            };
            let value = part + carried;
            if value >= settings.dust_sats.max(1) {
                paid.insert(account, (carried, value));
            }
        }
        let mut names: Vec<&str> = parts.keys().map(String::as_str).collect();
        names.extend(paid.keys().copied().filter(|a| !parts.contains_key(*a)));
        names.sort_unstable();
        let credits: Vec<PlannedCredit> = names
            .into_iter()
            .map(|account| {
                let (carry_sats, paid_sats) = paid.get(account).copied().unwrap_or((0, 0));
                let payee = self.payees.get(account);
                PlannedCredit {
                    account: account.to_owned(),
                    sats: parts.get(account).copied().unwrap_or(0),
                    work: self.weights.get(account).map_or(0, |w| w.0),
                    carry_sats,
                    paid_sats,
                    address: payee.map(|p| p.address.clone()),
                    script: payee.map(|p| p.script.clone()),
                }
            })
            .collect();
        let paid_total: u64 = credits.iter().map(|c| c.paid_sats).sum();
        PaidCoinbase {
            reward_sats,
            fee_sats,
            pool_sats: reward_sats - paid_total,
            pool_script: settings.pool_script.clone(),
            credits,
            window: self.window.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rewards::scheme::Work;
    use bitcoin::hashes::Hash;
    use proptest::prelude::*;

    fn script(n: u8) -> ScriptBuf {
        ScriptBuf::from_bytes(vec![0x51, n])
    }

    fn settings(dust: u64, max: usize) -> PlanSettings {
        PlanSettings {
            fee_bps: 100,
            dust_sats: dust,
            max_outputs: max,
            pool_script: script(0),
        }
    }

    fn tip(n: u8) -> BlockHash {
        BlockHash::from_byte_array([n; 32])
    }

    fn plan(weights: &[(&str, u128)], payees: &[&str], carry: &[(&str, u64)]) -> CoinbasePlan {
        CoinbasePlan {
            tip: Some(tip(1)),
            weights: weights
                .iter()
                .map(|(a, w)| (a.to_string(), Work(*w)))
                .collect(),
            payees: payees
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    (
                        a.to_string(),
                        Payee {
                            address: format!("addr-{a}"),
                            script: script(i as u8 + 1),
                        },
                    )
                })
                .collect(),
            carry: carry.iter().map(|(a, s)| (a.to_string(), *s)).collect(),
            window: WindowFacts::default(),
        }
    }

    #[test]
    fn parts_follow_the_work_and_the_pool_takes_the_fee() {
        let p = plan(&[("alice", 2), ("bob", 1)], &["alice", "bob"], &[]);
        let c = p.resolve(&settings(1, 10), 3_000_000, tip(1));
        assert_eq!(c.fee_sats, 30_000);
        assert_eq!(
            c.paid(),
            BTreeMap::from([("alice", 1_980_000), ("bob", 990_000)])
        );
        assert_eq!(c.pool_sats, 30_000);
        let outs = c.outputs();
        assert_eq!(outs.len(), 3);
        assert_eq!(outs[0].script_pubkey, script(1));
        assert_eq!(
            outs.iter().map(|o| o.value.to_sat()).sum::<u64>(),
            3_000_000
        );
    }

    #[test]
    fn dust_and_accounts_without_address_wait_and_carries_are_paid_later() {
        let p = plan(
            &[("alice", 1000), ("bob", 1), ("carol", 500)],
            &["alice", "bob"],
            &[],
        );
        let c = p.resolve(&settings(10_000, 10), 1_000_000, tip(1));
        // bob's part is dust, carol has no address: both stay with the pool's output.
        assert_eq!(c.paid().keys().copied().collect::<Vec<_>>(), ["alice"]);
        let bob = c.credits.iter().find(|x| x.account == "bob").unwrap();
        assert!(bob.sats > 0 && bob.paid_sats == 0);
        assert_eq!(c.pool_sats, c.reward_sats - c.paid()["alice"]);
        // Later, bob's matured balance rides on his next part (his part alone is dust).
        let later = plan(
            &[("alice", 1000), ("bob", 1)],
            &["alice", "bob"],
            &[("bob", 5_000)],
        );
        let c = later.resolve(&settings(1_000, 10), 1_000_000, tip(1));
        let bob = c.credits.iter().find(|x| x.account == "bob").unwrap();
        assert!(bob.sats < 1_000);
        assert_eq!(bob.carry_sats, 5_000);
        assert_eq!(bob.paid_sats, bob.sats + 5_000);
        assert_eq!(c.pool_sats, c.fee_sats - 5_000);
        // A carry never takes more than the pool's output would keep (here: the fee).
        let big = plan(
            &[("alice", 1000), ("bob", 1)],
            &["alice", "bob"],
            &[("bob", 50_000)],
        );
        let c = big.resolve(&settings(1_000, 10), 1_000_000, tip(1));
        let bob = c.credits.iter().find(|x| x.account == "bob").unwrap();
        assert_eq!(bob.carry_sats, c.fee_sats);
        assert_eq!(c.pool_sats, 0);
        // On another tip the carry is not offered.
        let c = later.resolve(&settings(1_000, 10), 1_000_000, tip(2));
        assert!(c.credits.iter().all(|x| x.carry_sats == 0));
        assert!(!c.paid().contains_key("bob"));
    }

    #[test]
    fn at_most_the_largest_outputs_and_carries_never_overdraw() {
        let p = plan(
            &[("a", 4), ("b", 3), ("c", 2), ("d", 1)],
            &["a", "b", "c", "d"],
            &[("d", 5_000_000)],
        );
        let c = p.resolve(&settings(1, 2), 1_000_000, tip(1));
        // d's offer (its part + a huge carry) is the largest; then a.
        assert_eq!(c.paid().keys().copied().collect::<Vec<_>>(), ["a", "d"]);
        assert!(c.pool_sats == 0 || c.credits.iter().all(|x| x.carry_sats == 0));
        assert_eq!(
            c.credits.iter().map(|x| x.paid_sats).sum::<u64>() + c.pool_sats,
            1_000_000
        );
    }

    #[test]
    fn carries_larger_than_the_pool_part_are_shared_by_what_is_owed() {
        let p = plan(
            &[("a", 1), ("b", 1)],
            &["a", "b"],
            &[("a", 3_000_000), ("b", 1_000_000)],
        );
        // Reward 1,000,000 at 1 %: parts 495,000 each, the pool's part (the fee) 10,000.
        let c = p.resolve(&settings(1, 10), 1_000_000, tip(1));
        let carried = |n: &str| {
            c.credits
                .iter()
                .find(|x| x.account == n)
                .unwrap()
                .carry_sats
        };
        assert_eq!((carried("a"), carried("b")), (7_500, 2_500));
        assert_eq!(c.pool_sats, 0);
    }

    #[test]
    fn an_empty_window_pays_the_pool() {
        let c = CoinbasePlan::empty().resolve(&settings(1, 10), 5_000, tip(1));
        assert!(c.credits.is_empty());
        assert_eq!(c.pool_sats, 5_000);
        assert_eq!(c.outputs().len(), 1);
    }

    #[test]
    fn small_moves_do_not_rebuild_the_job() {
        let s = settings(1, 10);
        let a = plan(&[("alice", 1000), ("bob", 1000)], &["alice", "bob"], &[]).resolve(
            &s,
            1_000_000,
            tip(1),
        );
        let b = plan(&[("alice", 1001), ("bob", 1000)], &["alice", "bob"], &[]).resolve(
            &s,
            1_000_000,
            tip(1),
        );
        let c = plan(&[("alice", 1100), ("bob", 1000)], &["alice", "bob"], &[]).resolve(
            &s,
            1_000_000,
            tip(1),
        );
        assert!(!a.differs_from(&b, 100));
        assert!(a.differs_from(&c, 100));
        let d = plan(&[("alice", 1000)], &["alice", "bob"], &[]).resolve(&s, 1_000_000, tip(1));
        assert!(a.differs_from(&d, 100));
    }

    proptest! {
        #[test]
        fn outputs_always_sum_to_the_reward(
            work in proptest::collection::vec(0u128..1_000_000, 1..12),
            carry in proptest::collection::vec(0u64..3_000_000_000, 0..12),
            with_address in proptest::collection::vec(any::<bool>(), 12),
            reward in 1u64..5_000_000_000,
            dust in 0u64..100_000,
            max in 0usize..8,
            same_tip in any::<bool>(),
        ) {
            let names: Vec<String> = (0..work.len()).map(|i| format!("acct{i:02}")).collect();
            let weights: Vec<(&str, u128)> = names.iter().map(String::as_str).zip(work.iter().copied()).filter(|(_, w)| *w > 0).collect();
            let payees: Vec<&str> = names.iter().zip(&with_address).filter(|(_, y)| **y).map(|(n, _)| n.as_str()).collect();
            let carries: Vec<(&str, u64)> = names.iter().map(String::as_str).zip(carry.iter().copied()).collect();
            let p = plan(&weights, &payees, &carries);
            let c = p.resolve(&settings(dust, max), reward, if same_tip { tip(1) } else { tip(2) });
            let outs = c.outputs();
            prop_assert_eq!(outs.iter().map(|o| o.value.to_sat()).sum::<u64>(), reward);
            prop_assert!(c.paid().len() <= max);
            // Parts sum to the reward less the fee when there is work.
            if weights.iter().any(|(_, w)| *w > 0) {
                prop_assert_eq!(c.credits.iter().map(|x| x.sats).sum::<u64>() + c.fee_sats, reward);
            }
            for x in &c.credits {
                prop_assert!(x.paid_sats == 0 || x.paid_sats == x.sats + x.carry_sats);
                prop_assert!(x.paid_sats == 0 || x.paid_sats >= dust);
                prop_assert!(x.carry_sats <= p.carry.get(&x.account).copied().unwrap_or(0));
                prop_assert!(x.paid_sats == 0 || x.address.is_some());
                if !same_tip { prop_assert_eq!(x.carry_sats, 0); }
            }
        }
    }
}
