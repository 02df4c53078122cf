//! Pool-servers on the embedded chain form one peer-to-peer network (real processes on
//! 127.0.0.1, each with its own ports and store): they reach one tip, a block found at one end
//! reaches the miners at the other as a clean job, a node started late catches up, a partition
//! heals onto the heavier branch with the losing blocks orphaned and their shares kept, and a
//! node learns the peers of its peers.

use crate::common;

use std::time::{Duration, Instant};

use common::p2p::*;
use common::*;
use protocol::Extranonce2;
use serde_json::Value;

/// Log in as `worker` and wait for the first job.
async fn login_as(addr: std::net::SocketAddr, worker: &str) -> Client {
    let mut c = Client::connect(addr).await;
    c.subscribe().await;
    assert_eq!(c.authorize(worker).await.unwrap(), Value::Bool(true));
    c.wait_job().await;
    c
}

/// Mine one share as `worker` on the client's job (at the test difficulty every share is a
/// block), submit it, and wait for the clean job on it; its hash and when it was submitted.
async fn mine_block(c: &mut Client, worker: &str, counter: &mut u64) -> (String, Instant) {
    *counter += 1;
    let job = c.job.clone().expect("a job");
    let block_target = job.nbits.to_target().unwrap();
    let target = c.difficulty_of(&job).to_target();
    let en2 = Extranonce2::from_counter(*counter, c.extranonce2_size);
    let mut found = mine(&job, c.extranonce1.as_ref().unwrap(), &en2, target, 0);
    assert!(
        block_target.is_met_by(&found.hash),
        "test shares are blocks"
    );
    found.submit.worker = protocol::WorkerName::new(worker);
    let sent = Instant::now();
    assert_eq!(c.submit(found.submit).await, Ok(Value::Bool(true)));
    let hash = found.hash.to_string();
    c.wait_clean_job(&hash).await;
    (hash, sent)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_pools_in_a_line_share_one_tip_and_a_block_reaches_the_far_miners_at_once() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = NodeProcess::spawn(dirs[0].path(), EASY_BITS, &["--max-outbound", "1"]);
    let a_addr = a.p2p.to_string();
    let b = NodeProcess::spawn(
        dirs[1].path(),
        EASY_BITS,
        &["--peer", &a_addr, "--max-outbound", "1"],
    );
    let b_addr = b.p2p.to_string();
    let c = NodeProcess::spawn(
        dirs[2].path(),
        EASY_BITS,
        &["--peer", &b_addr, "--max-outbound", "1"],
    );
    // The links: B in the middle has both ends; the ends only B.
    assert_eq!(linked(&[&a, &b, &c], &[1, 2, 1]).await, [1, 2, 1]);
    let b_peers = b.peers().await;
    assert!(b_peers
        .iter()
        .any(|p| p["direction"] == "outbound" && p["listen"] == a_addr.as_str()));
    assert!(b_peers.iter().any(|p| p["direction"] == "inbound"));

    let mut miner = login_as(a.pool.stratum, "alice.rig1").await;
    let mut far = login_as(c.pool.stratum, "carol.rig1").await;
    let mut counter = 0;
    let mut two_hops = Vec::new();
    const BLOCKS: u64 = 20;
    for _ in 0..BLOCKS {
        let (hash, sent) = mine_block(&mut miner, "alice.rig1", &mut counter).await;
        far.wait_clean_job(&hash).await;
        two_hops.push(sent.elapsed());
    }
    two_hops.sort();
    let (p50, p99) = (percentile(&two_hops, 0.5), percentile(&two_hops, 0.99));
    println!(
        "block found on A to clean notify on C (two hops), {BLOCKS} blocks: p50 {:.1} ms, p99 {:.1} ms; per hop p50 {:.1} ms",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        p50.as_secs_f64() * 1e3 / 2.0
    );
    let (height, tip) = same_tip(&[&a, &b, &c], BLOCKS, Duration::from_secs(10)).await;
    assert_eq!(height, BLOCKS);
    // C keeps the blocks as the network's, not its own finds.
    let blocks = eventually(
        Duration::from_secs(10),
        || c.get("/api/blocks?limit=5"),
        |v: &Value| {
            v.as_array()
                .unwrap()
                .iter()
                .any(|b| b["hash"] == tip.as_str())
        },
    )
    .await;
    let last = blocks
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["hash"] == tip.as_str())
        .expect("C recorded the tip block");
    assert_eq!(last["status"], "accepted");
    assert_eq!(last["detail"], "from a peer");
    assert_eq!(c.get("/api/pool").await["blocks_found"], 0);
    assert_eq!(a.get("/api/pool").await["blocks_found"], BLOCKS);
    // Every peer answered pings and moved bytes both ways.
    for p in b.peers().await {
        assert!(p["ping_ms"].as_f64().is_some(), "{p}");
        assert!(p["bytes_in"].as_u64().unwrap() > 0 && p["bytes_out"].as_u64().unwrap() > 0);
        assert_eq!(p["best_height"], BLOCKS);
    }
    assert_eq!(
        a.pool.metric("pool_p2p_peers{direction=\"inbound\"}").await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_started_late_with_an_empty_store_catches_up_a_thousand_blocks() {
    const BLOCKS: u64 = 1_200;
    let bits = "207fffff";
    let dir_a = tempfile::tempdir().unwrap();
    let a = NodeProcess::spawn(dir_a.path(), bits, &["--p2p-ping-interval", "60s"]);
    // A scripted peer hands A its chain.
    let mut maker = BlockMaker::new(bits, 3 * BLOCKS as u32);
    let mut feeder = ScriptedPeer::connect("127.0.0.1".parse().unwrap(), a.p2p, magic(bits)).await;
    feeder.handshake(BLOCKS).await.unwrap();
    for _ in 0..BLOCKS {
        let b = maker.next_block();
        feeder
            .send(bitcoin::p2p::message::NetworkMessage::Block(b))
            .await;
    }
    let tip = maker.prev.to_string();
    eventually(Duration::from_secs(60), || a.tip(), |t| t.0 == BLOCKS).await;
    assert_eq!(a.tip().await.1, tip);

    let dir_b = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let b = NodeProcess::spawn(dir_b.path(), bits, &["--peer", &a.p2p.to_string()]);
    eventually(Duration::from_secs(120), || b.tip(), |t| t.0 == BLOCKS).await;
    let took = started.elapsed();
    println!(
        "a node started with an empty store caught up {BLOCKS} blocks in {:.2} s ({:.0} blocks/s, process start included)",
        took.as_secs_f64(),
        BLOCKS as f64 / took.as_secs_f64()
    );
    assert_eq!(b.tip().await.1, tip);
    // It caught up headers first: asked for headers, then for the blocks.
    assert!(
        b.pool
            .metric("pool_p2p_messages_total{command=\"headers\",direction=\"in\"}")
            .await
            >= 1.0
    );
    // B's store has the blocks too, so a restart resumes there.
    let b = b.restart(dir_b.path());
    assert_eq!(b.tip().await, (BLOCKS, tip));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_heals_onto_the_heavier_branch_and_the_lighter_ones_blocks_are_orphaned() {
    // A and C reach each other only through B: they dial B and take no connections.
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let b = NodeProcess::spawn(dirs[1].path(), EASY_BITS, &[]);
    let b_addr = b.p2p.to_string();
    let a = NodeProcess::spawn_outbound_only(dirs[0].path(), EASY_BITS, &["--peer", &b_addr]);
    let c = NodeProcess::spawn_outbound_only(dirs[2].path(), EASY_BITS, &["--peer", &b_addr]);
    let mut alice = login_as(a.pool.stratum, "alice.rig1").await;
    let mut carol = login_as(c.pool.stratum, "carol.rig1").await;
    let (mut na, mut nc) = (0, 0);
    for _ in 0..2 {
        mine_block(&mut alice, "alice.rig1", &mut na).await;
    }
    same_tip(&[&a, &b, &c], 2, Duration::from_secs(20)).await;
    carol.drain().await;

    // The middle node goes away: A and C mine apart, C more.
    let (args, stratum, http) = (b.pool.args.clone(), b.pool.stratum, b.pool.http.clone());
    assert!(b.pool.terminate().success());
    let mut lost = Vec::new();
    for _ in 0..2 {
        lost.push(mine_block(&mut alice, "alice.rig1", &mut na).await.0);
    }
    let mut won = String::new();
    for _ in 0..4 {
        won = mine_block(&mut carol, "carol.rig1", &mut nc).await.0;
    }
    assert_eq!(a.tip().await.0, 4);
    assert_eq!(c.tip().await, (6, won.clone()));

    // B comes back from its store and asks both sides for what it missed.
    let b = NodeProcess {
        pool: common::process::PoolProcess::spawn_with(dirs[1].path(), args, stratum, http),
        p2p: b_addr.parse().unwrap(),
    };
    let (height, tip) = same_tip(&[&a, &b, &c], 6, Duration::from_secs(30)).await;
    assert_eq!((height, tip), (6, won));
    // A's miner is on the heavier branch now.
    alice.wait_clean_job(&c.tip().await.1).await;

    // A's two blocks of the lighter branch are orphaned, no longer counted as found, and the
    // shares that found them are still on record.
    let blocks = eventually(
        Duration::from_secs(10),
        || a.get("/api/blocks?limit=20"),
        |v: &Value| {
            v.as_array()
                .unwrap()
                .iter()
                .filter(|b| b["status"] == "orphaned")
                .count()
                == 2
        },
    )
    .await;
    for h in &lost {
        let b = blocks
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["hash"] == h.as_str())
            .unwrap();
        assert_eq!(b["status"], "orphaned", "{b}");
        assert_eq!(b["worker"], "alice.rig1");
    }
    assert_eq!(a.get("/api/pool").await["blocks_found"], 2);
    let shares = eventually(
        Duration::from_secs(10),
        || a.get("/api/shares?worker=alice.rig1&limit=100"),
        |v: &Value| v.as_array().is_some_and(|s| s.len() == 4),
    )
    .await;
    for h in &lost {
        assert!(shares
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["block_hash"] == h.as_str()));
    }
    assert!(a.pool.metric("pool_chain_reorgs_total").await >= 1.0);
    assert!(a
        .pool
        .log_text()
        .contains("a block found here left the best chain"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_given_one_seed_learns_the_peers_of_its_peer_and_dials_them() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = NodeProcess::spawn(dirs[0].path(), EASY_BITS, &[]);
    let a_addr = a.p2p.to_string();
    let b = NodeProcess::spawn(dirs[1].path(), EASY_BITS, &["--peer", &a_addr]);
    let b_addr = b.p2p.to_string();
    // B has dialled A before C asks it for addresses.
    eventually(Duration::from_secs(20), || b.peers(), |p| p.len() == 1).await;
    let c = NodeProcess::spawn(dirs[2].path(), EASY_BITS, &["--peer", &b_addr]);
    let peers = eventually(
        Duration::from_secs(30),
        || c.peers(),
        |p| {
            p.iter()
                .any(|p| p["direction"] == "outbound" && p["listen"] == a_addr.as_str())
        },
    )
    .await;
    assert!(peers
        .iter()
        .any(|p| p["direction"] == "outbound" && p["listen"] == b_addr.as_str()));
    assert!(
        c.pool
            .metric("pool_p2p_messages_total{command=\"addr\",direction=\"in\"}")
            .await
            >= 1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_asked_of_a_peer_that_never_sends_it_is_asked_for_again() {
    use bitcoin::p2p::message::NetworkMessage;
    use bitcoin::p2p::message_blockdata::Inventory;

    let dir = tempfile::tempdir().unwrap();
    // Pings every second: a request unanswered for three is forgotten.
    let node = NodeProcess::spawn(dir.path(), EASY_BITS, &[]);
    let mut peer =
        ScriptedPeer::connect("127.0.0.1".parse().unwrap(), node.p2p, magic(EASY_BITS)).await;
    peer.handshake(1).await.unwrap();
    let block = BlockMaker::new(EASY_BITS, 60).next_block();
    let hash = block.block_hash();
    let asked = |m: &NetworkMessage| matches!(m, NetworkMessage::GetData(i) if i.contains(&Inventory::Block(hash)));
    peer.send(NetworkMessage::Inv(vec![Inventory::Block(hash)]))
        .await;
    assert!(
        peer.expect(Duration::from_secs(5), asked).await,
        "announced, so asked for"
    );
    // Announced again while the request stands: not asked twice.
    peer.send(NetworkMessage::Inv(vec![Inventory::Block(hash)]))
        .await;
    assert!(!peer.expect(Duration::from_millis(1500), asked).await);
    // The request lapses unanswered (the peer stays alive: it answers pings meanwhile); the
    // next announcement is asked for again.
    assert!(!peer.expect(Duration::from_secs(3), |_| false).await);
    peer.send(NetworkMessage::Inv(vec![Inventory::Block(hash)]))
        .await;
    assert!(
        peer.expect(Duration::from_secs(5), asked).await,
        "asked for again"
    );
    peer.send(NetworkMessage::Block(block)).await;
    eventually(Duration::from_secs(5), || node.tip(), |t| t.0 == 1).await;
}
