//! `miner-worker --benchmark=full` runs offline and reports what an operator compares: the CPU,
//! every kernel this CPU supports with a rate per thread and on all threads, exactly one kernel
//! marked as the one calibration would choose, and (on SHA-NI CPUs) the SHA-NI bounds with the
//! fastest SHA-NI kernel's share of them. Figures are not judged here; BENCHMARKS.md is.

use std::process::Command;

use miner_worker::search;

fn benchmark_output() -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_miner-worker"))
        .args(["--benchmark=full", "--bench-secs", "0.05", "--threads", "2"])
        .output()
        .expect("run miner-worker --benchmark=full");
    assert!(
        out.status.success(),
        "--benchmark failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// The first line of `out` that starts with `prefix`.
fn line<'a>(out: &'a str, prefix: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting {prefix:?}:\n{out}"))
}

/// The first percentage in `line`, checked to be a positive finite number.
fn first_percent(line: &str) -> f64 {
    let percent = line
        .split_whitespace()
        .find_map(|w| w.strip_suffix('%'))
        .map(rate)
        .unwrap_or_else(|| panic!("no percentage in {line:?}"));
    assert!(percent > 0.0 && percent.is_finite(), "{line}");
    percent
}

fn rate(field: &str) -> f64 {
    field
        .parse()
        .unwrap_or_else(|_| panic!("not a rate: {field:?}"))
}

#[test]
fn benchmark_lists_every_supported_kernel_and_marks_the_chosen_one() {
    let out = benchmark_output();
    let cpu = out.lines().next().unwrap_or_default();
    assert!(
        cpu.starts_with("CPU: ") && cpu.contains("threads"),
        "first line names the CPU: {out}"
    );

    let mut chosen = Vec::new();
    for k in search::supported() {
        let row = out
            .lines()
            .find(|l| l.split_whitespace().next() == Some(k.name()))
            .unwrap_or_else(|| panic!("no row for kernel {}:\n{out}", k.name()));
        let fields: Vec<&str> = row.split_whitespace().collect();
        assert!(
            rate(fields[1]) > 0.0 && rate(fields[2]) > 0.0,
            "{row}: both rates positive"
        );
        if row.ends_with("<- chosen") {
            chosen.push(k.name());
        }
    }
    assert_eq!(
        chosen.len(),
        1,
        "exactly one kernel is marked chosen:\n{out}"
    );
    let calibration = out
        .lines()
        .find(|l| l.starts_with("chosen at start by calibration"))
        .unwrap_or_else(|| panic!("no calibration line:\n{out}"));
    assert!(
        calibration.contains(&format!("): {} (", chosen[0])),
        "the marked kernel is the calibrated one: {calibration}"
    );
    for k in search::all()
        .into_iter()
        .filter(|k| !search::is_supported(k.name()))
    {
        assert!(
            !out.lines()
                .any(|l| l.split_whitespace().next() == Some(k.name())),
            "kernel {} is listed but this CPU cannot run it",
            k.name()
        );
    }
}

#[test]
fn benchmark_reports_the_sha_ni_bounds_and_the_share_reached() {
    if !search::is_supported("sha-ni-x2") {
        eprintln!("skipping: this CPU has no SHA extensions");
        return;
    }
    let out = benchmark_output();
    for needle in [
        "SHA-NI issue limit: ",
        "alone on 8 chains: sha256msg1 ",
        "SHA-NI bound with the message schedule",
        "fastest SHA-NI kernel sha-ni-",
    ] {
        assert!(out.contains(needle), "missing {needle:?}:\n{out}");
    }
    let shares = out
        .lines()
        .find(|l| l.starts_with("fastest SHA-NI kernel"))
        .unwrap();
    let percents: Vec<f64> = shares
        .split_whitespace()
        .filter_map(|w| w.strip_suffix('%'))
        .map(rate)
        .collect();
    assert_eq!(percents.len(), 2, "{shares}");
    assert!(
        percents.iter().all(|p| *p > 0.0 && p.is_finite()),
        "{shares}"
    );
}

