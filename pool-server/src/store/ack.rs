//! Durable answers (`--durable-acks`): a session answers `true` to a share only once the store
//! holds it (committed to the database, or appended to the spool), so that killing the
//! process (`kill -9`, an OOM kill) loses no share a miner was told was accepted.
//!
//! Why a counter per session rather than a promise per share: a session's shares go through
//! the one queue in order and batches are stored in order, so "stored up to my n-th share" is
//! one number. The store raises it as batches land and wakes the session; the session sends
//! the answers it held back up to that number. Only the answer waits (up to `--store-flush`);
//! the session keeps reading and judging meanwhile.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// One session's stored-up-to counter.
#[derive(Debug, Default)]
pub struct AckBox {
    stored: AtomicU64,
    wake: Notify,
}

impl AckBox {
    /// The session's shares numbered up to this one are stored.
    pub fn stored(&self) -> u64 {
        self.stored.load(Ordering::Acquire)
    }

    /// Resolves after the counter moves (or at once, if it moved since the last wait).
    pub async fn moved(&self) {
        self.wake.notified().await
    }
}

/// "Tell `to` once this, its `seq`-th share, is stored."
#[derive(Debug, Clone)]
pub struct Ack {
    pub to: Arc<AckBox>,
    pub seq: u64,
}

/// The acks of one batch, told when the batch is stored.
#[derive(Debug, Clone, Default)]
pub struct Acks(Vec<Ack>);

impl PartialEq for Acks {
    /// Acks are not part of what a batch holds: two batches of the same rows are equal.
    fn eq(&self, _: &Acks) -> bool {
        true
    }
}

impl Acks {
    pub fn push(&mut self, ack: Ack) {
        self.0.push(ack);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The batch is stored: raise each session's counter and wake it.
    pub fn tell(&mut self) {
        for a in self.0.drain(..) {
            a.to.stored.fetch_max(a.seq, Ordering::AcqRel);
            a.to.wake.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_session_hears_how_far_its_shares_are_stored() {
        let to = Arc::new(AckBox::default());
        let mut acks = Acks::default();
        for seq in [1, 2, 3] {
            acks.push(Ack {
                to: to.clone(),
                seq,
            });
        }
        acks.tell();
        to.moved().await;
        assert_eq!(to.stored(), 3);
        let mut late = Acks::default();
        late.push(Ack {
            to: to.clone(),
            seq: 2,
        });
        late.tell();
        assert_eq!(to.stored(), 3, "never goes back");
    }
}
