//! Start-up of the alert rules: one look over every worker each `--alert-look`, on the
//! blocking pool (a walk over possibly hundreds of thousands of workers), its alerts logged,
//! counted, kept for the API, and written to the outbox for each destination; and the
//! outbox's sender.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::notify::destination::Destination;
use crate::notify::outbox::{self, Outgoing};
use crate::notify::sender::Sender;
use crate::notify::{Alert, AlertState, Engine, Rule, SharedEngine};
use crate::stats::Stats;
use crate::store::Backend;

/// Alerts held in memory while the database cannot take them, at most.
const HELD: usize = 10_000;

pub fn start(
    cfg: &Config,
    stats: &Arc<Stats>,
    store: &Backend,
    metrics: &Arc<Metrics>,
    shutdown: &CancellationToken,
) -> SharedEngine {
    let engine: SharedEngine = Arc::new(parking_lot::Mutex::new(Engine::new(cfg.alerts.watch())));
    let destinations: Vec<Destination> = cfg
        .alerts
        .alert_webhook
        .iter()
        .map(|u| Destination::webhook(u))
        .collect();
    if !destinations.is_empty() {
        let sender = Sender {
            backend: store.clone(),
            destinations: destinations.clone(),
            http: reqwest::Client::new(),
            metrics: metrics.notify.clone(),
        };
        tokio::spawn(sender.run(shutdown.clone()));
    }
    let looker = Looker {
        engine: engine.clone(),
        stats: stats.clone(),
        store: store.clone(),
        metrics: metrics.clone(),
        destinations,
        group_wait: cfg.alerts.alert_group_wait,
        held: Vec::new(),
    };
    tokio::spawn(looker.run(cfg.alerts.alert_look, shutdown.clone()));
    engine
}

struct Looker {
    engine: SharedEngine,
    stats: Arc<Stats>,
    store: Backend,
    metrics: Arc<Metrics>,
    destinations: Vec<Destination>,
    group_wait: Duration,
    /// Alerts the outbox could not take yet (the database away), oldest first.
    held: Vec<Alert>,
}

impl Looker {
    async fn run(mut self, every: Duration, shutdown: CancellationToken) {
        let mut t = tokio::time::interval(every);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                now = t.tick() => {
                    let dt = now - last;
                    last = now;
                    let (e, stats, m) = (self.engine.clone(), self.stats.clone(), self.metrics.clone());
                    let Ok(alerts) = tokio::task::spawn_blocking(move || look(&e, &stats, &m, dt)).await else {
                        continue;
                    };
                    self.queue(alerts).await;
                }
            }
        }
    }

    /// Write `alerts` (and any held back) to the outbox for every destination.
    async fn queue(&mut self, alerts: Vec<Alert>) {
        if self.destinations.is_empty() {
            return;
        }
        self.held.extend(alerts);
        if self.held.is_empty() {
            return;
        }
        let rows: Vec<Outgoing> = self
            .held
            .iter()
            .flat_map(|a| {
                self.destinations.iter().map(move |d| Outgoing {
                    destination: &d.id,
                    alert: a,
                })
            })
            .collect();
        let now = Utc::now().timestamp_millis();
        match outbox::queue(&self.store, &rows, now, self.group_wait.as_millis() as i64).await {
            Ok(()) => self.held.clear(),
            Err(e) => {
                tracing::warn!(error = %e, held = self.held.len(), "alert outbox unavailable; holding alerts");
                if self.held.len() > HELD {
                    let over = self.held.len() - HELD;
                    self.held.drain(..over);
                    tracing::error!(
                        dropped = over,
                        "alert outbox away too long: oldest alerts dropped"
                    );
                }
            }
        }
    }
}

fn look(engine: &SharedEngine, stats: &Stats, metrics: &Metrics, dt: Duration) -> Vec<Alert> {
    let mut e = engine.lock();
    let alerts = e.look(stats, Utc::now(), dt);
    for a in &alerts {
        let state = match a.state {
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        };
        tracing::info!(rule = a.rule.as_str(), state, worker = %a.worker, "{}", a.summary);
        metrics
            .notify
            .alerts
            .with_label_values(&[a.rule.as_str(), state])
            .inc();
    }
    let firing = e.firing();
    for rule in Rule::ALL {
        let n = firing.iter().filter(|a| a.rule == rule).count();
        metrics
            .notify
            .firing
            .with_label_values(&[rule.as_str()])
            .set(n as i64);
    }
    alerts
}
