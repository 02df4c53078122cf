//! Start-up of the alert rules: one look over every worker each `--alert-look`, on the
//! blocking pool (a walk over possibly hundreds of thousands of workers), its alerts logged,
//! counted and kept for the API.

use std::sync::Arc;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::notify::{AlertState, Engine, Rule, SharedEngine};
use crate::stats::Stats;

pub fn start(
    cfg: &Config,
    stats: &Arc<Stats>,
    metrics: &Arc<Metrics>,
    shutdown: &CancellationToken,
) -> SharedEngine {
    let engine: SharedEngine = Arc::new(parking_lot::Mutex::new(Engine::new(cfg.alerts.watch())));
    let (e, stats, metrics, shutdown) = (
        engine.clone(),
        stats.clone(),
        metrics.clone(),
        shutdown.clone(),
    );
    let every = cfg.alerts.alert_look;
    tokio::spawn(async move {
        let mut t = tokio::time::interval(every);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                now = t.tick() => {
                    let dt = now - last;
                    last = now;
                    let (e, stats, m) = (e.clone(), stats.clone(), metrics.clone());
                    let _ = tokio::task::spawn_blocking(move || look(&e, &stats, &m, dt)).await;
                }
            }
        }
    });
    engine
}

fn look(engine: &SharedEngine, stats: &Stats, metrics: &Metrics, dt: std::time::Duration) {
    let mut e = engine.lock();
    for a in e.look(stats, Utc::now(), dt) {
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
}
