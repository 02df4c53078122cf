//! The node's peers: the table of connections, the listener that takes inbound peers (within
//! the caps), the dialer that keeps `--max-outbound` connections from the address book
//! (reconnecting with backoff), the relay that announces every new best tip, and the ban list.
//!
//! Each connection is one task: handshake under a deadline, then [`peer::run`] (pings, the
//! send queue) beside [`sync::Conversation`] (what the peer's messages mean). When the node
//! drops a peer it cancels that task, which ends both at once, whatever they wait on.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_blockdata::Inventory;
use bitcoin::p2p::Magic;
use bitcoin::BlockHash;
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::Serialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::address_book::AddressBook;
use super::codec::FrameCodec;
use super::handshake::{our_version, HandshakeError};
use super::metrics::P2pMetrics;
use super::misbehaviour::{peer_ban_list, punish};
use super::peer::{self, Direction, Flow, Liveness, Observer, Outbox, Peer, PeerError};
use super::seen::Seen;
use super::sync::{Conversation, Ground};
use crate::blocks::BlockPath;
use crate::chain::embedded::EmbeddedChain;
use crate::chain::genesis::network_magic;
use crate::chain::TemplateSource;
use crate::net::bans::ban_key;
use crate::net::bans::BanList;

/// Messages a peer's send queue holds before the peer counts as not keeping up.
const OUTBOX: usize = 1_024;
/// Messages from a peer waiting for the node (the peer's reads stop while it is full).
const INBOX: usize = 64;
/// Addresses the book holds.
const BOOK: usize = 4_096;
/// Block hashes remembered as announced.
const SEEN: usize = 16_384;
/// How long a dial may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// What the operator set.
#[derive(Debug, Clone)]
pub struct P2pConfig {
    /// Where to take inbound peers (`None`: outbound only).
    pub listen: Option<SocketAddr>,
    /// `--peer` seeds, resolved.
    pub seeds: Vec<SocketAddr>,
    pub max_peers: usize,
    pub max_outbound: usize,
    pub max_inbound_per_ip: usize,
    pub handshake_timeout: Duration,
    pub liveness: Liveness,
    pub ban_duration: Duration,
}

/// A peer as `/api/peers` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PeerView {
    pub id: u64,
    pub address: String,
    pub listen: Option<String>,
    pub direction: Direction,
    pub user_agent: String,
    pub version: u32,
    pub best_height: u64,
    pub ping_ms: Option<f64>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub messages_in: u64,
    pub messages_out: u64,
    pub connected_since: DateTime<Utc>,
}

/// The node: its peers and everything they share.
pub struct Node {
    pub(super) cfg: P2pConfig,
    pub(super) magic: Magic,
    pub(super) chain: Arc<EmbeddedChain>,
    pub(super) blocks: Arc<BlockPath>,
    pub(super) metrics: P2pMetrics,
    pub(super) bans: BanList,
    pub(super) book: Mutex<AddressBook>,
    peers: Mutex<HashMap<u64, Arc<Peer>>>,
    dialing: Mutex<HashSet<SocketAddr>>,
    /// Inbound connections still in their handshake, by address (they count against the caps,
    /// so a flood of silent connections cannot pile up sockets).
    handshaking: Mutex<HashMap<IpAddr, usize>>,
    /// Nonces of our handshakes in progress (a `version` carrying one is ourselves).
    nonces: Mutex<HashSet<u64>>,
    seen: Mutex<Seen>,
    next_id: AtomicU64,
    /// The bound listening address.
    pub listening: Option<SocketAddr>,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

/// What a conversation with a peer reads of the node.
impl Ground for Node {
    fn chain(&self) -> &EmbeddedChain {
        &self.chain
    }

    fn blocks(&self) -> &BlockPath {
        &self.blocks
    }

    fn metrics(&self) -> &P2pMetrics {
        &self.metrics
    }

    fn book(&self) -> &Mutex<AddressBook> {
        &self.book
    }

