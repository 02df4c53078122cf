//! The sessions the edges of one database share, in PostgreSQL (`edge_sessions`).
//!
//! A session's row says which edge holds it, or until when it stays parked after its
//! connection dropped. Channels note what happens (held, parked, gone) without waiting: the
//! notes are coalesced per session and written every 100 ms in one statement, so a burst of
//! thousands of connections costs a handful of round trips. A subscribe that names a token
//! claims the row in one atomic `UPDATE`: parked and not about to expire, or held by an edge
//! whose lock is gone (killed), or by this edge itself.
//!
//! The home edge of a value (the one whose id is its first byte) keeps it out of its own
//! leases while any row names it elsewhere: it looks every second, and its releases wait for
//! the next look (see [`crate::mining::extranonce`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use protocol::{Difficulty, Extranonce1, SubscriptionId, WorkerName};
use sqlx::{PgPool, Row};
use tokio_util::sync::CancellationToken;

use super::registry::alive;
use crate::mining::extranonce::ExtranonceAllocator;
use crate::mining::shared::{Claim, ClaimFuture, SessionDirectory, SharedSession};
use crate::mining::EdgeId;

/// How often notes are written.
const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// How often the home edge looks at which of its values are held elsewhere.
const LOOK_EVERY: Duration = Duration::from_secs(1);
/// How often expired rows are deleted and rows of dead edges parked.
const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// How long a claim may take before the miner gets a fresh session.
const CLAIM_PATIENCE: Duration = Duration::from_secs(4);
/// Tries of a claim, 250 ms apart, while a live edge still holds the row (a draining edge
/// writes its parks a moment after it tells its miners to go; a killed edge's lock goes when
/// the database notices its connection closed, which takes longer on a loaded machine).
const CLAIM_TRIES: u32 = 12;

enum Note {
    Held(Extranonce1, Difficulty, Option<String>),
    Parked(Extranonce1, Difficulty, Instant),
    Gone,
}

pub struct PgDirectory {
    edge: EdgeId,
    pool: PgPool,
    window: Duration,
    extranonces: Arc<ExtranonceAllocator>,
    notes: Mutex<HashMap<SubscriptionId, Note>>,
    /// Most sessions with unwritten notes (past it, new ones are dropped and counted).
    capacity: usize,
    dropped: AtomicU64,
}

impl PgDirectory {
    pub fn new(
        edge: EdgeId,
        pool: PgPool,
        window: Duration,
        extranonces: Arc<ExtranonceAllocator>,
        capacity: usize,
    ) -> Arc<Self> {
        Arc::new(PgDirectory {
            edge,
            pool,
            window,
            extranonces,
            notes: Mutex::new(HashMap::new()),
            capacity,
            dropped: AtomicU64::new(0),
        })
    }

    fn id(&self) -> i16 {
        i16::from(self.edge.prefix())
    }

    /// Before the first session: this edge's sessions from before a restart are parked for
    /// the window (their miners come back), and the values held elsewhere are known.
    pub async fn start(&self) -> anyhow::Result<()> {
        self.extranonces.defer_releases();
        sqlx::query(
            "UPDATE edge_sessions SET holder = NULL, parked_by = NULL, \
             parked_until = now() + make_interval(secs => $2), updated_at = now() \
             WHERE holder = $1",
        )
        .bind(self.id())
        .bind(self.window.as_secs_f64())
        .execute(&self.pool)
        .await?;
        self.look().await?;
        Ok(())
    }

