//! What every channel shares, whatever transport drives it: the rules' settings and the small
//! owners of shared state (jobs, extranonce1 leases, parked channels, bans) plus the sinks a
//! share goes to (store, stats, metrics, the block path).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use protocol::VersionMask;
use tokio::sync::mpsc;

use super::account::AccountPolicy;
use super::extranonce::ExtranonceAllocator;
use super::resume::ResumeTable;
use super::vardiff::VardiffConfig;
use crate::blocks::FoundBlock;
use crate::jobs::{JobFeed, JobIds};
use crate::metrics::Metrics;
use crate::net::BanList;
use crate::stats::Stats;
use crate::store::StoreHandle;

pub struct MiningContext {
    pub extranonce2_size: usize,
    /// The version bits the pool lets miners roll; a channel gets the part it asks for.
    pub version_mask: VersionMask,
    pub vardiff: VardiffConfig,
    /// How long shares for jobs replaced by a difficulty change are still accepted.
    pub reissue_grace: Duration,
    /// Answer `true` only once the share is stored (`--durable-acks`).
    pub durable_acks: bool,
    pub accounts: AccountPolicy,
    pub jobs: JobFeed,
    pub job_ids: JobIds,
    pub resume: ResumeTable,
    /// The sessions the edges of one database share (`None` for a pool of one edge).
    pub directory: Option<Arc<dyn super::shared::SessionDirectory>>,
    pub store: StoreHandle,
    pub stats: Arc<Stats>,
    pub metrics: Arc<Metrics>,
    pub bans: Arc<BanList>,
    pub extranonces: Arc<ExtranonceAllocator>,
    pub blocks: mpsc::Sender<FoundBlock>,
    /// Account keys miners set from their password, to the task that stores them.
    pub key_claims: mpsc::Sender<super::account::KeyClaim>,
    /// Channel ids (recorded with each share); they start at a random point per process.
    pub channel_ids: AtomicU64,
}

impl MiningContext {
    pub(super) fn next_channel_id(&self) -> u64 {
        self.channel_ids.fetch_add(1, Ordering::Relaxed)
    }
}
