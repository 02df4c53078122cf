//! For the network of pools: pool-server processes that peer on loopback, a scripted peer that
//! speaks Bitcoin's wire (honestly or not), and a maker of valid (or deliberately broken)
//! blocks of the embedded chain.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bitcoin::block::{Header, Version as BlockVersion};
use bitcoin::hashes::Hash;
use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::Magic;
use bitcoin::{Block, BlockHash, ScriptBuf, Transaction, TxMerkleNode};
use futures::{SinkExt, StreamExt};
use pool_server::chain::coinbase::{subsidy, CoinbaseBuilder};
use pool_server::chain::genesis::{genesis_block, network_magic};
use pool_server::p2p::codec::FrameCodec;
use pool_server::p2p::handshake::our_version;
use pool_server::p2p::peer::{handshake, PeerError};
use protocol::CompactTarget;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

use super::process::{free_port, PoolProcess};

/// Genesis bits for network tests: about one hash in 256 is a block, so a test mines blocks
/// at will, and any share at the test difficulty is one.
pub const EASY_BITS: &str = "2000ffff";
/// The network's name in these tests.
pub const NETWORK: &str = "test-net";

/// A pool-server process that is a node of the test network.
pub struct NodeProcess {
    pub pool: PoolProcess,
    pub p2p: SocketAddr,
}

impl NodeProcess {
    /// Start a node with its data in `dir`, listening for peers on a port of its own.
    pub fn spawn(dir: &Path, bits: &str, extra: &[&str]) -> NodeProcess {
        let p2p: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let p2p_text = p2p.to_string();
        let mut args = vec!["--p2p-listen", &p2p_text];
        args.extend_from_slice(extra);
        let mut node = Self::spawn_outbound_only(dir, bits, &args);
        node.p2p = p2p;
        node
    }

    /// Start a node that only dials its `--peer`s: nobody can dial it (so when its peers
    /// are gone, it is cut off).
    pub fn spawn_outbound_only(dir: &Path, bits: &str, extra: &[&str]) -> NodeProcess {
        let mut args = vec![
            "--genesis-bits",
            bits,
            "--p2p-network",
            NETWORK,
            "--retarget-interval",
            "1000000",
            "--start-difficulty",
            "0.00001",
            "--vardiff-min",
            "0.000001",
            "--p2p-ping-interval",
            "1s",
            "--log",
            "info",
        ];
        args.extend_from_slice(extra);
        NodeProcess {
            pool: PoolProcess::spawn(dir, &args),
            p2p: SocketAddr::from(([0, 0, 0, 0], 0)),
        }
    }

    /// SIGTERM it and start it again on the same ports and data.
    pub fn restart(self, dir: &Path) -> NodeProcess {
        let (status, pool) = self.pool.restart(dir);
        assert!(status.success(), "clean exit on SIGTERM: {status}");
        NodeProcess {
            pool,
            p2p: self.p2p,
        }
    }

