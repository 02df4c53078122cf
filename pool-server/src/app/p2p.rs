//! Start-up of the network of pools: with `--p2p-listen` or `--peer`, the embedded chain's
//! node, its seeds resolved.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::chain::Templates;
use crate::blocks::BlockPath;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::p2p::manager::{Node, P2pConfig};
use crate::p2p::peer::Liveness;

/// The node, when the embedded chain is the source and has a network.
pub async fn start(
    cfg: &Config,
    templates: &Templates,
    blocks: &Arc<BlockPath>,
    metrics: &Arc<Metrics>,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<Arc<Node>>> {
    let Some(chain) = &templates.chain else {
        return Ok(None);
    };
    if cfg.p2p.p2p_listen.is_none() && cfg.p2p.peers.is_empty() {
        return Ok(None);
    }
    let node = Node::start(
        p2p_config(cfg).await,
        chain.clone(),
        blocks.clone(),
        metrics.p2p.clone(),
        shutdown.child_token(),
    )
    .await?;
    Ok(Some(node))
}

/// The P2P settings, with every `--peer` resolved (one that does not resolve is left out, said
/// so in the log: the others may still be reachable).
async fn p2p_config(cfg: &Config) -> P2pConfig {
    let mut seeds = Vec::new();
    for peer in &cfg.p2p.peers {
        match tokio::net::lookup_host(peer.as_str()).await {
            Ok(addrs) => seeds.extend(addrs),
            Err(e) => {
                tracing::error!(peer = %peer, error = %e, "--peer does not resolve; left out")
            }
        }
    }
    P2pConfig {
        listen: cfg.p2p.p2p_listen,
        seeds,
        max_peers: cfg.p2p.max_peers as usize,
        max_outbound: cfg.p2p.max_outbound as usize,
        max_inbound_per_ip: cfg.p2p.max_inbound_per_ip as usize,
        handshake_timeout: cfg.p2p.p2p_handshake_timeout,
        liveness: Liveness {
            ping_every: cfg.p2p.p2p_ping_interval,
            pong_within: cfg.p2p.p2p_ping_interval * 2,
        },
        ban_duration: cfg.stratum.ban_duration,
    }
}
