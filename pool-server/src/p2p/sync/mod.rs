//! What a peer's messages mean: the conversation with one peer after the handshake.
//!
//! - **Catch-up, headers first**: on connecting, and whenever a block arrives whose parent we
//!   lack, we send `getheaders` with our locator; the peer answers with up to 2,000 headers
//!   after our fork point; we check that they link and carry their proof of work, fetch the
//!   blocks we lack with `getdata`, and ask for the next headers once the last of a full batch
//!   is in. We answer a peer's `getheaders` and `getdata` the same way, from the block file.
//! - **Relay**: an `inv` of a block we do not know is fetched; every new best tip is
//!   announced to the other peers by the manager's relay, once.
//! - **Discovery**: `getaddr` is answered (once per connection) with addresses seen working;
//!   `addr` teaches the address book.
//!
//! A peer that sends an invalid block, headers without proof of work, lists longer than the
//! protocol allows, or a stream of commands we do not speak is dropped and scored
//! ([`super::misbehaviour`]). Everything it can make us hold is bounded: the blocks in flight,
//! the orphans (in the chain), the book. Below the network's minimum chain work, headers are
//! handled by [`below_min_work`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::block::Header;
use bitcoin::hashes::Hash;
use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_blockdata::{GetHeadersMessage, Inventory};
use bitcoin::p2p::Address;
use bitcoin::{Block, BlockHash};
use tokio::sync::mpsc;

use super::address_book::AddressBook;
use super::address_book::MAX_ADDR_PER_MESSAGE;
use super::handshake::PROTOCOL_VERSION;
use super::metrics::P2pMetrics;
use super::peer::{Direction, Peer, PeerError};
use super::presync::Presync;
use crate::blocks::BlockPath;
use crate::chain::branch::Refusal;
use crate::chain::embedded::EmbeddedChain;
use crate::chain::embedded::MAX_HEADERS;
use crate::chain::BlockVerdict;

mod below_min_work;

/// Blocks we may have asked one peer for and not yet received.
const MAX_IN_FLIGHT: usize = 4_000;
/// Most hashes a `getheaders` locator may carry (Bitcoin's limit).
const MAX_LOCATOR: usize = 101;
/// Commands we do not speak that a peer may send before it counts as a flood.
const MAX_UNKNOWN: u32 = 100;
/// At most one `getheaders` per this long when headers do not connect (no ping-pong loops).
const RESYNC_EVERY: Duration = Duration::from_millis(500);
/// `headers` messages we did not ask for (no `getheaders` of ours unanswered) a peer may send
/// on one connection: ours relay by `inv`, so a stream of them is a peer that would have us
/// judge a chain it made up.
const MAX_UNSOLICITED_HEADERS: u32 = 8;
/// Blocks nobody asked for whose parent is unknown a peer may send on one connection (each
/// waits in the bounded orphan pool and costs a `getheaders`).
const MAX_UNREQUESTED_ORPHANS: u32 = 64;

/// What a conversation needs of the node it belongs to. The node implements it, and this file
/// knows nothing else of the node, so the two depend one way only.
pub trait Ground: Send + Sync + 'static {
    fn chain(&self) -> &EmbeddedChain;
    fn blocks(&self) -> &BlockPath;
    fn metrics(&self) -> &P2pMetrics;
    fn book(&self) -> &parking_lot::Mutex<AddressBook>;
    /// How often the node pings its peers.
    fn ping_every(&self) -> Duration;
}

/// The node's side of the conversation with one peer.
pub struct Conversation {
    node: Arc<dyn Ground>,
    peer: Arc<Peer>,
    /// Blocks asked of this peer, when, and whether a header chain with the work to lead
    /// vouched for them: a request unanswered for [`Self::patience`] is forgotten, so the
    /// block is asked for again (of this peer or another).
    in_flight: HashMap<BlockHash, (Instant, bool)>,
    patience: Duration,
    /// The last header of a full `headers` batch: when its block is in, ask for more.
    sync_until: Option<BlockHash>,
    answered_getaddr: bool,
    last_getheaders: Option<Instant>,
    unknown: u32,
    /// Our `getheaders` not answered yet, and `headers` that came without one.
    headers_asked: u32,
    unsolicited_headers: u32,
    /// Blocks nobody asked for that connected to nothing.
    unrequested_orphans: u32,
    /// While our chain is below the minimum work: the peer's header chain, followed (or
    /// proven) without being kept.
    presync: Option<Presync>,
}

