//! The pool's one Prometheus registry and the series of mining, jobs and the chain; the store,
//! the rewards, the network of pools and the chain register their own sets into it
//! (`store/metrics.rs`, `rewards/metrics.rs`, `p2p/metrics.rs`, `chain/metrics.rs`) and hold
//! only those.
//!
//! Names are the contract with `monitoring/` (alert rules and dashboards are tested against a
//! live `/metrics`).

use crate::chain::metrics::ChainMetrics;
use crate::jobs::JobFeed;
use crate::notify::metrics::NotifyMetrics;
use crate::p2p::metrics::P2pMetrics;
use crate::rewards::metrics::RewardMetrics;
use crate::stats::{Stats, WINDOWS};
use crate::store::metrics::StoreMetrics;
use prometheus::{
    Encoder, Gauge, GaugeVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

pub struct Metrics {
    pub registry: Registry,
    pub shares: IntCounterVec,
    /// `shares{result="accepted"}`, resolved once: it counts every accepted share.
    pub shares_accepted: IntCounter,
    pub worker_shares: IntCounterVec,
    pub worker_hashrate: GaugeVec,
    pub worker_difficulty: GaugeVec,
    pub worker_last_share: GaugeVec,
    pub worker_sessions: IntGaugeVec,
    pub pool_hashrate: GaugeVec,
    pub sessions: IntGauge,
    pub connections: IntCounter,
    pub resumes: IntCounter,
    pub sessions_parked: IntGauge,
    /// Sessions over TLS (a part of `sessions`).
    pub tls_sessions: IntGauge,
    pub disconnects: IntCounterVec,
    pub height: IntGauge,
    pub network_difficulty: Gauge,
    pub template_age: Gauge,
    pub job_age: Gauge,
    pub bans: IntCounter,
    pub banned_ips: IntGauge,
    /// Builds of the public views that are shared between requests (worker directory,
    /// balances, the exposition itself).
    pub view_builds: IntCounterVec,
    /// The store's series (the store holds them, not this struct).
    pub store: StoreMetrics,
    /// The rewards' series.
    pub rewards: RewardMetrics,
    /// The network of pools' series.
    pub p2p: P2pMetrics,
    pub notify: NotifyMetrics,
    /// The template source's and the block path's series.
    pub chain: ChainMetrics,
}

macro_rules! register {
    ($reg:expr, $m:expr) => {{
        let m = $m;
        $reg.register(Box::new(m.clone()))
            .expect("metric names are unique");
        m
    }};
}

impl Metrics {
    pub fn new() -> Metrics {
        let r = Registry::new();
        let shares = register!(
            r,
            IntCounterVec::new(
                Opts::new("pool_shares_total", "Shares by result and reject reason"),
                &["result", "reason"]
            )
            .unwrap()
        );
        let m = Metrics {
            view_builds: register!(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "pool_http_view_builds_total",
                        "Builds of shared public views (a crowd of requests shares one)"
                    ),
                    &["view"]
                )
                .unwrap()
            ),
            shares_accepted: shares.with_label_values(&["accepted", ""]),
            shares,
            worker_shares: register!(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "pool_worker_shares_total",
                        "Shares per worker by result and reason"
                    ),
                    &["worker", "result", "reason"]
                )
                .unwrap()
            ),
            worker_hashrate: register!(
                r,
                GaugeVec::new(
                    Opts::new(
                        "pool_worker_hashrate_hps",
                        "Worker hashrate from accepted shares (H/s)"
                    ),
                    &["worker", "window"]
                )
                .unwrap()
            ),
            worker_difficulty: register!(
                r,
                GaugeVec::new(
                    Opts::new(
                        "pool_worker_difficulty",
                        "Current share difficulty of the worker's latest session"
                    ),
                    &["worker"]
                )
                .unwrap()
            ),
            worker_last_share: register!(
                r,
                GaugeVec::new(
                    Opts::new(
                        "pool_worker_last_share_timestamp_seconds",
                        "Unix time of the worker's last accepted share"
                    ),
                    &["worker"]
                )
                .unwrap()
            ),
            worker_sessions: register!(
                r,
                IntGaugeVec::new(
                    Opts::new("pool_worker_sessions", "Connected sessions per worker"),
                    &["worker"]
                )
                .unwrap()
            ),
            pool_hashrate: register!(
                r,
                GaugeVec::new(
                    Opts::new(
                        "pool_hashrate_hps",
                        "Pool hashrate from accepted shares (H/s)"
                    ),
                    &["window"]
                )
                .unwrap()
            ),
            sessions: register!(
                r,
                IntGauge::new("pool_sessions", "Connected Stratum sessions").unwrap()
            ),
            connections: register!(
                r,
                IntCounter::new("pool_connections_total", "Stratum connections accepted").unwrap()
            ),
            resumes: register!(
                r,
                IntCounter::new(
                    "pool_session_resumes_total",
                    "Sessions resumed with their subscription id after a reconnect"
                )
                .unwrap()
            ),
            sessions_parked: register!(
                r,
                IntGauge::new(
                    "pool_sessions_parked",
                    "Ended sessions kept for a resume (each holds its extranonce1)"
                )
                .unwrap()
            ),
            tls_sessions: register!(
                r,
                IntGauge::new(
                    "pool_tls_sessions",
                    "Open Stratum sessions over TLS (a part of pool_sessions)"
                )
                .unwrap()
            ),
            disconnects: register!(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "pool_disconnects_total",
                        "Stratum connections closed, by cause"
                    ),
                    &["cause"]
                )
                .unwrap()
            ),
            height: register!(
                r,
                IntGauge::new("pool_chain_height", "Height of the block being mined").unwrap()
            ),
            network_difficulty: register!(
                r,
                Gauge::new(
                    "pool_network_difficulty",
                    "Difficulty of the block being mined"
                )
                .unwrap()
            ),
            template_age: register!(
                r,
                Gauge::new(
                    "pool_template_age_seconds",
                    "Seconds since the current template was made"
                )
                .unwrap()
            ),
            job_age: register!(
                r,
                Gauge::new(
                    "pool_job_age_seconds",
                    "Seconds since the current job was made (jobs refresh every --job-refresh)"
                )
                .unwrap()
            ),
            bans: register!(
                r,
                IntCounter::new("pool_bans_total", "IP bans issued").unwrap()
            ),
            banned_ips: register!(
                r,
                IntGauge::new("pool_banned_ips", "IP addresses currently banned").unwrap()
            ),
            store: StoreMetrics::register(&r).expect("metric names are unique"),
            rewards: RewardMetrics::register(&r).expect("metric names are unique"),
            p2p: P2pMetrics::register(&r).expect("metric names are unique"),
            notify: NotifyMetrics::register(&r).expect("metric names are unique"),
            chain: ChainMetrics::register(&r).expect("metric names are unique"),
            registry: r,
        };
        for reason in crate::share::Reject::LABELS {
            m.shares.with_label_values(&["rejected", reason]);
        }
        m.shares.with_label_values(&["accepted", ""]);
        for cause in [
            "closed",
            "io-error",
            "write-timeout",
            "idle-timeout",
            "auth-timeout",
            "shutdown",
            "banned",
            "banned-ip",
            "max-connections",
            "max-connections-per-ip",
        ] {
            m.disconnects.with_label_values(&[cause]);
        }
        m
    }

    /// Bring the derived gauges up to date (on every scrape and on a timer): hashrates from
    /// the share windows, the template's height, difficulty and age. Workers gone for an hour
    /// lose their series.
    pub fn refresh(&self, stats: &Stats, jobs: &JobFeed, banned: usize) {
        let now = chrono::Utc::now();
        for gone in stats.prune(now) {
            for (window, _) in WINDOWS {
                let _ = self.worker_hashrate.remove_label_values(&[&gone, window]);
            }
            let _ = self.worker_difficulty.remove_label_values(&[&gone]);
            let _ = self.worker_last_share.remove_label_values(&[&gone]);
            let _ = self.worker_sessions.remove_label_values(&[&gone]);
            let _ = self
                .worker_shares
                .remove_label_values(&[&gone, "accepted", ""]);
            for reason in crate::share::Reject::LABELS {
                let _ = self
                    .worker_shares
                    .remove_label_values(&[&gone, "rejected", reason]);
            }
        }
        stats.for_each_worker_numbers(now, |name, n| {
            for ((window, _), rate) in WINDOWS.iter().zip(n.hashrate) {
                self.worker_hashrate
                    .with_label_values(&[name.as_str(), window])
                    .set(rate);
            }
        });
        let (pool, _) = stats.pool(now);
        for (window, rate) in &pool.hashrate {
            self.pool_hashrate.with_label_values(&[window]).set(*rate);
        }
        let job = jobs.current();
        self.height.set(job.template.height as i64);
        self.network_difficulty
            .set(job.template.target.difficulty().as_f64());
        self.template_age
            .set(job.template.created.elapsed().as_secs_f64());
        self.job_age.set(job.created.elapsed().as_secs_f64());
        self.banned_ips.set(banned as i64);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding cannot fail");
        String::from_utf8(buf).expect("prometheus text is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
