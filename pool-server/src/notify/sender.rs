//! The one sender of a database's outbox: on PostgreSQL it holds an advisory lock for as long
//! as it runs, so several pool-servers on one database send each message once (another
//! waits to take over); SQLite has one pool-server. It sends what is due, groups bound into
//! one message, and retries what was not confirmed with a growing wait.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::channel::{self, Kind, Target};
use super::mail::Mailer;
use super::metrics::NotifyMetrics;
use super::routes::Routing;
use super::{events, guard, outbox, subscriptions, webhook};
use crate::store::{leader, Backend};

/// How often the outbox is read.
const TICK: Duration = Duration::from_millis(500);
/// How often the record is read for events (blocks, payouts, matured rewards).
const EVENTS_EVERY: u32 = 4;
/// How often old history is deleted (in ticks: ten minutes).
const PRUNE_EVERY: u32 = 1200;
/// How long the delivery history keeps a confirmed or given-up message.
const HISTORY_DAYS: i64 = 30;
/// Messages sent per read at most.
const BATCH: i64 = 500;
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(600);
/// Attempts before a message is given up (about an hour and a half of trying).
pub const MAX_ATTEMPTS: i64 = 16;

pub struct Sender {
    pub backend: Backend,
    /// The operator's destinations and routes.
    pub routing: Routing,
    /// Messages one destination is sent per minute at most; the rest wait their turn.
    pub per_minute: usize,
    /// For the operator's webhooks: any address.
    pub http: reqwest::Client,
    /// For miners' webhooks: public addresses only, unless the operator allows private ones.
    pub public_http: reqwest::Client,
    pub allow_private: bool,
    /// The SMTP relay, when the operator gave one (`--alert-smtp-url`).
    pub mailer: Option<Mailer>,
    /// Where links in alerts point (`--alert-link-base`).
    pub link_base: Option<String>,
    /// How long an event waits for others of its account and rule.
    pub group_wait: Duration,
    pub metrics: NotifyMetrics,
}