impl Conversation {
    pub fn new(node: Arc<dyn Ground>, peer: Arc<Peer>) -> Conversation {
        // Three ping intervals: a live peer answers well within them.
        let patience = node.ping_every() * 3;
        Conversation {
            node,
            peer,
            in_flight: HashMap::new(),
            patience,
            sync_until: None,
            answered_getaddr: false,
            last_getheaders: None,
            unknown: 0,
            headers_asked: 0,
            unsolicited_headers: 0,
            unrequested_orphans: 0,
            presync: None,
        }
    }

    /// Talk until the peer's messages end (its connection closed) or it misbehaves.
    pub async fn serve(
        mut self,
        mut inbox: mpsc::Receiver<NetworkMessage>,
    ) -> Result<(), PeerError> {
        // Catch up with it (and show it our branch, when it asks back).
        self.get_headers().await?;
        if self.peer.direction == Direction::Outbound {
            self.send(NetworkMessage::GetAddr).await?;
        }
        let mut tick = tokio::time::interval(self.patience);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                msg = inbox.recv() => match msg {
                    Some(msg) => self.handle(msg).await?,
                    None => return Ok(()),
                },
                _ = tick.tick() => self.expire().await?,
            }
        }
    }

    /// Whether `hash` was asked of this peer and may still come.
    fn awaited(&self, hash: &BlockHash) -> bool {
        self.in_flight
            .get(hash)
            .is_some_and(|(t, _)| t.elapsed() < self.patience)
    }

    /// Room for one more request: forget the expired ones first when full.
    fn room_to_ask(&mut self) -> bool {
        if self.in_flight.len() >= MAX_IN_FLIGHT {
            let patience = self.patience;
            self.in_flight.retain(|_, (t, _)| t.elapsed() < patience);
        }
        self.in_flight.len() < MAX_IN_FLIGHT
    }

    /// Add block `hash` to `want` unless it is known or already asked for; false when there is
    /// no room to ask for more (the caller stops there). `vouched`: a header chain with the
    /// work to lead goes through it.
    fn ask_for(&mut self, hash: BlockHash, vouched: bool, want: &mut Vec<Inventory>) -> bool {
        if self.node.chain().knows(&hash) {
            return true;
        }
        if self.awaited(&hash) {
            // Asked for after an inv, and now a header chain that can lead goes through it.
            if let Some(asked) = self.in_flight.get_mut(&hash) {
                asked.1 |= vouched;
            }
            return true;
        }
        if !self.room_to_ask() {
            return false;
        }
        self.in_flight.insert(hash, (Instant::now(), vouched));
        want.push(Inventory::Block(hash));
        true
    }

    /// Forget requests the peer left unanswered; when the last block of a headers batch was
    /// among them, ask for headers again so catching up goes on.
    async fn expire(&mut self) -> Result<(), PeerError> {
        let patience = self.patience;
        self.in_flight.retain(|_, (t, _)| t.elapsed() < patience);
        if let Some(last) = self.sync_until {
            if !self.awaited(&last) && !self.node.chain().knows(&last) {
                self.sync_until = None;
                self.get_headers().await?;
            }
        }
        Ok(())
    }

    async fn send(&self, msg: NetworkMessage) -> Result<(), PeerError> {
        self.peer.outbox.send_wait(msg).await
    }

    async fn get_headers(&mut self) -> Result<(), PeerError> {
        self.last_getheaders = Some(Instant::now());
        self.headers_asked += 1;
        let locator = self.node.chain().locator();
        self.send(NetworkMessage::GetHeaders(GetHeadersMessage::new(
            locator,
            BlockHash::all_zeros(),
        )))
        .await
    }

    /// Show the peer our locator again, at most once per [`RESYNC_EVERY`] (no ping-pong).
    async fn resync(&mut self) -> Result<(), PeerError> {
        if self
            .last_getheaders
            .is_none_or(|t| t.elapsed() >= RESYNC_EVERY)
        {
            self.get_headers().await?;
        }
        Ok(())
    }

    async fn handle(&mut self, msg: NetworkMessage) -> Result<(), PeerError> {
        match msg {
            NetworkMessage::Inv(items) => self.on_inv(items).await,
            NetworkMessage::GetData(items) => self.on_getdata(items).await,
            NetworkMessage::Block(block) => self.on_block(block).await,
            NetworkMessage::GetHeaders(m) => self.on_getheaders(m).await,
            NetworkMessage::Headers(headers) => self.on_headers(headers).await,
            NetworkMessage::NotFound(items) => {
                for i in items {
                    if let Inventory::Block(h) | Inventory::WitnessBlock(h) = i {
                        self.in_flight.remove(&h);
                    }
                }
                Ok(())
            }
            NetworkMessage::GetAddr => {
                if !self.answered_getaddr {
                    self.answered_getaddr = true;
                    let addrs = self.node.book().lock().for_gossip(MAX_ADDR_PER_MESSAGE);
                    let now = chrono::Utc::now().timestamp() as u32;
                    let list = addrs
                        .iter()
                        .map(|a| (now, Address::new(a, bitcoin::p2p::ServiceFlags::NETWORK)))
                        .collect();
                    self.send(NetworkMessage::Addr(list)).await?;
                }
                Ok(())
            }
            NetworkMessage::Addr(list) => {
                if list.len() > MAX_ADDR_PER_MESSAGE {
                    return Err(PeerError::Protocol(format!(
                        "addr with {} addresses (at most {MAX_ADDR_PER_MESSAGE})",
                        list.len()
                    )));
                }
                let addrs: Vec<_> = list
                    .iter()
                    .filter_map(|(_, a)| a.socket_addr().ok())
                    .collect();
                let learned = self
                    .node
                    .book()
                    .lock()
                    .learn(addrs, std::time::Instant::now());
                if learned > 0 {
                    tracing::debug!(peer = %self.peer.addr, learned, "addresses learned");
                }
                Ok(())
            }
            NetworkMessage::Version(_) => Err(PeerError::DuplicateVersion),
            NetworkMessage::Unknown { command, .. } => {
                self.unknown += 1;
                if self.unknown > MAX_UNKNOWN {
                    return Err(PeerError::Junk(command.to_string()));
                }
                Ok(())
            }
            // Spoken by Bitcoin nodes, harmless, and not needed here (no transaction relay).
            _ => Ok(()),
        }
    }

    async fn on_inv(&mut self, items: Vec<Inventory>) -> Result<(), PeerError> {
        if self.node.chain().below_min_work() {
            // No block is fetched on an announcement until a header chain with the minimum
            // work vouches for it: ask for headers (unless already following the peer's).
            if self.presync.is_none() {
                self.resync().await?;
            }
            return Ok(());
        }
        let mut want = Vec::new();
        for i in items {
            let (Inventory::Block(h) | Inventory::WitnessBlock(h)) = i else {
                continue;
            };
            *self.peer.last_block.lock() = Some(h);
            if let Some(s) = self.node.chain().standing(&h) {
                self.peer.saw_height(s.height);
                continue;
            }
            if !self.ask_for(h, false, &mut want) {
                break;
            }
        }
        if !want.is_empty() {
            self.send(NetworkMessage::GetData(want)).await?;
        }
        Ok(())
    }

    async fn on_getdata(&mut self, items: Vec<Inventory>) -> Result<(), PeerError> {
        let mut missing = Vec::new();
        for i in items {
            match i {
                Inventory::Block(h) | Inventory::WitnessBlock(h) => {
                    match self.node.chain().block(&h) {
                        Some(b) => {
                            self.send(NetworkMessage::Block(b)).await?;
                            // It asked for the block, so it will have it.
                            if let Some(s) = self.node.chain().standing(&h) {
                                self.peer.saw_height(s.height);
                            }
                        }
                        None => missing.push(i),
                    }
                }
                other => missing.push(other),
            }
        }
        if !missing.is_empty() {
            self.send(NetworkMessage::NotFound(missing)).await?;
        }
        Ok(())
    }

    async fn on_block(&mut self, block: Block) -> Result<(), PeerError> {
        let hash = block.block_hash();
        let asked = self.in_flight.remove(&hash).map(|(_, vouched)| vouched);
        *self.peer.last_block.lock() = Some(hash);
        let vouched = asked == Some(true);
        let Some(outcome) = self.node.blocks().from_peer(&block, vouched).await else {
            return Ok(());
        };
        match &outcome.verdict {
            BlockVerdict::Rejected(reason) if reason == "time-too-new" => {
                // Perhaps only its clock is ahead: not held against it.
                tracing::info!(peer = %self.peer.addr, block = %hash, "block from the future ignored");
            }
            BlockVerdict::Rejected(reason)
                if reason == Refusal::LowWork.reason()
                    || reason == Refusal::BelowMinWork.reason() =>
            {
                self.node
                    .metrics()
                    .refused_blocks
                    .with_label_values(&[reason])
                    .inc();
                if asked.is_none() {
                    // Nobody asked for it, and it cannot lead: a peer that would fill our
                    // disk with cheap side blocks.
                    return Err(PeerError::UnrequestedLowWork { hash });
                }
                // Asked for after its inv: a peer on a weaker branch, which merely lags.
                tracing::debug!(peer = %self.peer.addr, block = %hash, "a block on a branch that cannot lead: not stored");
            }
            BlockVerdict::Rejected(reason)
                if reason == Refusal::Crowded.reason() || reason == Refusal::SideFull.reason() =>
            {
                // A near tie past the siblings one height may hold, or a side block past the
                // room side branches have: not stored, not held against the peer (it had the
                // work, which a flood of them would cost it).
                self.node
                    .metrics()
                    .refused_blocks
                    .with_label_values(&[reason])
                    .inc();
                tracing::info!(peer = %self.peer.addr, block = %hash, reason = %reason, "a side block with no room left: not stored");
            }
            BlockVerdict::Rejected(reason) if reason == "fork-too-deep" => {
                self.node
                    .metrics()
                    .refused_blocks
                    .with_label_values(&[reason])
                    .inc();
                tracing::warn!(
                    peer = %self.peer.addr,
                    block = %hash,
                    max_depth = self.node.chain().max_fork_depth(),
                    "a peer's branch leaves our best chain deeper than a reorganisation may reach: refused"
                );
                return Err(PeerError::DeepFork { hash });
            }
            BlockVerdict::Rejected(reason) => {
                return Err(PeerError::InvalidBlock {
                    hash,
                    reason: reason.clone(),
                });
            }
            _ => {}
        }
        if outcome.missing_parent.is_some() && asked.is_none() {
            self.unrequested_orphans += 1;
            if self.unrequested_orphans > MAX_UNREQUESTED_ORPHANS {
                return Err(PeerError::Protocol(format!(
                    "more than {MAX_UNREQUESTED_ORPHANS} blocks nobody asked for that connect to nothing"
                )));
            }
        }
        if outcome.missing_parent.is_some() {
            // Its parent is unknown: find our fork point with this peer (one getheaders per
            // block it sent, so it cannot make us send more than it does).
            self.get_headers().await?;
        }
        for s in &outcome.stored {
            self.peer.saw_height(s.height);
        }
        if !outcome.stored.is_empty() {
            let age = chrono::Utc::now().timestamp() as f64 - block.header.time as f64;
            // Only fresh blocks say how fast blocks travel (not those fetched to catch up).
            if outcome.tip_changed && (0.0..600.0).contains(&age) {
                self.node.metrics().block_propagation.observe(age);
            }
            let (orphans, _) = self.node.chain().orphans();
            self.node.metrics().orphan_blocks.set(orphans as i64);
        }
        if self
            .sync_until
            .is_some_and(|h| self.node.chain().standing(&h).is_some())
        {
            self.sync_until = None;
            self.get_headers().await?;
        }
        Ok(())
    }

    async fn on_getheaders(&mut self, m: GetHeadersMessage) -> Result<(), PeerError> {
        if m.locator_hashes.len() > MAX_LOCATOR {
            return Err(PeerError::Protocol(format!(
                "getheaders with {} locator hashes (at most {MAX_LOCATOR})",
                m.locator_hashes.len()
            )));
        }
        let headers = self
            .node
            .chain()
            .headers_after(&m.locator_hashes, m.stop_hash);
        self.send(NetworkMessage::Headers(headers)).await
    }

    async fn on_headers(&mut self, headers: Vec<Header>) -> Result<(), PeerError> {
        if self.headers_asked == 0 {
            self.unsolicited_headers += 1;
            if self.unsolicited_headers > MAX_UNSOLICITED_HEADERS {
                return Err(PeerError::Protocol(format!(
                    "more than {MAX_UNSOLICITED_HEADERS} headers messages nobody asked for"
                )));
            }
        }
        self.headers_asked = self.headers_asked.saturating_sub(1);
        if headers.len() > MAX_HEADERS {
            return Err(PeerError::Protocol(format!(
                "headers with {} headers (at most {MAX_HEADERS})",
                headers.len()
            )));
        }
        let Some(first) = headers.first() else {
            return Ok(());
        };
        if self.node.chain().below_min_work() {
            return self.headers_below_min_work(headers).await;
        }
        self.presync = None;
        if !self.node.chain().knows(&first.prev_blockhash) {
            // They do not connect to anything we have: show the peer our locator again.
            self.resync().await?;
            return Ok(());
        }
        // Work first: a header chain that cannot lead is not fetched (and not kept: a peer
        // that lags, or one that would have us store a cheap branch, costs us nothing).
        let vouched = match self.node.chain().headers_could_lead(&headers) {
            Some(Ok(true)) => true,
            Some(Ok(false)) => {
                self.node
                    .metrics()
                    .refused_blocks
                    .with_label_values(&["low-work-headers"])
                    .inc();
                tracing::debug!(peer = %self.peer.addr, headers = headers.len(), "headers of a branch that cannot lead: not fetched");
                return Ok(());
            }
            Some(Err(reason)) => {
                return Err(PeerError::InvalidBlock {
                    hash: first.block_hash(),
                    reason: reason.to_owned(),
                })
            }
            None => return Ok(()),
        };
        // Their proof of work was checked with their work, above.
        let mut want = Vec::new();
        let (prev, _) = self.ask_for_chain(&headers, vouched, &mut want)?;
        if let Some(height) = self
            .node
            .chain()
            .standing(&first.prev_blockhash)
            .map(|s| s.height)
        {
            self.peer.saw_height(height + headers.len() as u64);
        }
        if headers.len() == MAX_HEADERS {
            self.sync_until = Some(prev);
        }
        if !want.is_empty() {
            self.send(NetworkMessage::GetData(want)).await?;
        } else if headers.len() == MAX_HEADERS {
            // All known already: ask for what comes after them.
            self.sync_until = None;
            self.get_headers_after(prev).await?;
        }
        Ok(())
    }

    /// Ask for the headers after `last` (one we were sent, perhaps not stored).
    async fn get_headers_after(&mut self, last: BlockHash) -> Result<(), PeerError> {
        self.last_getheaders = Some(Instant::now());
        self.headers_asked += 1;
        self.send(NetworkMessage::GetHeaders(GetHeadersMessage {
            version: PROTOCOL_VERSION,
            locator_hashes: vec![last],
            stop_hash: BlockHash::all_zeros(),
        }))
        .await
    }

    /// Add the blocks of `headers` we lack to `want`, checking that they form a chain; the
    /// last header and the last block asked for (asking stops when no more may be in flight).
    fn ask_for_chain(
        &mut self,
        headers: &[Header],
        vouched: bool,
        want: &mut Vec<Inventory>,
    ) -> Result<(BlockHash, Option<BlockHash>), PeerError> {
        let mut prev = headers[0].prev_blockhash;
        let mut last_asked = None;
        for h in headers {
            let hash = h.block_hash();
            if h.prev_blockhash != prev {
                return Err(PeerError::Protocol(
                    "headers that do not form a chain".to_owned(),
                ));
            }
            prev = hash;
            if !self.ask_for(hash, vouched, want) {
                break;
            }
            last_asked = Some(hash);
        }
        Ok((prev, last_asked))
    }
}