    pub async fn get(&self, path: &str) -> Value {
        reqwest::get(format!("{}{}", self.pool.http, path))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The tip: (height, hash) from `/api/pool` (the template builds on the tip).
    pub async fn tip(&self) -> (u64, String) {
        let p = self.get("/api/pool").await;
        (
            p["height"].as_u64().unwrap() - 1,
            p["prev_hash"].as_str().unwrap().to_owned(),
        )
    }

    pub async fn peers(&self) -> Vec<Value> {
        self.get("/api/peers").await["peers"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

/// Wait (up to 20 s) until the nodes have `want` peers each; their counts.
pub async fn linked(nodes: &[&NodeProcess], want: &[usize]) -> Vec<usize> {
    eventually(
        Duration::from_secs(20),
        || async {
            let mut n = Vec::new();
            for node in nodes {
                n.push(node.peers().await.len());
            }
            n
        },
        |n| n == want,
    )
    .await
}

/// Wait (up to `limit`) until every node reports the same tip, at least `height`; the tip.
pub async fn same_tip(nodes: &[&NodeProcess], height: u64, limit: Duration) -> (u64, String) {
    let t = Instant::now();
    loop {
        let mut tips = Vec::new();
        for n in nodes {
            tips.push(n.tip().await);
        }
        if tips.windows(2).all(|w| w[0] == w[1]) && tips[0].0 >= height {
            return tips.swap_remove(0);
        }
        assert!(
            t.elapsed() < limit,
            "no common tip at height >= {height} within {limit:?}: {tips:?}\n{}",
            nodes
                .iter()
                .map(|n| n.pool.log_text())
                .collect::<Vec<_>>()
                .join("\n----\n")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Wait until `ok` holds for what `probe` reads, or fail with the last reading.
pub async fn eventually<T: std::fmt::Debug, F, Fut>(
    limit: Duration,
    probe: F,
    ok: impl Fn(&T) -> bool,
) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let t = Instant::now();
    loop {
        let v = probe().await;
        if ok(&v) {
            return v;
        }
        assert!(t.elapsed() < limit, "not within {limit:?}: {v:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Bytes of the block file of the node whose data is in `dir`.
pub fn file_len(dir: &Path) -> u64 {
    std::fs::metadata(dir.join("spool/embedded.blocks"))
        .map(|m| m.len())
        .unwrap_or(0)
}

/// The P2P magic of the test network with genesis `bits`.
pub fn magic(bits: &str) -> Magic {
    let bits = CompactTarget::from_consensus(u32::from_str_radix(bits, 16).unwrap());
    network_magic(genesis_block(NETWORK, bits, None).block_hash())
}

fn now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32
}

/// Valid blocks on top of one another, from the test network's genesis.
pub struct BlockMaker {
    bits: CompactTarget,
    pub prev: BlockHash,
    pub height: u64,
    time: u32,
}

impl BlockMaker {
    /// Blocks after the genesis, timed from `start_secs_ago` seconds ago, a second apart.
    pub fn new(bits: &str, start_secs_ago: u32) -> BlockMaker {
        let bits = CompactTarget::from_consensus(u32::from_str_radix(bits, 16).unwrap());
        BlockMaker {
            bits,
            prev: genesis_block(NETWORK, bits, None).block_hash(),
            height: 0,
            time: now() - start_secs_ago,
        }
    }

    /// Blocks on top of `prev` at `height` (a fork), timed as [`BlockMaker::new`] does.
    pub fn fork(bits: &str, prev: BlockHash, height: u64, start_secs_ago: u32) -> BlockMaker {
        BlockMaker {
            prev,
            height,
            ..BlockMaker::new(bits, start_secs_ago)
        }
    }

    /// The next block's body, not yet mined (merkle root set, nonce 0).
    pub fn draft(&self) -> Block {
        let height = self.height + 1;
        let coinbase = CoinbaseBuilder::new(ScriptBuf::from_bytes(vec![0x51]), "/scripted/", 8)
            .build(height, subsidy(height), None, 7)
            .with_extranonce(&[0; 8]);
        let mut block = Block {
            header: Header {
                version: BlockVersion::from_consensus(0x2000_0000),
                prev_blockhash: self.prev,
                merkle_root: TxMerkleNode::all_zeros(),
                time: self.time + 1,
                bits: self.bits.into(),
                nonce: 0,
            },
            txdata: vec![coinbase],
        };
        block.header.merkle_root = block.compute_merkle_root().unwrap();
        block
    }

    /// Grind the nonce until the header's hash meets (or, with `meet` false, misses) its bits.
    pub fn grind(&self, block: &mut Block, meet: bool) {
        let target = self.bits.to_target().unwrap();
        while target.is_met_by(&block.block_hash()) != meet {
            block.header.nonce += 1;
        }
    }

    /// The next valid block; the maker moves on to it.
    pub fn next_block(&mut self) -> Block {
        self.next_block_padded(0)
    }

    /// The next valid block carrying a transaction of about `pad` bytes (an `OP_RETURN` of
    /// junk: the embedded chain checks form, not inputs), to weigh what a peer can make a
    /// node store.
    pub fn next_block_padded(&mut self, pad: usize) -> Block {
        let mut b = self.draft();
        if pad > 0 {
            let junk = Transaction {
                version: bitcoin::transaction::Version::ONE,
                lock_time: bitcoin::absolute::LockTime::ZERO,
                input: vec![bitcoin::TxIn {
                    previous_output: bitcoin::OutPoint {
                        txid: bitcoin::Txid::from_byte_array([self.height as u8 + 1; 32]),
                        vout: 0,
                    },
                    ..Default::default()
                }],
                output: vec![bitcoin::TxOut {
                    value: bitcoin::Amount::ZERO,
                    script_pubkey: ScriptBuf::from_bytes(vec![0x6a; pad]),
                }],
            };
            b.txdata.push(junk);
            b.header.merkle_root = b.compute_merkle_root().unwrap();
        }
        self.grind(&mut b, true);
        self.prev = b.block_hash();
        self.height += 1;
        self.time += 1;
        b
    }
}

/// A peer the test drives by hand.
pub struct ScriptedPeer {
    pub framed: Framed<TcpStream, FrameCodec>,
}

impl ScriptedPeer {
    /// Connect from the loopback address `from` (bans count per address).
    pub async fn connect(from: IpAddr, to: SocketAddr, magic: Magic) -> ScriptedPeer {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(SocketAddr::new(from, 0)).unwrap();
        let stream = sock.connect(to).await.unwrap();
        ScriptedPeer {
            framed: Framed::new(stream, FrameCodec::new(magic)),
        }
    }

    /// Say `version` / `verack` with a best height of `height`.
    pub async fn handshake(&mut self, height: u64) -> Result<(), PeerError> {
        let me = self.framed.get_ref().local_addr().unwrap();
        let them = self.framed.get_ref().peer_addr().unwrap();
        let v = our_version(me, them, height, rand::random(), now() as i64);
        handshake(&mut self.framed, v, &[], Duration::from_secs(5))
            .await
            .map(|_| ())
    }

    pub async fn send(&mut self, msg: NetworkMessage) {
        self.framed.send(msg).await.unwrap();
    }

    /// Raw bytes on the socket (garbage, a forged frame header).
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        let _ = self.framed.get_mut().write_all(bytes).await;
    }

    /// Read (answering pings) until a message `wanted` accepts arrives; false when none does
    /// within `wait` or the connection ends.
    pub async fn expect(
        &mut self,
        wait: Duration,
        wanted: impl Fn(&NetworkMessage) -> bool,
    ) -> bool {
        tokio::time::timeout(wait, async {
            loop {
                match self.framed.next().await {
                    None | Some(Err(_)) => return false,
                    Some(Ok(NetworkMessage::Ping(n))) => {
                        self.framed.send(NetworkMessage::Pong(n)).await.unwrap();
                    }
                    Some(Ok(m)) if wanted(&m) => return true,
                    Some(Ok(_)) => {}
                }
            }
        })
        .await
        .unwrap_or(false)
    }

    /// Whether the node closes the connection within `wait` (reading and dropping whatever
    /// it sends meanwhile).
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        tokio::time::timeout(wait, async {
            loop {
                match self.framed.next().await {
                    None | Some(Err(_)) => return,
                    Some(Ok(_)) => {}
                }
            }
        })
        .await
        .is_ok()
    }
}
