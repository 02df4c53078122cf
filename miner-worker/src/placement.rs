//! Where and how eagerly mining threads run: CPU priority and CPU affinity.
//!
//! Fleets run the worker on machines that also do other work (build hosts, desktops, servers
//! with spare cycles). By default every mining thread runs at the lowest priority the kernel
//! has (`SCHED_IDLE`: it gets a core only when nothing else wants it), so the machine's own work
//! never waits for the miner; on an idle machine the hashrate is unchanged. The network thread
//! is left at normal priority, so shares still reach the pool at once.
//!
//! The scale follows cpuminer's `--cpu-priority` (0 idle ... 2 normal ... 5 highest) and its
//! `--cpu-affinity` mask, so fleet scripts written for it carry over; affinity also takes a
//! list (`0,2-3`). Thread `i` is pinned to the `i`-th CPU of the set, round robin.

use std::fmt;
use std::str::FromStr;

/// CPU priority of the mining threads, on cpuminer's 0-5 scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuPriority {
    /// 0: `SCHED_IDLE`, runs only when the CPU would otherwise idle (the default).
    Idle,
    /// 1: normal scheduling at nice 19, the lowest nice value.
    Lowest,
    /// 2: normal scheduling at nice 0, like any other process.
    Normal,
    /// 3-5: nice -5, -10, -15 (needs `CAP_SYS_NICE` or a raised `RLIMIT_NICE`).
    Raised(u8),
}

impl CpuPriority {
    /// The cpuminer-scale number.
    pub fn level(self) -> u8 {
        match self {
            CpuPriority::Idle => 0,
            CpuPriority::Lowest => 1,
            CpuPriority::Normal => 2,
            CpuPriority::Raised(l) => l,
        }
    }

    /// The nice value the threads get.
    pub fn nice(self) -> i32 {
        match self {
            CpuPriority::Idle | CpuPriority::Lowest => 19,
            CpuPriority::Normal => 0,
            CpuPriority::Raised(l) => -5 * (l as i32 - 2),
        }
    }
}

impl FromStr for CpuPriority {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "0" | "idle" => Ok(CpuPriority::Idle),
            "1" | "lowest" => Ok(CpuPriority::Lowest),
            "2" | "normal" => Ok(CpuPriority::Normal),
            "3" => Ok(CpuPriority::Raised(3)),
            "4" => Ok(CpuPriority::Raised(4)),
            "5" | "highest" => Ok(CpuPriority::Raised(5)),
            other => Err(format!(
                "{other:?} is not a CPU priority: 0 (idle, the default), 1 (lowest), 2 (normal) \
                 up to 5 (highest), or idle, lowest, normal, highest"
            )),
        }
    }
}

impl fmt::Display for CpuPriority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CpuPriority::Idle => f.write_str("0 (idle)"),
            CpuPriority::Lowest => f.write_str("1 (nice 19)"),
            CpuPriority::Normal => f.write_str("2 (normal)"),
            CpuPriority::Raised(l) => write!(f, "{l} (nice {})", self.nice()),
        }
    }
}

/// Most CPUs an affinity set may name (the size of the kernel's default `cpu_set_t`).
pub const MAX_CPUS: usize = 1024;

/// A set of CPUs by number, in ascending order, without repeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuSet(Vec<usize>);

impl CpuSet {
    pub fn cpus(&self) -> &[usize] {
        &self.0
    }

    /// The CPU thread `index` is pinned to.
    pub fn for_thread(&self, index: usize) -> usize {
        self.0[index % self.0.len()]
    }

    /// The CPUs this process may run on now (its own affinity, as the kernel reports it).
    pub fn of_this_process() -> std::io::Result<CpuSet> {
        // SAFETY: cpu_set_t is plain data; sched_getaffinity writes at most its size.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(CpuSet(
                (0..MAX_CPUS)
                    .filter(|&c| libc::CPU_ISSET(c, &set))
                    .collect(),
            ))
        }
    }

    /// Check every CPU is one this process may use, so a typo fails at start with the list
    /// of usable CPUs rather than as a warning from each thread.
    pub fn check_usable(&self) -> Result<(), String> {
        let usable = CpuSet::of_this_process()
            .map_err(|e| format!("cannot read this process's CPU affinity: {e}"))?;
        match self.0.iter().find(|c| !usable.0.contains(c)) {
            None => Ok(()),
            Some(c) => Err(format!(
                "CPU {c} is not available to this process (available: {usable})"
            )),
        }
    }
}

impl FromStr for CpuSet {
    type Err = String;
    /// A hex mask (`0x5`: CPUs 0 and 2) or a list of CPUs and ranges (`0,2-3`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let mut cpus = Vec::new();
        if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
            if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(format!("{s:?}: a mask is hex digits after 0x, like 0x3"));
            }
            // From the lowest digit up: digit i holds CPUs 4i..4i+3.
            for (i, d) in hex.chars().rev().enumerate() {
                let v = d.to_digit(16).expect("checked hex");
                for bit in 0..4 {
                    if v & (1 << bit) != 0 {
                        cpus.push(4 * i + bit);
                    }
                }
            }
        } else {
            for part in s.split(',') {
                let num = |t: &str| {
                    t.trim().parse::<usize>().map_err(|_| {
                        format!("{s:?}: expected a hex mask (0x3) or CPUs like 0,2-3; {t:?} is not a CPU number")
                    })
                };
                match part.split_once('-') {
                    Some((a, b)) => {
                        let (a, b) = (num(a)?, num(b)?);
                        if a > b {
                            return Err(format!("{s:?}: range {a}-{b} runs backwards"));
                        }
                        if b >= MAX_CPUS {
                            return Err(format!(
                                "{s:?}: CPU {b} is past the last one ({})",
                                MAX_CPUS - 1
                            ));
                        }
                        cpus.extend(a..=b);
                    }
                    None => cpus.push(num(part)?),
                }
            }
        }
        if let Some(c) = cpus.iter().find(|&&c| c >= MAX_CPUS) {
            return Err(format!(
                "{s:?}: CPU {c} is past the last one ({})",
                MAX_CPUS - 1
            ));
        }
        cpus.sort_unstable();
        cpus.dedup();
        if cpus.is_empty() {
            return Err(format!("{s:?} names no CPU"));
        }
        Ok(CpuSet(cpus))
    }
}

