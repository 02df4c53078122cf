//! Alerts about the people's rigs, evaluated inside the pool from its live statistics (no
//! Prometheus needed): a worker offline, its hashrate dropped, its rejects high; each firing
//! with its resolve. Events told once ([`events`]: a block found, a credit matured, a payout
//! sent or failed), and the operator's rules about the pool as a whole ([`pool_watch`]).
//!
//! The way through: [`crate::stats`] (what sessions recorded) -> [`engine`] (one look every
//! few seconds over every worker) -> [`watch`] (one worker's rules, honest about how little a
//! few shares say: [`poisson`]) -> alerts, kept for the API and counted in the metrics, and
//! for each [`destination`] written to the [`outbox`] in the share database, from which the
//! one [`sender`] of that database delivers them on their [`channel`] (over HTTP by [`webhook`],
//! email by [`mail`]), grouped, retried, once.
//! Miners add their own webhooks ([`subscriptions`], checked by [`guard`]) and hear only
//! about their own account's workers.

pub mod channel;
pub mod destination;
pub mod engine;
pub mod events;
pub mod guard;
pub mod mail;
pub mod matcher;
pub mod metrics;
pub mod outbox;
pub mod poisson;
pub mod pool_watch;
pub mod proof;
pub mod routes;
pub mod sender;
pub mod silences;
pub mod subscriptions;
pub mod watch;
pub mod webhook;

pub use engine::{Alert, AlertState, Engine, Rule, POOL};
pub use watch::WatchConfig;

/// The engine as the look task and the API share it.
pub type SharedEngine = std::sync::Arc<parking_lot::Mutex<Engine>>;
