//! Counting statistics for shares. A worker's shares are a Poisson process: at difficulty `D`
//! a worker of hashrate `H` sends `H / (D * 2^32)` shares a second, each independent of the
//! last. So a count of shares says how sure we may be of a rate (an exact, Garwood, interval)
//! and how unlikely a silence or a shortfall is; every alert threshold here is such a
//! probability, not a fixed time.

use statrs::distribution::{ContinuousCDF, Gamma, Normal};

/// The exact two-sided interval for the mean of a Poisson count `n` at `confidence` (0.95 for
/// 95 %): `[lower, upper]`, with `lower = 0` for `n = 0`. Multiply by the work per share over
/// the time counted to get a rate.
pub fn mean_interval(n: u64, confidence: f64) -> (f64, f64) {
    let tail = (1.0 - confidence.clamp(0.0, 1.0)) / 2.0;
    (lower_bound(n as f64, tail), upper_bound(n as f64, tail))
}

/// The mean `m` below which a count of `n` or more has probability at most `tail`; `n` may
/// be fractional (an exponentially weighted count). Zero for `n = 0`.
pub fn lower_bound(n: f64, tail: f64) -> f64 {
    if n <= 0.0 || tail <= 0.0 {
        return 0.0;
    }
    gamma_quantile(n, tail)
}

/// The mean `m` above which a count of `n` or fewer has probability at most `tail`.
pub fn upper_bound(n: f64, tail: f64) -> f64 {
    gamma_quantile(n.max(0.0) + 1.0, 1.0 - tail.clamp(0.0, 1.0))
}

/// [`lower_bound`] by the Wilson-Hilferty cube-root approximation, `z` the normal quantile
/// of the tail: closed form (no iteration), within a fraction of a percent for `n >= 10`, for
/// rules that judge at every look.
pub fn lower_bound_fast(n: f64, z: f64) -> f64 {
    if n <= 0.0 {
        return 0.0;
    }
    let c = 1.0 - 1.0 / (9.0 * n) - z / (3.0 * n.sqrt());
    n * c.max(0.0).powi(3)
}

fn gamma_quantile(shape: f64, p: f64) -> f64 {
    match Gamma::new(shape, 1.0) {
        Ok(g) => g.inverse_cdf(p.clamp(0.0, 1.0)),
        Err(_) => 0.0,
    }
}

/// The standard normal quantile: `z` with `P(Z > z) = tail`.
pub fn z_for_tail(tail: f64) -> f64 {
    let n = Normal::new(0.0, 1.0).expect("the standard normal exists");
    n.inverse_cdf(1.0 - tail.clamp(1e-300, 0.5))
}

/// The Wilson score interval for a proportion `k` of `n` at one-sided `tail` on each side.
pub fn proportion_interval(k: f64, n: f64, tail: f64) -> (f64, f64) {
    if n <= 0.0 {
        return (0.0, 1.0);
    }
    let z = z_for_tail(tail);
    let p = (k / n).clamp(0.0, 1.0);
    let z2 = z * z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = z / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(1e-12)
    }

    #[test]
    fn garwood_intervals_match_the_published_table() {
        // Garwood (1936) / the usual chi-square table at 95 %.
        let (lo, hi) = mean_interval(0, 0.95);
        assert_eq!(lo, 0.0);
        assert!(close(hi, 3.689, 1e-3), "{hi}");
        let (lo, hi) = mean_interval(1, 0.95);
        assert!(close(lo, 0.0253, 1e-2), "{lo}");
        assert!(close(hi, 5.572, 1e-3), "{hi}");
        let (lo, hi) = mean_interval(10, 0.95);
        assert!(close(lo, 4.795, 1e-3), "{lo}");
        assert!(close(hi, 18.39, 1e-3), "{hi}");
    }

    #[test]
    fn wide_counts_have_narrow_relative_intervals() {
        let (lo, hi) = mean_interval(10_000, 0.95);
        assert!(close(lo, 10_000.0 - 1.96 * 100.0, 2e-3), "{lo}");
        assert!(close(hi, 10_000.0 + 1.96 * 100.0, 2e-3), "{hi}");
    }

    #[test]
    fn the_fast_lower_bound_is_close_to_the_exact_one() {
        let z = z_for_tail(0.01);
        for n in [10.0, 30.0, 100.0, 1e4] {
            let exact = lower_bound(n, 0.01);
            let fast = lower_bound_fast(n, z);
            assert!(close(fast, exact, 5e-3), "n={n}: {fast} vs {exact}");
        }
    }

    #[test]
    fn wilson_interval_holds_the_estimate() {
        let (lo, hi) = proportion_interval(5.0, 100.0, 0.025);
        assert!(lo < 0.05 && 0.05 < hi);
        assert!(close(lo, 0.0215, 2e-2), "{lo}");
        assert!(close(hi, 0.1118, 2e-2), "{hi}");
        assert_eq!(proportion_interval(0.0, 0.0, 0.01), (0.0, 1.0));
    }

    #[test]
    fn z_is_the_normal_quantile() {
        assert!(close(z_for_tail(0.025), 1.95996, 1e-4));
        assert!(close(z_for_tail(1e-4), 3.719, 1e-3));
    }
}
