//! The share writer: batches events off the hot path, spools them while the database is away,
//! and replays the spool when it returns.
//!
//! Order of writes is kept: once anything is spooled, later batches are spooled behind it
//! until a replay has moved the whole spool into the database.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::spool::Spool;
use super::{Backend, StoreEvent};
use crate::metrics::Metrics;

/// How long one database write may take before the batch goes to the spool.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often to try the database again while spooling.
const RETRY_EVERY: Duration = Duration::from_secs(1);

pub struct Batcher {
    backend: Backend,
    spool: Spool,
    rx: mpsc::Receiver<StoreEvent>,
    batch: usize,
    flush: Duration,
    metrics: Arc<Metrics>,
    /// Whether the schema is known to be migrated; until then (a pool started while its
    /// database was away) every batch is spooled and the replay migrates first.
    migrated: bool,
}

/// Run blocking file I/O without stalling other tasks on a multi-threaded runtime.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

impl Batcher {
    pub fn new(
        backend: Backend,
        spool: Spool,
        rx: mpsc::Receiver<StoreEvent>,
        batch: usize,
        flush: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        metrics.spool_depth.set(spool.depth() as i64);
        Batcher {
            backend,
            spool,
            rx,
            batch,
            flush,
            metrics,
            migrated: false,
        }
    }

    /// The schema is migrated (the store did it at start).
    pub fn migrated(&mut self) {
        self.migrated = true;
    }

    pub fn spool_depth(&self) -> u64 {
        self.spool.depth()
    }

    pub async fn run(mut self, stop: CancellationToken) {
        let mut buf: Vec<StoreEvent> = Vec::with_capacity(self.batch);
        let mut retry = tokio::time::interval(RETRY_EVERY);
        retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
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
                            self.write(std::mem::take(&mut buf)).await;
                            return;
                        }
                        if buf.len() >= self.batch { break; }
                    }
                    _ = &mut deadline => break,
                    _ = stop.cancelled() => {
                        // Sessions are gone: take whatever is still queued and finish.
                        while let Ok(e) = self.rx.try_recv() {
                            buf.push(e);
                        }
                        self.write(std::mem::take(&mut buf)).await;
                        self.replay().await;
                        return;
                    }
                    _ = retry.tick(), if self.spool.depth() > 0 => self.replay().await,
                }
            }
            self.metrics.store_queue.set(self.rx.len() as i64);
            if !buf.is_empty() {
                self.write(std::mem::take(&mut buf)).await;
            }
        }
    }

    /// Write a batch to the database, or to the spool when the database fails or something
    /// is already spooled (to keep order).
    async fn write(&mut self, events: Vec<StoreEvent>) {
        if events.is_empty() {
            return;
        }
        if self.spool.depth() == 0 && self.migrated {
            let started = Instant::now();
            match tokio::time::timeout(WRITE_TIMEOUT, self.backend.write(&events)).await {
                Ok(Ok(())) => {
                    self.metrics
                        .store_batch_seconds
                        .observe(started.elapsed().as_secs_f64());
                    self.metrics.store_written.inc_by(events.len() as u64);
                    self.metrics.store_up.set(1);
                    return;
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, events = events.len(), "database write failed; spooling")
                }
                Err(_) => {
                    tracing::warn!(events = events.len(), "database write timed out; spooling")
                }
            }
            self.metrics.store_up.set(0);
            self.metrics.store_errors.inc();
        }
        let spool = &mut self.spool;
        match blocking(|| spool.append(&events)) {
            Ok(()) => self.metrics.spool_depth.set(self.spool.depth() as i64),
            Err(e) => {
                // Nothing else can keep these: say so loudly, count them, alert on it.
                self.metrics.store_events_lost.inc_by(events.len() as u64);
                tracing::error!(error = %e, events = events.len(), "spool write failed; events lost");
            }
        }
    }

    /// Write `events` one at a time; a row the database refuses twice while it answers pings
    /// is quarantined. `false` when the database went away meanwhile.
    async fn write_one_by_one(&mut self, events: &[StoreEvent]) -> bool {
        for event in events {
            let one = std::slice::from_ref(event);
            let mut refused = None;
            for _ in 0..2 {
                match tokio::time::timeout(WRITE_TIMEOUT, self.backend.write(one)).await {
                    Ok(Ok(())) => {
                        refused = None;
                        break;
                    }
                    Ok(Err(e)) => refused = Some(e.to_string()),
                    Err(_) => return false,
                }
                if self.backend.ping().await.is_err() {
                    return false;
                }
            }
            if let Some(why) = refused {
                let spool = &self.spool;
                if let Err(e) = blocking(|| spool.quarantine(event, &why)) {
                    tracing::error!(error = %e, "cannot quarantine a refused row");
                    return false;
                }
                self.metrics.store_quarantined.inc();
                tracing::error!(
                    error = %why,
                    file = %self.spool.quarantine_path().display(),
                    "the database refuses a share row; set aside"
                );
            }
        }
        true
    }

    /// Move the spool into the database if it answers.
    pub async fn replay(&mut self) {
        if self.spool.depth() == 0 {
            return;
        }
        if self.backend.ping().await.is_err() {
            self.metrics.store_up.set(0);
            return;
        }
        if !self.migrated {
            if let Err(e) = self.backend.migrate().await {
                tracing::warn!(error = %e, "the database answers but cannot be migrated yet");
                return;
            }
            tracing::info!("share database reachable: schema migrated, replaying the spool");
            self.migrated = true;
        }
        let spool = &self.spool;
        let events = match blocking(|| spool.read_all()) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the spool");
                return;
            }
        };
        let total = events.len();
        for chunk in events.chunks(self.batch) {
            match tokio::time::timeout(WRITE_TIMEOUT, self.backend.write(chunk)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    // Down again, or one row it will never take (writes are idempotent, so
                    // the rows of the batch can go one by one to find it).
                    if self.backend.ping().await.is_err() || !self.write_one_by_one(chunk).await {
                        tracing::warn!(error = %e, "spool replay interrupted; will retry");
                        return;
                    }
                }
                Err(_) => {
                    tracing::warn!("spool replay timed out; will retry");
                    return;
                }
            }
        }
        // The spool is the only other copy: cut it only once the database's is durable.
        if let Err(e) = self.backend.make_durable().await {
            tracing::warn!(error = %e, "replayed, but not yet durable; keeping the spool");
            return;
        }
        let spool = &mut self.spool;
        if let Err(e) = blocking(|| spool.clear()) {
            tracing::error!(error = %e, "cannot truncate the spool after replay");
            return;
        }
        self.metrics.store_written.inc_by(total as u64);
        self.metrics.spool_depth.set(0);
        self.metrics.store_up.set(1);
        tracing::info!(events = total, "spool replayed into the database");
    }
}
