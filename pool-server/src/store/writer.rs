//! The writer: the one task that talks to the database for writes. It writes the batches the
//! [`batcher`](super::batcher) hands it, spools those the database fails or times out on, and
//! replays the spool in bounded chunks whenever the database answers.
//!
//! Writes are idempotent (each [`Batch`] carries an id the database records with its rows,
//! and a batch already recorded adds nothing), so a batch that timed out yet committed, or a
//! chunk replayed twice after a crash, never counts a share twice.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Notify};

use super::batch::{events_in, Batch};
use super::batcher::{blocking, spool_batches, SharedSpool};
use super::metrics::StoreMetrics;
use super::Backend;

/// How long one database write may take before the batch goes to the spool.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Rows per write while the writer is behind (replaying the spool, or two batches waiting).
const CATCH_UP_ROWS: usize = 20_000;
/// How often to try the database again while it is failing.
const RETRY_EVERY: Duration = Duration::from_secs(1);

pub struct Writer {
    pub backend: Backend,
    pub spool: SharedSpool,
    pub rx: mpsc::Receiver<Batch>,
    /// Notified by the batcher when it spooled a batch.
    pub spooled: Arc<Notify>,
    pub batch: usize,
    pub metrics: StoreMetrics,
    /// Whether the schema is known to be migrated; until then (a pool started while its
    /// database was away) every batch is spooled and the replay migrates first.
    pub migrated: bool,
    /// The last write or replay failed: try again on the retry tick, not on every batch.
    pub failing: bool,
}

