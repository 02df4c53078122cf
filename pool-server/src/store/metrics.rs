//! The store's own Prometheus series, registered into the pool's one registry by whoever
//! builds the store; the store reads and sets them without knowing any other concern's.

use prometheus::{
    register_histogram_with_registry, register_int_counter_with_registry,
    register_int_gauge_with_registry, Histogram, IntCounter, IntGauge, Registry,
};

#[derive(Clone)]
pub struct StoreMetrics {
    pub store_batch_seconds: Histogram,
    pub store_written: IntCounter,
    pub store_errors: IntCounter,
    pub store_queue: IntGauge,
    pub store_up: IntGauge,
    pub spool_depth: IntGauge,
    pub store_events_lost: IntCounter,
    pub store_quarantined: IntCounter,
}

impl StoreMetrics {
    pub fn register(r: &Registry) -> prometheus::Result<StoreMetrics> {
        let m = StoreMetrics {
            store_batch_seconds: register_histogram_with_registry!(
                "pool_store_batch_seconds",
                "Time to write one batch to the database",
                vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0],
                r
            )?,
            store_written: register_int_counter_with_registry!(
                "pool_store_events_written_total",
                "Shares and blocks written to the database",
                r
            )?,
            store_errors: register_int_counter_with_registry!(
                "pool_store_errors_total",
                "Failed database writes (their batches were spooled)",
                r
            )?,
            store_queue: register_int_gauge_with_registry!(
                "pool_store_queue",
                "Events waiting for the share writer",
                r
            )?,
            store_up: register_int_gauge_with_registry!(
                "pool_store_up",
                "1 when the last database write succeeded",
                r
            )?,
            store_events_lost: register_int_counter_with_registry!(
                "pool_store_events_lost_total",
                "Share events neither the database nor the spool could keep",
                r
            )?,
            store_quarantined: register_int_counter_with_registry!(
                "pool_store_quarantined_total",
                "Share rows the database refused on their own, set aside in the spool directory",
                r
            )?,
            spool_depth: register_int_gauge_with_registry!(
                "pool_store_spool_depth",
                "Events in the spool file (cut once all of them are durably in the database)",
                r
            )?,
        };
        m.store_up.set(1);
        Ok(m)
    }
}
