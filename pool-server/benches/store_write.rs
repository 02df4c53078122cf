//! The share writer alone: how many shares a second one writer stores, with nothing else
//! on the machine (no sessions, no load generator). `scripts/bench-load` measures the same
//! writer under load; this isolates its own cost per row.
//!
//! `cargo bench -p pool-server --bench store_write -- [URL] [SHARES] [BATCH]`
//! URL defaults to a fresh SQLite file; SHARES 200,000 from 1,000 workers; BATCH 2,000 shares
//! per batch, written 10 batches per transaction as the writer does when it is behind.

use std::time::Instant;

use chrono::Utc;
use pool_server::store::{Backend, Batch, ShareRecord, StoreEvent};
use uuid::Uuid;

fn share(i: usize) -> StoreEvent {
    let ok = !i.is_multiple_of(50);
    StoreEvent::Share(ShareRecord {
        id: Uuid::now_v7(),
        worker: format!("load.{}", i % 1000),
        session_id: (i % 1000) as i64,
        job_id: format!("{:x}", i / 20_000 + 1),
        height: 100,
        assigned_difficulty: 1e-12,
        achieved_difficulty: 3.3e-12,
        accepted: ok,
        reason: (!ok).then(|| "stale".to_owned()),
        block_hash: None,
        created_at: Utc::now(),
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let dir = tempfile::tempdir()?;
    let url = args
        .first()
        .cloned()
        .unwrap_or_else(|| format!("sqlite://{}/bench.sqlite", dir.path().display()));
    let shares: usize = args.get(1).map_or(Ok(200_000), |s| s.parse())?;
    let batch: usize = args.get(2).map_or(Ok(2_000), |s| s.parse())?;
    let backend = Backend::connect(&url).await?;
    backend.migrate().await?;
    let batches: Vec<Batch> = (0..shares)
        .collect::<Vec<_>>()
        .chunks(batch)
        .map(|c| Batch::new(c.iter().map(|&i| share(i)).collect()))
        .collect();
    let started = Instant::now();
    for write in batches.chunks(10) {
        backend.write(write).await?;
    }
    let took = started.elapsed().as_secs_f64();
    println!("CPU: {}", pool_server::host::cpu_model());
    println!(
        "{}: {shares} shares of 1,000 workers in batches of {batch}: {took:.2} s, {:.0} rows/s",
        backend.kind(),
        shares as f64 / took
    );
    Ok(())
}
