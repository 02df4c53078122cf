//! The block path: a share that met the network target becomes a full block, goes to the
//! template source (appended to the embedded chain, or `submitblock` to a node), and is
//! recorded with the verdict.

use std::sync::Arc;

use chrono::Utc;
use protocol::{Extranonce1, Extranonce2, WorkerName};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::chain::TemplateSource;
use crate::jobs::Job;
use crate::metrics::Metrics;
use crate::store::{BlockRecord, StoreEvent, StoreHandle};

/// A share that met the network target, with what is needed to rebuild its block.
pub struct FoundBlock {
    pub job: Arc<Job>,
    pub extranonce1: Extranonce1,
    pub extranonce2: Extranonce2,
    pub header: bitcoin::block::Header,
    pub worker: WorkerName,
}

pub fn spawn(
    source: Arc<dyn TemplateSource>,
    store: StoreHandle,
    metrics: Arc<Metrics>,
    mut rx: mpsc::Receiver<FoundBlock>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(found) = rx.recv().await {
            let block =
                found
                    .job
                    .assemble_block(&found.extranonce1, &found.extranonce2, found.header);
            let hash = block.block_hash();
            let height = found.job.template.height;
            let verdict = source.submit_block(block.clone()).await;
            metrics.blocks.with_label_values(&[verdict.status()]).inc();
            if verdict.is_found() {
                metrics.last_block_time.set(Utc::now().timestamp() as f64);
                tracing::info!(block = %hash, height, worker = %found.worker, result = verdict.status(), "block found");
            } else {
                tracing::warn!(block = %hash, height, worker = %found.worker, result = verdict.status(), reason = verdict.detail().unwrap_or(""), "block not accepted");
            }
            store
                .record(StoreEvent::Block(BlockRecord {
                    hash: hash.to_string(),
                    height: height as i64,
                    prev_hash: block.header.prev_blockhash.to_string(),
                    chain: source.kind().to_owned(),
                    worker: Some(found.worker.to_string()),
                    network_difficulty: found.job.template.target.difficulty().as_f64(),
                    status: verdict.status().to_owned(),
                    detail: verdict.detail().map(str::to_owned),
                    raw: bitcoin::consensus::serialize(&block),
                    found_at: Utc::now(),
                }))
                .await;
        }
    })
}
