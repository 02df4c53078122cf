//! One connection to another node, over Bitcoin frames ([`FrameCodec`]): the handshake first,
//! under a deadline, so a peer that connects and says nothing (or speaks before it has
//! introduced itself) holds a socket for seconds at most; then [`run`], which answers pings,
//! pings the peer and drops it when no pong comes in time (a dead peer), writes what the node
//! queued for it and hands everything else to the node.
//!
//! What the node sends a peer goes through a bounded queue ([`Outbox`]): when it is full the
//! peer is not keeping up, and the node drops that peer rather than wait for it, so one slow
//! peer never stalls the others. Dropping means aborting the peer's task: [`run`] may be
//! waiting on a socket the peer no longer reads.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::p2p::message::NetworkMessage;
use bitcoin::BlockHash;
use chrono::{DateTime, Utc};
use futures::{SinkExt, StreamExt};
use parking_lot::Mutex;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

use super::codec::{FrameCodec, FrameError};
use super::handshake::{check_peer_version, HandshakeError, PeerVersion};
use bitcoin::p2p::message_network::VersionMessage;

/// Why a connection ended (or never began).
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    #[error("no handshake within {0:?}")]
    HandshakeTimeout(Duration),
    #[error("peer sent {0} before the handshake was done")]
    BeforeHandshake(String),
    #[error("peer sent a second version")]
    DuplicateVersion,
    #[error("peer closed the connection")]
    Closed,
    #[error("no pong within {0:?} of our ping")]
    PingTimeout(Duration),
    #[error("peer's send queue is full: it does not keep up")]
    SlowPeer,
    #[error("peer sent an invalid block {hash}: {reason}")]
    InvalidBlock {
        hash: bitcoin::BlockHash,
        reason: String,
    },
    #[error("peer sent block {hash}, which nobody asked for, on a branch that cannot lead")]
    UnrequestedLowWork { hash: bitcoin::BlockHash },
    #[error(
        "peer sent block {hash} of a branch that forks deeper than a reorganisation may reach"
    )]
    DeepFork { hash: bitcoin::BlockHash },
    #[error("peer broke the protocol: {0}")]
    Protocol(String),
    #[error("peer sends commands we do not speak, over and over ({0})")]
    Junk(String),
}

/// Exchange `version` and `verack` on `framed` within `deadline`: send `ours`, check the peer's
/// (refusing our own nonces, see [`check_peer_version`]), acknowledge it, and wait for its
/// acknowledgement of ours. Anything else before both are done ends the connection.
pub async fn handshake<S>(
    framed: &mut Framed<S, FrameCodec>,
    ours: VersionMessage,
    our_nonces: &[u64],
    deadline: Duration,
) -> Result<PeerVersion, PeerError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let exchange = async {
        framed.send(NetworkMessage::Version(ours)).await?;
        let mut theirs: Option<PeerVersion> = None;
        let mut acked = false;
        loop {
            if acked {
                if let Some(v) = theirs.take() {
                    return Ok(v);
                }
            }
            match framed.next().await.ok_or(PeerError::Closed)?? {
                NetworkMessage::Version(v) => {
                    if theirs.is_some() {
                        return Err(PeerError::DuplicateVersion);
                    }
                    theirs = Some(check_peer_version(&v, our_nonces.iter().copied())?);
                    framed.send(NetworkMessage::Verack).await?;
                }
                NetworkMessage::Verack if !acked => acked = true,
                other => return Err(PeerError::BeforeHandshake(other.command().to_string())),
            }
        }
    };
    tokio::time::timeout(deadline, exchange)
        .await
        .map_err(|_| PeerError::HandshakeTimeout(deadline))?
}

/// How often to ping a peer, and how long its pong may take.
#[derive(Debug, Clone, Copy)]
pub struct Liveness {
    pub ping_every: Duration,
    pub pong_within: Duration,
}

/// The node's side of a peer's bounded send queue.
#[derive(Debug, Clone)]
pub struct Outbox(mpsc::Sender<NetworkMessage>);

