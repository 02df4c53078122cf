//! The share store: every share and block, kept in PostgreSQL or SQLite.
//!
//! Sessions never touch the database. They hand a [`StoreEvent`] to a [`StoreHandle`] (a
//! bounded channel); the [`batcher`] writes batches off the hot path and, while the database
//! is unreachable, appends them to an append-only [`spool`] file that is replayed when it
//! returns (and at start-up). Each [`Batch`] carries an id the database records with its
//! rows, and a batch already recorded adds nothing, so a replayed batch can never count a
//! share twice.

pub mod ack;
pub mod batch;
pub mod batcher;
mod commit;
pub mod compact;
pub mod leader;
pub mod metrics;
pub mod postgres;
pub mod retention;
pub mod rollup;
pub mod spool;
pub mod sqlite;
pub mod writer;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::with_pool;

pub use batch::Batch;

/// The job id a share record keeps: what the miner sent when it is an id this pool could have
/// issued (at most 16 printable ASCII characters), else nothing. Whatever a miner puts in a
/// job id (16 KB, a NUL byte PostgreSQL refuses, a newline) never reaches the database.
pub fn storable_job_id(sent: &str) -> String {
    const MAX: usize = 16;
    if sent.len() <= MAX && sent.bytes().all(|b| b.is_ascii_graphic()) {
        sent.to_owned()
    } else {
        String::new()
    }
}

/// One share as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct ShareRecord {
    pub id: Uuid,
    pub worker: String,
    pub session_id: i64,
    /// See [`storable_job_id`]; empty when the miner sent something no pool issues.
    pub job_id: String,
    pub height: i64,
    /// The difficulty the share was judged (and credited) at.
    pub assigned_difficulty: f64,
    /// The difficulty its hash achieved (0 when it was refused before hashing).
    pub achieved_difficulty: f64,
    pub accepted: bool,
    pub reason: Option<String>,
    pub block_hash: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// One found block as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockRecord {
    pub hash: String,
    pub height: i64,
    pub prev_hash: String,
    /// Which chain it belongs to (`embedded`, `node`).
    pub chain: String,
    pub worker: Option<String>,
    pub network_difficulty: f64,
    /// `accepted`, `duplicate`, `rejected` or `unknown`.
    pub status: String,
    pub detail: Option<String>,
    #[serde(with = "hex::serde")]
    pub raw: Vec<u8>,
    pub found_at: DateTime<Utc>,
    /// Under coinbase payouts: the plan its job paid (JSON), stored with the block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coinbase_plan: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StoreEvent {
    Share(ShareRecord),
    Block(BlockRecord),
}

/// A worker's totals as the API shows them.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct WorkerRow {
    pub name: String,
    pub account: String,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub accepted_shares: i64,
    pub rejected_shares: i64,
    pub accepted_difficulty: f64,
}

/// A block as the API shows it (without its raw bytes).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct BlockRow {
    pub hash: String,
    pub height: i64,
    pub prev_hash: String,
    pub chain: String,
    pub worker: Option<String>,
    pub network_difficulty: f64,
    pub status: String,
    pub detail: Option<String>,
    pub found_at: DateTime<Utc>,
}

/// Either database, behind one set of methods.
#[derive(Clone)]
pub enum Backend {
    Postgres(sqlx::PgPool),
    Sqlite(sqlx::SqlitePool),
}

