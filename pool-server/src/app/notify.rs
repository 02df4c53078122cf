//! Start-up of the alert rules: one look over every worker each `--alert-look`, on the
//! blocking pool (a walk over possibly hundreds of thousands of workers), its alerts logged,
//! counted, kept for the API, and written to the outbox for each destination; and the
//! outbox's sender.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::edge::directory::PgDirectory;
use crate::metrics::Metrics;
use crate::mining::account::KeyClaim;
use crate::notify::channel::Target;
use crate::notify::destination::Destination;
use crate::notify::mail::Mailer;
use crate::notify::outbox::{self, Outgoing};
use crate::notify::pool_watch::PoolSample;
use crate::notify::routes::{Route, Routing};
use crate::notify::sender::Sender;
use crate::notify::{guard, silences, subscriptions};
use crate::notify::{Alert, AlertState, Engine, Rule, SharedEngine};
use crate::stats::Stats;
use crate::store::Backend;

/// Alerts held in memory while the database cannot take them, at most.
const HELD: usize = 10_000;

/// Most names of workers on other edges read per look (past it, the rest may be reported
/// offline here while they mine there).
const ELSEWHERE_AT_MOST: i64 = 200_000;

pub fn start(
    cfg: &Config,
    stats: &Arc<Stats>,
    store: &Backend,
    metrics: &Arc<Metrics>,
    key_claims: mpsc::Receiver<KeyClaim>,
    edges: Option<Arc<PgDirectory>>,
    shutdown: &CancellationToken,
) -> anyhow::Result<SharedEngine> {
    let engine: SharedEngine = Arc::new(parking_lot::Mutex::new(Engine::new(cfg.alerts.watch())));
    let routing = Routing {
        everything: cfg
            .alerts
            .alert_webhook
            .iter()
            .filter_map(|spec| Target::parse(spec).ok().map(Destination::new))
            .collect(),
        routes: cfg
            .alerts
            .alert_route
            .iter()
            .filter_map(|r| Route::parse(r).ok())
            .collect(),
    };
    let mailer = match &cfg.alerts.alert_smtp_url {
        Some(url) => Some(Mailer::new(
            url,
            &cfg.alerts.alert_mail_from,
            cfg.alerts.alert_smtp_ca.as_deref(),
        )?),
        None => None,
    };
    let allow_private = cfg.alerts.alert_allow_private_destinations;
    let public_http = if allow_private {
        reqwest::Client::new()
    } else {
        reqwest::Client::builder()
            .dns_resolver(Arc::new(guard::PublicOnly))
            .build()
            .unwrap_or_default()
    };
    let sender = Sender {
        backend: store.clone(),
        routing: routing.clone(),
        per_minute: cfg.alerts.alert_rate_limit as usize,
        http: reqwest::Client::new(),
        public_http,
        allow_private,
        mailer,
        link_base: cfg.alerts.alert_link_base.clone(),
        group_wait: cfg.alerts.alert_group_wait,
        metrics: metrics.notify.clone(),
    };
    tokio::spawn(sender.run(shutdown.clone()));
    tokio::spawn(store_keys(store.clone(), key_claims, shutdown.clone()));
    let looker = Looker {
        engine: engine.clone(),
        stats: stats.clone(),
        store: store.clone(),
        metrics: metrics.clone(),
        edges,
        routing,
        group_wait: cfg.alerts.alert_group_wait,
        repeat: cfg.alerts.alert_repeat,
        held: Vec::new(),
        silenced: HashSet::new(),
        told: HashMap::new(),
    };
    tokio::spawn(looker.run(cfg.alerts.alert_look, shutdown.clone()));
    Ok(engine)
}

struct Looker {
    engine: SharedEngine,
    stats: Arc<Stats>,
    store: Backend,
    metrics: Arc<Metrics>,
    /// The sessions of the pool's other edges (a worker mining there is not offline here).
    edges: Option<Arc<PgDirectory>>,
    routing: Routing,
    group_wait: Duration,
    /// A firing alert is told again after this (zero: never).
    repeat: Duration,
    /// Alerts the outbox could not take yet (the database away), oldest first.
    held: Vec<Alert>,
    /// Firing alerts a silence kept back: their resolve is kept back too.
    silenced: HashSet<(String, Rule)>,
    /// When each firing alert was last queued, for the repeat.
    told: HashMap<(String, Rule), tokio::time::Instant>,
}