impl Outbox {
    /// A queue of `capacity` messages and the receiving end [`run`] takes.
    pub fn new(capacity: usize) -> (Outbox, mpsc::Receiver<NetworkMessage>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (Outbox(tx), rx)
    }

    /// Queue `msg`, waiting for room: for answers to what the peer asked, so a peer that asks
    /// for much and reads slowly only slows its own answers.
    pub async fn send_wait(&self, msg: NetworkMessage) -> Result<(), PeerError> {
        self.0.send(msg).await.map_err(|_| PeerError::Closed)
    }

    /// Queue `msg` without waiting: [`PeerError::SlowPeer`] when the queue is full (drop the
    /// peer), [`PeerError::Closed`] when its connection has ended.
    pub fn send(&self, msg: NetworkMessage) -> Result<(), PeerError> {
        self.0.try_send(msg).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => PeerError::SlowPeer,
            mpsc::error::TrySendError::Closed(_) => PeerError::Closed,
        })
    }
}

/// What the node can read of a running peer (for `/api/peers` and metrics).
#[derive(Debug, Default, Clone)]
pub struct PeerStats {
    pub last_ping_rtt: Option<Duration>,
    pub messages_in: u64,
    pub messages_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// Which way a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    In,
    Out,
}

impl Flow {
    pub fn label(self) -> &'static str {
        match self {
            Flow::In => "in",
            Flow::Out => "out",
        }
    }
}

/// Told of every message a running peer sends or receives: its command, its direction, and
/// the bytes of frames since the last call in that direction (for the node's metrics).
pub type Observer = Arc<dyn Fn(&str, Flow, u64) + Send + Sync>;

/// Count `command` in `stats` and tell `observe`, with the codec's new bytes.
fn tally<S>(
    framed: &Framed<S, FrameCodec>,
    stats: &Mutex<PeerStats>,
    observe: &Observer,
    command: &str,
    flow: Flow,
) {
    let mut st = stats.lock();
    let bytes = match flow {
        Flow::In => {
            st.messages_in += 1;
            let new = framed.codec().bytes_in() - st.bytes_in;
            st.bytes_in = framed.codec().bytes_in();
            new
        }
        Flow::Out => {
            st.messages_out += 1;
            let new = framed.codec().bytes_out() - st.bytes_out;
            st.bytes_out = framed.codec().bytes_out();
            new
        }
    };
    drop(st);
    observe(command, flow, bytes);
}

/// Serve an established connection until it ends: answer pings, ping the peer every
/// `liveness.ping_every` (a pong later than `liveness.pong_within` ends it), write what
/// `outbox` delivers, and hand every other message to `inbox` (waiting when the node is busy:
/// backpressure on this peer alone). Returns why it ended; `Ok` when `cancel` fired.
pub async fn run<S>(
    mut framed: Framed<S, FrameCodec>,
    mut outbox: mpsc::Receiver<NetworkMessage>,
    inbox: mpsc::Sender<NetworkMessage>,
    stats: Arc<Mutex<PeerStats>>,
    observe: Observer,
    liveness: Liveness,
    cancel: CancellationToken,
) -> Result<(), PeerError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // What the handshake moved counts too.
    {
        let mut st = stats.lock();
        st.bytes_in = framed.codec().bytes_in();
        st.bytes_out = framed.codec().bytes_out();
    }
    let mut ticker = tokio::time::interval(liveness.ping_every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pending: Option<(u64, Instant)> = None;
    let mut next_nonce: u64 = rand::random();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = ticker.tick() => {
                if let Some((_, sent)) = pending {
                    if sent.elapsed() > liveness.pong_within {
                        return Err(PeerError::PingTimeout(liveness.pong_within));
                    }
                    continue;
                }
                next_nonce = next_nonce.wrapping_add(1);
                pending = Some((next_nonce, Instant::now()));
                framed.send(NetworkMessage::Ping(next_nonce)).await?;
                tally(&framed, &stats, &observe, "ping", Flow::Out);
            }
            out = outbox.recv() => {
                // The node dropped its outbox: this peer is done.
                let Some(msg) = out else { return Ok(()) };
                let command = msg.command();
                framed.send(msg).await?;
                tally(&framed, &stats, &observe, command.as_ref(), Flow::Out);
            }
            msg = framed.next() => {
                let msg = msg.ok_or(PeerError::Closed)??;
                tally(&framed, &stats, &observe, msg.command().as_ref(), Flow::In);
                match msg {
                    NetworkMessage::Ping(n) => {
                        framed.send(NetworkMessage::Pong(n)).await?;
                        tally(&framed, &stats, &observe, "pong", Flow::Out);
                    }
                    NetworkMessage::Pong(n) if pending.is_some_and(|(p, _)| p == n) => {
                        let (_, sent) = pending.take().expect("checked");
                        stats.lock().last_ping_rtt = Some(sent.elapsed());
                    }
                    other => {
                        if inbox.send(other).await.is_err() {
                            return Ok(());
                        }
                    }
                }
            }
        }
    }
}

