//! Pick the kernel by measurement: time every kernel this CPU supports on a short fixed
//! workload and keep the fastest. Feature flags say what can run, not what runs fastest
//! (SHA-NI beats AVX2 on one CPU and loses to AVX-512 on another).

use std::time::{Duration, Instant};

use super::{Kernel, Precomputed};

/// One kernel's measured rate.
#[derive(Debug, Clone)]
pub struct Measurement {
    pub kernel: &'static dyn Kernel,
    pub hashes_per_sec: f64,
    /// Within [`CONTENDER_SHARE`] of the best first measurement, so measured every round.
    pub contender: bool,
}

impl std::fmt::Debug for dyn Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Rate of `kernel` on one thread over about `each`, starting at a distinct nonce offset.
pub fn measure_once(kernel: &dyn Kernel, each: Duration, offset: u64) -> f64 {
    let mut header = [0u8; 80];
    for (i, b) in header.iter_mut().enumerate() {
        *b = i as u8 ^ 0x5a;
    }
    let pre = Precomputed::from_header(&header);
    let mut found = Vec::new();
    // Size one call so a measurement is several calls long.
    let probe: u64 = 4096;
    let warm = Instant::now();
    kernel.search(&pre, offset, offset + probe, 0, &mut found);
    let per = warm.elapsed().as_secs_f64() / probe as f64;
    let chunk = if per > 0.0 {
        ((each.as_secs_f64() / 8.0 / per) as u64).clamp(1024, 1 << 24)
    } else {
        1 << 16
    };
    let t = Instant::now();
    let mut start = offset + probe;
    while t.elapsed() < each {
        kernel.search(&pre, start, start + chunk, 0, &mut found);
        start += chunk;
    }
    (start - offset - probe) as f64 / t.elapsed().as_secs_f64()
}

/// Share of the best first measurement a kernel needs to stay in the running. Kernels far
/// behind (scalar next to SHA-NI, say) are dropped after one measurement, so the time goes to
/// telling the close ones apart.
pub const CONTENDER_SHARE: f64 = 0.8;

/// Measure every kernel once, then the contenders (within [`CONTENDER_SHARE`] of the best)
/// `rounds - 1` more times, round-robin so that drift in clock speed or in other load hits
/// them alike. Ranked by median rate, fastest first; dropped kernels follow, ranked by their
/// one measurement.
pub fn rank(kernels: &[&'static dyn Kernel], each: Duration, rounds: usize) -> Vec<Measurement> {
    rank_by(kernels, rounds, |k, offset| measure_once(k, each, offset))
}

/// [`rank`] with the measurement given: `measure(kernel, nonce offset)` returns a rate.
/// (Tests rank with known rates, so a busy machine cannot reorder them.)
pub fn rank_by(
    kernels: &[&'static dyn Kernel],
    rounds: usize,
    mut measure: impl FnMut(&dyn Kernel, u64) -> f64,
) -> Vec<Measurement> {
    let mut samples: Vec<Vec<f64>> = kernels
        .iter()
        .enumerate()
        .map(|(i, k)| vec![measure(*k, (i as u64) << 26)])
        .collect();
    let best_first = samples.iter().map(|s| s[0]).fold(0.0, f64::max);
    let contenders: Vec<usize> = (0..kernels.len())
        .filter(|&i| samples[i][0] >= CONTENDER_SHARE * best_first)
        .collect();
    for r in 1..rounds {
        for &i in &contenders {
            let offset = ((r * kernels.len() + i) as u64) << 26;
            samples[i].push(measure(kernels[i], offset));
        }
    }
    let mut v: Vec<Measurement> = kernels
        .iter()
        .zip(samples)
        .enumerate()
        .map(|(i, (k, mut s))| {
            s.sort_by(f64::total_cmp);
            Measurement {
                kernel: *k,
                hashes_per_sec: s[s.len() / 2],
                contender: contenders.contains(&i),
            }
        })
        .collect();
    v.sort_by(|a, b| {
        b.contender
            .cmp(&a.contender)
            .then(b.hashes_per_sec.total_cmp(&a.hashes_per_sec))
    });
    v
}

/// Every supported kernel ranked as [`choose`] ranks them: the first is the one it picks.
pub fn ranking() -> Vec<Measurement> {
    let kernels = super::supported();
    let each = Duration::from_millis(20);
    super::on_kernel_thread("calibrate", || rank(&kernels, each, 6))
}

/// The fastest supported kernel, measured briefly (about half a second in total): every
/// kernel once for 20 ms, then the contenders five more times.
pub fn choose() -> Measurement {
    ranking().remove(0)
}
