//! The network of pools, measured with real pool-server processes on 127.0.0.1:
//!
//! - **Propagation per hop**: a scripted peer hands a new block to the first node of a line
//!   and another scripted peer, connected to the last, times the `inv` that comes out. Lines of
//!   one and of four nodes: the difference over three is one hop (receive, check, store,
//!   record, announce, fetch), whatever the scripted ends cost.
//! - **Catch-up**: a node started with an empty store syncs a chain of BLOCKS blocks from a
//!   peer (headers first, then the blocks), timed from its first peer connection.
//! - **Memory per peer**: the node's resident memory before and after PEERS idle peers finish
//!   their handshake.
//!
//! `cargo bench -p pool-server --bench p2p_network -- [ROUNDS] [BLOCKS] [PEERS]`
//! (defaults 60, 10000, 200). Prints the CPU and medians; nothing is asserted.

// The behaviour tests' harness (pool processes, the scripted peer), shared rather than copied.
#[path = "../tests/behaviour/common/mod.rs"]
mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_blockdata::Inventory;
use common::p2p::*;
use futures::StreamExt;

const BITS: &str = "207fffff";

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn localhost() -> IpAddr {
    IpAddr::from([127, 0, 0, 1])
}

/// Wait for an `inv` of `hash` on `sink`, answering pings meanwhile.
async fn wait_inv(sink: &mut ScriptedPeer, hash: bitcoin::BlockHash) {
    use futures::SinkExt;
    loop {
        match sink.framed.next().await.expect("open").expect("a frame") {
            NetworkMessage::Inv(items) if items.contains(&Inventory::Block(hash)) => return,
            NetworkMessage::Ping(n) => sink.framed.send(NetworkMessage::Pong(n)).await.unwrap(),
            _ => {}
        }
    }
}

/// Median time from handing a block to the first of `nodes` nodes in a line to its `inv`
/// at a peer of the last, over `rounds` blocks.
async fn line_latency(nodes: usize, rounds: usize) -> Duration {
    let dirs: Vec<_> = (0..nodes).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut line: Vec<NodeProcess> = Vec::new();
    for d in &dirs {
        let peer = line.last().map(|n| n.p2p.to_string());
        let mut extra = vec!["--max-outbound", "1", "--log", "warn"];
        if let Some(p) = &peer {
            extra.extend(["--peer", p.as_str()]);
        }
        line.push(NodeProcess::spawn(d.path(), BITS, &extra));
    }
    for (i, n) in line.iter().enumerate() {
        let want = if nodes == 1 {
            0
        } else if i == 0 || i == nodes - 1 {
            1
        } else {
            2
        };
        eventually(Duration::from_secs(30), || n.peers(), |p| p.len() == want).await;
    }
    let magic = magic(BITS);
    let mut feeder = ScriptedPeer::connect(localhost(), line[0].p2p, magic).await;
    feeder.handshake(0).await.unwrap();
    let mut sink = ScriptedPeer::connect(localhost(), line[nodes - 1].p2p, magic).await;
    sink.handshake(0).await.unwrap();
    let mut maker = BlockMaker::new(BITS, 3600);
    let mut took = Vec::new();
    for _ in 0..rounds {
        let block = maker.next_block();
        let hash = block.block_hash();
        let t = Instant::now();
        feeder.send(NetworkMessage::Block(block)).await;
        wait_inv(&mut sink, hash).await;
        took.push(t.elapsed());
        // Keep the feeder alive: answer the pings waiting for it.
        feeder.expect(Duration::from_millis(2), |_| false).await;
    }
    median(took)
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .map(|a| a.parse().expect("numbers: ROUNDS BLOCKS PEERS"))
        .collect();
    let rounds = args.first().copied().unwrap_or(60);
    let blocks = args.get(1).copied().unwrap_or(10_000) as u64;
    let peers = args.get(2).copied().unwrap_or(200);
    println!(
        "CPU: {} ({} threads)",
        pool_server::host::cpu_model(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let one = line_latency(1, rounds).await;
    let four = line_latency(4, rounds).await;
    let hop = four.saturating_sub(one) / 3;
    println!(
        "propagation: peer -> 1 node -> peer median {:.2} ms; through 4 nodes {:.2} ms; one hop {:.2} ms ({rounds} blocks each)",
        one.as_secs_f64() * 1e3,
        four.as_secs_f64() * 1e3,
        hop.as_secs_f64() * 1e3
    );

    // Catch-up.
    let dir_a = tempfile::tempdir().unwrap();
    let a = NodeProcess::spawn(
        dir_a.path(),
        BITS,
        &[
            "--log",
            "warn",
            "--p2p-ping-interval",
            "600s",
            "--max-peers",
            "1000",
        ],
    );
    let empty = rss_kib(a.pool.pid());
    let mut feeder = ScriptedPeer::connect(localhost(), a.p2p, magic(BITS)).await;
    feeder.handshake(blocks).await.unwrap();
    let mut maker = BlockMaker::new(BITS, 2 * blocks as u32 + 60);
    for _ in 0..blocks {
        feeder.send(NetworkMessage::Block(maker.next_block())).await;
    }
    eventually(Duration::from_secs(600), || a.tip(), |t| t.0 == blocks).await;
    let full = rss_kib(a.pool.pid());
    println!(
        "chain in memory: {blocks} blocks took the node from {empty} KiB to {full} KiB resident: {:.0} bytes per block",
        (full.saturating_sub(empty) * 1024) as f64 / blocks as f64
    );
    let dir_b = tempfile::tempdir().unwrap();
    let spawned = Instant::now();
    let b = NodeProcess::spawn(
        dir_b.path(),
        BITS,
        &["--log", "warn", "--peer", &a.p2p.to_string()],
    );
    eventually(Duration::from_secs(30), || b.peers(), |p| p.len() == 1).await;
    let t = Instant::now();
    eventually(Duration::from_secs(600), || b.tip(), |t| t.0 == blocks).await;
    let sync = t.elapsed();
    println!(
        "catch-up: {blocks} blocks in {:.2} s from the first connection ({:.0} blocks/s), {:.2} s from the process start",
        sync.as_secs_f64(),
        blocks as f64 / sync.as_secs_f64(),
        spawned.elapsed().as_secs_f64()
    );
    drop(b);

    // Memory per peer.
    let pid = a.pool.pid();
    let before = rss_kib(pid);
    let mut held = Vec::new();
    for i in 0..peers {
        // Spread over loopback addresses: inbound peers per IP are capped.
        let from = IpAddr::from([127, 0, 1 + (i / 8) as u8, 1 + (i % 8) as u8]);
        let mut p = ScriptedPeer::connect(from, a.p2p, magic(BITS)).await;
        p.handshake(blocks).await.unwrap();
        held.push(p);
    }
    eventually(Duration::from_secs(30), || a.peers(), |p| p.len() >= peers).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kib(pid);
    println!(
        "memory: {peers} idle peers took the node from {before} KiB to {after} KiB resident: {:.1} KiB per peer",
        (after.saturating_sub(before)) as f64 / peers as f64
    );
}