/// Which side dialled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    pub fn label(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// One connected peer, as the node keeps it.
pub struct Peer {
    pub id: u64,
    pub addr: SocketAddr,
    /// Where it takes connections (the dialled address, or an inbound peer's advertised port).
    pub listen: Option<SocketAddr>,
    pub direction: Direction,
    pub version: PeerVersion,
    pub since: DateTime<Utc>,
    pub stats: Arc<Mutex<PeerStats>>,
    /// Its best height as far as we know (its version, then the blocks it has sent or shown).
    pub best_height: AtomicU64,
    /// The last block it sent or announced (no need to announce that one back).
    pub last_block: Mutex<Option<BlockHash>>,
    pub outbox: Outbox,
    pub cancel: CancellationToken,
}

impl Peer {
    pub fn saw_height(&self, height: u64) {
        self.best_height.fetch_max(height, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::p2p::handshake::our_version;
    use bitcoin::p2p::Magic;
    use tokio::net::{TcpListener, TcpStream};

    const MAGIC: Magic = Magic::REGTEST;
    const DEADLINE: Duration = Duration::from_secs(5);

    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (b, _) = l.accept().await.unwrap();
        (a, b)
    }

    fn version(height: u64, nonce: u64) -> VersionMessage {
        let addr = "127.0.0.1:18555".parse().unwrap();
        our_version(addr, addr, height, nonce, 1_767_225_600)
    }

    #[tokio::test]
    async fn two_nodes_learn_each_others_height() {
        let (a, b) = pair().await;
        let mut a = Framed::new(a, FrameCodec::new(MAGIC));
        let mut b = Framed::new(b, FrameCodec::new(MAGIC));
        let (got_a, got_b) = tokio::join!(
            handshake(&mut a, version(10, 1), &[1], DEADLINE),
            handshake(&mut b, version(20, 2), &[2], DEADLINE),
        );
        assert_eq!(got_a.unwrap().best_height, 20);
        assert_eq!(got_b.unwrap().best_height, 10);
    }

    #[tokio::test]
    async fn a_node_of_another_network_is_refused_at_its_first_frame() {
        let (a, b) = pair().await;
        let mut a = Framed::new(a, FrameCodec::new(MAGIC));
        let mut b = Framed::new(b, FrameCodec::new(Magic::SIGNET));
        let (got_a, _) = tokio::join!(
            handshake(&mut a, version(1, 1), &[1], DEADLINE),
            handshake(&mut b, version(1, 2), &[2], DEADLINE),
        );
        let err = got_a.unwrap_err();
        assert!(
            matches!(err, PeerError::Frame(FrameError::WrongMagic { .. })),
            "{err}"
        );
    }

    #[tokio::test]
    async fn dialling_ourselves_is_caught_by_the_nonce() {
        let (a, b) = pair().await;
        let mut a = Framed::new(a, FrameCodec::new(MAGIC));
        let mut b = Framed::new(b, FrameCodec::new(MAGIC));
        // One node on both ends: each end's version carries a nonce the node itself issued.
        let (got_a, _) = tokio::join!(
            handshake(&mut a, version(1, 7), &[7, 8], DEADLINE),
            handshake(&mut b, version(1, 8), &[7, 8], DEADLINE),
        );
        assert!(matches!(
            got_a.unwrap_err(),
            PeerError::Handshake(HandshakeError::SelfConnection)
        ));
    }

    fn live(ms: u64) -> Liveness {
        Liveness {
            ping_every: Duration::from_millis(ms),
            pong_within: Duration::from_millis(2 * ms),
        }
    }

    #[tokio::test]
    async fn running_peers_pass_messages_and_measure_their_ping() {
        let (a, b) = pair().await;
        let cancel = CancellationToken::new();
        let mut ends = Vec::new();
        let mut handles = Vec::new();
        for s in [a, b] {
            let (outbox, out_rx) = Outbox::new(8);
            let (in_tx, in_rx) = mpsc::channel(8);
            let stats = Arc::new(Mutex::new(PeerStats::default()));
            handles.push(tokio::spawn(run(
                Framed::new(s, FrameCodec::new(MAGIC)),
                out_rx,
                in_tx,
                stats.clone(),
                Arc::new(|_: &str, _, _| {}),
                live(50),
                cancel.clone(),
            )));
            ends.push((outbox, in_rx, stats));
        }
        ends[0].0.send(NetworkMessage::GetAddr).unwrap();
        let got = tokio::time::timeout(DEADLINE, ends[1].1.recv())
            .await
            .unwrap();
        assert_eq!(got, Some(NetworkMessage::GetAddr));
        for _ in 0..100 {
            if ends.iter().all(|e| e.2.lock().last_ping_rtt.is_some()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for (_, _, stats) in &ends {
            assert!(
                stats.lock().last_ping_rtt.is_some(),
                "each side timed a pong"
            );
        }
        cancel.cancel();
        for h in handles {
            assert!(h.await.unwrap().is_ok());
        }
    }

    #[tokio::test]
    async fn a_peer_that_never_answers_pings_is_dropped_as_dead() {
        let (a, b) = pair().await;
        // The far end reads (so writes never block) but never answers.
        let mut mute = Framed::new(b, FrameCodec::new(MAGIC));
        tokio::spawn(async move { while mute.next().await.is_some() {} });
        let (_outbox, out_rx) = Outbox::new(8);
        let (in_tx, _in_rx) = mpsc::channel(8);
        let ended = tokio::time::timeout(
            DEADLINE,
            run(
                Framed::new(a, FrameCodec::new(MAGIC)),
                out_rx,
                in_tx,
                Arc::default(),
                Arc::new(|_: &str, _, _| {}),
                live(50),
                CancellationToken::new(),
            ),
        )
        .await
        .expect("ends by itself");
        assert!(matches!(ended, Err(PeerError::PingTimeout(_))), "{ended:?}");
    }

    #[test]
    fn a_full_send_queue_says_the_peer_is_slow() {
        let (outbox, rx) = Outbox::new(2);
        outbox.send(NetworkMessage::Verack).unwrap();
        outbox.send(NetworkMessage::Verack).unwrap();
        assert!(matches!(
            outbox.send(NetworkMessage::Verack),
            Err(PeerError::SlowPeer)
        ));
        drop(rx);
        assert!(matches!(
            outbox.send(NetworkMessage::Verack),
            Err(PeerError::Closed)
        ));
    }

    #[tokio::test]
    async fn a_silent_peer_times_out_and_one_that_speaks_first_is_dropped() {
        let (a, _silent) = pair().await;
        let mut a = Framed::new(a, FrameCodec::new(MAGIC));
        let err = handshake(&mut a, version(1, 1), &[1], Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(matches!(err, PeerError::HandshakeTimeout(_)), "{err}");

        let (a, b) = pair().await;
        let mut a = Framed::new(a, FrameCodec::new(MAGIC));
        let mut b = Framed::new(b, FrameCodec::new(MAGIC));
        b.send(NetworkMessage::Ping(5)).await.unwrap();
        let err = handshake(&mut a, version(1, 1), &[1], DEADLINE)
            .await
            .unwrap_err();
        assert!(
            matches!(err, PeerError::BeforeHandshake(ref c) if c == "ping"),
            "{err}"
        );
    }
}
