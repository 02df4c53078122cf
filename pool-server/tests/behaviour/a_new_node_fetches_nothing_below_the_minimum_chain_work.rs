//! A node syncing from scratch cannot judge a peer's blocks by its own chain (any chain leads
//! the genesis), so with `--min-chain-work` it first follows a peer's headers, keeping
//! almost nothing of them, until they reach that work; only then does it fetch blocks, and
//! only those of the headers it was shown. A cheap chain costs it nothing, and a peer that
//! shows one chain and serves another is caught before a block is fetched.

use crate::common;

use std::net::IpAddr;
use std::time::Duration;

use bitcoin::block::Header;
use bitcoin::p2p::message::NetworkMessage;
use bitcoin::{BlockHash, Work};
use common::p2p::*;
use futures::{SinkExt, StreamExt};
use pool_server::chain::genesis::genesis_block;
use protocol::CompactTarget;

/// One hash in two is a block: chains of thousands are made in a moment.
const BITS: &str = "207fffff";

fn ip(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

fn genesis() -> BlockHash {
    genesis_block(NETWORK, CompactTarget::from_consensus(0x207fffff), None).block_hash()
}

/// The work of `headers`, as `--min-chain-work` takes it.
fn work_hex(headers: &[Header]) -> String {
    let w = headers
        .iter()
        .fold(Work::from_be_bytes([0; 32]), |w, h| w + h.work());
    format!("{w:x}")
}

/// `n` headers of a chain from the genesis, timed from `secs_ago`.
fn headers(n: usize, secs_ago: u32) -> Vec<Header> {
    let mut maker = BlockMaker::new(BITS, secs_ago);
    (0..n).map(|_| maker.next_block().header).collect()
}

/// What a scripted peer saw while it answered the node's `getheaders`.
#[derive(Debug, Default)]
struct Served {
    answers: usize,
    getdata: bool,
    closed: bool,
}

/// Answer the node's `getheaders` (from the chain `pick` gives for the n-th request, by the
/// first locator hash it holds), up to `answers` times or until `wait` passes.
async fn serve_headers(
    p: &mut ScriptedPeer,
    pick: impl Fn(usize) -> Vec<Header>,
    answers: usize,
    wait: Duration,
) -> Served {
    let mut served = Served::default();
    let _ = tokio::time::timeout(wait, async {
        while served.answers < answers {
            match p.framed.next().await {
                None | Some(Err(_)) => {
                    served.closed = true;
                    return;
                }
                Some(Ok(NetworkMessage::Ping(n))) => {
                    p.framed.send(NetworkMessage::Pong(n)).await.unwrap();
                }
                Some(Ok(NetworkMessage::GetData(_))) => served.getdata = true,
                Some(Ok(NetworkMessage::GetHeaders(m))) => {
                    let chain = pick(served.answers);
                    let from = m.locator_hashes.iter().find_map(|h| {
                        if *h == genesis() {
                            Some(0)
                        } else {
                            chain
                                .iter()
                                .position(|c| c.block_hash() == *h)
                                .map(|i| i + 1)
                        }
                    });
                    let from = from.unwrap_or(0);
                    let batch = chain[from..chain.len().min(from + 2_000)].to_vec();
                    p.framed.send(NetworkMessage::Headers(batch)).await.unwrap();
                    served.answers += 1;
                }
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    served
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_node_syncs_an_honest_chain_once_its_headers_reach_the_minimum_work() {
    const BLOCKS: usize = 3_000;
    let dir_a = tempfile::tempdir().unwrap();
    let a = NodeProcess::spawn(dir_a.path(), BITS, &["--p2p-ping-interval", "60s"]);
    let mut maker = BlockMaker::new(BITS, 3 * BLOCKS as u32);
    let blocks: Vec<_> = (0..BLOCKS).map(|_| maker.next_block()).collect();
    let mut feeder = ScriptedPeer::connect(ip(1), a.p2p, magic(BITS)).await;
    feeder.handshake(BLOCKS as u64).await.unwrap();
    for b in &blocks {
        feeder.send(NetworkMessage::Block(b.clone())).await;
    }
    eventually(
        Duration::from_secs(60),
        || a.tip(),
        |t| t.0 == BLOCKS as u64,
    )
    .await;

    // B needs the work of 2,500 blocks: more than one headers answer holds.
    let heads: Vec<Header> = blocks.iter().map(|b| b.header).collect();
    let min = work_hex(&heads[..2_500]);
    let dir_b = tempfile::tempdir().unwrap();
    let b = NodeProcess::spawn(
        dir_b.path(),
        BITS,
        &["--peer", &a.p2p.to_string(), "--min-chain-work", &min],
    );
    eventually(
        Duration::from_secs(120),
        || b.tip(),
        |t| t.0 == BLOCKS as u64,
    )
    .await;
    assert_eq!(b.tip().await, a.tip().await);
    let log = b.pool.log_text();
    assert!(
        log.contains("a header chain with the minimum chain work"),
        "{log}"
    );
    // Presync (two answers), then the headers again to fetch the blocks (two more).
    let headers_in = b
        .pool
        .metric("pool_p2p_messages_total{command=\"headers\",direction=\"in\"}")
        .await;
    assert!(headers_in >= 4.0, "{headers_in}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cheap_header_chain_is_followed_and_forgotten_and_nothing_is_fetched() {
    let cheap = headers(5_000, 20_000);
    // The node needs more work than the whole cheap chain has.
    let mut more = cheap.clone();
    more.extend(headers(1_000, 30_000));
    let min = work_hex(&more);
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::spawn(dir.path(), BITS, &["--min-chain-work", &min]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let file_before = file_len(dir.path());

    let mut attacker = ScriptedPeer::connect(ip(2), node.p2p, magic(BITS)).await;
    attacker.handshake(5_000).await.unwrap();
    // 2,000 + 2,000 + 1,000: the chain ends below the minimum.
    let served = serve_headers(&mut attacker, |_| cheap.clone(), 3, Duration::from_secs(20)).await;
    assert_eq!(served.answers, 3, "{served:?}");
    let refused = eventually(
        Duration::from_secs(5),
        || {
            node.pool
                .metric("pool_p2p_refused_blocks_total{reason=\"below-min-chain-work\"}")
        },
        |n| *n == 1.0,
    )
    .await;
    assert_eq!(refused, 1.0);
    // An announcement of its tip fetches nothing either: the node asks for headers.
    let tip = cheap.last().unwrap().block_hash();
    attacker
        .send(NetworkMessage::Inv(vec![
            bitcoin::p2p::message_blockdata::Inventory::Block(tip),
        ]))
        .await;
    let again = serve_headers(&mut attacker, |_| cheap.clone(), 1, Duration::from_secs(3)).await;
    assert!(!served.getdata && !again.getdata, "no block was asked for");
    assert!(
        !served.closed && !again.closed,
        "a peer with less work is not punished"
    );
    assert_eq!(node.tip().await.0, 0);
    assert_eq!(file_len(dir.path()), file_before, "not a byte stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_serves_other_headers_than_it_showed_is_dropped_before_a_block_is_fetched() {
    let shown = headers(3_000, 20_000);
    let other = headers(3_000, 40_000);
    assert_ne!(shown[0].block_hash(), other[0].block_hash());
    let min = work_hex(&shown[..2_500]);
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::spawn(dir.path(), BITS, &["--min-chain-work", &min]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let file_before = file_len(dir.path());

    let mut liar = ScriptedPeer::connect(ip(3), node.p2p, magic(BITS)).await;
    liar.handshake(3_000).await.unwrap();
    // It shows a chain with the work (two answers), then serves another one.
    let pick = |n: usize| if n < 2 { shown.clone() } else { other.clone() };
    let served = serve_headers(&mut liar, pick, 3, Duration::from_secs(20)).await;
    assert_eq!(served.answers, 3, "{served:?}");
    assert!(liar.closed_within(Duration::from_secs(5)).await, "dropped");
    assert!(!served.getdata, "no block of the other chain was asked for");
    assert_eq!(node.tip().await.0, 0);
    assert_eq!(file_len(dir.path()), file_before);
    let log = node.pool.log_text();
    assert!(log.contains("headers other than those it showed"), "{log}");
}
