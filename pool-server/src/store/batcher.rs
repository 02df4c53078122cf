//! The batcher: drains the queue sessions write to, cuts it into batches, and hands each one
//! to the [`writer`](super::writer) or, when the writer is behind, to the spool.
//!
//! It never waits for the database. Sessions block on a full queue only if this task cannot
//! keep up, and all it does is batch and, at worst, append to a file: so a slow, locked or
//! absent database never delays an answer to a miner. Once anything is spooled, later batches
//! are spooled behind it until the writer has replayed the spool, which keeps the order.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use super::ack::Acks;
use super::batch::{events_in, Batch};
use super::metrics::StoreMetrics;
use super::spool::Spool;
use super::{Queued, StoreEvent};

/// The spool, shared by the batcher (appends) and the writer (replays, appends what fails).
pub type SharedSpool = Arc<parking_lot::Mutex<Spool>>;

/// Run blocking file I/O without stalling other tasks on a multi-threaded runtime.
pub(super) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Append `batches` to the spool (their sessions are told: the spool holds them); what it
/// cannot keep is counted as lost, loudly.
pub(super) fn spool_batches(spool: &SharedSpool, batches: &mut [Batch], metrics: &StoreMetrics) {
    blocking(|| {
        let mut spool = spool.lock();
        match spool.append(batches) {
            Ok(()) => {
                metrics.spool_depth.set(spool.depth() as i64);
                batches.iter_mut().for_each(|b| b.acks.tell());
            }
            Err(e) => {
                let events = events_in(batches);
                metrics.store_events_lost.inc_by(events as u64);
                tracing::error!(error = %e, events, "spool write failed; events lost");
            }
        }
    });
}

pub struct Batcher {
    pub rx: mpsc::Receiver<Queued>,
    pub writer: mpsc::Sender<Batch>,
    pub spool: SharedSpool,
    /// Wakes the writer when something was spooled.
    pub spooled: Arc<Notify>,
    pub batch: usize,
    pub flush: Duration,
    pub metrics: StoreMetrics,
}

impl Batcher {
    /// Batch until the queue closes or `stop` fires, then hand over what is left and return
    /// (dropping the writer's channel, which lets the writer finish).
    pub async fn run(mut self, stop: CancellationToken) {
        let mut buf: Vec<Queued> = Vec::with_capacity(self.batch);
        loop {
            let deadline = tokio::time::sleep(self.flush);
            tokio::pin!(deadline);
            // Fill a batch until it is full or the flush interval passes.
            loop {
                let room = self.batch - buf.len();
                tokio::select! {
                    biased;
                    n = self.rx.recv_many(&mut buf, room) => {
                        if n == 0 {
                            self.dispatch(std::mem::take(&mut buf));
                            return;
                        }
                        if buf.len() >= self.batch { break; }
                    }
                    _ = &mut deadline => break,
                    _ = stop.cancelled() => {
                        // Sessions are gone: take whatever is still queued and finish.
                        while let Ok(e) = self.rx.try_recv() {
                            buf.push(e);
                            if buf.len() >= self.batch {
                                self.dispatch(std::mem::take(&mut buf));
                            }
                        }
                        self.dispatch(std::mem::take(&mut buf));
                        return;
                    }
                }
            }
            self.metrics.store_queue.set(self.rx.len() as i64);
            self.dispatch(std::mem::take(&mut buf));
        }
    }

    /// As a batch with an id of its own, to the writer if it has room and nothing waits in
    /// the spool, else to the spool.
    fn dispatch(&mut self, queued: Vec<Queued>) {
        if queued.is_empty() {
            return;
        }
        let mut events: Vec<StoreEvent> = Vec::with_capacity(queued.len());
        let mut acks = Acks::default();
        for q in queued {
            events.push(q.event);
            if let Some(a) = q.ack {
                acks.push(a);
            }
        }
        let mut batch = Batch::new(events);
        batch.acks = acks;
        let mut batch = if self.spool.lock().pending() == 0 {
            match self.writer.try_send(batch) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(b) | mpsc::error::TrySendError::Closed(b)) => b,
            }
        } else {
            batch
        };
        spool_batches(&self.spool, std::slice::from_mut(&mut batch), &self.metrics);
        self.spooled.notify_one();
    }
}
