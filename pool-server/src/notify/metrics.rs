//! The alert rules' Prometheus series: what fires now, and how many alerts fired and resolved,
//! by rule (a worker name is no label: there may be hundreds of thousands).

use prometheus::{
    register_int_counter_vec_with_registry, register_int_gauge_vec_with_registry,
    register_int_gauge_with_registry, IntCounterVec, IntGauge, IntGaugeVec, Registry,
};

#[derive(Clone)]
pub struct NotifyMetrics {
    pub firing: IntGaugeVec,
    pub alerts: IntCounterVec,
    pub delivered: IntCounterVec,
    pub outbox_pending: IntGauge,
}

impl NotifyMetrics {
    pub fn register(r: &Registry) -> prometheus::Result<NotifyMetrics> {
        Ok(NotifyMetrics {
            firing: register_int_gauge_vec_with_registry!(
                "pool_alerts_firing",
                "Alerts firing now, by rule",
                &["rule"],
                r
            )?,
            alerts: register_int_counter_vec_with_registry!(
                "pool_alerts_total",
                "Alerts that fired or resolved, by rule and state",
                &["rule", "state"],
                r
            )?,
            delivered: register_int_counter_vec_with_registry!(
                "pool_alerts_delivered_total",
                "Alert messages sent (confirmed), retried (not confirmed) and failed (given up), by channel",
                &["channel", "outcome"],
                r
            )?,
            outbox_pending: register_int_gauge_with_registry!(
                "pool_alerts_outbox_pending",
                "Alerts written to the outbox and not yet confirmed nor given up",
                r
            )?,
        })
    }
}