/// How a destination is to be reached now.
enum Route<'a> {
    Http(&'a reqwest::Client),
    Mail(&'a Mailer),
    Refused(&'static str),
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
        // Events are told from the first start on (the sender's, as it may wait for the lock).
        let start = Utc::now();
        while let Err(e) = events::mark_start(&self.backend, start).await {
            tracing::warn!(error = %e, "alert events: could not record the start; retrying");
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(TICK) => {}
            }
        }
        let mut ticks = 0u32;
        let mut sent = HashMap::new();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(TICK) => {}
            }
            ticks = ticks.wrapping_add(1);
            if ticks.is_multiple_of(EVENTS_EVERY) {
                let wait = self.group_wait.as_millis() as i64;
                if let Err(e) = events::tell(&self.backend, &self.routing, Utc::now(), wait).await {
                    tracing::warn!(error = %e, "alert events: could not read the record; retrying");
                }
            }
            if ticks.is_multiple_of(PRUNE_EVERY) {
                let before = Utc::now().timestamp_millis() - HISTORY_DAYS * 86_400_000;
                if let Err(e) = outbox::prune(&self.backend, before).await {
                    tracing::warn!(error = %e, "alert history: could not delete old rows; retrying later");
                }
            }
            if let Err(e) = self.once(&mut sent).await {
                tracing::warn!(error = %e, "alert outbox: could not read or update; retrying");
            }
        }
    }

    /// The target of destination `id` and how to reach it; `None` when the destination is
    /// gone.
    async fn resolve(&self, id: &str) -> anyhow::Result<Option<(Target, Route<'_>)>> {
        let (target, operators) = match self.routing.find(id) {
            Some(d) => (d.target.clone(), true),
            None => match subscriptions::target_of(&self.backend, id).await? {
                Some(t) => (t, false),
                None => return Ok(None),
            },
        };
        let route = match (target.kind, &self.mailer) {
            (Kind::Email, Some(m)) => Route::Mail(m),
            (Kind::Email, None) => Route::Refused("no SMTP relay is configured"),
            _ if operators || self.allow_private => Route::Http(&self.http),
            // An address literal bypasses the resolver: check it here (names are checked by
            // the public client's resolver as it connects).
            _ => match guard::check(target.url().unwrap_or(""), false).await {
                Ok(_) => Route::Http(&self.public_http),
                Err(_) => Route::Refused("the destination is not a public address"),
            },
        };
        Ok(Some((target, route)))
    }

    /// Send every message due now (each destination at most `per_minute` a minute: the
    /// rest of it waits, in order, until its minute has room, and leaves the reads to the
    /// other destinations meanwhile, however long its backlog).
    pub async fn once(&self, sent: &mut HashMap<String, VecDeque<Instant>>) -> anyhow::Result<()> {
        let now = Utc::now().timestamp_millis();
        let minute_ago = Instant::now() - Duration::from_secs(60);
        sent.retain(|_, times| {
            while times.front().is_some_and(|t| *t < minute_ago) {
                times.pop_front();
            }
            !times.is_empty()
        });
        let mut postponed = std::collections::HashSet::new();
        for m in outbox::due(&self.backend, now, BATCH).await? {
            let times = sent.entry(m.destination.clone()).or_default();
            if times.len() >= self.per_minute {
                if postponed.insert(m.destination.clone()) {
                    // Its turn comes when its oldest send of the minute leaves it.
                    let free_in = times.front().map_or(Duration::ZERO, |t| {
                        (*t + Duration::from_secs(60)).saturating_duration_since(Instant::now())
                    });
                    let until = now + free_in.as_millis() as i64;
                    outbox::postpone(&self.backend, &m.destination, now, until).await?;
                }
                continue;
            }
            times.push_back(Instant::now());
            let Some((target, route)) = self.resolve(&m.destination).await? else {
                outbox::failed_attempt(&self.backend, &m.id, now, "destination removed", true)
                    .await?;
                continue;
            };
            let link = channel::link(self.link_base.as_deref(), &m.alerts);
            let result = match route {
                Route::Http(http) => {
                    let request = channel::request(&target, &m, link.as_deref());
                    webhook::send(http, target.kind, request).await
                }
                Route::Mail(mailer) => mailer.send(&target.address, &m, link.as_deref()).await,
                Route::Refused(why) => Err(why.to_owned()),
            };
            let now = Utc::now().timestamp_millis();
            match result {
                Ok(()) => {
                    outbox::sent(&self.backend, &m.id, now).await?;
                    self.metrics
                        .delivered
                        .with_label_values(&[target.kind.as_str(), "sent"])
                        .inc();
                }
                Err(why) => {
                    let give_up = m.attempts + 1 >= MAX_ATTEMPTS;
                    let next = now + backoff(m.attempts).as_millis() as i64;
                    outbox::failed_attempt(&self.backend, &m.id, next, &why, give_up).await?;
                    let outcome = if give_up { "failed" } else { "retry" };
                    self.metrics
                        .delivered
                        .with_label_values(&[target.kind.as_str(), outcome])
                        .inc();
                    tracing::warn!(
                        destination = %m.destination,
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::notify::outbox::Outgoing;
    use crate::notify::routes::Route;
    use crate::notify::Alert;

    /// An HTTP receiver that answers 200 to everything and keeps the paths it was sent.
    async fn receiver() -> (String, Arc<parking_lot::Mutex<Vec<String>>>) {
        let hits = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let seen = hits.clone();
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
            seen.lock().push(uri.path().to_owned());
            async { "{}" }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}"), hits)
    }

    #[tokio::test]
    async fn a_destination_at_its_rate_does_not_hold_back_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let store = Backend::connect(&format!("sqlite://{}/p.sqlite", dir.path().display()))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let (url, hits) = receiver().await;
        let bulk = Route::parse(&format!("account=bulk* -> {url}/bulk")).unwrap();
        let solo = Route::parse(&format!("account=solo -> {url}/solo")).unwrap();
        // More than a read's worth of messages for one destination, then one for another.
        let now = Utc::now();
        let alerts: Vec<Alert> = (0..BATCH + 100)
            .map(|i| Alert::test(&format!("bulk{i}"), now))
            .collect();
        let rows: Vec<Outgoing> = alerts
            .iter()
            .map(|alert| Outgoing {
                destination: &bulk.destination.id,
                alert,
            })
            .collect();
        let at = now.timestamp_millis();
        outbox::queue(&store, &rows, at, 0).await.unwrap();
        let alert = Alert::test("solo", now);
        let row = Outgoing {
            destination: &solo.destination.id,
            alert: &alert,
        };
        outbox::queue(&store, &[row], at + 1, 0).await.unwrap();
        let sender = Sender {
            backend: store.clone(),
            routing: Routing {
                everything: Vec::new(),
                routes: vec![bulk, solo],
            },
            per_minute: 5,
            http: reqwest::Client::new(),
            public_http: reqwest::Client::new(),
            allow_private: true,
            mailer: None,
            link_base: None,
            group_wait: Duration::ZERO,
            metrics: NotifyMetrics::register(&prometheus::Registry::new()).unwrap(),
        };
        let mut sent = HashMap::new();
        sender.once(&mut sent).await.unwrap();
        sender.once(&mut sent).await.unwrap();
        let hits = hits.lock().clone();
        assert_eq!(hits.iter().filter(|p| *p == "/bulk").count(), 5, "{hits:?}");
        assert_eq!(hits.iter().filter(|p| *p == "/solo").count(), 1, "{hits:?}");
        // The rest of the backlog is kept, in order, for the next minute.
        assert_eq!(outbox::pending(&store).await.unwrap(), BATCH + 100 - 5);
        let soon = Utc::now().timestamp_millis() + 50_000;
        assert!(outbox::due(&store, soon, BATCH).await.unwrap().is_empty());
        let next = outbox::due(&store, soon + 20_000, 1).await.unwrap();
        assert_eq!(next[0].alerts[0].account, "bulk5");
    }
}