/// What decides the hybrid kernel is measured and printed: how far SHA-NI and AVX2 arithmetic
/// overlap in one thread, and the hybrid's share of the message-aware SHA-NI bound (the issue's
/// goal: past 100 %).
#[test]
fn benchmark_reports_how_sha_ni_and_avx2_overlap_and_the_hybrids_share() {
    if !search::is_supported("avx2+sha-ni") {
        eprintln!("skipping: this CPU lacks SHA-NI or AVX2");
        return;
    }
    let out = benchmark_output();
    let overlap = line(&out, "SHA-NI beside AVX2 in one thread");
    let (_, measured) = overlap
        .split_once("cannot beat the faster kernel): ")
        .unwrap();
    let factors: Vec<f64> = measured
        .split_whitespace()
        .filter_map(|w| w.trim_end_matches(';').strip_suffix('x'))
        .map(rate)
        .collect();
    assert_eq!(factors.len(), 2, "vpaddd and vpsrld each: {overlap}");
    // Two loops one after the other, timed together: the overlap is at least about 1 and at
    // most about 2; noise on a shared machine widens that a little, nothing more.
    assert!(factors.iter().all(|f| (0.5..=2.5).contains(f)), "{overlap}");
    first_percent(line(&out, "hybrid avx2+sha-ni, paired the same way"));
}

#[test]
fn benchmark_reports_the_avx512_bound_and_the_share_reached() {
    if !search::is_supported("avx512") {
        eprintln!("skipping: this CPU has no AVX-512");
        return;
    }
    let out = benchmark_output();
    let alone = line(&out, "AVX-512 alone on 12 chains");
    for kind in ["vpaddd", "vprold", "vpternlogd", "vpsrld"] {
        assert!(alone.contains(kind), "{alone}");
    }
    assert!(
        out.contains("AVX-512 bound with the kernel's mix"),
        "no bound:\n{out}"
    );
    first_percent(line(&out, "avx512 kernel, each run paired with the bound"));
}

/// The bound's instruction counts are the kernel's own: recounted from `objdump -d` of this
/// test binary (which holds the `avx512` kernel, compiled as in release: the counts agree),
/// so a change to the kernel that forgets the counts fails here.
#[test]
fn avx512_bound_counts_are_what_the_kernel_issues() {
    use miner_worker::bench::avx512_bound::Kind;
    let exe = std::env::current_exe().unwrap();
    // The one-vector kernel's function (not the two-vector `search_v16x2`), by its symbol.
    let nm = Command::new("nm")
        .arg(&exe)
        .output()
        .expect("nm (binutils) runs");
    let symbols = String::from_utf8_lossy(&nm.stdout);
    let symbol = symbols
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .find(|s| s.contains("search_v16") && !s.contains("search_v16x2"))
        .unwrap_or_else(|| panic!("no avx512 kernel symbol in {}", exe.display()));
    let out = Command::new("objdump")
        .args(["--no-show-raw-insn", "-M", "intel"])
        .arg(format!("--disassemble={symbol}"))
        .arg(&exe)
        .output()
        .expect("objdump (binutils) runs");
    assert!(out.status.success(), "objdump failed");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut counts = std::collections::HashMap::<String, u32>::new();
    for line in text.lines() {
        if let Some(m) = line
            .split('\t')
            .nth(1)
            .and_then(|i| i.split_whitespace().next())
        {
            *counts.entry(m.to_owned()).or_default() += 1;
        }
    }
    assert!(
        !counts.is_empty(),
        "no avx512 kernel found in {}",
        exe.display()
    );
    for kind in Kind::ALL {
        let found = counts.get(kind.mnemonic()).copied().unwrap_or(0);
        let want = kind.per_16();
        assert!(
            found.abs_diff(want) * 100 <= want * 3,
            "{}: the kernel issues {found} per 16 nonces, the bound counts {want}; update \
             miner-worker/src/bench/avx512_bound.rs",
            kind.mnemonic()
        );
    }
}
