//! Three honest pools in a line (A - B - C) mine one chain while a stranger attacks the one in
//! the middle with everything a peer can send for free or nearly: cheap 900 kB blocks on a fork
//! from the genesis, floods of announcements and orphans, and a heavier branch that forks
//! deeper than a reorganisation may reach. The network keeps one chain, the attacker's
//! addresses are banned, nothing of its blocks is stored, and the miners on C keep having
//! their shares answered (how fast, with and without the attacker, is a benchmark:
//! `scripts/bench-attack`, figures in BENCHMARKS.md).

use crate::common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use bitcoin::hashes::Hash;
use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_blockdata::Inventory;
use bitcoin::BlockHash;
use common::p2p::*;
use common::*;
use futures::SinkExt;
use protocol::Extranonce2;
use serde_json::Value;

/// A block is one hash in 65,536: honest miners find one in a moment, and so does the
/// attacker, whose blocks are each as cheap as the genesis.
const BITS: &str = "1f00ffff";

fn args(f: &[String]) -> Vec<&str> {
    f.iter().map(String::as_str).collect()
}

fn ip(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

/// Send, ignoring a connection the node has closed.
async fn push(p: &mut ScriptedPeer, msg: NetworkMessage) {
    let _ = p.framed.send(msg).await;
}

/// Log in as `worker` and wait for the first job.
async fn login_as(addr: std::net::SocketAddr, worker: &str) -> Client {
    let mut c = Client::connect(addr).await;
    c.subscribe().await;
    assert_eq!(c.authorize(worker).await.unwrap(), Value::Bool(true));
    c.wait_job().await;
    c
}

/// Mine a block on the client's job (grinding to the block's target) and wait for its clean
/// job; its hash. A job that went stale meanwhile (a block found elsewhere: C's shares can be
/// blocks too) is mined again on the new one.
async fn mine_block(c: &mut Client, worker: &str, counter: &mut u64) -> String {
    loop {
        *counter += 1;
        let job = c.job.clone().expect("a job");
        let block_target = job.nbits.to_target().unwrap();
        let en2 = Extranonce2::from_counter(*counter, c.extranonce2_size);
        let mut found = mine(&job, c.extranonce1.as_ref().unwrap(), &en2, block_target, 0);
        found.submit.worker = protocol::WorkerName::new(worker);
        match c.submit(found.submit).await {
            Ok(Value::Bool(true)) => {
                let hash = found.hash.to_string();
                c.wait_clean_job(&hash).await;
                return hash;
            }
            Err(e) if e.code == protocol::ErrorCode::JobNotFound => c.drain().await,
            other => panic!("a block refused: {other:?}"),
        }
    }
}

/// Everything the attacker does to B; it returns when B has dropped every connection of it.
async fn attack(b: std::net::SocketAddr, deep_fork_from: (BlockHash, u64), heavier_by: usize) {
    // (c) Floods: 20,000 announcements of blocks that do not exist, then orphans nobody asked
    // for until the node drops the connection.
    let mut flood = ScriptedPeer::connect(ip(10), b, magic(BITS)).await;
    flood.handshake(0).await.unwrap();
    for m in 0..4u32 {
        let items = (0..5_000u32)
            .map(|k| {
                let mut h = [0u8; 32];
                h[..4].copy_from_slice(&m.to_le_bytes());
                h[4..8].copy_from_slice(&k.to_le_bytes());
                Inventory::Block(BlockHash::from_byte_array(h))
            })
            .collect();
        push(&mut flood, NetworkMessage::Inv(items)).await;
    }
    for k in 0..80u8 {
        let mut orphan = BlockMaker::fork(BITS, BlockHash::from_byte_array([k; 32]), 5, 60);
        push(&mut flood, NetworkMessage::Block(orphan.next_block())).await;
    }
    assert!(flood.closed_within(Duration::from_secs(10)).await);

    // (a) Cheap 900 kB blocks on a fork from the genesis, nobody asked for: each costs the
    // connection, the fourth the address.
    let mut fork = BlockMaker::new(BITS, 60);
    let big = fork.next_block_padded(900_000);
    for _ in 0..4 {
        let mut p = ScriptedPeer::connect(ip(9), b, magic(BITS)).await;
        if p.handshake(0).await.is_err() {
            break;
        }
        push(&mut p, NetworkMessage::Block(big.clone())).await;
        assert!(p.closed_within(Duration::from_secs(10)).await);
    }

    // (d) A branch with more work than the honest chain, from below the fork depth.
    let (from, height) = deep_fork_from;
    let mut deep = BlockMaker::fork(BITS, from, height, 30);
    let branch: Vec<_> = (0..heavier_by).map(|_| deep.next_block()).collect();
    let mut p = ScriptedPeer::connect(ip(11), b, magic(BITS)).await;
    p.handshake(height + heavier_by as u64).await.unwrap();
    push(
        &mut p,
        NetworkMessage::Headers(branch.iter().map(|b| b.header).collect()),
    )
    .await;
    let asked = p
        .expect(Duration::from_secs(10), |m| {
            matches!(m, NetworkMessage::GetData(_))
        })
        .await;
    assert!(asked, "headers with the work to lead are fetched");
    push(&mut p, NetworkMessage::Block(branch[0].clone())).await;
    assert!(p.closed_within(Duration::from_secs(10)).await);
}

/// What one run measured.
#[derive(Debug)]
pub struct Run {
    /// Each share's round trip on C, submit to answer.
    pub latencies: Vec<Duration>,
    pub rejected: usize,
}

/// Run the honest network (with the attacker on B when `attacked`) while a miner on C sends
/// `shares` shares and a miner on A finds blocks; checks that the network kept one chain
/// and, when attacked, that the attack was refused and stored nothing.
pub async fn honest_network(attacked: bool, shares: usize) -> Run {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let flags = |peer: Option<&str>| {
        let mut f = vec![
            "--max-outbound",
            "1",
            "--max-fork-depth",
            "5",
            "--ban-duration",
            "10m",
            "--start-difficulty",
            "1e-9",
            "--vardiff-min",
            "1e-9",
            "--vardiff-max",
            "1e-9",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
        if let Some(p) = peer {
            f.extend(["--peer".to_owned(), p.to_owned()]);
        }
        f
    };
    let fa = flags(None);
    let a = NodeProcess::spawn(dirs[0].path(), BITS, &args(&fa));
    let fb = flags(Some(&a.p2p.to_string()));
    let b = NodeProcess::spawn(dirs[1].path(), BITS, &args(&fb));
    let fc = flags(Some(&b.p2p.to_string()));
    let c = NodeProcess::spawn(dirs[2].path(), BITS, &args(&fc));
    linked(&[&a, &b, &c], &[1, 2, 1]).await;

    // The honest chain grows past the fork depth first.
    let mut finder = login_as(a.pool.stratum, "alice.rig1").await;
    let mut counter = 0;
    let mut first = String::new();
    for i in 0..8 {
        let h = mine_block(&mut finder, "alice.rig1", &mut counter).await;
        if i == 0 {
            first = h;
        }
    }
    same_tip(&[&a, &b, &c], 8, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let file_before = file_len(dirs[1].path());

    // A keeps finding blocks while C's miner sends its shares (and the attacker works on B).
    let finding = tokio::spawn(async move {
        for _ in 0..6 {
            mine_block(&mut finder, "alice.rig1", &mut counter).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    let attacker = attacked.then(|| {
        let from = (first.parse::<BlockHash>().unwrap(), 1);
        tokio::spawn(attack(b.p2p, from, 20))
    });
    let mut miner = login_as(c.pool.stratum, "carol.rig1").await;
    let mut latencies = Vec::with_capacity(shares);
    let mut rejected = 0;
    for i in 0..shares {
        let t = Instant::now();
        let (r, _) = miner.share_as("carol.rig1", i as u64 + 1).await;
        latencies.push(t.elapsed());
        if r.is_err() {
            rejected += 1;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if let Some(t) = attacker {
        t.await.unwrap();
    }
    finding.await.unwrap();
    same_tip(&[&a, &b, &c], 14, Duration::from_secs(20)).await;

    if attacked {
        // Its blocks stored nothing: B's block file grew by the honest blocks only.
        let grown = file_len(dirs[1].path()) - file_before;
        assert!(grown < 20_000, "B's block file grew by {grown} bytes");
        let refused = |reason: &'static str| {
            let b = &b;
            async move {
                b.pool
                    .metric(&format!(
                        "pool_p2p_refused_blocks_total{{reason=\"{reason}\"}}"
                    ))
                    .await
            }
        };
        let (low, deep) = (
            refused("low-work-branch").await,
            refused("fork-too-deep").await,
        );
        assert!(
            low >= 4.0 && deep == 1.0,
            "refused: {low} low-work, {deep} too deep"
        );
        assert!(b.pool.metric("pool_p2p_bans_total").await >= 1.0);
        let mut again = ScriptedPeer::connect(ip(9), b.p2p, magic(BITS)).await;
        assert!(again.closed_within(Duration::from_secs(2)).await, "banned");
        // The honest peers were never dropped for it.
        assert_eq!(a.pool.metric("pool_p2p_bans_total").await, 0.0);
        assert_eq!(c.pool.metric("pool_p2p_bans_total").await, 0.0);
        assert_eq!(b.peers().await.len(), 2, "B keeps A and C");
    }
    Run {
        latencies,
        rejected,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_honest_pools_keep_one_chain_while_a_stranger_attacks_the_middle_one() {
    let run = honest_network(true, 200).await;
    // Shares on a job a new block replaced may be stale; the rest are all accepted.
    assert!(run.rejected <= 20, "{run:?}");
    let mut l = run.latencies.clone();
    l.sort();
    println!(
        "shares on C under attack on B: p50 {:.2} ms, p99 {:.2} ms",
        l[l.len() / 2].as_secs_f64() * 1e3,
        l[l.len() * 99 / 100].as_secs_f64() * 1e3
    );
}

/// The benchmark (`scripts/bench-attack`): honest share latency on C with and without the
/// attacker on B, alternated, three runs each; medians of each run's p50 and p99.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: scripts/bench-attack"]
async fn bench_share_latency_with_and_without_an_attacker() {
    let stats = |run: &Run| {
        let mut l = run.latencies.clone();
        l.sort();
        (
            l[l.len() / 2].as_secs_f64() * 1e3,
            l[l.len() * 99 / 100].as_secs_f64() * 1e3,
        )
    };
    let (mut quiet, mut attacked) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        quiet.push(stats(&honest_network(false, 400).await));
        attacked.push(stats(&honest_network(true, 400).await));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (mut q50, mut q99): (Vec<f64>, Vec<f64>) = quiet.into_iter().unzip();
    let (mut a50, mut a99): (Vec<f64>, Vec<f64>) = attacked.into_iter().unzip();
    let (q50, q99, a50, a99) = (
        median(&mut q50),
        median(&mut q99),
        median(&mut a50),
        median(&mut a99),
    );
    println!("honest share latency on C, 400 shares a run, medians of 3 runs:");
    println!("  without the attacker: p50 {q50:.2} ms, p99 {q99:.2} ms");
    println!("  with the attacker on B: p50 {a50:.2} ms, p99 {a99:.2} ms");
    println!(
        "  ratio (with / without): p50 {:.2}, p99 {:.2}",
        a50 / q50,
        a99 / q99
    );
}
