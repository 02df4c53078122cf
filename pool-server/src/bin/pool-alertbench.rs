//! The alert rules against simulated workers: how often a healthy worker is reported (false
//! alarms per worker-day) and how long a stopped, hung or halved one takes to be found.
//!
//! Each worker mines at the difficulty the pool's vardiff settles on by default (one share per
//! 3 s, never under difficulty 0.001); shares are drawn as Poisson counts per 5-second look,
//! the pool's own look interval, with 1 % of them rejected (stale). A worker is first run for
//! a warm-up (a day, or long enough to count 100 shares) so its baseline is learnt, then:
//! - steady: run on for the worker-days asked; every alert is a false alarm;
//! - stopped: it closes its connection; time to "offline";
//! - hung: connected, no shares; time to "offline";
//! - halved: its hashrate halves (vardiff follows 30 s later); time to "hashrate dropped".
//!
//! Usage: pool-alertbench [--worker-days N] [--trials N]

use std::time::Duration;

use clap::Parser;

use pool_server::notify::watch::{Change, Observation, Watch, WatchConfig};
use rand::rngs::StdRng as SmallRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Poisson};

const TWO_32: f64 = 4_294_967_296.0;
const LOOK: f64 = 5.0;
const DAY: f64 = 86_400.0;
const REJECTED: f64 = 0.01;

/// The pool's default vardiff equilibrium: one share per 3 s, at least difficulty 0.001.
fn difficulty_for(hashrate: f64) -> f64 {
    (hashrate * 3.0 / TWO_32).clamp(0.001, 1e15)
}

/// A worker's shares per look: accepted and rejected are independent Poisson counts (a
/// Poisson process thinned at random).
struct Flow {
    accepted: Option<Poisson<f64>>,
    rejected: Option<Poisson<f64>>,
    difficulty: f64,
    sessions: u32,
}

impl Flow {
    fn new(per_second: f64, difficulty: f64, sessions: u32) -> Flow {
        let mean = per_second * LOOK;
        Flow {
            accepted: Poisson::new(mean * (1.0 - REJECTED)).ok(),
            rejected: Poisson::new(mean * REJECTED).ok(),
            difficulty,
            sessions,
        }
    }

    fn look(&self, rng: &mut SmallRng) -> Observation {
        let draw = |p: &Option<Poisson<f64>>, rng: &mut SmallRng| {
            p.as_ref().map_or(0, |p| p.sample(rng) as u64)
        };
        let accepted = draw(&self.accepted, rng);
        Observation {
            accepted,
            accepted_difficulty: accepted as f64 * self.difficulty,
            rejected: draw(&self.rejected, rng),
            difficulty: self.difficulty,
            sessions: self.sessions,
        }
    }
}

fn is_alert(c: &Change) -> bool {
    matches!(
        c,
        Change::Offline(_) | Change::HashrateDropped { .. } | Change::RejectsHigh { .. }
    )
}

struct Class {
    hashrate: f64,
    difficulty: f64,
    per_second: f64,
}

impl Class {
    fn new(hashrate: f64) -> Class {
        let difficulty = difficulty_for(hashrate);
        Class {
            hashrate,
            difficulty,
            per_second: hashrate / (difficulty * TWO_32),
        }
    }

    fn warm_seconds(&self) -> f64 {
        DAY.max(100.0 / self.per_second)
    }

    /// A worker with its baseline learnt.
    fn warmed(&self, rng: &mut SmallRng) -> Watch {
        let mut w = Watch::new(WatchConfig::default());
        let flow = Flow::new(self.per_second, self.difficulty, 1);
        let mut t = 0.0;
        while t < self.warm_seconds() {
            w.observe(Duration::from_secs_f64(LOOK), &flow.look(rng));
            t += LOOK;
        }
        w
    }

