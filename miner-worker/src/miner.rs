//! Mining threads: each takes work units from the current job, searches them in small chunks
//! with the chosen kernel, confirms candidates with the reference hash, and hands shares to
//! the Stratum client. Between chunks (a few milliseconds) a thread checks whether its work
//! went stale, so a `clean_jobs` notify stops old work almost at once.
//!
//! Shares go to the client through a bounded queue: when the client cannot keep up (a pool
//! that set an absurdly low difficulty, or stopped reading) shares are dropped and counted,
//! never buffered without end.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use protocol::{Extranonce2, Nonce, Ntime, Version};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::mpsc::Sender;

use crate::placement::Placement;
use crate::search::{self, Kernel};
use crate::status::Status;
use crate::work::{JobWork, WorkBoard};

/// Nonces per kernel call between staleness checks (a few ms on any kernel here).
pub const CHUNK: u64 = 1 << 18;

/// Shares waiting for the client: past this many, new ones are dropped (and counted).
pub const SHARE_QUEUE: usize = 256;

/// A share found by a thread, with the job it belongs to.
pub struct FoundShare {
    pub work: Arc<JobWork>,
    pub extranonce2: Extranonce2,
    pub ntime: Ntime,
    pub nonce: Nonce,
    pub version_bits: Option<Version>,
    /// It meets the network's target too: never dropped.
    pub is_block: bool,
}

pub struct Miner {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Miner {
    pub fn start(
        threads: usize,
        kernel: &'static dyn Kernel,
        placement: &Placement,
        board: Arc<WorkBoard>,
        status: Arc<Status>,
        shares: Sender<FoundShare>,
    ) -> Miner {
        let stop = Arc::new(AtomicBool::new(false));
        let handles = (0..threads)
            .map(|i| {
                let (stop, board, status, shares, placement) = (
                    stop.clone(),
                    board.clone(),
                    status.clone(),
                    shares.clone(),
                    placement.clone(),
                );
                search::kernel_thread(format!("miner-{i}"))
                    .spawn(move || {
                        if let Err(e) = placement.apply_to_this_thread(i) {
                            tracing::warn!(thread = i, "{e}");
                        }
                        mine(kernel, &board, &status, &shares, &stop)
                    })
                    .expect("spawn mining thread")
            })
            .collect();
        Miner {
            stop,
            threads: handles,
        }
    }

    pub fn stop(self) {
        self.stop.store(true, Ordering::Release);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

fn mine(
    kernel: &'static dyn Kernel,
    board: &WorkBoard,
    status: &Status,
    shares: &Sender<FoundShare>,
    stop: &AtomicBool,
) {
    let mut candidates = Vec::new();
    while !stop.load(Ordering::Acquire) {
        let generation = board.generation();
        let version = board.version();
        let Some(work) = board.current() else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        let Some(unit) = work.next_unit() else {
            if work.first_to_exhaust() {
                tracing::warn!(
                    job = %work.job.job_id,
                    units = work.unit_count().unwrap_or(u64::MAX),
                    "every extranonce2 and version of this job searched; waiting for new work"
                );
            }
            while !stop.load(Ordering::Relaxed) && board.version() == version {
                std::thread::sleep(Duration::from_millis(20));
            }
            continue;
        };
        let top = work.target_top();
        let mut start = 0u64;
        while start < 1 << 32 {
            if stop.load(Ordering::Relaxed)
                || board.generation() != generation
                || board.version() != version
            {
                break;
            }
            let end = (start + CHUNK).min(1 << 32);
            kernel.search(&unit.pre, start, end, top, &mut candidates);
            status.add_hashes(end - start);
            for nonce in candidates.drain(..) {
                let hash = unit.hash(nonce);
                if work.target.is_met_by(&hash) {
                    let found = FoundShare {
                        work: work.clone(),
                        extranonce2: unit.extranonce2.clone(),
                        ntime: unit.ntime,
                        nonce: Nonce(nonce),
                        version_bits: unit.version_bits,
                        is_block: work.network_target.is_some_and(|t| t.is_met_by(&hash)),
                    };
                    if let Err(TrySendError::Full(_)) = shares.try_send(found) {
                        status.drop_share("queue-full");
                    }
                }
            }
            start = end;
        }
    }
}
