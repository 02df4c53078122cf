//! The network of pools' own Prometheus series (peers, messages, bytes, bans, how fast blocks
//! arrive, orphans waiting), registered into the pool's one registry by whoever starts the node.

use prometheus::{
    register_histogram_with_registry, register_int_counter_vec_with_registry,
    register_int_counter_with_registry, register_int_gauge_vec_with_registry,
    register_int_gauge_with_registry, Histogram, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Registry,
};

#[derive(Clone)]
pub struct P2pMetrics {
    pub peers: IntGaugeVec,
    pub peers_configured: IntGauge,
    pub peer_messages: IntCounterVec,
    pub peer_bytes: IntCounterVec,
    pub peer_bans: IntCounter,
    pub block_propagation: Histogram,
    pub orphan_blocks: IntGauge,
    /// Peers' blocks and header chains not stored, by why (`low-work-branch`,
    /// `low-work-headers`, `crowded-height`, `side-branches-full`, `below-min-chain-work`,
    /// `fork-too-deep`).
    pub refused_blocks: IntCounterVec,
}

impl P2pMetrics {
    pub fn register(r: &Registry) -> prometheus::Result<P2pMetrics> {
        let m = P2pMetrics {
            peers: register_int_gauge_vec_with_registry!(
                "pool_p2p_peers",
                "Connected peers, by direction",
                &["direction"],
                r
            )?,
            peers_configured: register_int_gauge_with_registry!(
                "pool_p2p_peers_configured",
                "Peers given with --peer (the node should have some while this is above 0)",
                r
            )?,
            peer_messages: register_int_counter_vec_with_registry!(
                "pool_p2p_messages_total",
                "P2P messages, by command and direction",
                &["command", "direction"],
                r
            )?,
            peer_bytes: register_int_counter_vec_with_registry!(
                "pool_p2p_bytes_total",
                "P2P bytes, by direction",
                &["direction"],
                r
            )?,
            peer_bans: register_int_counter_with_registry!(
                "pool_p2p_bans_total",
                "Peer addresses banned for misbehaving",
                r
            )?,
            block_propagation: register_histogram_with_registry!(
                "pool_p2p_block_propagation_seconds",
                "From a block's header time to its arrival from a peer",
                vec![0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0],
                r
            )?,
            orphan_blocks: register_int_gauge_with_registry!(
                "pool_chain_orphan_blocks",
                "Blocks from peers waiting for their parent",
                r
            )?,
            refused_blocks: register_int_counter_vec_with_registry!(
                "pool_p2p_refused_blocks_total",
                "Peers' blocks (and header chains) not stored because their branch could not lead or forked too deep, by reason",
                &["reason"],
                r
            )?,
        };
        for reason in [
            "low-work-branch",
            "low-work-headers",
            "crowded-height",
            "side-branches-full",
            "below-min-chain-work",
            "fork-too-deep",
        ] {
            m.refused_blocks.with_label_values(&[reason]);
        }
        for direction in ["inbound", "outbound"] {
            m.peers.with_label_values(&[direction]);
        }
        for direction in ["in", "out"] {
            m.peer_bytes.with_label_values(&[direction]);
            for command in [
                "block",
                "inv",
                "getdata",
                "headers",
                "getheaders",
                "addr",
                "ping",
            ] {
                m.peer_messages.with_label_values(&[command, direction]);
            }
        }
        Ok(m)
    }
}