impl Writer {
    /// Run the writer on a thread of its own, with a single-threaded runtime, and return a
    /// handle that ends when it does (with an error if it panicked).
    ///
    /// For SQLite: sqlx's SQLite connection is a worker thread that answers each statement
    /// through a channel, so a batch of 20,000 rows is some 80 round trips, and on the pool's
    /// runtime each one waited for the writer task to come up again behind thousands of
    /// session tasks. Under 58k shares/s that made a 20,000-row write take 0.5-1 s (17k rows/s,
    /// the rest spooled) while the writer alone does 118k rows/s. On its own thread the task
    /// is polled the moment its answer arrives.
    pub fn spawn_on_own_thread(self) -> tokio::task::JoinHandle<()> {
        let (done, ended) = tokio::sync::oneshot::channel::<()>();
        let spawned = std::thread::Builder::new()
            .name("share-writer".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime for the share writer");
                rt.block_on(self.run());
                let _ = done.send(());
            });
        if let Err(e) = spawned {
            // No thread to be had: the handle reports it as the writer's failure.
            return tokio::spawn(
                async move { panic!("cannot start the share writer thread: {e}") },
            );
        }
        tokio::spawn(async move {
            if ended.await.is_err() {
                panic!("the share writer thread panicked");
            }
        })
    }

    /// Rows per write while catching up: larger writes cost less per row (SQLite touches each
    /// worker's index page once per write, not once per share).
    fn catch_up_rows(&self) -> usize {
        self.batch.max(CATCH_UP_ROWS)
    }

    fn pending(&self) -> u64 {
        self.spool.lock().pending()
    }

    /// Write until the batcher is gone, then replay what the spool holds and return.
    pub async fn run(mut self) {
        let mut retry = tokio::time::interval(RETRY_EVERY);
        retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let pending = self.pending() > 0;
            tokio::select! {
                biased;
                batch = self.rx.recv() => match batch {
                    Some(batch) => {
                        // Behind: take the batches waiting behind this one too.
                        let mut events = batch.events.len();
                        let mut batches = vec![batch];
                        while events < self.catch_up_rows() {
                            match self.rx.try_recv() {
                                Ok(more) => {
                                    events += more.events.len();
                                    batches.push(more);
                                }
                                Err(_) => break,
                            }
                        }
                        self.write(batches).await
                    }
                    None => {
                        self.replay().await;
                        return;
                    }
                },
                _ = self.spooled.notified(), if pending && !self.failing => self.replay().await,
                _ = retry.tick(), if pending || self.failing => self.replay().await,
            }
        }
    }

    /// Whether the database answers with its schema migrated (migrating it if need be).
    async fn reconnect(&mut self) -> bool {
        if self.backend.ping().await.is_err() {
            self.down();
            return false;
        }
        if !self.migrated {
            if let Err(e) = self.backend.migrate().await {
                tracing::warn!(error = %e, "the database answers but cannot be migrated yet");
                return false;
            }
            tracing::info!("share database reachable: schema migrated");
            self.migrated = true;
        }
        if self.pending() == 0 {
            self.up();
        }
        true
    }

    fn up(&mut self) {
        self.failing = false;
        self.metrics.store_up.set(1);
    }

    /// Write batches to the database, or to the spool when the database fails, is not yet
    /// migrated, or something is already spooled (to keep order).
    async fn write(&mut self, mut batches: Vec<Batch>) {
        let events = events_in(&batches);
        if self.pending() == 0 && self.migrated && !self.failing {
            let started = Instant::now();
            match tokio::time::timeout(WRITE_TIMEOUT, self.backend.write(&batches)).await {
                Ok(Ok(())) => {
                    self.metrics
                        .store_batch_seconds
                        .observe(started.elapsed().as_secs_f64());
                    self.metrics.store_written.inc_by(events as u64);
                    self.metrics.store_up.set(1);
                    batches.iter_mut().for_each(|b| b.acks.tell());
                    return;
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, events, "database write failed; spooling")
                }
                Err(_) => {
                    tracing::warn!(events, "database write timed out; spooling")
                }
            }
            self.down();
        }
        spool_batches(&self.spool, &mut batches, &self.metrics);
    }

    fn down(&mut self) {
        self.failing = true;
        self.metrics.store_up.set(0);
        self.metrics.store_errors.inc();
    }

    /// Try every event of `batches` on its own (in a transaction rolled back), set aside
    /// those the database refuses twice while it answers pings, and write the rest, each
    /// batch under its own id still. `false` when the database went away meanwhile.
    async fn write_around_refused(&mut self, batches: &mut [Batch]) -> bool {
        for batch in batches.iter_mut() {
            let mut kept = Vec::with_capacity(batch.events.len());
            for event in std::mem::take(&mut batch.events) {
                match self.probe(&event).await {
                    None => return false,
                    Some(true) => kept.push(event),
                    Some(false) => {}
                }
            }
            batch.events = kept;
        }
        matches!(
            tokio::time::timeout(WRITE_TIMEOUT, self.backend.write(batches)).await,
            Ok(Ok(()))
        )
    }

    /// Whether the database takes `event` (quarantining it when it refuses it twice while it
    /// answers pings); `None` when the database went away.
    async fn probe(&mut self, event: &super::StoreEvent) -> Option<bool> {
        {
            let mut refused = None;
            for _ in 0..2 {
                match tokio::time::timeout(WRITE_TIMEOUT, self.backend.probe(event)).await {
                    Ok(Ok(())) => {
                        refused = None;
                        break;
                    }
                    Ok(Err(e)) => refused = Some(e.to_string()),
                    Err(_) => return None,
                }
                if self.backend.ping().await.is_err() {
                    return None;
                }
            }
            if let Some(why) = refused {
                let spool = &self.spool;
                if let Err(e) = blocking(|| spool.lock().quarantine(event, &why)) {
                    tracing::error!(error = %e, "cannot quarantine a refused row");
                    return None;
                }
                self.metrics.store_quarantined.inc();
                tracing::error!(
                    error = %why,
                    file = %self.spool.lock().quarantine_path().display(),
                    "the database refuses a share row; set aside"
                );
                return Some(false);
            }
        }
        Some(true)
    }

    /// Move the spool into the database, chunk by chunk, while it answers (also how a failing
    /// database is retried). Batches spooled
    /// meanwhile are replayed too; the file is cut once the replay has reached its end and
    /// the database's copy is durable.
    pub async fn replay(&mut self) {
        if !self.reconnect().await || self.pending() == 0 {
            return;
        }
        let mut total = 0u64;
        loop {
            let (spool, rows) = (self.spool.clone(), self.catch_up_rows());
            let chunk = match blocking(|| spool.lock().read_pending(rows)) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the spool");
                    return;
                }
            };
            if chunk.lines == 0 {
                // Caught up. The spool is the only other copy: cut it only once the
                // database's copy is durable, and only if nothing was spooled meanwhile.
                if let Err(e) = self.backend.make_durable().await {
                    tracing::warn!(error = %e, "replayed, but not yet durable; keeping the spool");
                    return;
                }
                match blocking(|| spool.lock().clear_if_replayed()) {
                    Ok(true) => break,
                    Ok(false) => continue,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot truncate the spool after replay");
                        return;
                    }
                }
            }
            let mut chunk = chunk;
            let events = chunk.events;
            match tokio::time::timeout(WRITE_TIMEOUT, self.backend.write(&chunk.batches)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    // Down again, or one row it will never take (found by trying each row in
                    // a transaction that is rolled back).
                    if self.backend.ping().await.is_err()
                        || !self.write_around_refused(&mut chunk.batches).await
                    {
                        tracing::warn!(error = %e, "spool replay interrupted; will retry");
                        self.down();
                        return;
                    }
                }
                Err(_) => {
                    tracing::warn!("spool replay timed out; will retry");
                    self.down();
                    return;
                }
            }
            total += events;
            self.metrics.store_written.inc_by(events);
            self.spool.lock().replayed(&chunk);
        }
        self.up();
        self.metrics.spool_depth.set(0);
        tracing::info!(events = total, "spool replayed into the database");
    }
}