    /// Write notes, look and sweep until `stop`; then write what is left.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut flush = tokio::time::interval(FLUSH_EVERY);
        let (mut looked, mut swept) = (Instant::now(), Instant::now());
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = flush.tick() => {}
            }
            self.flush().await;
            if looked.elapsed() >= LOOK_EVERY {
                looked = Instant::now();
                if let Err(e) = self.look().await {
                    tracing::debug!(error = %e, "edge sessions: look failed");
                }
            }
            if swept.elapsed() >= SWEEP_EVERY {
                swept = Instant::now();
                if let Err(e) = self.sweep().await {
                    tracing::debug!(error = %e, "edge sessions: sweep failed");
                }
            }
        }
        self.flush().await;
    }

    /// Write every note taken so far (kept for the next try when the database is away).
    pub async fn flush(&self) {
        let notes = std::mem::take(&mut *self.notes.lock());
        if notes.is_empty() {
            return;
        }
        if let Err(e) = self.write(&notes).await {
            tracing::debug!(error = %e, n = notes.len(), "edge sessions: write failed; kept");
            let mut g = self.notes.lock();
            for (k, v) in notes {
                g.entry(k).or_insert(v);
            }
        }
    }

    async fn write(&self, notes: &HashMap<SubscriptionId, Note>) -> sqlx::Result<()> {
        let (mut tokens, mut values, mut homes, mut parked, mut left, mut diffs) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        let mut workers: Vec<Option<String>> = vec![];
        let mut gone = vec![];
        for (token, note) in notes {
            let (e, d, at) = match note {
                Note::Gone => {
                    gone.push(token.as_str().to_owned());
                    continue;
                }
                Note::Held(e, d, w) => {
                    workers.push(w.clone());
                    (e, d, None)
                }
                Note::Parked(e, d, at) => {
                    workers.push(None);
                    (e, d, Some(at))
                }
            };
            tokens.push(token.as_str().to_owned());
            values.push(e.0.clone());
            homes.push(i16::from(e.0.first().copied().unwrap_or(0)));
            parked.push(at.is_some());
            left.push(at.map_or(0.0, |at| {
                self.window.saturating_sub(at.elapsed()).as_secs_f64()
            }));
            diffs.push(d.as_f64());
        }
        let mut tx = self.pool.begin().await?;
        if !tokens.is_empty() {
            sqlx::query(
                "INSERT INTO edge_sessions AS s (token, extranonce1, home, holder, parked_by, \
                 parked_until, difficulty, worker, updated_at) \
                 SELECT u.t, u.e, u.h, CASE WHEN u.p THEN NULL ELSE $1::smallint END, \
                 CASE WHEN u.p THEN $1::smallint END, \
                 CASE WHEN u.p THEN now() + make_interval(secs => u.r) END, u.d, u.w, now() \
                 FROM UNNEST($2::text[], $3::bytea[], $4::smallint[], $5::bool[], \
                 $6::float8[], $7::float8[], $8::text[]) AS u(t, e, h, p, r, d, w) \
                 ON CONFLICT (token) DO UPDATE SET extranonce1 = EXCLUDED.extranonce1, \
                 home = EXCLUDED.home, holder = EXCLUDED.holder, parked_by = EXCLUDED.parked_by, \
                 parked_until = EXCLUDED.parked_until, difficulty = EXCLUDED.difficulty, \
                 worker = COALESCE(EXCLUDED.worker, s.worker), updated_at = now() \
                 WHERE s.holder = $1::smallint OR (s.holder IS NULL AND s.parked_by = $1::smallint)",
            )
            .bind(self.id())
            .bind(&tokens)
            .bind(&values)
            .bind(&homes)
            .bind(&parked)
            .bind(&left)
            .bind(&diffs)
            .bind(&workers)
            .execute(&mut *tx)
            .await?;
        }
        if !gone.is_empty() {
            sqlx::query(
                "DELETE FROM edge_sessions WHERE token = ANY($2) \
                 AND (holder = $1 OR (holder IS NULL AND parked_by = $1))",
            )
            .bind(self.id())
            .bind(&gone)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    }

    /// Which of this edge's values rows name elsewhere: kept out of its leases.
    async fn look(&self) -> sqlx::Result<()> {
        let look = self.extranonces.look_begins();
        let rows: Vec<Vec<u8>> = sqlx::query_scalar(
            "SELECT extranonce1 FROM edge_sessions WHERE home = $1 \
             AND holder IS DISTINCT FROM $1",
        )
        .bind(self.id())
        .fetch_all(&self.pool)
        .await?;
        let values: Vec<Extranonce1> = rows.into_iter().map(Extranonce1).collect();
        self.extranonces.set_reserved(look, &values);
        Ok(())
    }

    async fn sweep(&self) -> sqlx::Result<()> {
        sqlx::query("DELETE FROM edge_sessions WHERE holder IS NULL AND parked_until < now()")
            .execute(&self.pool)
            .await?;
        let sql = format!(
            "UPDATE edge_sessions s SET holder = NULL, parked_by = NULL, \
             parked_until = now() + make_interval(secs => $1), updated_at = now() \
             WHERE s.holder IS NOT NULL AND NOT {}",
            alive("s.holder")
        );
        sqlx::query(&sql)
            .bind(self.window.as_secs_f64())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn try_claim(&self, token: &SubscriptionId) -> sqlx::Result<Option<SharedSession>> {
        // A parked row is claimed only with time to spare, so that its home edge has looked
        // at it again before its own parked copy expires and lets the value go.
        let margin = (self.window / 4).min(Duration::from_secs(2));
        let sql = format!(
            "UPDATE edge_sessions s SET holder = $2, parked_by = NULL, parked_until = NULL, \
             updated_at = now() WHERE s.token = $1 AND ( \
               (s.holder IS NULL AND s.parked_until > now() + make_interval(secs => $3)) \
               OR s.holder = $2 OR (s.holder IS NOT NULL AND NOT {})) \
             RETURNING extranonce1, difficulty",
            alive("s.holder")
        );
        let mut parked_seen = false;
        for _ in 0..CLAIM_TRIES {
            let row = sqlx::query(&sql)
                .bind(token.as_str())
                .bind(self.id())
                .bind(margin.as_secs_f64())
                .fetch_optional(&self.pool)
                .await?;
            if let Some(r) = row {
                let d: f64 = r.get("difficulty");
                let Ok(difficulty) = Difficulty::new(d) else {
                    return Ok(None);
                };
                return Ok(Some(SharedSession {
                    extranonce1: Extranonce1(r.get("extranonce1")),
                    difficulty,
                }));
            }
            // Not claimable: unknown or expired (give up), held by a live edge (wait a
            // little: a draining edge parks it a moment later), or parked since the update
            // looked (try again at once, once).
            let held: Option<bool> =
                sqlx::query_scalar("SELECT holder IS NOT NULL FROM edge_sessions WHERE token = $1")
                    .bind(token.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
            match held {
                None => return Ok(None),
                Some(false) if parked_seen => return Ok(None),
                Some(false) => {
                    parked_seen = true;
                    continue;
                }
                Some(true) => {}
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Ok(None)
    }

    /// The workers mining on another live edge now (at most `limit` names): an edge whose
    /// own statistics lost one of them must not call it offline.
    pub async fn workers_elsewhere(&self, limit: i64) -> sqlx::Result<Vec<String>> {
        let sql = format!(
            "SELECT DISTINCT worker FROM edge_sessions s WHERE worker IS NOT NULL \
             AND holder IS NOT NULL AND holder <> $1 AND {} LIMIT $2",
            alive("s.holder")
        );
        sqlx::query_scalar(&sql)
            .bind(self.id())
            .bind(limit)
            .fetch_all(&self.pool)
            .await
    }

    /// Notes dropped because too many sessions had unwritten ones.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn note(&self, token: &SubscriptionId, note: Note) {
        let mut g = self.notes.lock();
        if g.len() >= self.capacity && !g.contains_key(token) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        g.insert(token.clone(), note);
    }
}

impl SessionDirectory for PgDirectory {
    fn held(
        &self,
        token: &SubscriptionId,
        extranonce1: &Extranonce1,
        difficulty: Difficulty,
        worker: Option<&WorkerName>,
    ) {
        let worker = worker.map(|w| w.as_str().to_owned());
        self.note(token, Note::Held(extranonce1.clone(), difficulty, worker));
    }

    fn parked(&self, token: &SubscriptionId, extranonce1: &Extranonce1, difficulty: Difficulty) {
        self.note(
            token,
            Note::Parked(extranonce1.clone(), difficulty, Instant::now()),
        );
    }

    fn gone(&self, token: &SubscriptionId) {
        self.note(token, Note::Gone);
    }

    fn claim<'a>(&'a self, token: &'a SubscriptionId) -> ClaimFuture<'a> {
        Box::pin(async move {
            // Tokens are 16 hex digits (see the channel): anything else was never issued, and
            // costs the database nothing.
            let t = token.as_str();
            if t.len() != 16 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Claim::Refused;
            }
            match tokio::time::timeout(CLAIM_PATIENCE, self.try_claim(token)).await {
                Ok(Ok(Some(s))) => Claim::Granted(s),
                Ok(Ok(None)) => {
                    tracing::debug!(token = token.as_str(), "session not resumable here");
                    Claim::Refused
                }
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "edge sessions: claim failed");
                    Claim::Unavailable
                }
                Err(_) => {
                    tracing::warn!(
                        token = token.as_str(),
                        "session claim timed out: a fresh session"
                    );
                    Claim::Unavailable
                }
            }
        })
    }
}