    fn ping_every(&self) -> Duration {
        self.cfg.liveness.ping_every
    }
}

impl Node {
    /// Bind the listener (when configured) and start the listener, the dialer and the relay.
    pub async fn start(
        cfg: P2pConfig,
        chain: Arc<EmbeddedChain>,
        blocks: Arc<BlockPath>,
        metrics: P2pMetrics,
        cancel: CancellationToken,
    ) -> anyhow::Result<Arc<Node>> {
        let magic = network_magic(chain.genesis_hash());
        let listener = match cfg.listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|e| anyhow::anyhow!("binding --p2p-listen {addr}: {e}"))?,
            ),
            None => None,
        };
        let listening = listener.as_ref().map(|l| l.local_addr()).transpose()?;
        let now = Instant::now();
        let mut book = AddressBook::new(BOOK, listening);
        for seed in &cfg.seeds {
            book.add_seed(*seed, now);
        }
        metrics.peers_configured.set(cfg.seeds.len() as i64);
        let node = Arc::new(Node {
            magic,
            bans: peer_ban_list(cfg.ban_duration),
            cfg,
            chain,
            blocks,
            metrics,
            book: Mutex::new(book),
            peers: Mutex::new(HashMap::new()),
            dialing: Mutex::new(HashSet::new()),
            handshaking: Mutex::new(HashMap::new()),
            nonces: Mutex::new(HashSet::new()),
            seen: Mutex::new(Seen::new(SEEN)),
            next_id: AtomicU64::new(1),
            listening,
            cancel,
            tracker: TaskTracker::new(),
        });
        if let Some(l) = listener {
            tracing::info!(addr = %node.listening.expect("bound"), magic = %magic, "P2P listening");
            node.tracker.spawn(node.clone().accept_loop(l));
        }
        node.tracker.spawn(node.clone().dial_loop());
        node.tracker.spawn(node.clone().relay_loop());
        Ok(node)
    }

    /// Wait for every connection task to end (after the cancel token fired).
    pub async fn wait(&self) {
        self.tracker.close();
        self.tracker.wait().await;
    }

    pub fn peers(&self) -> Vec<PeerView> {
        let mut out: Vec<PeerView> = self
            .peers
            .lock()
            .values()
            .map(|p| {
                let st = p.stats.lock().clone();
                PeerView {
                    id: p.id,
                    address: p.addr.to_string(),
                    listen: p.listen.map(|a| a.to_string()),
                    direction: p.direction,
                    user_agent: p.version.user_agent.clone(),
                    version: p.version.version,
                    best_height: p.best_height.load(Ordering::Relaxed),
                    ping_ms: st.last_ping_rtt.map(|d| d.as_secs_f64() * 1e3),
                    bytes_in: st.bytes_in,
                    bytes_out: st.bytes_out,
                    messages_in: st.messages_in,
                    messages_out: st.messages_out,
                    connected_since: p.since,
                }
            })
            .collect();
        out.sort_by_key(|p| p.id);
        out
    }

    pub fn bans(&self) -> &BanList {
        &self.bans
    }

    fn count(&self, direction: Direction) -> usize {
        self.peers
            .lock()
            .values()
            .filter(|p| p.direction == direction)
            .count()
    }

    /// Inbound peers from `ip`'s address as bans count it (an IPv6 /64 is one address).
    fn inbound_from(&self, ip: IpAddr) -> usize {
        self.peers
            .lock()
            .values()
            .filter(|p| p.direction == Direction::Inbound && ban_key(p.addr.ip()) == ban_key(ip))
            .count()
    }

    async fn accept_loop(self: Arc<Self>, listener: TcpListener) {
        loop {
            let (stream, addr) = tokio::select! {
                _ = self.cancel.cancelled() => return,
                r = listener.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "P2P accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            if self.bans.is_banned(addr.ip()) {
                tracing::debug!(peer = %addr, "banned address refused");
                continue;
            }
            let inbound_slots = self
                .cfg
                .max_peers
                .saturating_sub(self.cfg.max_outbound)
                .max(1);
            let (pending_total, pending_here) = {
                let h = self.handshaking.lock();
                (
                    h.values().sum::<usize>(),
                    h.get(&ban_key(addr.ip())).copied().unwrap_or(0),
                )
            };
            if self.count(Direction::Inbound) + pending_total >= inbound_slots {
                tracing::info!(peer = %addr, "inbound peer refused: all inbound slots are taken (--max-peers less --max-outbound)");
                continue;
            }
            if self.inbound_from(addr.ip()) + pending_here >= self.cfg.max_inbound_per_ip {
                tracing::info!(peer = %addr, "inbound peer refused: --max-inbound-per-ip reached");
                continue;
            }
            *self
                .handshaking
                .lock()
                .entry(ban_key(addr.ip()))
                .or_default() += 1;
            let node = self.clone();
            self.tracker
                .spawn(async move { node.connection(stream, addr, Direction::Inbound).await });
        }
    }

    async fn dial_loop(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            let outbound = self.count(Direction::Outbound) + self.dialing.lock().len();
            if outbound >= self.cfg.max_outbound
                || self.peers.lock().len() + self.dialing.lock().len() >= self.cfg.max_peers
            {
                continue;
            }
            let connected: HashSet<SocketAddr> = self
                .peers
                .lock()
                .values()
                .filter_map(|p| p.listen)
                .collect();
            let next = {
                let dialing = self.dialing.lock();
                self.book.lock().next_to_dial(Instant::now(), |a| {
                    connected.contains(a) || dialing.contains(a) || self.bans.is_banned(a.ip())
                })
            };
            let Some(addr) = next else { continue };
            self.dialing.lock().insert(addr);
            let node = self.clone();
            self.tracker.spawn(async move {
                match tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(addr)).await {
                    Ok(Ok(stream)) => {
                        node.dialing.lock().remove(&addr);
                        node.connection(stream, addr, Direction::Outbound).await;
                    }
                    Ok(Err(e)) => {
                        node.dialing.lock().remove(&addr);
                        tracing::debug!(peer = %addr, error = %e, "dial failed");
                        node.book.lock().failed(&addr, Instant::now());
                    }
                    Err(_) => {
                        node.dialing.lock().remove(&addr);
                        tracing::debug!(peer = %addr, "dial timed out");
                        node.book.lock().failed(&addr, Instant::now());
                    }
                }
            });
        }
    }

    /// Announce every new best tip to every peer (except the one that sent it), once.
    async fn relay_loop(self: Arc<Self>) {
        let mut templates = self.chain.templates();
        let mut last = templates.borrow().prev_hash;
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                r = templates.changed() => if r.is_err() { return },
            }
            let tip = templates.borrow_and_update().prev_hash;
            if tip == last {
                continue;
            }
            last = tip;
            if !self.seen.lock().first_time(tip) {
                continue;
            }
            self.announce(tip);
        }
    }

    /// Send `inv` of `tip` to every peer but the one it came from; drop peers that lag.
    fn announce(&self, tip: BlockHash) {
        let peers: Vec<Arc<Peer>> = self.peers.lock().values().cloned().collect();
        for p in peers {
            if *p.last_block.lock() == Some(tip) {
                continue;
            }
            if let Err(e) = p
                .outbox
                .send(NetworkMessage::Inv(vec![Inventory::Block(tip)]))
            {
                tracing::warn!(peer = %p.addr, error = %e, "dropping a peer that does not keep up");
                p.cancel.cancel();
            }
        }
    }

    fn observer(&self) -> Observer {
        let metrics = self.metrics.clone();
        Arc::new(move |command: &str, flow: Flow, bytes: u64| {
            metrics
                .peer_messages
                .with_label_values(&[command, flow.label()])
                .inc();
            metrics
                .peer_bytes
                .with_label_values(&[flow.label()])
                .inc_by(bytes);
        })
    }

    /// One connection, from the handshake until it ends.
    async fn connection(
        self: Arc<Self>,
        stream: TcpStream,
        addr: SocketAddr,
        direction: Direction,
    ) {
        let _ = stream.set_nodelay(true);
        let local = stream
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        // Our version advertises where we listen (the port peers should dial).
        let advertised = self
            .listening
            .map(|l| SocketAddr::new(local.ip(), l.port()))
            .unwrap_or(SocketAddr::new(local.ip(), 0));
        let mut framed = Framed::new(stream, FrameCodec::new(self.magic));
        let nonce: u64 = rand::random();
        self.nonces.lock().insert(nonce);
        let ours = our_version(
            advertised,
            addr,
            self.chain.tip().0,
            nonce,
            Utc::now().timestamp(),
        );
        let nonces: Vec<u64> = self.nonces.lock().iter().copied().collect();
        let shaken = peer::handshake(&mut framed, ours, &nonces, self.cfg.handshake_timeout).await;
        self.nonces.lock().remove(&nonce);
        if direction == Direction::Inbound {
            let mut h = self.handshaking.lock();
            if let Some(n) = h.get_mut(&ban_key(addr.ip())) {
                *n -= 1;
                if *n == 0 {
                    h.remove(&ban_key(addr.ip()));
                }
            }
        }
        let version = match shaken {
            Ok(v) => v,
            Err(e) => {
                self.ended(addr, direction, &e);
                if matches!(e, PeerError::Handshake(HandshakeError::SelfConnection)) {
                    self.book.lock().forget(&addr);
                }
                return;
            }
        };
        let listen = match direction {
            Direction::Outbound => Some(addr),
            Direction::Inbound => version
                .listen_port
                .filter(|p| *p != 0)
                .map(|p| SocketAddr::new(addr.ip(), p)),
        };
        if direction == Direction::Outbound {
            self.book.lock().succeeded(&addr, Instant::now());
        } else if let Some(l) = listen {
            self.book.lock().learn([l], Instant::now());
        }
        let (outbox, out_rx) = Outbox::new(OUTBOX);
        let (in_tx, in_rx) = mpsc::channel(INBOX);
        let cancel = self.cancel.child_token();
        let peer = Arc::new(Peer {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            addr,
            listen,
            direction,
            best_height: AtomicU64::new(version.best_height),
            version,
            since: Utc::now(),
            stats: Arc::default(),
            last_block: Mutex::new(None),
            outbox,
            cancel: cancel.clone(),
        });
        self.peers.lock().insert(peer.id, peer.clone());
        self.metrics
            .peers
            .with_label_values(&[direction.label()])
            .inc();
        tracing::info!(
            peer = %addr,
            direction = direction.label(),
            user_agent = %peer.version.user_agent,
            height = peer.version.best_height,
            "peer connected"
        );
        let running = peer::run(
            framed,
            out_rx,
            in_tx,
            peer.stats.clone(),
            self.observer(),
            self.cfg.liveness,
            cancel.clone(),
        );
        let talk = Conversation::new(self.clone(), peer.clone()).serve(in_rx);
        let (ran, talked) = tokio::join!(
            async {
                let r = running.await;
                // The connection is over: the conversation ends with it.
                cancel.cancel();
                r
            },
            async {
                let r = talk.await;
                if r.is_err() {
                    cancel.cancel();
                }
                r
            }
        );
        self.peers.lock().remove(&peer.id);
        self.metrics
            .peers
            .with_label_values(&[direction.label()])
            .dec();
        let why = talked.err().or(ran.err());
        match &why {
            Some(e) => self.ended(addr, direction, e),
            None => {
                tracing::info!(peer = %addr, "peer disconnected");
                if direction == Direction::Outbound {
                    // Dial it again, after the backoff.
                    self.book.lock().failed(&addr, Instant::now());
                }
            }
        }
    }

    /// Log why a connection ended, count it against the peer, and back off an outbound one.
    fn ended(&self, addr: SocketAddr, direction: Direction, err: &PeerError) {
        if punish(&self.bans, addr.ip(), err) {
            self.metrics.peer_bans.inc();
            tracing::warn!(peer = %addr, error = %err, "peer banned");
        } else {
            tracing::info!(peer = %addr, error = %err, "peer disconnected");
        }
        if direction == Direction::Outbound {
            self.book.lock().failed(&addr, Instant::now());
        }
    }
}
