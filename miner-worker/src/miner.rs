//! Mining threads: each takes work units from the current job, searches them in small chunks
//! with the chosen kernel, confirms candidates with the reference hash, and hands shares to
//! the Stratum client. Between chunks (a few milliseconds) a thread checks whether its work
//! went stale, so a `clean_jobs` notify stops old work almost at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use protocol::{Extranonce2, Nonce, Ntime, Version};
use tokio::sync::mpsc::UnboundedSender;

use crate::placement::Placement;
use crate::search::{self, Kernel};
use crate::status::Status;
use crate::work::{JobWork, WorkBoard};

/// Nonces per kernel call between staleness checks (a few ms on any kernel here).
pub const CHUNK: u64 = 1 << 18;

/// A share found by a thread, with the job it belongs to.
pub struct FoundShare {
    pub work: Arc<JobWork>,
    pub extranonce2: Extranonce2,
    pub ntime: Ntime,
    pub nonce: Nonce,
    pub version_bits: Option<Version>,
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
        shares: UnboundedSender<FoundShare>,
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
    shares: &UnboundedSender<FoundShare>,
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
        let unit = work.next_unit();
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
                if work.target.is_met_by(&unit.hash(nonce)) {
                    let _ = shares.send(FoundShare {
                        work: work.clone(),
                        extranonce2: unit.extranonce2.clone(),
                        ntime: unit.ntime,
                        nonce: Nonce(nonce),
                        version_bits: unit.version_bits,
                    });
                }
            }
            start = end;
        }
    }
}
