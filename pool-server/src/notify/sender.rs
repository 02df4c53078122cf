//! The one sender of a database's outbox: on PostgreSQL it holds an advisory lock for as long
//! as it runs, so several pool-servers on one database send each message once (another
//! waits to take over); SQLite has one pool-server. It sends what is due, groups bound into
//! one message, and retries what was not confirmed with a growing wait.

use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::destination::Destination;
use super::metrics::NotifyMetrics;
use super::{guard, outbox, subscriptions, webhook};
use crate::store::{leader, Backend};

/// How often the outbox is read.
const TICK: Duration = Duration::from_millis(500);
/// Messages sent per read at most.
const BATCH: i64 = 500;
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(600);
/// Attempts before a message is given up (about an hour and a half of trying).
pub const MAX_ATTEMPTS: i64 = 16;

pub struct Sender {
    pub backend: Backend,
    /// The operator's (`--alert-webhook`).
    pub destinations: Vec<Destination>,
    /// For the operator's webhooks: any address.
    pub http: reqwest::Client,
    /// For miners' webhooks: public addresses only, unless the operator allows private ones.
    pub public_http: reqwest::Client,
    pub allow_private: bool,
    pub metrics: NotifyMetrics,
}

/// The wait before attempt `attempts + 1`: 1 s, 2 s, 4 s ... up to ten minutes.
pub fn backoff(attempts: i64) -> Duration {
    let secs = 1u64 << attempts.clamp(0, 20);
    Duration::from_secs(secs).min(MAX_BACKOFF)
}

impl Sender {
    pub async fn run(self, shutdown: CancellationToken) {
        let _lock = tokio::select! {
            _ = shutdown.cancelled() => return,
            l = leader::hold(&self.backend, "pool_notify_sender", "sends the alerts", Duration::from_secs(5)) => l,
        };
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(TICK) => {}
            }
            if let Err(e) = self.once().await {
                tracing::warn!(error = %e, "alert outbox: could not read or update; retrying");
            }
        }
    }

    /// The URL of destination `id` and the client to send with (`None`: refused); `None`
    /// when the destination is gone.
    async fn resolve(
        &self,
        id: &str,
    ) -> anyhow::Result<Option<(String, Option<&reqwest::Client>)>> {
        if let Some(d) = self.destinations.iter().find(|d| d.id == id) {
            return Ok(Some((d.url.clone(), Some(&self.http))));
        }
        let Some(url) = subscriptions::url_of(&self.backend, id).await? else {
            return Ok(None);
        };
        // An address literal bypasses the resolver: check it here (names are checked by
        // the public client's resolver as it connects).
        let allowed = self.allow_private || guard::check(&url, false).await.is_ok();
        Ok(Some((url, allowed.then_some(&self.public_http))))
    }

    /// Send every message due now.
    pub async fn once(&self) -> anyhow::Result<()> {
        let now = Utc::now().timestamp_millis();
        for m in outbox::due(&self.backend, now, BATCH).await? {
            let Some((url, http)) = self.resolve(&m.destination).await? else {
                outbox::failed_attempt(&self.backend, &m.id, now, "destination removed", true)
                    .await?;
                continue;
            };
            let dest = Destination::webhook(&url);
            let result = match http {
                Some(http) => webhook::send(http, &url, &m).await,
                None => Err("the destination is not a public address".to_owned()),
            };
            let now = Utc::now().timestamp_millis();
            match result {
                Ok(()) => {
                    outbox::sent(&self.backend, &m.id, now).await?;
                    self.metrics
                        .delivered
                        .with_label_values(&[dest.kind(), "sent"])
                        .inc();
                }
                Err(why) => {
                    let give_up = m.attempts + 1 >= MAX_ATTEMPTS;
                    let next = now + backoff(m.attempts).as_millis() as i64;
                    outbox::failed_attempt(&self.backend, &m.id, next, &why, give_up).await?;
                    let outcome = if give_up { "failed" } else { "retry" };
                    self.metrics
                        .delivered
                        .with_label_values(&[dest.kind(), outcome])
                        .inc();
                    tracing::warn!(
                        destination = %dest.id,
                        message = %m.id,
                        attempt = m.attempts + 1,
                        error = %why,
                        "alert not delivered{}",
                        if give_up { "; given up" } else { "; will retry" }
                    );
                }
            }
        }
        self.metrics
            .outbox_pending
            .set(outbox::pending(&self.backend).await?);
        Ok(())
    }
}