    /// False alarms of steady workers over `days` worker-days, run on `threads` threads.
    fn false_alarms(&self, days: u64, seed: u64) -> u64 {
        let workers = 20u64.min(days).max(1);
        let per_worker = days.div_ceil(workers);
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..2)
                .map(|thread| {
                    s.spawn(move || {
                        let mut alarms = 0;
                        for i in (thread..workers).step_by(2) {
                            let mut rng = SmallRng::seed_from_u64(seed ^ (i * 7919));
                            let mut w = self.warmed(&mut rng);
                            let flow = Flow::new(self.per_second, self.difficulty, 1);
                            let looks = (per_worker as f64 * DAY / LOOK) as u64;
                            for _ in 0..looks {
                                let o = flow.look(&mut rng);
                                let changes = w.observe(Duration::from_secs_f64(LOOK), &o);
                                alarms += changes.iter().filter(|c| is_alert(c)).count() as u64;
                            }
                        }
                        alarms
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        })
    }

    /// Seconds from the change to the first `found` change, over `trials` workers.
    fn detect(
        &self,
        trials: u64,
        seed: u64,
        before: f64,
        changed: Flow,
        then: Flow,
        found: impl Fn(&Change) -> bool,
    ) -> Vec<f64> {
        let mut rng = SmallRng::seed_from_u64(seed);
        let warmed = self.warmed(&mut rng);
        let limit = 7.0 * DAY;
        let mut times = Vec::new();
        for _ in 0..trials {
            let mut w = warmed.clone();
            let mut t = 0.0;
            let mut hit = f64::INFINITY;
            while t < limit {
                t += LOOK;
                let o = if t <= before { &changed } else { &then }.look(&mut rng);
                if w.observe(Duration::from_secs_f64(LOOK), &o)
                    .iter()
                    .any(&found)
                {
                    hit = t;
                    break;
                }
            }
            times.push(hit);
        }
        times.sort_by(f64::total_cmp);
        times
    }
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn human_rate(h: f64) -> String {
    let units = ["H/s", "kH/s", "MH/s", "GH/s", "TH/s", "PH/s"];
    let mut v = h;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < units.len() {
        v /= 1000.0;
        u += 1;
    }
    format!("{v:.0} {}", units[u])
}

fn secs(s: f64) -> String {
    if !s.is_finite() {
        "never (7 d)".to_owned()
    } else if s < 120.0 {
        format!("{s:.0} s")
    } else if s < 7200.0 {
        format!("{:.1} min", s / 60.0)
    } else {
        format!("{:.1} h", s / 3600.0)
    }
}

/// The alert rules against simulated workers: false alarms per worker-day, time to detect.
#[derive(Parser)]
#[command(name = "pool-alertbench")]
struct Args {
    /// Worker-days of steady workers per hashrate (every alert among them is false).
    #[arg(long, env = "POOL_ALERTBENCH_WORKER_DAYS", default_value_t = 2000)]
    worker_days: u64,
    /// Workers stopped, hung and halved per hashrate.
    #[arg(long, env = "POOL_ALERTBENCH_TRIALS", default_value_t = 200)]
    trials: u64,
}

fn main() {
    let args = Args::parse();
    let (days, trials) = (args.worker_days.max(1), args.trials.max(1));
    let started = std::time::Instant::now();
    println!(
        "alert rules, default settings; CPU: {}",
        pool_server::host::cpu_model()
    );
    println!(
        "| hashrate | share every | false alarms / {days} worker-days (per 1,000, 95 % upper) \
         | stopped: found after | hung: median / p95 | halved: median / p95 |"
    );
    println!("|---|---|---|---|---|---|");
    for (i, h) in [1e3, 1e5, 1e6, 1e9, 1e12, 1e14].into_iter().enumerate() {
        let c = Class::new(h);
        let seed = 0x5eed + i as u64;
        let alarms = c.false_alarms(days, seed);
        // A Poisson upper bound on the rate from the count seen (3.0 for none).
        let upper = pool_server::notify::poisson::upper_bound(alarms as f64, 0.05);
        let offline = |ch: &Change| matches!(ch, Change::Offline(_));
        let gone = || Flow::new(0.0, c.difficulty, 0);
        let stopped = c.detect(trials, seed + 1, 0.0, gone(), gone(), offline);
        let hung = || Flow::new(0.0, c.difficulty, 1);
        let hung = c.detect(trials, seed + 2, 0.0, hung(), hung(), offline);
        // Vardiff follows a halved rate at its next retarget (30 s by default).
        let (half, d) = (c.hashrate / 2.0, difficulty_for(c.hashrate / 2.0));
        let halved = c.detect(
            trials,
            seed + 3,
            30.0,
            Flow::new(half / (c.difficulty * TWO_32), c.difficulty, 1),
            Flow::new(half / (d * TWO_32), d, 1),
            |ch| matches!(ch, Change::HashrateDropped { .. }),
        );
        println!(
            "| {} | {} | {alarms} ({:.3}) | {} | {} / {} | {} / {} |",
            human_rate(h),
            secs(1.0 / c.per_second),
            upper / days as f64 * 1000.0,
            secs(quantile(&stopped, 0.5)),
            secs(quantile(&hung, 0.5)),
            secs(quantile(&hung, 0.95)),
            secs(quantile(&halved, 0.5)),
            secs(quantile(&halved, 0.95)),
        );
    }
    println!(
        "({days} worker-days and {trials} trials per class, {:.0} s)",
        started.elapsed().as_secs_f64()
    );
}