impl Backend {
    /// Connect without retrying.
    pub async fn connect(url: &str) -> anyhow::Result<Backend> {
        if Backend::is_postgres(url) {
            Ok(Backend::Postgres(postgres::connect(url).await?))
        } else if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite(sqlite::connect(url).await?))
        } else {
            anyhow::bail!(
                "--database-url must start with postgres:// or sqlite: (got a URL of another kind)"
            )
        }
    }

    pub fn is_postgres(url: &str) -> bool {
        url.starts_with("postgres://") || url.starts_with("postgresql://")
    }

    /// A PostgreSQL pool that connects when first used (the database is away at start).
    pub fn connect_lazy(url: &str) -> anyhow::Result<Backend> {
        anyhow::ensure!(Backend::is_postgres(url), "only PostgreSQL connects lazily");
        Ok(Backend::Postgres(postgres::connect_lazy(url)?))
    }

    /// Connect, retrying for up to `patience` while the database comes up.
    pub async fn connect_patiently(url: &str, patience: Duration) -> anyhow::Result<Backend> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            match Backend::connect(url).await {
                Ok(b) => match b.ping().await {
                    Ok(()) => return Ok(b),
                    Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                    Err(e) => tracing::warn!(error = %e, "database not ready; retrying"),
                },
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(e) => tracing::warn!(error = %e, "database not reachable; retrying"),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Backend::Postgres(_) => "postgres",
            Backend::Sqlite(_) => "sqlite",
        }
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        match self {
            Backend::Postgres(p) => sqlx::migrate!("../migrations/postgres").run(p).await?,
            Backend::Sqlite(p) => sqlx::migrate!("../migrations/sqlite").run(p).await?,
        }
        Ok(())
    }

    /// Make every committed write durable before the caller forgets its own copy (the
    /// spool, after a replay). PostgreSQL's commits already are; SQLite in WAL with
    /// `synchronous=NORMAL` may lose its last commits at a power loss until a checkpoint
    /// has synced them into the database file.
    pub async fn make_durable(&self) -> anyhow::Result<()> {
        match self {
            Backend::Postgres(_) => Ok(()),
            Backend::Sqlite(p) => {
                let r = sqlx::query("PRAGMA wal_checkpoint(FULL)")
                    .fetch_one(p)
                    .await?;
                let busy: i64 = sqlx::Row::get(&r, 0);
                anyhow::ensure!(busy == 0, "the WAL checkpoint could not complete");
                Ok(())
            }
        }
    }

    pub async fn ping(&self) -> anyhow::Result<()> {
        match self {
            Backend::Postgres(p) => sqlx::query("SELECT 1").execute(p).await.map(|_| ())?,
            Backend::Sqlite(p) => sqlx::query("SELECT 1").execute(p).await.map(|_| ())?,
        }
        Ok(())
    }

    /// Write batches in one transaction; a batch stored before adds nothing.
    pub async fn write(&self, batches: &[Batch]) -> anyhow::Result<()> {
        commit::write(self, batches, true).await
    }

    /// Whether the database would take `event`: written in a transaction that is rolled back.
    pub async fn probe(&self, event: &StoreEvent) -> anyhow::Result<()> {
        let one = [Batch::new(vec![event.clone()])];
        commit::write(self, &one, false).await
    }

    /// Up to `limit` rows of `sql`, a query of one text parameter (`$1`) and a limit (`$2`).
    pub async fn rows_by_key<T>(
        &self,
        sql: &'static str,
        key: &str,
        limit: i64,
    ) -> anyhow::Result<Vec<T>>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
            + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
            + Send
            + Unpin,
    {
        Ok(with_pool!(self, p => sqlx::query_as(&p.sql(sql))
            .bind(key)
            .bind(limit)
            .fetch_all(p)
            .await?))
    }

    /// The last `limit` accepted blocks of `chain`, ascending by height, as raw bytes.
    pub async fn load_chain(&self, chain: &str, limit: i64) -> anyhow::Result<Vec<(u64, Vec<u8>)>> {
        let mut rows: Vec<(i64, Vec<u8>)> = self
            .rows_by_key(
                "SELECT height, raw FROM blocks WHERE chain = $1 AND status = 'accepted'
                 ORDER BY height DESC LIMIT $2",
                chain,
                limit,
            )
            .await?;
        rows.reverse();
        Ok(rows.into_iter().map(|(h, raw)| (h as u64, raw)).collect())
    }

    pub async fn blocks(&self, limit: i64) -> anyhow::Result<Vec<BlockRow>> {
        Ok(with_pool!(self, p => sqlx::query_as::<_, BlockRow>(&p.sql(
            "SELECT hash, height, prev_hash, chain, worker, network_difficulty, status, detail, found_at
             FROM blocks ORDER BY found_at DESC, height DESC LIMIT $1",
        ))
        .bind(limit)
        .fetch_all(p)
        .await?))
    }

    pub async fn shares(
        &self,
        worker: Option<&str>,
        limit: i64,
    ) -> anyhow::Result<Vec<ShareRecord>> {
        // One worker: its id first, so an unknown name costs one index lookup, not a walk of
        // every share.
        let worker_id: Option<i64> = match worker {
            Some(name) => {
                let id = with_pool!(self, p => sqlx::query_scalar(&p.sql(
                    "SELECT CAST(id AS BIGINT) FROM workers WHERE name = $1",
                ))
                .bind(name)
                .fetch_optional(p)
                .await?);
                match id {
                    Some(id) => Some(id),
                    None => return Ok(Vec::new()),
                }
            }
            None => None,
        };
        with_pool!(self, p, db => db::shares(p, worker_id, limit).await)
    }

    /// Up to `limit` workers named after `after`, by name.
    pub async fn workers(&self, after: &str, limit: i64) -> anyhow::Result<Vec<WorkerRow>> {
        self.rows_by_key(
            "SELECT name, account, first_seen, last_seen, accepted_shares, rejected_shares,
                    accepted_difficulty
             FROM workers WHERE name > $1 ORDER BY name LIMIT $2",
            after,
            limit,
        )
        .await
    }

    /// Workers whose lowercased name contains `needle` (all when empty), up to `limit`, by
    /// name.
    pub async fn workers_matching(
        &self,
        needle: &str,
        limit: i64,
    ) -> anyhow::Result<Vec<WorkerRow>> {
        let sql = "SELECT name, account, first_seen, last_seen, accepted_shares, rejected_shares,
                          accepted_difficulty
                   FROM workers WHERE $1 = '' OR strpos(lower(name), $1) > 0
                   ORDER BY name LIMIT $2";
        Ok(match self {
            Backend::Postgres(p) => {
                sqlx::query_as(sql)
                    .bind(needle)
                    .bind(limit)
                    .fetch_all(p)
                    .await?
            }
            Backend::Sqlite(p) => {
                sqlx::query_as(
                    &sql.replace("strpos(lower(name), $1)", "instr(lower(name), $1)")
                        .replace('$', "?"),
                )
                .bind(needle)
                .bind(limit)
                .fetch_all(p)
                .await?
            }
        })
    }

    /// (accepted, rejected) share counts.
    pub async fn share_counts(&self) -> anyhow::Result<(i64, i64)> {
        let r = with_pool!(self, p => sqlx::query(
            "SELECT count(*) FILTER (WHERE reason = 0), count(*) FILTER (WHERE reason <> 0)
             FROM shares",
        )
        .fetch_one(p)
        .await
        .map(|r| (sqlx::Row::get(&r, 0), sqlx::Row::get(&r, 1)))?);
        Ok(r)
    }
}

