//! The pool server as a library, so tests can start a real pool in-process on port 0.
//!
//! Data flows one way: a [`chain::TemplateSource`] publishes templates; [`jobs`] turns them
//! into jobs; [`stratum`] sessions hand them to miners and judge shares with [`share`]; shares
//! go to the [`store`], [`stats`] and [`metrics`]; blocks take the [`blocks`] path back to the
//! source. [`app`] wires it all and owns shutdown; [`http`] serves the API and dashboard.

pub mod app;
pub mod blocks;
pub mod chain;
pub mod config;
pub mod edge;
pub mod host;
pub mod http;
pub mod jobs;
pub mod logging;
pub mod metrics;
pub mod mining;
pub mod net;
pub mod notify;
pub mod p2p;
pub mod rewards;
pub mod share;
pub mod shutdown;
pub mod stats;
pub mod store;
pub mod stratum;
