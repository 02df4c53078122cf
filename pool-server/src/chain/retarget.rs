//! Difficulty retargeting and time rules for the embedded chain, as Bitcoin does them.
//!
//! Every `interval` blocks the target is scaled by actual / expected timespan, the ratio
//! clamped to [1/4, 4], and capped at the proof-of-work limit. Unlike Bitcoin, the actual
//! timespan covers all `interval` block intervals (Bitcoin's famous off-by-one measures one
//! fewer), which keeps short test intervals, down to 1, meaningful.

use protocol::{CompactTarget, Target};

#[derive(Debug, Clone, Copy)]
pub struct RetargetParams {
    pub interval: u32,
    pub block_time_secs: u64,
    pub pow_limit: Target,
}

impl RetargetParams {
    pub fn timespan_secs(&self) -> u64 {
        self.interval as u64 * self.block_time_secs
    }

    /// Whether the block at `height` starts a new difficulty period.
    pub fn is_retarget_height(&self, height: u64) -> bool {
        height > 0 && height.is_multiple_of(self.interval as u64)
    }

    /// The bits for the block after a period that began at `first_time` and ended with a block
    /// at `last_time` carrying `last_bits`.
    pub fn next_bits(
        &self,
        last_bits: CompactTarget,
        first_time: u32,
        last_time: u32,
    ) -> CompactTarget {
        // Work in quarter-seconds so the x4 clamp is exact for any timespan.
        let expected = self.timespan_secs() * 4;
        let actual = ((last_time as i64 - first_time as i64) * 4)
            .clamp((expected / 4) as i64, (expected * 4) as i64) as u64;
        let old = last_bits.to_target().unwrap_or(self.pow_limit);
        let new = old.scaled(actual, expected);
        if new > self.pow_limit {
            self.pow_limit.to_compact()
        } else {
            new.to_compact()
        }
    }
}

/// Median of the given block times (the last up-to-11 blocks: median time past).
pub fn median_time_past(times: &[u32]) -> u32 {
    if times.is_empty() {
        return 0;
    }
    let mut t = times.to_vec();
    t.sort_unstable();
    t[t.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(interval: u32) -> RetargetParams {
        RetargetParams {
            interval,
            block_time_secs: 30,
            pow_limit: CompactTarget::from_consensus(0x207fffff)
                .to_target()
                .unwrap(),
        }
    }

    #[test]
    fn blocks_twice_as_fast_double_the_difficulty() {
        let bits = CompactTarget::from_consensus(0x1d01fffe);
        let next = params(10).next_bits(bits, 1000, 1150);
        let ratio = bits.to_target().unwrap().difficulty().as_f64()
            / next.to_target().unwrap().difficulty().as_f64();
        assert!((ratio - 0.5).abs() < 1e-3, "{ratio}");
    }

    #[test]
    fn change_is_clamped_to_four_times() {
        let bits = CompactTarget::from_consensus(0x1d01fffe);
        let d0 = bits.to_target().unwrap().difficulty().as_f64();
        let harder = params(10).next_bits(bits, 1000, 1001);
        let easier = params(10).next_bits(bits, 1000, 1_000_000);
        let dh = harder.to_target().unwrap().difficulty().as_f64();
        let de = easier.to_target().unwrap().difficulty().as_f64();
        assert!((dh / d0 - 4.0).abs() < 1e-3, "{}", dh / d0);
        assert!((d0 / de - 4.0).abs() < 1e-3, "{}", d0 / de);
    }

    #[test]
    fn never_easier_than_the_pow_limit() {
        let p = params(10);
        let next = p.next_bits(CompactTarget::from_consensus(0x207fffff), 0, 1_000_000);
        assert_eq!(next, CompactTarget::from_consensus(0x207fffff));
    }

    #[test]
    fn median_time_past_is_the_median() {
        assert_eq!(median_time_past(&[5, 1, 9, 3, 7]), 5);
        assert_eq!(median_time_past(&[]), 0);
    }
}
