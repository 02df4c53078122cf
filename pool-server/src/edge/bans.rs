//! Bans every edge applies: an address banned on one edge (by its offences there, or by an
//! operator) is refused by all of them within a second or two, and a lift is lifted on all.
//!
//! Each edge writes the bans it decides to `edge_bans` and reads the rows changed since it
//! last looked (with a few seconds of overlap, so a transaction that committed late is not
//! missed; applying a row twice changes nothing).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row};
use tokio_util::sync::CancellationToken;

use crate::mining::EdgeId;
use crate::net::bans::BanNews;
use crate::net::BanList;

const SYNC_EVERY: Duration = Duration::from_secs(1);
/// Rows changed this long before the newest one seen are read again.
const OVERLAP: chrono::Duration = chrono::Duration::seconds(5);
/// Rows of bans that ended this long ago are deleted.
const KEEP_ENDED: &str = "1 hour";

pub struct SharedBans {
    edge: EdgeId,
    pool: PgPool,
    bans: Arc<BanList>,
}

impl SharedBans {
    pub fn new(edge: EdgeId, pool: PgPool, bans: Arc<BanList>) -> Self {
        bans.share();
        SharedBans { edge, pool, bans }
    }

    /// Tell and hear bans every second until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        let mut seen: Option<DateTime<Utc>> = None;
        let mut unsent: Vec<BanNews> = Vec::new();
        let mut t = tokio::time::interval(SYNC_EVERY);
        let mut ticks = 0u64;
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = t.tick() => {}
            }
            unsent.extend(self.bans.take_news());
            match self.tell(&unsent).await {
                Ok(()) => unsent.clear(),
                Err(e) => tracing::debug!(error = %e, "edge bans: write failed; kept"),
            }
            match self.hear(seen).await {
                Ok(newest) => seen = newest.or(seen),
                Err(e) => tracing::debug!(error = %e, "edge bans: read failed"),
            }
            ticks += 1;
            if ticks.is_multiple_of(60) {
                let sql = format!(
                    "DELETE FROM edge_bans WHERE until_at < now() - interval '{KEEP_ENDED}'"
                );
                let _ = sqlx::query(&sql).execute(&self.pool).await;
            }
        }
        unsent.extend(self.bans.take_news());
        let _ = self.tell(&unsent).await;
    }

    async fn tell(&self, news: &[BanNews]) -> sqlx::Result<()> {
        for n in news {
            match n {
                BanNews::Banned {
                    ip,
                    since,
                    until,
                    reason,
                } => {
                    sqlx::query(
                        "INSERT INTO edge_bans (ip, until_at, since, reason, edge, changed_at) \
                         VALUES ($1, $2, $3, $4, $5, clock_timestamp()) ON CONFLICT (ip) DO \
                         UPDATE SET until_at = EXCLUDED.until_at, since = EXCLUDED.since, \
                         reason = EXCLUDED.reason, edge = EXCLUDED.edge, \
                         changed_at = clock_timestamp()",
                    )
                    .bind(ip.to_string())
                    .bind(until)
                    .bind(since)
                    .bind(reason)
                    .bind(i16::from(self.edge.prefix()))
                    .execute(&self.pool)
                    .await?;
                }
                BanNews::Lifted(ip) => {
                    sqlx::query(
                        "UPDATE edge_bans SET until_at = now(), edge = $2, \
                         changed_at = clock_timestamp() WHERE ip = $1",
                    )
                    .bind(ip.to_string())
                    .bind(i16::from(self.edge.prefix()))
                    .execute(&self.pool)
                    .await?;
                }
            }
        }
        Ok(())
    }

    /// Apply the rows changed since `seen` (all live bans the first time): the newest change.
    async fn hear(&self, seen: Option<DateTime<Utc>>) -> sqlx::Result<Option<DateTime<Utc>>> {
        let rows = match seen {
            None => {
                sqlx::query(
                    "SELECT ip, since, until_at, reason, edge, changed_at FROM edge_bans \
                     WHERE until_at > now() ORDER BY changed_at",
                )
                .fetch_all(&self.pool)
                .await?
            }
            Some(at) => {
                sqlx::query(
                    "SELECT ip, since, until_at, reason, edge, changed_at FROM edge_bans \
                     WHERE changed_at > $1 ORDER BY changed_at",
                )
                .bind(at - OVERLAP)
                .fetch_all(&self.pool)
                .await?
            }
        };
        let mut newest = None;
        for r in &rows {
            newest = Some(r.get::<DateTime<Utc>, _>("changed_at"));
            let edge: i16 = r.get("edge");
            if edge == i16::from(self.edge.prefix()) {
                continue;
            }
            let ip: String = r.get("ip");
            let Ok(ip) = ip.parse::<IpAddr>() else {
                continue;
            };
            let reason: String = r.get("reason");
            self.bans.apply(
                ip,
                r.get("since"),
                r.get("until_at"),
                &format!("{reason} (edge {edge})"),
            );
        }
        Ok(newest)
    }
}
