//! The worker's behaviour, end to end: one test binary whose modules are each named after the
//! behaviour they pin (`cargo nextest run -p miner-worker -E 'test(/^MODULE::/)'` runs one).
//! One binary rather than one per file: each test binary links the worker and the pool, and
//! linking one per file took a large part of a CI run.

#[path = "../../../pool-server/tests/behaviour/common/chromium.rs"]
mod chromium;
mod common;

mod alerts_reach_the_receiver;
mod benchmark_reports_every_kernel;
mod calibration_picks_the_fastest_kernel;
mod client_against_scripted_peer;
mod compose_matches_the_binaries;
mod dashboard_in_chromium;
mod hostile_pool_cannot_break_the_worker;
mod kernels_agree_with_reference;
mod mining_threads_are_polite;
mod monitoring_names_live_metrics;
mod quick_benchmark_answers_in_seconds;
mod systemd_unit_runs_the_binary;
mod worker_mines_on_our_pool;
mod worker_mines_over_tls;
mod worker_resumes_its_session;
