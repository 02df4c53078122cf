//! A share's way through a channel: validate it against the job the channel issued, then
//! record it (stats, metrics, the store, and a block on the block path), and let vardiff see
//! it. Rejects are recorded too, and count as offences past the stale allowance.

use std::time::Instant;

use chrono::{DateTime, Utc};
use protocol::{Difficulty, Submit};
use uuid::Uuid;

use super::channel::Channel;
use super::tally::ShareTally;
use crate::blocks::FoundBlock;
use crate::share::{validate, Reject, ShareContext};
use crate::store::ack::Ack;
use crate::store::{storable_job_id, ShareRecord, StoreEvent};

impl Channel {
    /// Judge and record one share. Accepted: the difficulty it is credited at. A difficulty
    /// change it leads to is queued for the miner (after the transport's answer).
    pub async fn submit(&mut self, submit: &Submit) -> Result<Difficulty, Reject> {
        // The clocks, read once for the whole share.
        let (at, now) = (Instant::now(), Utc::now());
        // One lookup of the job the share names, for validation and for the record.
        let issued = self.issued.iter().find(|j| j.job.id == submit.job_id);
        let issued_job = issued.map(|j| j.job.clone());
        let verdict = if let Some(lease) = &self.lease {
            if !self.authorized.contains(&submit.worker) {
                Err(Reject::Unauthorized)
            } else {
                let ctx = ShareContext {
                    issued,
                    current_generation: self.ctx.jobs.generation(),
                    current_difficulty: self.difficulty,
                    current_target: self.target,
                    extranonce1: lease.extranonce1(),
                    extranonce2_size: self.ctx.extranonce2_size,
                    version_mask: self.version_mask,
                    now: now.timestamp().clamp(0, u32::MAX as i64) as u32,
                    at,
                };
                validate(&ctx, submit, &mut self.dedup)
            }
        } else {
            Err(Reject::NotSubscribed)
        };
        let height = issued_job.as_ref().map_or_else(
            || self.ctx.jobs.current().template.height,
            |j| j.template.height,
        );
        let worker = submit.worker.as_str();
        let acc = match verdict {
            Ok(acc) => acc,
            Err(reject) => {
                // Stale shares happen to honest miners at every new block; a flood of them
                // (or of unknown job ids) past the allowance counts like any invalid share.
                let excused = matches!(reject, Reject::StaleJob | Reject::UnknownJob)
                    && self.free_rejects.take(at);
                if !excused {
                    self.offend("invalid shares");
                }
                self.record_reject(worker, submit.job_id.as_str(), height, &reject, now)
                    .await;
                return Err(reject);
            }
        };
        // Its extranonce1 now cools until the tip moves (see extranonce.rs).
        if let (Some(lease), Some(job)) = (self.lease.as_mut(), issued_job.as_ref()) {
            lease.credited(job.generation);
        }
        if self.offenses > 0 {
            self.offenses -= 1;
            self.ctx.bans.forgive(self.peer().ip(), 1);
        }
        let m = &self.ctx.metrics;
        m.shares_accepted.inc();
        if self.tally.is_none() && self.authorized.first() == Some(&submit.worker) {
            self.tally = Some(Box::new(ShareTally::new(&self.ctx, &submit.worker)));
        }
        match self.tally.as_deref().filter(|t| t.worker == submit.worker) {
            Some(t) => {
                self.ctx
                    .stats
                    .accepted_on(&t.stats, acc.credited.as_f64(), now);
                t.accepted.inc();
                t.last_share.set(now.timestamp() as f64);
            }
            // The channel's other workers: found by name.
            None => {
                self.ctx.stats.accepted(worker, acc.credited.as_f64(), now);
                m.worker_shares
                    .with_label_values(&[worker, "accepted", ""])
                    .inc();
                m.worker_last_share
                    .with_label_values(&[worker])
                    .set(now.timestamp() as f64);
            }
        }
        tracing::debug!(worker, job = %submit.job_id, result = "accepted", difficulty = acc.credited.as_f64(), "share");
        if acc.is_block {
            let job = issued_job.expect("accepted shares name an issued job");
            tracing::info!(worker, job = %submit.job_id, block = %acc.hash, height, "share meets the network target");
            let found = FoundBlock {
                job,
                extranonce1: self.extranonce1().expect("subscribed").clone(),
                extranonce2: submit.extranonce2.clone(),
                header: acc.header,
                worker: submit.worker.clone(),
            };
            // On the heap: rare, and inline it would make every session's task bigger.
            if Box::pin(self.ctx.blocks.send(found)).await.is_err() {
                tracing::error!("block path is closed; block not submitted");
            }
        }
        let row = ShareRecord {
            achieved_difficulty: acc.achieved.as_f64(),
            accepted: true,
            block_hash: acc.is_block.then(|| acc.hash.to_string()),
            ..self.share_row(worker, submit.job_id.to_string(), height, acc.credited, now)
        };
        match &self.acks {
            Some(to) => {
                self.acked += 1;
                let ack = Ack {
                    to: to.clone(),
                    seq: self.acked,
                };
                self.ctx
                    .store
                    .record_acked(StoreEvent::Share(row), ack)
                    .await;
            }
            None => self.ctx.store.record(StoreEvent::Share(row)).await,
        }
        if let Some(d) = self.vardiff.on_share(acc.credited, self.difficulty, at) {
            self.change_difficulty(d);
        }
        Ok(acc.credited)
    }

    /// A submit whose fields did not parse, recorded against the worker it names when this
    /// channel authorized that worker (`job` as the miner sent it).
    pub async fn unparsed_submit(&mut self, worker: &str, job: &str, why: String) {
        if !self.authorized.iter().any(|w| w.as_str() == worker) {
            return;
        }
        let height = self.ctx.jobs.current().template.height;
        self.record_reject(worker, job, height, &Reject::Malformed(why), Utc::now())
            .await;
    }

    async fn record_reject(
        &mut self,
        worker: &str,
        job_id: &str,
        height: u64,
        reject: &Reject,
        at: DateTime<Utc>,
    ) {
        let label = reject.label();
        tracing::debug!(
            worker,
            job = job_id,
            result = "rejected",
            reason = label,
            "share"
        );
        self.ctx.stats.rejected(worker, label);
        let m = &self.ctx.metrics;
        m.shares.with_label_values(&["rejected", label]).inc();
        m.worker_shares
            .with_label_values(&[worker, "rejected", label])
            .inc();
        let row = ShareRecord {
            reason: Some(label.to_owned()),
            ..self.share_row(worker, storable_job_id(job_id), height, self.difficulty, at)
        };
        self.ctx.store.record(StoreEvent::Share(row)).await;
    }

    /// A share's row, rejected until the caller says otherwise, stamped `at`.
    fn share_row(
        &self,
        worker: &str,
        job_id: String,
        height: u64,
        difficulty: Difficulty,
        at: DateTime<Utc>,
    ) -> ShareRecord {
        ShareRecord {
            id: Uuid::now_v7(),
            worker: worker.to_owned(),
            session_id: self.id() as i64,
            job_id,
            height: height as i64,
            assigned_difficulty: difficulty.as_f64(),
            achieved_difficulty: 0.0,
            accepted: false,
            reason: None,
            block_hash: None,
            created_at: at,
        }
    }
}