impl Looker {
    /// Which workers mine on other edges now; kept as it was when the database cannot say.
    async fn hear_other_edges(&self) {
        let Some(edges) = &self.edges else {
            return;
        };
        let read = edges.workers_elsewhere(ELSEWHERE_AT_MOST);
        match tokio::time::timeout(Duration::from_secs(2), read).await {
            Ok(Ok(names)) => self
                .engine
                .lock()
                .set_elsewhere(names.into_iter().collect()),
            Ok(Err(e)) => tracing::debug!(error = %e, "workers on other edges not read"),
            Err(_) => tracing::debug!("workers on other edges not read in time"),
        }
    }

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
                    self.hear_other_edges().await;
                    let (e, stats, m) = (self.engine.clone(), self.stats.clone(), self.metrics.clone());
                    let Ok(mut alerts) = tokio::task::spawn_blocking(move || look(&e, &stats, &m, dt)).await else {
                        continue;
                    };
                    alerts.extend(self.reminders(now));
                    self.queue(alerts).await;
                }
            }
        }
    }

    /// Firing alerts last told `repeat` ago or more, told again ("still").
    fn reminders(&mut self, now: tokio::time::Instant) -> Vec<Alert> {
        if self.repeat.is_zero() {
            return Vec::new();
        }
        let firing = self.engine.lock().firing();
        let mut out = Vec::new();
        for a in firing {
            let key = (a.worker.clone(), a.rule);
            if self.silenced.contains(&key) {
                continue;
            }
            match self.told.get(&key) {
                Some(at) if now.duration_since(*at) >= self.repeat => {
                    let mut again = a.clone();
                    again.summary = format!("still: {}", a.summary);
                    again.at = Utc::now();
                    out.push(again);
                }
                Some(_) => {}
                // Fired before this look's queue: told by it.
                None => {}
            }
        }
        out
    }

    /// Which of `alerts` go out: not those a silence in force matches, nor the resolve of
    /// a firing one kept back.
    async fn unsilenced(&mut self, alerts: Vec<Alert>) -> anyhow::Result<Vec<Alert>> {
        if alerts.is_empty() {
            return Ok(alerts);
        }
        let silences = silences::in_force(&self.store, Utc::now().timestamp_millis()).await?;
        let mut out = Vec::new();
        for a in alerts {
            let key = (a.worker.clone(), a.rule);
            let silenced = silences.iter().any(|m| m.matches(&a));
            match a.state {
                AlertState::Firing if silenced => {
                    self.silenced.insert(key);
                }
                AlertState::Resolved if self.silenced.remove(&key) => {
                    self.told.remove(&key);
                }
                AlertState::Resolved => {
                    self.told.remove(&key);
                    out.push(a);
                }
                _ if silenced => {}
                _ => out.push(a),
            }
        }
        Ok(out)
    }

    /// Write `alerts` (and any held back) to the outbox for each of their destinations.
    async fn queue(&mut self, alerts: Vec<Alert>) {
        self.held.extend(alerts);
        if self.held.is_empty() {
            return;
        }
        let result = async {
            let held = std::mem::take(&mut self.held);
            let out = match self.unsilenced(held.clone()).await {
                Ok(out) => out,
                Err(e) => {
                    self.held = held;
                    return Err(e);
                }
            };
            let mut rows_for: Vec<(usize, Vec<String>)> = Vec::new();
            for (i, a) in out.iter().enumerate() {
                match self.routing.destinations(&self.store, a).await {
                    Ok(to) => rows_for.push((i, to)),
                    Err(e) => {
                        self.held = out;
                        return Err(e);
                    }
                }
            }
            let rows: Vec<Outgoing> = rows_for
                .iter()
                .flat_map(|(i, to)| {
                    to.iter().map(|d| Outgoing {
                        destination: d,
                        alert: &out[*i],
                    })
                })
                .collect();
            let now = Utc::now().timestamp_millis();
            let wait = self.group_wait.as_millis() as i64;
            if let Err(e) = outbox::queue(&self.store, &rows, now, wait).await {
                self.held = out;
                return Err(e);
            }
            let at = tokio::time::Instant::now();
            for a in &out {
                if a.state == AlertState::Firing {
                    self.told.insert((a.worker.clone(), a.rule), at);
                }
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
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

/// Store the account keys miners set from their Stratum password (the first one wins).
async fn store_keys(
    store: Backend,
    mut claims: mpsc::Receiver<KeyClaim>,
    shutdown: CancellationToken,
) {
    loop {
        let claim = tokio::select! {
            _ = shutdown.cancelled() => return,
            c = claims.recv() => match c { Some(c) => c, None => return },
        };
        let now = Utc::now().timestamp_millis();
        match subscriptions::claim_key(&store, &claim.account, &claim.digest, now).await {
            Ok(true) => tracing::info!(account = %claim.account, "account key set by its miner"),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "account key not stored; its miner's next login sets it")
            }
        }
    }
}

fn look(engine: &SharedEngine, stats: &Stats, metrics: &Metrics, dt: Duration) -> Vec<Alert> {
    let sample = PoolSample::read(metrics);
    let mut e = engine.lock();
    let now = Utc::now();
    let mut alerts = e.look(stats, now, dt);
    alerts.extend(e.look_pool(&sample, now, dt));
    for a in &alerts {
        let state = a.state.as_str();
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
