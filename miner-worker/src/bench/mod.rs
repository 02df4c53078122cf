//! `--benchmark`: how fast this machine mines, offline.
//!
//! The quick benchmark (the default) answers "how fast is this box" in seconds, as a person at
//! a new machine or fleet tooling provisioning one wants: the calibrated kernel and its close
//! contenders, per thread and on all threads, each row printed as soon as it is measured.
//! `--benchmark=full` measures every kernel this CPU supports next to a naive baseline, plus the
//! SHA-NI issue limit that bounds any SHA-NI kernel.
//!
//! Figures are medians of several runs (the machine may be shared and noisy); the CPU model and
//! flags are printed with them.

/// One instruction `$op {c}, {c}$tail` on each chain register `$r[i]` (`i` from the list) of
/// register class `$class`, as inline assembly, so the compiler can neither fold nor reorder
/// the chains; `$tail` may name `{k}`, a constant register (then given as the last argument).
#[cfg(target_arch = "x86_64")]
macro_rules! chain_step {
    ($class:ident, $r:ident, [$($i:literal)*], $op:literal, $tail:literal $(, $k:ident)?) => {
        std::arch::asm!(
            $(concat!($op, " {", stringify!($i), "}, {", stringify!($i), "}", $tail),)*
            $(inout($class) $r[$i],)*
            $(k = in($class) $k,)?
            options(pure, nomem, nostack),
        )
    };
}

#[cfg(target_arch = "x86_64")]
pub mod avx512_bound;
#[cfg(target_arch = "x86_64")]
pub mod sha_beside_vector;

use std::io::Write;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::search::{self, calibrate, Kernel};
#[cfg(target_arch = "x86_64")]
use search::sha_ni::{
    MSG1_PER_NONCE as MIX_MSG1, MSG2_PER_NONCE as MIX_MSG2, RNDS2_PER_NONCE as MIX_RNDS2,
};

/// Which benchmark `--benchmark` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// The calibrated kernel and close contenders, within about ten seconds.
    Quick,
    /// Every kernel, the naive baseline and the SHA-NI bounds.
    Full,
}

pub struct Options {
    pub threads: usize,
    pub each: Duration,
    pub runs: usize,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The median of `runs` measurements, or `None` when the CPU cannot run it.
#[cfg(target_arch = "x86_64")]
fn median_of_runs(runs: usize, measure: impl Fn() -> Option<f64>) -> Option<f64> {
    let v: Vec<f64> = (0..runs).filter_map(|_| measure()).collect();
    (!v.is_empty()).then(|| median(v))
}

fn sample_header() -> [u8; 80] {
    let mut h = [0u8; 80];
    for (i, b) in h.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31) ^ 0xa5;
    }
    h
}

/// Hashes per second of `kernel` on one thread for about `each` (the calibration's measure),
/// run `n` of a series: each run starts at its own nonce offset, kept well inside the 2^32
/// nonce space the kernels search.
fn kernel_rate(kernel: &dyn Kernel, each: Duration, n: usize) -> f64 {
    calibrate::measure_once(kernel, each, ((n % 15) as u64) << 28)
}

/// The naive baseline: the `sha2` crate hashing the full 80-byte header twice per nonce.
pub fn naive_rate(each: Duration) -> f64 {
    let mut h = sample_header();
    let t = Instant::now();
    let mut n: u32 = 0;
    let mut sink = 0u8;
    while t.elapsed() < each {
        for _ in 0..4096 {
            h[76..].copy_from_slice(&n.to_le_bytes());
            let d = Sha256::digest(Sha256::digest(h));
            sink ^= d[31];
            n = n.wrapping_add(1);
        }
    }
    std::hint::black_box(sink);
    n as f64 / t.elapsed().as_secs_f64()
}

fn all_threads_rate(kernel: &'static dyn Kernel, threads: usize, each: Duration) -> f64 {
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            search::kernel_thread(format!("bench-{i}"))
                .spawn(move || kernel_rate(kernel, each, i))
                .expect("spawn benchmark thread")
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).sum()
}

