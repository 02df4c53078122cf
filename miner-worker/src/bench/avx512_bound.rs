//! The AVX-512 kernel's vector-port bound: the most nonces per second one thread could reach
//! if it issued nothing but the vector instructions the `avx512` kernel issues per 16 nonces.
//!
//! The counts are what the release build's loop issues (read off `objdump -d`; a test recounts
//! them in the test build and fails if the kernel drifts from them). The bound is measured,
//! not looked up: each instruction kind's throughput alone on twelve independent chains (which
//! shows which kinds share pipes on this CPU), then the kernel's exact mix interleaved over
//! the same chains. Register moves and spill loads/stores are left out: the bound is the
//! arithmetic the algorithm needs, the kernel's share of it what the rest costs.

use std::time::{Duration, Instant};

/// Vector instructions in the `avx512` kernel's loop per 16 nonces (release build).
pub const VPADDD: u32 = 1063;
pub const VPROLD: u32 = 1038;
pub const VPTERNLOGD: u32 = 638;
pub const VPSRLD: u32 = 162;
/// Their sum: the arithmetic per 16 nonces.
pub const PER_16: u32 = VPADDD + VPROLD + VPTERNLOGD + VPSRLD;

/// One kind of zmm instruction, for the per-kind rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Add,
    Rotate,
    Ternlog,
    Shift,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Add, Kind::Rotate, Kind::Ternlog, Kind::Shift];

    pub fn mnemonic(self) -> &'static str {
        match self {
            Kind::Add => "vpaddd",
            Kind::Rotate => "vprold",
            Kind::Ternlog => "vpternlogd",
            Kind::Shift => "vpsrld",
        }
    }

    /// How many the kernel issues per 16 nonces.
    pub fn per_16(self) -> u32 {
        match self {
            Kind::Add => VPADDD,
            Kind::Rotate => VPROLD,
            Kind::Ternlog => VPTERNLOGD,
            Kind::Shift => VPSRLD,
        }
    }
}

pub fn available() -> bool {
    crate::search::is_supported("avx512")
}

/// Instructions of `kind` per second, one thread, 12 independent chains, for about `each`.
pub fn kind_rate(kind: Kind, each: Duration) -> Option<f64> {
    // SAFETY: AVX-512F checked first.
    available().then(|| unsafe { kind_chains(kind, each) })
}

/// Nonces per second one thread would reach issuing only the kernel's vector arithmetic: the
/// mix of [`VPADDD`], [`VPROLD`], [`VPTERNLOGD`] and [`VPSRLD`], interleaved in the same
/// proportions over 12 independent chains.
pub fn mix_bound(each: Duration) -> Option<f64> {
    // SAFETY: AVX-512F checked first.
    available().then(|| unsafe { mix_chains(each) })
}

/// Twelve chains, one instruction each: `$op {c}, {c}$tail` on every chain register.
macro_rules! twelve {
    ($r:ident, $op:literal, $tail:literal $(, $k:ident)?) => {
        chain_step!(zmm_reg, $r, [0 1 2 3 4 5 6 7 8 9 10 11], $op, $tail $(, $k)?)
    };
}

/// One step of `$kind` on every chain.
macro_rules! step {
    ($r:ident, $k:ident, Add) => {
        twelve!($r, "vpaddd", ", {k}", $k)
    };
    ($r:ident, $k:ident, Rotate) => {
        twelve!($r, "vprold", ", 7")
    };
    ($r:ident, $k:ident, Ternlog) => {
        twelve!($r, "vpternlogd", ", {k}, 0x96", $k)
    };
    ($r:ident, $k:ident, Shift) => {
        twelve!($r, "vpsrld", ", 3")
    };
}

