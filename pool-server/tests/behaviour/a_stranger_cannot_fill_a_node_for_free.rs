//! Anyone can reach a node's P2P port, so what a peer can make the node store must cost the
//! peer what it costs the network: a block is stored only when its branch could lead (work
//! before storage), a branch that forks below the maturity depth is refused whatever its
//! work, and a peer that pushes cheap blocks nobody asked for is banned. Nothing it sent
//! reaches the block file or the database, and the honest chain does not move.

use crate::common;

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_blockdata::Inventory;
use bitcoin::Block;
use common::p2p::*;

fn ip(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

fn db_len(dir: &Path) -> u64 {
    ["pool.sqlite", "pool.sqlite-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

/// A node with an honest chain of `height` blocks, sent by an honest peer from 127.0.0.2;
/// the blocks.
async fn node_with_chain(dir: &Path, height: u64, extra: &[&str]) -> (NodeProcess, Vec<Block>) {
    let mut args = vec!["--ban-duration", "10m"];
    args.extend_from_slice(extra);
    let node = NodeProcess::spawn(dir, EASY_BITS, &args);
    let mut honest = ScriptedPeer::connect(ip(2), node.p2p, magic(EASY_BITS)).await;
    honest.handshake(0).await.unwrap();
    let mut maker = BlockMaker::new(EASY_BITS, 600);
    let blocks: Vec<Block> = (0..height).map(|_| maker.next_block()).collect();
    for b in &blocks {
        honest.send(NetworkMessage::Block(b.clone())).await;
    }
    eventually(Duration::from_secs(20), || node.tip(), |t| t.0 == height).await;
    (node, blocks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_far_below_the_tip_stores_nothing_and_its_sender_is_banned() {
    let dir = tempfile::tempdir().unwrap();
    let (node, _) = node_with_chain(dir.path(), 20, &[]).await;
    let tip = node.tip().await;
    // Let the store settle what the honest chain wrote.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (file_before, db_before) = (file_len(dir.path()), db_len(dir.path()));
    let blocks_before = node.get("/api/blocks").await;

    // The attacker forks at the genesis and pushes blocks of 900 kB nobody asked for: each
    // is valid on its own, and its branch could never lead. Each costs the connection; the
    // fourth, the address.
    let mut fork = BlockMaker::new(EASY_BITS, 300);
    let big = fork.next_block_padded(900_000);
    assert!(big.total_size() > 900_000);
    let mut sent = 0;
    for _ in 0..4 {
        let mut attacker = ScriptedPeer::connect(ip(3), node.p2p, magic(EASY_BITS)).await;
        attacker.handshake(0).await.unwrap();
        attacker.send(NetworkMessage::Block(big.clone())).await;
        sent += 1;
        assert!(
            attacker.closed_within(Duration::from_secs(5)).await,
            "dropped after block {sent}"
        );
    }
    let banned = eventually(
        Duration::from_secs(10),
        || node.pool.metric("pool_p2p_bans_total"),
        |n| *n == 1.0,
    )
    .await;
    assert_eq!(banned, 1.0);
    let mut again = ScriptedPeer::connect(ip(3), node.p2p, magic(EASY_BITS)).await;
    assert!(again.closed_within(Duration::from_secs(1)).await, "banned");
    let refused = node
        .pool
        .metric("pool_p2p_refused_blocks_total{reason=\"low-work-branch\"}")
        .await;
    assert_eq!(refused, 4.0);

    // Nothing of it was kept: not a byte in the block file, no row, the tip where it was.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(file_len(dir.path()), file_before);
    assert_eq!(node.get("/api/blocks").await, blocks_before);
    assert!(
        db_len(dir.path()) < db_before + 200_000,
        "the database grew by {} bytes",
        db_len(dir.path()) - db_before
    );
    assert_eq!(node.tip().await, tip);
    let log = node.pool.log_text();
    assert!(log.contains("cannot lead"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heavier_branch_that_forks_below_the_maturity_depth_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let flags = [
        "--max-fork-depth",
        "5",
        "--alert-look",
        "100ms",
        "--alert-pool-hold",
        "1s",
    ];
    let (node, honest) = node_with_chain(dir.path(), 12, &flags).await;
    let tip = node.tip().await;
    let file_before = file_len(dir.path());

    // A branch from height 2 (ten below the tip, deeper than 5) with more work than ours.
    let mut fork = BlockMaker::fork(EASY_BITS, honest[1].block_hash(), 2, 300);
    let branch: Vec<_> = (0..15).map(|_| fork.next_block()).collect();
    let mut attacker = ScriptedPeer::connect(ip(4), node.p2p, magic(EASY_BITS)).await;
    attacker.handshake(17).await.unwrap();
    // Its headers carry the work to lead, so the node asks for the bodies...
    let headers = branch.iter().map(|b| b.header).collect();
    attacker.send(NetworkMessage::Headers(headers)).await;
    assert!(
        attacker
            .expect(Duration::from_secs(5), |m| matches!(m, NetworkMessage::GetData(items)
                if items.iter().any(|i| matches!(i, Inventory::Block(h) if *h == branch[0].block_hash()))))
            .await,
        "the node asks for the blocks of a header chain that could lead"
    );
    // ...and refuses the first: it leaves the best chain too deep.
    attacker
        .send(NetworkMessage::Block(branch[0].clone()))
        .await;
    assert!(attacker.closed_within(Duration::from_secs(5)).await);
    let refused = eventually(
        Duration::from_secs(5),
        || {
            node.pool
                .metric("pool_p2p_refused_blocks_total{reason=\"fork-too-deep\"}")
        },
        |n| *n == 1.0,
    )
    .await;
    assert_eq!(refused, 1.0);
    assert_eq!(node.tip().await, tip);
    assert_eq!(file_len(dir.path()), file_before);
    let log = node.pool.log_text();
    assert!(
        log.contains("deeper than a reorganisation may reach"),
        "{log}"
    );
    // The operator is told: a pool-wide alert that fires for an hour after the last one.
    let alerts = eventually(
        Duration::from_secs(10),
        || node.get("/api/alerts?account=%28pool%29"),
        |v| {
            v["firing"]
                .as_array()
                .is_some_and(|a| a.iter().any(|a| a["rule"] == "deep_fork_refused"))
        },
    )
    .await;
    let alert = alerts["firing"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["rule"] == "deep_fork_refused")
        .unwrap_or_else(|| panic!("{alerts}"))
        .clone();
    assert!(
        alert["summary"]
            .as_str()
            .unwrap()
            .contains("deeper than a reorganisation may reach"),
        "{alert}"
    );
}

/// Resident memory of process `pid`, bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

/// `n` headers linked from `from` with no proof of work (a low-work chain costs its maker
/// nothing: the node must not spend on it either).
fn junk_headers(from: bitcoin::BlockHash, n: usize) -> Vec<bitcoin::block::Header> {
    use bitcoin::hashes::Hash;
    let mut prev = from;
    (0..n)
        .map(|i| {
            let h = bitcoin::block::Header {
                version: bitcoin::block::Version::from_consensus(0x2000_0000),
                prev_blockhash: prev,
                merkle_root: bitcoin::TxMerkleNode::from_byte_array([7; 32]),
                time: 1_767_225_600 + i as u32,
                bits: bitcoin::CompactTarget::from_consensus(0x2000ffff),
                nonce: i as u32,
            };
            prev = h.block_hash();
            h
        })
        .collect()
}

/// Send, ignoring a connection the node has closed.
async fn push(p: &mut ScriptedPeer, msg: NetworkMessage) {
    use futures::SinkExt;
    let _ = p.framed.send(msg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_headers_nobody_asked_for_cost_nothing_and_their_sender_is_banned() {
    use bitcoin::hashes::Hash;
    let dir = tempfile::tempdir().unwrap();
    let (node, _) = node_with_chain(dir.path(), 20, &[]).await;
    let tip = node.tip().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (file_before, rss_before) = (file_len(dir.path()), rss(node.pool.pid()));
    // A chain of headers from a block the node never saw: it cannot be judged, so it is not
    // kept; the node asks once where it forks, and a peer that goes on sending is dropped.
    let unknown = bitcoin::BlockHash::from_byte_array([9; 32]);
    let chain = junk_headers(unknown, 120_000);
    for round in chain.chunks(24_000) {
        let mut attacker = ScriptedPeer::connect(ip(5), node.p2p, magic(EASY_BITS)).await;
        attacker.handshake(0).await.unwrap();
        for batch in round.chunks(2_000) {
            push(&mut attacker, NetworkMessage::Headers(batch.to_vec())).await;
        }
        assert!(attacker.closed_within(Duration::from_secs(5)).await);
    }
    let banned = eventually(
        Duration::from_secs(10),
        || node.pool.metric("pool_p2p_bans_total"),
        |n| *n == 1.0,
    )
    .await;
    assert_eq!(banned, 1.0, "five such streams ban the address");
    assert_eq!(file_len(dir.path()), file_before);
    assert_eq!(node.tip().await, tip);
    let grown = rss(node.pool.pid()).saturating_sub(rss_before);
    assert!(grown < 16 << 20, "resident memory grew by {grown} bytes");
    let log = node.pool.log_text();
    assert!(log.contains("headers messages nobody asked for"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_of_invs_addresses_and_orphans_stay_bounded_and_orphans_cost_the_sender() {
    use bitcoin::hashes::Hash;
    let dir = tempfile::tempdir().unwrap();
    let (node, _) = node_with_chain(dir.path(), 20, &[]).await;
    let tip = node.tip().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (file_before, rss_before) = (file_len(dir.path()), rss(node.pool.pid()));
    let mut attacker = ScriptedPeer::connect(ip(6), node.p2p, magic(EASY_BITS)).await;
    attacker.handshake(0).await.unwrap();
    // 50,000 announcements of blocks that do not exist: at most 4,000 asked for at a time.
    for m in 0..10u32 {
        let items = (0..5_000u32)
            .map(|k| {
                let mut b = [0u8; 32];
                b[..4].copy_from_slice(&m.to_le_bytes());
                b[4..8].copy_from_slice(&k.to_le_bytes());
                Inventory::Block(bitcoin::BlockHash::from_byte_array(b))
            })
            .collect();
        push(&mut attacker, NetworkMessage::Inv(items)).await;
    }
    // 20,000 addresses: the book keeps its capacity.
    for m in 0..20u16 {
        let list = (0..1_000u16)
            .map(|k| {
                let at = std::net::SocketAddr::from((
                    [10, (m % 200) as u8, (k >> 8) as u8, k as u8],
                    8333,
                ));
                (
                    0,
                    bitcoin::p2p::Address::new(&at, bitcoin::p2p::ServiceFlags::NETWORK),
                )
            })
            .collect();
        push(&mut attacker, NetworkMessage::Addr(list)).await;
    }
    assert!(
        !attacker.closed_within(Duration::from_millis(500)).await,
        "announcements and addresses within the limits are not misbehaviour"
    );
    // Blocks nobody asked for that connect to nothing: the 65th ends the connection.
    for k in 0..100u8 {
        let mut orphan = BlockMaker::fork(
            EASY_BITS,
            bitcoin::BlockHash::from_byte_array([k; 32]),
            5,
            300,
        );
        push(&mut attacker, NetworkMessage::Block(orphan.next_block())).await;
    }
    assert!(attacker.closed_within(Duration::from_secs(5)).await);
    let orphans = node.pool.metric("pool_chain_orphan_blocks").await;
    assert!(orphans <= 65.0, "{orphans} orphans kept");
    assert_eq!(file_len(dir.path()), file_before);
    assert_eq!(node.tip().await, tip);
    let grown = rss(node.pool.pid()).saturating_sub(rss_before);
    assert!(grown < 32 << 20, "resident memory grew by {grown} bytes");
    let log = node.pool.log_text();
    assert!(log.contains("connect to nothing"), "{log}");
}
