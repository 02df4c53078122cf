//! Every kind of stock miner settles at the right difficulty and is measured at the rate it
//! mines: scripted clients with the job-switching, difficulty and pipelining habits of
//! cpuminer-opt, pooler cpuminer, cgminer and firmware mine real shares at a set rate against
//! the real server. The target interval is 0.1 s, so the "2 minutes" (40 intervals at
//! the default 3 s target) is 4 s here. The retarget window is 3 intervals (the default is
//! 10), so the pool changes difficulty more eagerly here than on its defaults.

use crate::common;

use std::time::Duration;

use common::scripted_miner::{self, Behaviour, Report, Switch};
use common::*;

const TARGET_INTERVAL: f64 = 0.1;
/// Hashes a second each client mines at: an ideal difficulty of about 3.5e-6.
const HASHRATE: f64 = 150_000.0;
const RUN: Duration = Duration::from_secs(40);

fn ideal(hashrate: f64) -> f64 {
    hashrate * TARGET_INTERVAL / 4_294_967_296.0
}

/// The property of the issue for one client: within 2x of the ideal by 40 target intervals,
/// never above 4x on the way, then within +-50% with few changes.
fn check_settles(name: &str, r: &Report) {
    let want = ideal(r.hashrate());
    let settle = Duration::from_secs_f64(40.0 * TARGET_INTERVAL);
    let ratio = |d: f64| d / want;
    let max = r
        .difficulties
        .iter()
        .map(|(_, d)| ratio(*d))
        .fold(0.0, f64::max);
    assert!(max <= 4.0, "{name}: overshot to {max:.2}x the ideal: {r:?}");
    let at_settle = r
        .difficulties
        .iter()
        .take_while(|(t, _)| *t <= settle)
        .last()
        .map(|(_, d)| ratio(*d))
        .unwrap();
    assert!(
        (0.5..=2.0).contains(&at_settle),
        "{name}: {at_settle:.2}x the ideal after {settle:?}: {r:?}"
    );
    let later: Vec<f64> = r
        .difficulties
        .iter()
        .filter(|(t, _)| *t > settle * 3)
        .map(|(_, d)| ratio(*d))
        .collect();
    assert!(
        later.iter().all(|x| (0.5..=1.5).contains(x)),
        "{name}: left +-50% once settled: {later:?}"
    );
    assert!(
        later.len() <= 4,
        "{name}: {} changes once settled (oscillating): {later:?}",
        later.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_settles_near_the_ideal_and_its_hashrate_reads_true() {
    let pool = start_pool(&[
        "--start-difficulty",
        "0.0000001",
        "--vardiff-min",
        "0.00000001",
        "--vardiff-target",
        "100ms",
        "--vardiff-retarget",
        "300ms",
    ])
    .await;
    let clients = [
        (
            "pooler.cpuminer",
            Behaviour {
                switch: Switch::EveryNotify,
                pipeline: 1,
                difficulty_at_once: false,
            },
        ),
        (
            "carol.opt",
            Behaviour {
                switch: Switch::HexIdChanges,
                pipeline: 1,
                difficulty_at_once: false,
            },
        ),
        (
            "fw.cleanonly",
            Behaviour {
                switch: Switch::CleanJobsOnly,
                pipeline: 1,
                difficulty_at_once: false,
            },
        ),
        (
            "cg.miner",
            Behaviour {
                switch: Switch::EveryNotify,
                pipeline: 1,
                difficulty_at_once: true,
            },
        ),
        (
            "pipe.lined",
            Behaviour {
                switch: Switch::EveryNotify,
                pipeline: 3,
                difficulty_at_once: false,
            },
        ),
    ];
    let addr = pool.stratum();
    let runs: Vec<_> = clients
        .iter()
        .map(|(name, b)| {
            let (name, b) = (name.to_string(), *b);
            tokio::spawn(async move {
                let r = scripted_miner::mine(addr, &name, b, HASHRATE, RUN).await;
                (name, r)
            })
        })
        .collect();
    let mut reports = Vec::new();
    for r in runs {
        reports.push(r.await.unwrap());
    }
    for (name, r) in &reports {
        let w = pool.get(&format!("/api/workers/{name}")).await;
        let five = w["hashrate"]["5m"].as_f64().unwrap();
        let first_diff = r.difficulties.first().map(|(_, d)| *d);
        println!(
            "{name}: mined {:.0} H/s, pool 5m {:.0} H/s ({:+.1} %), {} accepted, {} rejected, {} difficulty changes, start {:?}, end {:?} (ideal {:.3e})",
            r.hashrate(),
            five,
            (five / r.hashrate() - 1.0) * 100.0,
            r.accepted,
            r.rejected.len(),
            r.difficulties.len() - 1,
            first_diff,
            r.difficulties.last().map(|(_, d)| *d),
            ideal(r.hashrate()),
        );
        let timeline: Vec<String> = r
            .difficulties
            .iter()
            .map(|(t, d)| format!("{:.1}s:{:.2}x", t.as_secs_f64(), d / ideal(r.hashrate())))
            .collect();
        println!("  {}", timeline.join(" "));
        let want = ideal(r.hashrate());
        // Settled: from the first change after which every difficulty is within 2x.
        let settled = r
            .difficulties
            .iter()
            .enumerate()
            .find(|(i, _)| {
                r.difficulties[*i..]
                    .iter()
                    .all(|(_, d)| (0.5..=2.0).contains(&(d / want)))
            })
            .map(|(_, (t, _))| t.as_secs_f64() / TARGET_INTERVAL);
        let overshoot = r
            .difficulties
            .iter()
            .map(|(_, d)| d / want)
            .fold(0.0, f64::max);
        println!(
            "  settled within 2x after {:.1} target intervals, highest {overshoot:.2}x the ideal",
            settled.unwrap_or(f64::NAN)
        );
        assert!(r.rejected.is_empty(), "{name}: rejects {:?}", r.rejected);
        check_settles(name, r);
        assert!(
            (five / r.hashrate() - 1.0).abs() <= 0.25,
            "{name}: pool reads {five:.0} H/s for a {:.0} H/s miner",
            r.hashrate()
        );
    }
    pool.stop().await;
}

#[test]
fn cpuminer_opt_reads_job_ids_as_hex_numbers() {
    use scripted_miner::hex_number;
    assert_eq!(hex_number("d33e"), hex_number("d33e.1"));
    assert_ne!(hex_number("d33e"), hex_number("d33f"));
}