/// What sessions and the block path hold to record events. Cloning is cheap.
#[derive(Clone)]
pub struct StoreHandle {
    tx: mpsc::Sender<Queued>,
}

/// An event on its way to the batcher, with whom to tell once it is stored.
pub struct Queued {
    pub event: StoreEvent,
    pub ack: Option<ack::Ack>,
}

impl StoreHandle {
    /// Queue an event. The batcher behind the queue never waits for the database (it spools
    /// what the writer cannot take), so this waits only if the spool's disk cannot keep up:
    /// memory stays bounded and a slow database never delays a session.
    pub fn record(&self, event: StoreEvent) -> Queueing<'_> {
        self.queue(Queued { event, ack: None })
    }

    /// [`StoreHandle::record`], and raise `ack`'s counter once the event is stored.
    pub fn record_acked(&self, event: StoreEvent, ack: ack::Ack) -> Queueing<'_> {
        self.queue(Queued {
            event,
            ack: Some(ack),
        })
    }

    /// Nearly always there is room and the event is queued at once, without a wait; only a
    /// full queue makes the caller wait, with the wait on the heap (the event inline in every
    /// caller's future would make every session's task that much bigger).
    fn queue(&self, q: Queued) -> Queueing<'_> {
        match self.tx.try_send(q) {
            Ok(()) => Queueing(None),
            Err(mpsc::error::TrySendError::Full(q)) => Queueing(Some(Box::pin(async move {
                if self.tx.send(q).await.is_err() {
                    tracing::error!("share store is closed; event dropped");
                }
            }))),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::error!("share store is closed; event dropped");
                Queueing(None)
            }
        }
    }

    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }
}

/// An event being queued: already in the queue and ready at once, unless the queue was full;
/// then the wait for room runs when this is awaited, and the event is lost if it is dropped.
#[must_use = "a full queue takes the event only once this is awaited"]
pub struct Queueing<'a>(
    Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>>>,
);

impl std::future::Future for Queueing<'_> {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        match &mut self.0 {
            None => std::task::Poll::Ready(()),
            Some(wait) => wait.as_mut().poll(cx),
        }
    }
}

/// The store: its reader, its handle, and the writer task.
pub struct Store {
    pub backend: Backend,
    connected: bool,
    handle: StoreHandle,
    stop: CancellationToken,
    batcher: JoinHandle<()>,
    writer: JoinHandle<()>,
}

pub struct StoreOptions<'a> {
    pub url: &'a str,
    pub spool_dir: &'a Path,
    pub batch: usize,
    pub flush: Duration,
    pub queue: usize,
    pub connect_patience: Duration,
}