/// `sha256rnds2` executed per second by one thread running 8 independent chains: the most any
/// SHA-NI kernel can issue. A SHA-256d nonce needs 64 of them (62 with our shortcuts).
#[cfg(target_arch = "x86_64")]
pub fn sha_ni_issue_rate(each: Duration) -> Option<f64> {
    if !search::is_supported("sha-ni-x2") {
        return None;
    }
    Some(unsafe { rnds2_chains(each, false) })
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sha,sse2")]
unsafe fn rnds2_chains(each: Duration, dirty_upper: bool) -> f64 {
    use std::arch::x86_64::*;
    if dirty_upper {
        // Write a 256-bit register inside this function, so no call boundary lets the
        // compiler insert a vzeroupper before the legacy-SSE loop.
        if std::arch::is_x86_feature_detected!("avx512f") {
            std::arch::asm!("vpternlogd zmm15, zmm15, zmm15, 0xff", out("xmm15") _);
        } else {
            std::arch::asm!("vpcmpeqd ymm15, ymm15, ymm15", out("xmm15") _);
        }
    }
    let b = _mm_set1_epi32(7);
    let k = _mm_set1_epi32(3);
    chains_rate(each, |x| _mm_sha256rnds2_epu32(x, b, k))
}

/// Instructions per second of `step` applied to 8 independent chains for about `each`. Inlined
/// into its `#[target_feature]` callers, so `step` compiles with their instructions.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn chains_rate(
    each: Duration,
    step: impl Fn(std::arch::x86_64::__m128i) -> std::arch::x86_64::__m128i,
) -> f64 {
    use std::arch::x86_64::*;
    // SAFETY: SSE2 is part of the x86_64 baseline.
    let mut a = [unsafe { _mm_set1_epi32(1) }; 8];
    let t = Instant::now();
    let mut iters = 0u64;
    while t.elapsed() < each {
        for _ in 0..1024 {
            for x in a.iter_mut() {
                *x = step(*x);
            }
        }
        iters += 1024;
    }
    std::hint::black_box(&a);
    (iters * 8) as f64 / t.elapsed().as_secs_f64()
}

