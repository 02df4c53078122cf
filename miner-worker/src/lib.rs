//! The worker as a library, so tests can run it in-process against a real pool.
//!
//! [`search`] holds the kernels; [`work`] splits a job into disjoint units; [`miner`] runs the
//! threads where [`placement`] puts them; [`client`] speaks Stratum with failover; [`status`] and [`metrics`] report;
//! [`bench`] measures; [`app`] wires them.

pub mod app;
pub mod bench;
pub mod client;
pub mod config;
pub mod logging;
pub mod metrics;
pub mod miner;
pub mod placement;
pub mod search;
pub mod status;
pub mod work;