/// Steps of one kind for about `each`; instructions per second.
macro_rules! kind_loop {
    ($each:ident, $kind:ident) => {{
        use std::arch::x86_64::*;
        let mut r = [_mm512_set1_epi32(1); 12];
        let k = _mm512_set1_epi32(3);
        let t = Instant::now();
        let mut steps = 0u64;
        while t.elapsed() < $each {
            for _ in 0..256 {
                step!(r, k, $kind);
            }
            steps += 256;
        }
        std::hint::black_box((&r, k));
        (steps * 12) as f64 / t.elapsed().as_secs_f64()
    }};
}

#[target_feature(enable = "avx512f")]
unsafe fn kind_chains(kind: Kind, each: Duration) -> f64 {
    match kind {
        Kind::Add => kind_loop!(each, Add),
        Kind::Rotate => kind_loop!(each, Rotate),
        Kind::Ternlog => kind_loop!(each, Ternlog),
        Kind::Shift => kind_loop!(each, Shift),
    }
}

/// The mix's repeating unit: 36 steps of 12 chains, 13 vpaddd, 13 vprold, 8 vpternlogd and
/// 2 vpsrld (the kernel's 36.6 / 35.8 / 22.0 / 5.6 % within a step), interleaved as the
/// rounds interleave them.
macro_rules! mix_unit {
    ($r:ident, $k:ident) => {
        step!($r, $k, Add);
        step!($r, $k, Rotate);
        step!($r, $k, Ternlog);
        step!($r, $k, Add);
        step!($r, $k, Rotate);
        step!($r, $k, Add);
        step!($r, $k, Rotate);
        step!($r, $k, Ternlog);
        step!($r, $k, Add);
        step!($r, $k, Rotate);
        step!($r, $k, Shift);
        step!($r, $k, Add);
        step!($r, $k, Rotate);
        step!($r, $k, Ternlog);
        step!($r, $k, Add);
        step!($r, $k, Rotate);
        step!($r, $k, Add);
        step!($r, $k, Rotate);
        step!($r, $k, Ternlog);
        step!($r, $k, Add);
        step!($r, $k, Rotate);
        step!($r, $k, Ternlog);
        step!($r, $k, Add);
        step!($r, $k, Rotate);
        step!($r, $k, Shift);
        step!($r, $k, Add);
        step!($r, $k, Rotate);
        step!($r, $k, Ternlog);
        step!($r, $k, Add);
        step!($r, $k, Rotate);
        step!($r, $k, Add);
        step!($r, $k, Rotate);
        step!($r, $k, Ternlog);
        step!($r, $k, Add);
        step!($r, $k, Rotate);
        step!($r, $k, Ternlog);
    };
}

/// Steps in [`mix_unit`], and of each kind.
pub const UNIT_STEPS: u32 = 36;
pub const UNIT: [(Kind, u32); 4] = [
    (Kind::Add, 13),
    (Kind::Rotate, 13),
    (Kind::Ternlog, 8),
    (Kind::Shift, 2),
];

#[target_feature(enable = "avx512f")]
unsafe fn mix_chains(each: Duration) -> f64 {
    use std::arch::x86_64::*;
    let mut r = [_mm512_set1_epi32(1); 12];
    let k = _mm512_set1_epi32(3);
    let t = Instant::now();
    let mut units = 0u64;
    while t.elapsed() < each {
        for _ in 0..16 {
            mix_unit!(r, k);
        }
        units += 16;
    }
    std::hint::black_box((&r, k));
    // Each unit issues 36 x 12 instructions of the kernel's mix; 16 nonces need PER_16.
    let issued = (units * UNIT_STEPS as u64 * 12) as f64;
    issued / PER_16 as f64 * 16.0 / t.elapsed().as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_unit_keeps_the_kernels_proportions() {
        assert_eq!(UNIT.iter().map(|(_, n)| n).sum::<u32>(), UNIT_STEPS);
        for (kind, n) in UNIT {
            let unit = n as f64 / UNIT_STEPS as f64;
            let kernel = kind.per_16() as f64 / PER_16 as f64;
            assert!(
                (unit - kernel).abs() < 0.015,
                "{kind:?}: {unit} for {kernel}"
            );
        }
    }
}
