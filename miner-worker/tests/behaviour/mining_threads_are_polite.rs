//! Mining threads yield to the machine's own work by default (`SCHED_IDLE`) while the network
//! thread keeps normal priority; `--cpu-priority` and `--cpu-affinity` place them as asked; bad
//! values stop the worker at start with the flag named. Read back from the kernel's own view of
//! each thread (`/proc/PID/task/TID`), on the real binary.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The worker pointed at a closed port (it retries, its threads run meanwhile), scalar kernel
/// (no calibration), two threads.
fn worker(extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_miner-worker"))
        .args([
            "-o",
            "127.0.0.1:1",
            "-u",
            "polite.test",
            "-t",
            "2",
            "--kernel",
            "scalar",
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start miner-worker")
}

#[derive(Debug, Clone, PartialEq)]
struct ThreadView {
    name: String,
    nice: i32,
    /// 0 SCHED_OTHER, 3 SCHED_BATCH, 5 SCHED_IDLE.
    policy: u32,
    cpus: String,
}

fn threads(pid: u32) -> Vec<ThreadView> {
    let mut v = Vec::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return v;
    };
    for task in dir.flatten() {
        let p = task.path();
        let (Ok(stat), Ok(status)) = (
            std::fs::read_to_string(p.join("stat")),
            std::fs::read_to_string(p.join("status")),
        ) else {
            continue;
        };
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let name = head.split_once('(').map_or("", |(_, n)| n).to_owned();
        // `rest` starts at field 3 (state): nice is field 19, policy field 41.
        let f: Vec<&str> = rest.split_whitespace().collect();
        let cpus = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap_or("")
            .trim()
            .to_owned();
        v.push(ThreadView {
            name,
            nice: f[16].parse().unwrap(),
            policy: f[38].parse().unwrap(),
            cpus,
        });
    }
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

/// The worker's threads once `settled` holds for its mining threads (placement is applied as
/// each thread starts), or whatever they are after 20 s.
fn settle(child: &Child, settled: impl Fn(&[ThreadView]) -> bool) -> Vec<ThreadView> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let all = threads(child.id());
        let miners: Vec<ThreadView> = all.iter().filter(|t| is_miner(t)).cloned().collect();
        if (miners.len() == 2 && settled(&miners)) || Instant::now() > deadline {
            return all;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Mining threads are `miner-0`, `miner-1`, ... (the process's main thread is `miner-worker`).
fn is_miner(t: &ThreadView) -> bool {
    t.name
        .strip_prefix("miner-")
        .is_some_and(|n| n.parse::<usize>().is_ok())
}

fn miners(all: &[ThreadView]) -> Vec<&ThreadView> {
    all.iter().filter(|t| is_miner(t)).collect()
}

const SCHED_OTHER: u32 = 0;
const SCHED_IDLE: u32 = 5;

#[test]
fn mining_threads_run_idle_by_default_and_the_network_thread_does_not() {
    let child = worker(&[]);
    let pid = child.id();
    let all = settle(&child, |m| m.iter().all(|t| t.policy == SCHED_IDLE));
    stop(child);
    let m = miners(&all);
    assert_eq!(m.len(), 2, "two mining threads: {all:?}");
    for t in &m {
        assert_eq!(t.policy, SCHED_IDLE, "{t:?}");
        assert_eq!(t.nice, 19, "{t:?}");
    }
    let main = all
        .iter()
        .find(|t| t.name == "miner-worker")
        .unwrap_or_else(|| panic!("main thread of {pid}: {all:?}"));
    assert_eq!(main.policy, SCHED_OTHER, "the network side is untouched");
    assert_eq!(main.nice, 0, "the network side is untouched");
}

#[test]
fn cpu_priority_sets_the_policy_and_nice_value() {
    for (flag, policy, nice) in [("1", SCHED_OTHER, 19), ("normal", SCHED_OTHER, 0)] {
        let child = worker(&["--cpu-priority", flag]);
        let all = settle(&child, |m| {
            m.iter().all(|t| t.policy == policy && t.nice == nice)
        });
        stop(child);
        for t in miners(&all) {
            assert_eq!(
                (t.policy, t.nice),
                (policy, nice),
                "--cpu-priority {flag}: {t:?}"
            );
        }
    }
}

/// The CPUs this test process may use, as the kernel lists them.
fn usable_cpus() -> Vec<usize> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap()
        .trim();
    let mut v = Vec::new();
    for part in list.split(',') {
        match part.split_once('-') {
            Some((a, b)) => v.extend(a.parse::<usize>().unwrap()..=b.parse().unwrap()),
            None => v.push(part.parse().unwrap()),
        }
    }
    v
}

#[test]
fn affinity_pins_mining_threads_round_robin_as_mask_or_list() {
    let cpus = usable_cpus();
    let first = cpus[0];
    let second = *cpus.get(1).unwrap_or(&first);

    let mask = format!("{:#x}", 1u64 << first);
    let child = worker(&["--cpu-affinity", &mask]);
    let want = first.to_string();
    let all = settle(&child, |m| m.iter().all(|t| t.cpus == want));
    stop(child);
    for t in miners(&all) {
        assert_eq!(t.cpus, want, "--cpu-affinity {mask}: {t:?}");
    }
    let main = all.iter().find(|t| t.name == "miner-worker").unwrap();
    assert_ne!(
        main.cpus, want,
        "only mining threads are pinned (unless this machine has one CPU): {all:?}"
    );

    let list = format!("{first},{second}");
    let child = worker(&["--cpu-affinity", &list]);
    let all = settle(&child, |m| {
        m[0].cpus == first.to_string() && m[1].cpus == second.to_string()
    });
    stop(child);
    let m = miners(&all);
    assert_eq!(m[0].name, "miner-0");
    assert_eq!(
        (m[0].cpus.as_str(), m[1].cpus.as_str()),
        (first.to_string().as_str(), second.to_string().as_str()),
        "--cpu-affinity {list}: {all:?}"
    );
}

#[test]
fn bad_priority_or_affinity_stops_the_worker_at_start_naming_the_flag() {
    let cpus = usable_cpus();
    let unusable = (0..1024).find(|c| !cpus.contains(c)).unwrap();
    let unusable = unusable.to_string();
    for (args, expect) in [
        (["--cpu-priority", "9"], "--cpu-priority"),
        (["--cpu-affinity", "0x"], "--cpu-affinity"),
        (
            ["--cpu-affinity", unusable.as_str()],
            "is not available to this process",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_miner-worker"))
            .args([
                "-o",
                "127.0.0.1:1",
                "-u",
                "polite.test",
                "--kernel",
                "scalar",
            ])
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} must fail");
        assert!(err.contains(expect), "{args:?}: {err}");
    }
}