impl fmt::Display for CpuSet {
    /// As a list with ranges, like the kernel's `Cpus_allowed_list`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut i = 0;
        let mut first = true;
        while i < self.0.len() {
            let mut j = i;
            while j + 1 < self.0.len() && self.0[j + 1] == self.0[j] + 1 {
                j += 1;
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if i == j {
                write!(f, "{}", self.0[i])?;
            } else {
                write!(f, "{}-{}", self.0[i], self.0[j])?;
            }
            i = j + 1;
        }
        Ok(())
    }
}

/// How mining threads are placed: their priority and, optionally, their CPUs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub priority: CpuPriority,
    pub affinity: Option<CpuSet>,
}

impl Default for Placement {
    fn default() -> Self {
        Placement {
            priority: CpuPriority::Idle,
            affinity: None,
        }
    }
}

impl Placement {
    /// Check the kernel accepts this placement, on a throwaway thread, so a priority that
    /// needs a right the process lacks or a CPU it may not use fails at start, clearly.
    pub fn check(&self) -> Result<(), String> {
        if let Some(set) = &self.affinity {
            set.check_usable()
                .map_err(|e| format!("--cpu-affinity {set}: {e}"))?;
        }
        let me = self.clone();
        std::thread::spawn(move || me.apply_to_this_thread(0))
            .join()
            .map_err(|_| "placement probe thread panicked".to_owned())?
    }

    /// Place the calling thread as mining thread `index`. Errors say what the kernel refused
    /// (raising priority without the right, say); the thread then mines where it is.
    pub fn apply_to_this_thread(&self, index: usize) -> Result<(), String> {
        set_priority(self.priority)?;
        if let Some(set) = &self.affinity {
            pin_to(set.for_thread(index))?;
        }
        Ok(())
    }
}

fn set_priority(p: CpuPriority) -> Result<(), String> {
    // SAFETY: plain syscalls on the calling thread (tid 0 / pid 0 mean "this thread" for
    // sched_setscheduler and, on Linux, the thread id for setpriority).
    unsafe {
        let policy = if p == CpuPriority::Idle {
            libc::SCHED_IDLE
        } else {
            libc::SCHED_OTHER
        };
        let param = libc::sched_param { sched_priority: 0 };
        if libc::sched_setscheduler(0, policy, &param) != 0 {
            return Err(format!(
                "--cpu-priority {p}: scheduling policy refused: {}",
                std::io::Error::last_os_error()
            ));
        }
        let tid = libc::gettid() as libc::id_t;
        if libc::setpriority(libc::PRIO_PROCESS, tid, p.nice()) != 0 {
            return Err(format!(
                "--cpu-priority {p}: nice {} refused ({}); raising priority needs CAP_SYS_NICE",
                p.nice(),
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

fn pin_to(cpu: usize) -> Result<(), String> {
    // SAFETY: cpu_set_t is plain data and cpu < MAX_CPUS (checked when parsed).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(format!(
                "--cpu-affinity: cannot pin to CPU {cpu}: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_parse_on_cpuminers_scale() {
        assert_eq!("0".parse::<CpuPriority>(), Ok(CpuPriority::Idle));
        assert_eq!("idle".parse::<CpuPriority>(), Ok(CpuPriority::Idle));
        assert_eq!("1".parse::<CpuPriority>().unwrap().nice(), 19);
        assert_eq!("2".parse::<CpuPriority>().unwrap().nice(), 0);
        assert_eq!("5".parse::<CpuPriority>().unwrap().nice(), -15);
        let err = "9".parse::<CpuPriority>().unwrap_err();
        assert!(err.contains("0 (idle, the default)"), "{err}");
    }

    #[test]
    fn affinity_takes_masks_and_lists() {
        let set = |s: &str| s.parse::<CpuSet>().map(|c| c.cpus().to_vec());
        assert_eq!(set("0x3"), Ok(vec![0, 1]));
        assert_eq!(set("0x5"), Ok(vec![0, 2]));
        assert_eq!(set("0x10"), Ok(vec![4]));
        assert_eq!(set("0,2-3"), Ok(vec![0, 2, 3]));
        assert_eq!(set("3, 1,1"), Ok(vec![1, 3]));
        assert!(set("0x0").unwrap_err().contains("names no CPU"));
        assert!(set("0x").unwrap_err().contains("hex digits"));
        assert!(set("3-1").unwrap_err().contains("backwards"));
        assert!(set("a").unwrap_err().contains("not a CPU number"));
        assert!(set("5000").unwrap_err().contains("past the last"));
        assert_eq!("0,2-4,7".parse::<CpuSet>().unwrap().to_string(), "0,2-4,7");
    }

    #[test]
    fn threads_take_the_set_round_robin() {
        let s: CpuSet = "1,3".parse().unwrap();
        assert_eq!(
            (0..4).map(|i| s.for_thread(i)).collect::<Vec<_>>(),
            [1, 3, 1, 3]
        );
    }
}
