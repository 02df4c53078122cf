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

/// Measure every kernel `rounds` times, round-robin (so drift in clock speed or in other load
/// hits every kernel alike), and rank them by their median rate, fastest first.
pub fn rank(kernels: &[&'static dyn Kernel], each: Duration, rounds: usize) -> Vec<Measurement> {
    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); kernels.len()];
    for r in 0..rounds {
        for (i, k) in kernels.iter().enumerate() {
            samples[i].push(measure_once(
                *k,
                each,
                ((r * kernels.len() + i) as u64) << 26,
            ));
        }
    }
    let mut v: Vec<Measurement> = kernels
        .iter()
        .zip(samples)
        .map(|(k, mut s)| {
            s.sort_by(f64::total_cmp);
            Measurement {
                kernel: *k,
                hashes_per_sec: s[s.len() / 2],
            }
        })
        .collect();
    v.sort_by(|a, b| b.hashes_per_sec.total_cmp(&a.hashes_per_sec));
    v
}

/// The fastest supported kernel, measured briefly (under half a second in total).
pub fn choose() -> Measurement {
    let kernels = super::supported();
    let each = Duration::from_millis((150 / kernels.len().max(1) as u64).max(10));
    super::on_kernel_thread("calibrate", || rank(&kernels, each, 3).remove(0))
}