impl Store {
    /// Connect, migrate, and start the batcher and the writer (which replays any spool left by
    /// an earlier run in the background). A PostgreSQL that does not answer within the patience
    /// does not stop the pool: it starts in spool mode, and the writer connects, migrates and
    /// replays when the database returns.
    pub async fn open(
        opts: StoreOptions<'_>,
        metrics: metrics::StoreMetrics,
    ) -> anyhow::Result<Store> {
        let (backend, connected) = match Backend::connect_patiently(opts.url, opts.connect_patience)
            .await
        {
            Ok(b) => {
                b.migrate().await.context("migrating the share database")?;
                (b, true)
            }
            Err(e) if Backend::is_postgres(opts.url) => {
                tracing::warn!(error = %e, "share database unreachable: starting in spool mode; shares are kept in the spool until it answers");
                (Backend::connect_lazy(opts.url)?, false)
            }
            Err(e) => return Err(e).context("connecting to the share database"),
        };
        metrics.store_up.set(i64::from(connected));
        let spool = spool::Spool::open(opts.spool_dir).context("opening the spool")?;
        metrics.spool_depth.set(spool.depth() as i64);
        let spool: batcher::SharedSpool = Arc::new(parking_lot::Mutex::new(spool));
        let (tx, rx) = mpsc::channel(opts.queue);
        // Batches wait for the writer in memory up to the queue's size again (so a burst costs
        // no disk); beyond that the batcher spools them.
        let (to_writer, from_batcher) = mpsc::channel((opts.queue / opts.batch).max(2));
        let spooled = Arc::new(tokio::sync::Notify::new());
        let stop = CancellationToken::new();
        // SQLite's writer gets a connection of its own, so API reads cannot starve it.
        let writes = match &backend {
            Backend::Sqlite(_) => Backend::Sqlite(sqlite::connect_writer(opts.url).await?),
            Backend::Postgres(_) => backend.clone(),
        };
        let writer = writer::Writer {
            backend: writes,
            spool: spool.clone(),
            rx: from_batcher,
            spooled: spooled.clone(),
            batch: opts.batch,
            metrics: metrics.clone(),
            migrated: connected,
            failing: false,
        };
        let batcher = batcher::Batcher {
            rx,
            writer: to_writer,
            spool,
            spooled,
            batch: opts.batch,
            flush: opts.flush,
            metrics,
        };
        // A spool left by an earlier run is replayed by the writer in the background. SQLite's
        // writer runs on a thread of its own (see `Writer::spawn_on_own_thread`); PostgreSQL's
        // shares its pool with the API's reads, whose connections live on this runtime.
        let writer = match writer.backend {
            Backend::Sqlite(_) => writer.spawn_on_own_thread(),
            Backend::Postgres(_) => tokio::spawn(writer.run()),
        };
        let batcher = tokio::spawn(batcher.run(stop.clone()));
        Ok(Store {
            backend,
            connected,
            handle: StoreHandle { tx },
            stop,
            batcher,
            writer,
        })
    }

    /// Whether the database answered at start (else the pool began in spool mode).
    pub fn connected(&self) -> bool {
        self.connected
    }

    pub fn handle(&self) -> StoreHandle {
        self.handle.clone()
    }

    /// Write everything queued (to the database, or the spool) and stop the writer.
    pub async fn close(self) {
        self.stop.cancel();
        drop(self.handle);
        if let Err(e) = self.batcher.await {
            tracing::error!(error = %e, "share batcher panicked");
        }
        if let Err(e) = self.writer.await {
            tracing::error!(error = %e, "share writer panicked");
        }
    }
}

/// One SQL text for both databases: written with PostgreSQL's `$1` placeholders, given to
/// SQLite as `?1` (the same numbered parameters).
pub trait Dialect {
    fn sql(&self, text: &'static str) -> std::borrow::Cow<'static, str>;
}

impl Dialect for sqlx::PgPool {
    fn sql(&self, text: &'static str) -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed(text)
    }
}

impl Dialect for sqlx::SqlitePool {
    fn sql(&self, text: &'static str) -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Owned(text.replace('$', "?"))
    }
}

/// Run the same code against whichever database `backend` is: `$p` is its pool (use
/// [`Dialect::sql`] for the text), the body is compiled once per database. With a third name,
/// `$db` is that database's module (`postgres` or `sqlite`), for the steps whose SQL differs.
#[macro_export]
macro_rules! with_pool {
    ($backend:expr, $p:ident, $db:ident => $body:expr) => {
        match $backend {
            $crate::store::Backend::Postgres($p) => {
                #[allow(unused_imports)]
                use $crate::store::postgres as $db;
                $body
            }
            $crate::store::Backend::Sqlite($p) => {
                #[allow(unused_imports)]
                use $crate::store::sqlite as $db;
                $body
            }
        }
    };
    ($backend:expr, $p:ident => $body:expr) => {
        match $backend {
            $crate::store::Backend::Postgres($p) => $body,
            $crate::store::Backend::Sqlite($p) => $body,
        }
    };
}