/// `sha256msg1` and `sha256msg2` executed per second by one thread, each alone on 8
/// independent chains: beside the `sha256rnds2` rate they show which instruction is dear on
/// this CPU.
#[cfg(target_arch = "x86_64")]
pub fn sha_ni_msg_rates(each: Duration) -> Option<(f64, f64)> {
    if !search::is_supported("sha-ni-x2") {
        return None;
    }
    Some(unsafe { msg_chains(each) })
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sha,sse2")]
unsafe fn msg_chains(each: Duration) -> (f64, f64) {
    use std::arch::x86_64::*;
    let b = _mm_set1_epi32(7);
    (
        chains_rate(each, |x| _mm_sha256msg1_epu32(x, b)),
        chains_rate(each, |x| _mm_sha256msg2_epu32(x, b)),
    )
}

/// Nonces per second one thread could reach if it issued only the SHA instructions our
/// SHA-NI kernel issues per nonce (62 `sha256rnds2`, 20 `sha256msg1`, 23 `sha256msg2`), on 8
/// independent streams. Where `sha256rnds2` is the bottleneck (Intel) this matches the
/// issue limit / 62; where the message-schedule instructions share its pipes (AMD Zen) it is
/// the tighter, true bound.
#[cfg(target_arch = "x86_64")]
pub fn sha_ni_mix_rate(each: Duration) -> Option<f64> {
    if !search::is_supported("sha-ni-x2") {
        return None;
    }
    Some(unsafe { sha_mix_streams(each) })
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sha,sse2")]
unsafe fn sha_mix_streams(each: Duration) -> f64 {
    use std::arch::x86_64::*;
    let mut a = [_mm_set1_epi32(1); 8];
    let mut m1 = [_mm_set1_epi32(2); 8];
    let mut m2 = [_mm_set1_epi32(3); 8];
    let b = _mm_set1_epi32(7);
    let k = _mm_set1_epi32(3);
    let t = Instant::now();
    let mut nonces = 0u64;
    while t.elapsed() < each {
        for _ in 0..64 {
            // One nonce per stream: 31 steps of two rounds, with message-schedule work spread
            // over them in the kernel's proportions.
            const STEPS: u32 = MIX_RNDS2 / 2;
            for step in 0..STEPS {
                let msg1 = (step * MIX_MSG1) / STEPS != ((step + 1) * MIX_MSG1) / STEPS;
                let msg2 = (step * MIX_MSG2) / STEPS != ((step + 1) * MIX_MSG2) / STEPS;
                for s in 0..8 {
                    a[s] = _mm_sha256rnds2_epu32(a[s], b, k);
                    a[s] = _mm_sha256rnds2_epu32(a[s], b, k);
                    if msg1 {
                        m1[s] = _mm_sha256msg1_epu32(m1[s], b);
                    }
                    if msg2 {
                        m2[s] = _mm_sha256msg2_epu32(m2[s], b);
                    }
                }
            }
            nonces += 8;
        }
    }
    std::hint::black_box((&a, &m1, &m2));
    nonces as f64 / t.elapsed().as_secs_f64()
}

/// A SHA-NI kernel's rate as a share of the `sha256rnds2` limit (at 64 per nonce) and of the
/// bound with the message schedule. Each kernel run follows a run of each bound, so a change
/// in clock speed on a shared machine hits all three alike; the figures are medians of the
/// per-round ratios, steadier than a ratio of separately taken medians.
#[cfg(target_arch = "x86_64")]
fn sha_ni_paired_shares(kernel: &dyn Kernel, rounds: usize, each: Duration) -> (f64, f64) {
    let mut vs_issue = Vec::with_capacity(rounds);
    let mut vs_mix = Vec::with_capacity(rounds);
    for r in 0..rounds {
        let (Some(issue), Some(mix)) = (sha_ni_issue_rate(each), sha_ni_mix_rate(each)) else {
            break;
        };
        let rate = kernel_rate(kernel, each, r);
        vs_issue.push(rate / (issue / 64.0));
        vs_mix.push(rate / mix);
    }
    (median(vs_issue), median(vs_mix))
}

/// The same chains right after 256-bit code dirtied the upper register halves, without
/// `vzeroupper`: shows the penalty legacy-SSE SHA instructions pay on some CPUs.
#[cfg(target_arch = "x86_64")]
pub fn sha_ni_dirty_upper_rate(each: Duration) -> Option<f64> {
    if !search::is_supported("sha-ni-x2") || !std::arch::is_x86_feature_detected!("avx2") {
        return None;
    }
    unsafe {
        let r = rnds2_chains(each, true);
        zero_upper();
        Some(r)
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn zero_upper() {
    std::arch::x86_64::_mm256_zeroupper();
}

/// The `avx512` kernel against its vector-port bound: each kind's rate alone, the bound with
/// the kernel's mix, and the kernel's share of it, each kernel run paired with a bound run.
#[cfg(target_arch = "x86_64")]
fn print_avx512_bound(opts: &Options) {
    use avx512_bound::{kind_rate, mix_bound, Kind, PER_16};
    let rates: Vec<String> = Kind::ALL
        .iter()
        .filter_map(|&k| {
            let v: Vec<f64> = (0..opts.runs)
                .filter_map(|_| kind_rate(k, opts.each / 4))
                .collect();
            (!v.is_empty()).then(|| format!("{} {:.2} G/s", k.mnemonic(), median(v) / 1e9))
        })
        .collect();
    println!(
        "AVX-512 alone on 12 chains, per thread: {}",
        rates.join(", ")
    );
    let Ok(kernel) = search::by_name("avx512") else {
        return;
    };
    let rounds = 3 * opts.runs;
    let mut bounds = Vec::with_capacity(rounds);
    let mut shares = Vec::with_capacity(rounds);
    for r in 0..rounds {
        let Some(bound) = mix_bound(opts.each / 3) else {
            return;
        };
        let rate = kernel_rate(kernel, opts.each / 3, r);
        bounds.push(bound);
        shares.push(rate / bound);
    }
    println!(
        "AVX-512 bound with the kernel's mix (per 16 nonces {PER_16}: {} vpaddd, {} vprold, {} vpternlogd, {} vpsrld): {} MH/s per thread",
        Kind::Add.per_16(),
        Kind::Rotate.per_16(),
        Kind::Ternlog.per_16(),
        Kind::Shift.per_16(),
        mhs(median(bounds))
    );
    println!(
        "avx512 kernel, each run paired with the bound (median of {rounds}): {:.1}% of the AVX-512 bound",
        median(shares) * 100.0
    );
}

/// Whether SHA-NI and AVX2 arithmetic overlap in one thread: what decides the hybrids.
#[cfg(target_arch = "x86_64")]
fn print_sha_beside_vector(opts: &Options) {
    use sha_beside_vector::{measure, Overlap, Vector};
    let mut parts = Vec::new();
    for kind in [Vector::Add, Vector::Shift] {
        let runs: Vec<Overlap> = (0..opts.runs)
            .filter_map(|_| measure(kind, opts.each / 3))
            .collect();
        if runs.is_empty() {
            return;
        }
        let overlap = median(runs.iter().map(|o| o.overlap).collect());
        let o = runs[runs.len() / 2];
        parts.push(format!(
            "{} ymm {:.0} M/s alone, {} per sha256rnds2 together: overlap {overlap:.2}x",
            kind.mnemonic(),
            o.vector_alone / 1e6,
            o.vector_per_rnds2
        ));
    }
    println!(
        "SHA-NI beside AVX2 in one thread (2.00x: separate pipes, a hybrid adds both rates; 1.00x: one shared pipe, it cannot beat the faster kernel): {}",
        parts.join("; ")
    );
}

fn mhs(h: f64) -> String {
    format!("{:.2}", h / 1e6)
}

/// Run the whole benchmark and print it (on a thread with a kernel-sized stack).
pub fn run(opts: &Options) {
    search::on_kernel_thread("benchmark", || run_here(opts))
}

/// The quick benchmark's measurements: each figure the median of [`QUICK_RUNS`] runs of
/// [`QUICK_EACH`], for at most [`QUICK_KERNELS`] kernels.
pub const QUICK_EACH: Duration = Duration::from_millis(400);
pub const QUICK_RUNS: usize = 3;
pub const QUICK_KERNELS: usize = 3;

/// Longest the quick benchmark measures, calibration included: one per-thread and one
/// all-threads figure per kernel shown, plus the naive baseline. (Calibration takes about
/// half a second: 20 ms per kernel, then six rounds of the contenders.)
pub fn quick_budget(supported_kernels: usize) -> Duration {
    let calibration = Duration::from_millis(20) * (6 * supported_kernels as u32);
    let per_kernel = QUICK_EACH * (2 * QUICK_RUNS as u32);
    calibration + per_kernel * supported_kernels.min(QUICK_KERNELS) as u32 + QUICK_EACH
}

/// The quick benchmark: calibrate as the worker does at start (its figure is printed at once),
/// then the chosen kernel and up to two close contenders, each row as soon as it is measured.
pub fn run_quick(threads: usize) {
    search::on_kernel_thread("benchmark", || quick_here(threads))
}

fn quick_here(threads: usize) {
    let started = Instant::now();
    println!("CPU: {}", search::cpu_description());
    println!(
        "quick benchmark: the calibrated kernel and its close contenders, each figure the median of {QUICK_RUNS} runs of {:.1} s, all-threads with {threads} threads (--benchmark=full: every kernel and the SHA-NI bounds)",
        QUICK_EACH.as_secs_f64()
    );
    let ranking = calibrate::ranking();
    let chosen = ranking[0].kernel;
    println!(
        "calibrated in {:.2} s: {} at {} MH/s/thread (what the worker picks at start)",
        started.elapsed().as_secs_f64(),
        chosen.name(),
        mhs(ranking[0].hashes_per_sec)
    );
    println!(
        "{:<12} {:>14} {:>18} {:>10}",
        "kernel", "MH/s/thread", "MH/s all threads", "vs chosen"
    );
    let mut chosen_rate = None;
    for m in ranking.iter().filter(|m| m.contender).take(QUICK_KERNELS) {
        let k = m.kernel;
        print!("{:<12} ", k.name());
        let one = median(
            (0..QUICK_RUNS)
                .map(|r| kernel_rate(k, QUICK_EACH, r))
                .collect(),
        );
        print!("{:>14} ", mhs(one));
        let _ = std::io::stdout().flush();
        let all = median(
            (0..QUICK_RUNS)
                .map(|_| all_threads_rate(k, threads, QUICK_EACH))
                .collect(),
        );
        let base = *chosen_rate.get_or_insert(one);
        let mark = if k.name() == chosen.name() {
            "  <- chosen"
        } else {
            ""
        };
        println!("{:>18} {:>9.2}x{mark}", mhs(all), one / base);
    }
    let naive = naive_rate(QUICK_EACH);
    println!(
        "{:<12} {:>14} {:>18} {:>10}",
        "naive",
        mhs(naive),
        "-",
        format!("{:.2}x", naive / chosen_rate.unwrap_or(naive))
    );
    println!("done in {:.1} s", started.elapsed().as_secs_f64());
}

fn run_here(opts: &Options) {
    println!("CPU: {}", search::cpu_description());
    println!(
        "each figure: median of {} runs of {:.1} s; all-threads with {} threads",
        opts.runs,
        opts.each.as_secs_f64(),
        opts.threads
    );
    let started = Instant::now();
    let chosen = calibrate::choose();
    let calibration = started.elapsed();
    println!(
        "{:<12} {:>14} {:>18} {:>10}",
        "kernel", "MH/s/thread", "MH/s all threads", "vs naive"
    );
    let naive = median((0..opts.runs).map(|_| naive_rate(opts.each)).collect());
    let mut fastest: Option<&str> = None;
    let mut fastest_rate = 0.0;
    let mut fastest_sha_ni: Option<(&'static dyn Kernel, f64)> = None;
    for k in search::supported() {
        let one = median(
            (0..opts.runs)
                .map(|r| kernel_rate(k, opts.each, r))
                .collect(),
        );
        if one > fastest_rate {
            fastest_rate = one;
            fastest = Some(k.name());
        }
        if k.name().starts_with("sha-ni") && fastest_sha_ni.is_none_or(|(_, r)| one > r) {
            fastest_sha_ni = Some((k, one));
        }
        let all = median(
            (0..opts.runs)
                .map(|_| all_threads_rate(k, opts.threads, opts.each))
                .collect(),
        );
        let mark = if k.name() == chosen.kernel.name() {
            "  <- chosen"
        } else {
            ""
        };
        println!(
            "{:<12} {:>14} {:>18} {:>9.1}x{}",
            k.name(),
            mhs(one),
            mhs(all),
            one / naive,
            mark
        );
    }
    println!(
        "{:<12} {:>14} {:>18} {:>10}",
        "naive",
        mhs(naive),
        "-",
        "1.0x"
    );
    #[cfg(target_arch = "x86_64")]
    if let Some(rate) = median_of_runs(opts.runs, || sha_ni_issue_rate(opts.each)) {
        println!(
            "SHA-NI issue limit: {:.0} M sha256rnds2/s per thread = {} MH/s at 64 per nonce ({} MH/s at the 62 our kernel issues)",
            rate / 1e6,
            mhs(rate / 64.0),
            mhs(rate / 62.0)
        );
        let msgs: Vec<(f64, f64)> = (0..opts.runs)
            .filter_map(|_| sha_ni_msg_rates(opts.each / 2))
            .collect();
        if !msgs.is_empty() {
            let msg1 = median(msgs.iter().map(|r| r.0).collect());
            let msg2 = median(msgs.iter().map(|r| r.1).collect());
            println!(
                "  alone on 8 chains: sha256msg1 {:.0} M/s, sha256msg2 {:.0} M/s ({:.2} and {:.2} per sha256rnds2 slot)",
                msg1 / 1e6,
                msg2 / 1e6,
                rate / msg1,
                rate / msg2
            );
        }
        if let Some(mix) = median_of_runs(opts.runs, || sha_ni_mix_rate(opts.each)) {
            println!(
                "SHA-NI bound with the message schedule (62 rnds2 + {MIX_MSG1} msg1 + {MIX_MSG2} msg2 per nonce): {} MH/s per thread",
                mhs(mix)
            );
        }
        if let Some((k, _)) = fastest_sha_ni {
            let rounds = 3 * opts.runs;
            let (vs_issue, vs_mix) = sha_ni_paired_shares(k, rounds, opts.each / 3);
            println!(
                "fastest SHA-NI kernel {}, each run paired with the bounds (median of {rounds}): {:.1}% of the sha256rnds2 limit at 64 per nonce, {:.1}% of the bound with the message schedule",
                k.name(),
                vs_issue * 100.0,
                vs_mix * 100.0
            );
        }
        if let Ok(hybrid) = search::by_name("avx2+sha-ni") {
            let rounds = 3 * opts.runs;
            let (_, vs_mix) = sha_ni_paired_shares(hybrid, rounds, opts.each / 3);
            println!(
                "hybrid {}, paired the same way: {:.1}% of the bound with the message schedule (past 100%: faster than any SHA-NI kernel can be)",
                hybrid.name(),
                vs_mix * 100.0
            );
        }
        if let Some(dirty) = sha_ni_dirty_upper_rate(opts.each) {
            println!(
                "  same chains with dirty upper register halves (no vzeroupper): {:.0} M/s ({:.1}x slower)",
                dirty / 1e6,
                rate / dirty
            );
        }
    }
    #[cfg(target_arch = "x86_64")]
    print_sha_beside_vector(opts);
    #[cfg(target_arch = "x86_64")]
    if avx512_bound::available() {
        print_avx512_bound(opts);
    }
    println!(
        "chosen at start by calibration ({:.2} s): {} ({} MH/s/thread measured)",
        calibration.as_secs_f64(),
        chosen.kernel.name(),
        mhs(chosen.hashes_per_sec)
    );
    if let Some(best) = fastest {
        if best != chosen.kernel.name() {
            println!(
                "note: the fastest median above is {best}; the two are within this machine's noise"
            );
        }
    }
}
