//! Start-up of this pool-server as one edge of several (`--edge-id`): its lock, the shared
//! sessions and bans; nothing when it runs alone.

use std::sync::Arc;

use crate::config::Config;
use crate::edge::{Edge, EdgeOptions};
use crate::mining::extranonce::ExtranonceAllocator;
use crate::net::BanList;

pub async fn join(
    cfg: &Config,
    extranonces: &Arc<ExtranonceAllocator>,
    bans: &Arc<BanList>,
) -> anyhow::Result<Option<Arc<Edge>>> {
    let Some(id) = cfg.edge.edge_id else {
        return Ok(None);
    };
    let opts = EdgeOptions {
        id,
        database_url: &cfg.store.database_url,
        resume_window: cfg.stratum.resume_window,
        max_sessions: cfg.stratum.max_connections,
        drain_to: cfg.edge.drain_to.clone(),
    };
    Ok(Some(
        Edge::join(opts, extranonces.clone(), bans.clone()).await?,
    ))
}
