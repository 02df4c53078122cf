//! SHA-256d nonce search: one [`Kernel`] interface, several implementations chosen at run
//! time by what the CPU offers and by measurement ([`calibrate`]).
//!
//! Every kernel searches a nonce range of one work unit ([`Precomputed`]: midstate plus the
//! constant parts of the header's second block) and reports the nonces whose hash passes the
//! early test on its top 32 bits. Callers confirm candidates against the full target with the
//! reference hash, so a kernel never decides alone that a share is valid.

pub mod calibrate;
pub mod lanes;
pub mod scalar;

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
#[cfg(target_arch = "x86_64")]
pub mod hybrid;
#[cfg(target_arch = "x86_64")]
pub mod sha_ni;

pub use lanes::Precomputed;

/// A SHA-256d search kernel.
pub trait Kernel: Send + Sync {
    /// Short name, as `--kernel` takes it.
    fn name(&self) -> &'static str;
    /// Nonces hashed per inner step.
    fn lanes(&self) -> usize;
    /// Hash every nonce in `start..end` (`end <= 2^32`) and append those whose hash, read as a
    /// little-endian number, has its top 32 bits `<= target_top`.
    fn search(
        &self,
        pre: &Precomputed,
        start: u64,
        end: u64,
        target_top: u32,
        found: &mut Vec<u32>,
    );
}

/// The kernels this build knows, fastest-first by expectation; `supported` filters by CPU.
pub fn all() -> Vec<&'static dyn Kernel> {
    let mut v: Vec<&'static dyn Kernel> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        v.push(&avx512::Avx512x2);
        v.push(&avx512::Avx512);
        v.push(&sha_ni::ShaNi::<2>);
        v.push(&sha_ni::ShaNi::<3>);
        v.push(&sha_ni::ShaNi::<4>);
        v.push(&sha_ni::ShaNi::<6>);
        v.push(&avx2::Avx2);
        v.push(&avx2::Avx2x2);
        v.push(&hybrid::Hybrid);
    }
    v.push(&scalar::Scalar);
    v
}

/// Whether this CPU can run the named kernel.
pub fn is_supported(name: &str) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        if name.starts_with("avx2+sha-ni") {
            return hybrid::available();
        }
        if name.starts_with("avx512") {
            return avx512::available();
        }
        if name.starts_with("sha-ni") {
            return sha_ni::available();
        }
        if name.starts_with("avx2") {
            return avx2::available();
        }
    }
    name == "scalar"
}

/// The kernels this CPU supports.
pub fn supported() -> Vec<&'static dyn Kernel> {
    all()
        .into_iter()
        .filter(|k| is_supported(k.name()))
        .collect()
}

/// A kernel by name, if this CPU supports it.
pub fn by_name(name: &str) -> Result<&'static dyn Kernel, String> {
    let known: Vec<&str> = all().iter().map(|k| k.name()).collect();
    match all().into_iter().find(|k| k.name() == name) {
        None => Err(format!(
            "unknown kernel {name:?}; known: {}",
            known.join(", ")
        )),
        Some(_) if !is_supported(name) => Err(format!("this CPU cannot run kernel {name:?}")),
        Some(k) => Ok(k),
    }
}

/// Stack size for every thread that runs a kernel. An unoptimized build keeps each SIMD
/// temporary of the unrolled kernels in its own stack slot and overflows the default 2 MiB;
/// the stack is reserved address space, touched (and so committed) only as far as used.
pub const KERNEL_THREAD_STACK: usize = 64 << 20;

/// A thread builder for kernel work: named, with [`KERNEL_THREAD_STACK`].
pub fn kernel_thread(name: String) -> std::thread::Builder {
    std::thread::Builder::new()
        .name(name)
        .stack_size(KERNEL_THREAD_STACK)
}

/// Run `f` on a kernel thread and wait for it (for callers on a thread with a small stack).
pub fn on_kernel_thread<T: Send>(name: &str, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        kernel_thread(name.to_owned())
            .spawn_scoped(s, f)
            .expect("spawn kernel thread")
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Drive a lane-generic kernel over a range, reporting candidates in range only.
#[inline(always)]
pub(crate) fn search_lanes<L: lanes::Lanes>(
    pre: &Precomputed,
    start: u64,
    end: u64,
    target_top: u32,
    found: &mut Vec<u32>,
) {
    let mut base = start;
    while base < end {
        let h7 = lanes::sha256d_h7::<L>(pre, L::counter(base as u32));
        report_lanes(base, h7.le_mask(target_top), end, found);
        base += L::LANES as u64;
    }
}

/// Report the nonces `base + i` for every bit `i` set in `mask`, those below `end` only.
#[inline(always)]
pub(crate) fn report_lanes(base: u64, mut mask: u32, end: u64, found: &mut Vec<u32>) {
    while mask != 0 {
        let nonce = base + mask.trailing_zeros() as u64;
        mask &= mask - 1;
        if nonce < end {
            found.push(nonce as u32);
        }
    }
}

/// The CPU model and the SIMD/SHA flags that matter here, for printing beside every figure.
pub fn cpu_description() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_owned());
    let mut flags = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        for (name, on) in [
            ("sha_ni", std::arch::is_x86_feature_detected!("sha")),
            ("avx2", std::arch::is_x86_feature_detected!("avx2")),
            ("avx512f", std::arch::is_x86_feature_detected!("avx512f")),
            ("avx512vl", std::arch::is_x86_feature_detected!("avx512vl")),
            ("avx512bw", std::arch::is_x86_feature_detected!("avx512bw")),
        ] {
            if on {
                flags.push(name);
            }
        }
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("{model} ({cores} threads; {})", flags.join(" "))
}
