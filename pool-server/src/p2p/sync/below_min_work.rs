//! A node below the network's minimum chain work (see `chain::min_work`): a peer's headers
//! are followed by [`crate::p2p::presync`] without being kept until they reach the minimum,
//! then fetched as far as they match what the peer showed.

use bitcoin::block::Header;
use bitcoin::p2p::message::NetworkMessage;

use super::Conversation;
use crate::chain::branch::Refusal;
use crate::chain::embedded::MAX_HEADERS;
use crate::p2p::peer::PeerError;
use crate::p2p::presync::{Presync, PresyncError, Step};

impl Conversation {
    /// Headers while our chain is below the minimum work (see [`crate::p2p::presync`]): followed
    /// without being kept until they reach it, then fetched as far as they match.
    pub(super) async fn headers_below_min_work(
        &mut self,
        headers: Vec<Header>,
    ) -> Result<(), PeerError> {
        let first = headers[0];
        if let Err(reason) = self.node.chain().check_headers_pow(&headers) {
            return Err(PeerError::InvalidBlock {
                hash: first.block_hash(),
                reason: reason.to_owned(),
            });
        }
        let full = headers.len() == MAX_HEADERS;
        let following = self
            .presync
            .as_ref()
            .is_some_and(|p| p.proven().is_none() && p.last() == first.prev_blockhash);
        if following {
            let p = self.presync.as_mut().expect("following");
            let step = p.feed(&headers, full);
            return self.presync_step(step).await;
        }
        let Some((height, work)) = self.node.chain().position(&first.prev_blockhash) else {
            // Neither on our chain nor on the one we follow: show the peer our locator again.
            if self.presync.is_none() {
                self.resync().await?;
            }
            return Ok(());
        };
        if let Some(p) = self.presync.as_ref().filter(|p| p.proven().is_some()) {
            let fetch = p
                .verify(height + 1, &headers)
                .map_err(|e| PeerError::Protocol(e.to_string()))?;
            if fetch == 0 {
                // Its chain now ends below what it showed (it may have reorganised): prove
                // it again from the start.
                self.presync = None;
                return Ok(());
            }
            return self.fetch_vouched(&headers[..fetch]).await;
        }
        let min_work = self.node.chain().min_chain_work();
        let mut p = Presync::begin(first.prev_blockhash, height, work, min_work);
        let step = p.feed(&headers, full);
        self.presync = Some(p);
        self.presync_step(step).await
    }

    async fn presync_step(&mut self, step: Result<Step, PresyncError>) -> Result<(), PeerError> {
        match step {
            Ok(Step::More(last)) => self.get_headers_after(last).await,
            Ok(Step::Proven) => {
                let (height, hash) = self
                    .presync
                    .as_ref()
                    .and_then(Presync::proven)
                    .expect("proven");
                tracing::info!(peer = %self.peer.addr, height, header = %hash, "a header chain with the minimum chain work: fetching its blocks");
                self.get_headers().await
            }
            Ok(Step::Ends) => {
                self.presync = None;
                self.node
                    .metrics()
                    .refused_blocks
                    .with_label_values(&[Refusal::BelowMinWork.reason()])
                    .inc();
                tracing::debug!(peer = %self.peer.addr, "a header chain that ends below the minimum chain work: nothing fetched");
                Ok(())
            }
            Err(e) => {
                self.presync = None;
                Err(PeerError::Protocol(e.to_string()))
            }
        }
    }

    /// Ask for the blocks of `headers` (a chain on a block we have, vouched for by the
    /// minimum-work proof), and for the next headers once the last of them is in.
    async fn fetch_vouched(&mut self, headers: &[Header]) -> Result<(), PeerError> {
        let mut want = Vec::new();
        let (last, last_asked) = self.ask_for_chain(headers, true, &mut want)?;
        self.sync_until = last_asked;
        if !want.is_empty() {
            self.send(NetworkMessage::GetData(want)).await?;
        } else if last_asked.is_some() {
            // All known already: ask for what comes after them.
            self.sync_until = None;
            self.get_headers_after(last).await?;
        }
        Ok(())
    }
}
