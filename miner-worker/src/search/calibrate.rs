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
}

impl std::fmt::Debug for dyn Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Rate of `kernel` on one thread: the best of `rounds` runs of about `each`.
pub fn measure(kernel: &dyn Kernel, each: Duration, rounds: usize) -> f64 {
    let mut header = [0u8; 80];
    for (i, b) in header.iter_mut().enumerate() {
        *b = i as u8 ^ 0x5a;
    }
    let pre = Precomputed::from_header(&header);
    let mut found = Vec::new();
    // Size one call so it takes a fraction of `each`.
    let mut chunk: u64 = 4096;
    let warm = Instant::now();
    kernel.search(&pre, 0, chunk, 0, &mut found);
    let per = warm.elapsed().as_secs_f64() / chunk as f64;
    if per > 0.0 {
        chunk = ((each.as_secs_f64() / 8.0 / per) as u64).clamp(1024, 1 << 24);
    }
    let mut best = 0.0f64;
    for r in 0..rounds {
        let t = Instant::now();
        let mut done = 0u64;
        let mut start = (r as u64) << 24;
        while t.elapsed() < each {
            kernel.search(&pre, start, start + chunk, 0, &mut found);
            start += chunk;
            done += chunk;
        }
        best = best.max(done as f64 / t.elapsed().as_secs_f64());
    }
    best
}

/// Measure every kernel in `kernels` and return them fastest first.
pub fn rank(kernels: &[&'static dyn Kernel], each: Duration, rounds: usize) -> Vec<Measurement> {
    let mut v: Vec<Measurement> = kernels
        .iter()
        .map(|k| Measurement {
            kernel: *k,
            hashes_per_sec: measure(*k, each, rounds),
        })
        .collect();
    v.sort_by(|a, b| b.hashes_per_sec.total_cmp(&a.hashes_per_sec));
    v
}

/// The fastest supported kernel, measured briefly (well under a second in total).
pub fn choose() -> Measurement {
    let kernels = super::supported();
    let each = Duration::from_millis((400 / kernels.len().max(1) as u64 / 2).max(10));
    rank(&kernels, each, 2).remove(0)
}
