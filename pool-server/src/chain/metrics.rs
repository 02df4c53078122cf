//! The chain's own Prometheus series: whether the template source's work is stale, and what
//! became of found blocks (status, last one's time, reorganisations), registered into the
//! pool's one registry by whoever starts the source and the block path.

use prometheus::{
    register_gauge_with_registry, register_histogram_with_registry,
    register_int_counter_vec_with_registry, register_int_counter_with_registry,
    register_int_gauge_with_registry, Gauge, Histogram, IntCounter, IntCounterVec, IntGauge,
    Registry,
};

#[derive(Clone)]
pub struct ChainMetrics {
    pub template_stale: IntGauge,
    pub blocks: IntCounterVec,
    pub last_block_time: Gauge,
    pub reorgs: IntCounter,
    pub reorg_depth: Histogram,
}

impl ChainMetrics {
    pub fn register(r: &Registry) -> prometheus::Result<ChainMetrics> {
        let m = ChainMetrics {
            template_stale: register_int_gauge_with_registry!(
                "pool_template_stale",
                "1 when the template source is unreachable and work is stale",
                r
            )?,
            blocks: register_int_counter_vec_with_registry!(
                "pool_blocks_total",
                "Blocks found by shares, by what the chain said",
                &["status"],
                r
            )?,
            last_block_time: register_gauge_with_registry!(
                "pool_last_block_timestamp_seconds",
                "Unix time of the last accepted block (pool start if none)",
                r
            )?,
            reorgs: register_int_counter_with_registry!(
                "pool_chain_reorgs_total",
                "Reorganisations of the embedded chain to a heavier branch",
                r
            )?,
            reorg_depth: register_histogram_with_registry!(
                "pool_chain_reorg_depth",
                "Blocks that left the best chain in each reorganisation",
                vec![1.0, 2.0, 3.0, 4.0, 6.0, 10.0, 20.0, 50.0, 100.0],
                r
            )?,
        };
        for status in ["accepted", "duplicate", "orphaned", "rejected", "unknown"] {
            m.blocks.with_label_values(&[status]);
        }
        m.last_block_time.set(chrono::Utc::now().timestamp() as f64);
        Ok(m)
    }
}
