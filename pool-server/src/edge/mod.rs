//! The edges of one pool: several pool-servers behind one name (DNS or a load balancer) on
//! one PostgreSQL, each with its `--edge-id`.
//!
//! Why a room of its own: what makes several processes one pool is kept here, apart from
//! mining (which only sees a [`crate::mining::SessionDirectory`] and an extranonce1 prefix):
//! - [`registry`]: each edge's row (address, load, draining) and its liveness lock;
//! - [`directory`]: sessions any edge may resume, so a miner moved by the balancer keeps its
//!   extranonce1 and difficulty (and its credit, which is in the shared store anyway);
//! - [`bans`]: a ban on one edge is a ban on all;
//! - the drain: an edge that shuts down marks itself draining and tells its miners to
//!   reconnect to another healthy edge (`client.reconnect`), after parking their sessions
//!   where that edge finds them.

pub mod bans;
pub mod directory;
pub mod registry;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::directory::PgDirectory;
use self::registry::{Addresses, EdgeView, Load};
use crate::metrics::Metrics;
use crate::mining::extranonce::ExtranonceAllocator;
use crate::mining::EdgeId;
use crate::net::BanList;

const BEAT_EVERY: Duration = Duration::from_secs(1);

/// This pool-server as one edge of several.
pub struct Edge {
    pub id: EdgeId,
    url: String,
    pool: PgPool,
    pub directory: Arc<PgDirectory>,
    bans: Arc<BanList>,
    started: DateTime<Utc>,
    drain_to: Option<String>,
    draining: AtomicBool,
    /// The connection that holds this edge's lock (replaced if the database drops it).
    lock: tokio::sync::Mutex<PgConnection>,
    stop: CancellationToken,
    tasks: TaskTracker,
}

/// What an edge is started with.
pub struct EdgeOptions<'a> {
    pub id: EdgeId,
    pub database_url: &'a str,
    pub resume_window: Duration,
    /// Most sessions this edge runs (bounds its unwritten notes).
    pub max_sessions: usize,
    pub drain_to: Option<String>,
}

impl Edge {
    /// Join the pool as edge `opts.id`: take its lock (refused if another process runs with
    /// this id), park this edge's sessions from before a restart, and learn which of its
    /// extranonce1 values other edges hold. Call before the first session.
    pub async fn join(
        opts: EdgeOptions<'_>,
        extranonces: Arc<ExtranonceAllocator>,
        bans: Arc<BanList>,
    ) -> anyhow::Result<Arc<Edge>> {
        let lock = registry::hold_lock(opts.database_url, opts.id).await?;
        let pool = PgPoolOptions::new()
            .max_connections(3)
            .acquire_timeout(Duration::from_secs(3))
            .connect(opts.database_url)
            .await?;
        let directory = PgDirectory::new(
            opts.id,
            pool.clone(),
            opts.resume_window,
            extranonces,
            opts.max_sessions.saturating_mul(2).max(1024),
        );
        directory.start().await?;
        tracing::info!(edge = %opts.id, "joined the pool as an edge");
        Ok(Arc::new(Edge {
            id: opts.id,
            url: opts.database_url.to_owned(),
            pool,
            directory,
            bans,
            started: Utc::now(),
            drain_to: opts.drain_to,
            draining: AtomicBool::new(false),
            lock: tokio::sync::Mutex::new(lock),
            stop: CancellationToken::new(),
            tasks: TaskTracker::new(),
        }))
    }

    /// Start the edge's tasks: its row every second, the shared sessions and the shared bans.
    pub fn run(self: &Arc<Self>, at: Addresses, metrics: Arc<Metrics>) {
        self.tasks
            .spawn(self.directory.clone().run(self.stop.clone()));
        let shared_bans = bans::SharedBans::new(self.id, self.pool.clone(), self.bans.clone());
        self.tasks.spawn(shared_bans.run(self.stop.clone()));
        let me = self.clone();
        self.tasks.spawn(async move {
            let mut t = tokio::time::interval(BEAT_EVERY);
            let mut last = (Instant::now(), accepted(&metrics));
            loop {
                tokio::select! {
                    _ = me.stop.cancelled() => break,
                    _ = t.tick() => {}
                }
                let now = (Instant::now(), accepted(&metrics));
                let secs = now.0.duration_since(last.0).as_secs_f64().max(1e-3);
                let load = Load {
                    sessions: metrics.sessions.get(),
                    shares_per_second: now.1.saturating_sub(last.1) as f64 / secs,
                    draining: me.draining.load(Ordering::Relaxed),
                };
                last = now;
                me.keep_lock().await;
                if let Err(e) = registry::beat(&me.pool, me.id, &at, me.started, load).await {
                    tracing::debug!(error = %e, "edge row not written");
                }
            }
        });
    }

    /// The lock's connection answers, or is taken again (the database restarted).
    async fn keep_lock(&self) {
        let mut conn = self.lock.lock().await;
        if sqlx::query("SELECT 1").execute(&mut *conn).await.is_ok() {
            return;
        }
        match registry::hold_lock(&self.url, self.id).await {
            Ok(fresh) => {
                tracing::info!(edge = %self.id, "edge lock taken again");
                *conn = fresh;
            }
            Err(e) => tracing::warn!(error = %e, "edge lock lost"),
        }
    }

    /// Every edge of the pool, with its load and health.
    pub async fn list(&self) -> sqlx::Result<Vec<EdgeView>> {
        registry::list(&self.pool).await
    }

    /// Begin draining: say so in this edge's row (no edge sends miners here any more) and
    /// answer where this edge's miners should go, `(host, port)`: `--drain-to`, else the
    /// healthy edge with the fewest sessions; `None` when there is none (they come back here).
    pub async fn drain(&self) -> Option<(String, u16)> {
        self.draining.store(true, Ordering::Relaxed);
        let _ = sqlx::query("UPDATE edges SET draining = TRUE WHERE id = $1")
            .bind(i16::from(self.id.prefix()))
            .execute(&self.pool)
            .await;
        let target = match &self.drain_to {
            Some(t) => Some(t.clone()),
            None => tokio::time::timeout(Duration::from_secs(2), self.list())
                .await
                .ok()
                .and_then(Result::ok)
                .and_then(|edges| {
                    registry::drain_target(&edges, self.id).map(|e| e.stratum.clone())
                }),
        }?;
        let (host, port) = target.rsplit_once(':')?;
        let port = port.parse().ok()?;
        tracing::info!(edge = %self.id, to = %target, "draining: miners go to another edge");
        Some((host.to_owned(), port))
    }

    /// The last step of shutdown, once every session ended: write their parked sessions and
    /// the bans decided here, and stop.
    pub async fn leave(&self) {
        self.stop.cancel();
        self.tasks.close();
        if tokio::time::timeout(Duration::from_secs(5), self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("edge tasks did not end in time");
        }
    }
}

fn accepted(metrics: &Metrics) -> u64 {
    metrics.shares.with_label_values(&["accepted", ""]).get()
}
