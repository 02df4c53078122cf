//! `miner-worker --benchmark` (quick) is what a person at a new machine, or fleet tooling
//! provisioning one, runs: the CPU, the calibration's pick with its figure first, then a row
//! per close contender (per thread and all threads) with the chosen one marked, the naive
//! baseline, and the time it took. Its plan is bounded by construction (checked here); the
//! measured wall time is reported in BENCHMARKS.md, not asserted.

use std::process::Command;
use std::time::Duration;

use miner_worker::bench;
use miner_worker::search;

#[test]
fn quick_benchmark_plans_at_most_fifteen_seconds_of_measuring() {
    for kernels in 1..=search::all().len() {
        assert!(
            bench::quick_budget(kernels) <= Duration::from_secs(15),
            "{kernels} kernels: {:?}",
            bench::quick_budget(kernels)
        );
    }
}

#[test]
fn quick_benchmark_prints_the_calibrated_kernel_then_its_contenders() {
    let out = Command::new(env!("CARGO_BIN_EXE_miner-worker"))
        .args(["--benchmark", "--threads", "2"])
        .output()
        .expect("run miner-worker --benchmark");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("CPU: "), "{out}");
    let calibrated = lines
        .iter()
        .position(|l| l.starts_with("calibrated in "))
        .unwrap_or_else(|| panic!("no calibration line:\n{out}"));
    let chosen = lines[calibrated]
        .split(": ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap();
    assert!(search::is_supported(chosen), "{chosen} runs on this CPU");

    let rows: Vec<Vec<&str>> = lines[calibrated + 2..]
        .iter()
        .take_while(|l| !l.starts_with("naive"))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(
        (1..=bench::QUICK_KERNELS).contains(&rows.len()),
        "one to {} kernel rows:\n{out}",
        bench::QUICK_KERNELS
    );
    assert_eq!(rows[0][0], chosen, "the chosen kernel comes first:\n{out}");
    assert_eq!(rows[0].last(), Some(&"chosen"), "{out}");
    for r in &rows {
        assert!(search::is_supported(r[0]), "{r:?}");
        let (one, all): (f64, f64) = (r[1].parse().unwrap(), r[2].parse().unwrap());
        assert!(one > 0.0 && all > 0.0, "{r:?}");
    }
    assert_eq!(
        rows.iter().filter(|r| r.last() == Some(&"chosen")).count(),
        1,
        "{out}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("naive")),
        "naive baseline:\n{out}"
    );
    assert!(lines.last().unwrap().starts_with("done in "), "{out}");
}
