//! Share validation as one pure function of its inputs: no I/O, no locks, no clock reads.
//!
//! The session looks up the job the share names and passes everything in; the result says
//! accepted (with the hash, the difficulty achieved and credited, and whether it is a block)
//! or rejected with a Stratum reason.

use std::sync::Arc;
use std::time::Instant;

use bitcoin::block::Header;
use bitcoin::BlockHash;
use protocol::{header_hash, Difficulty, Extranonce1, Submit, Target, VersionMask};

use super::{Dedup, Reject};
use crate::jobs::Job;

/// Blocks may be stamped at most this far in the future (Bitcoin's rule).
pub const MAX_NTIME_AHEAD_SECS: u32 = 2 * 60 * 60;

/// A job as one session received it: at the difficulty then in force, and, once a clean
/// re-issue has replaced it, the end of its grace.
#[derive(Debug, Clone)]
pub struct IssuedJob {
    pub job: Arc<Job>,
    pub difficulty: Difficulty,
    pub target: Target,
    /// Shares for this job are stale from this instant on (set when the session re-issues
    /// work after a difficulty change; shares already in flight get until then).
    pub expires: Option<Instant>,
}

impl IssuedJob {
    pub fn new(job: Arc<Job>, difficulty: Difficulty) -> Self {
        IssuedJob {
            job,
            difficulty,
            target: difficulty.to_target(),
            expires: None,
        }
    }
}

/// Everything validation needs besides the submit itself.
pub struct ShareContext<'a> {
    /// The issued job the share names, if the session knows it.
    pub issued: Option<&'a IssuedJob>,
    /// Generation of the current chain tip.
    pub current_generation: u64,
    /// The session's difficulty now (it may have dropped since the job was issued).
    pub current_difficulty: Difficulty,
    pub current_target: Target,
    pub extranonce1: &'a Extranonce1,
    pub extranonce2_size: usize,
    /// The negotiated version-rolling mask, if any.
    pub version_mask: Option<VersionMask>,
    /// Unix time now.
    pub now: u32,
    /// The monotonic clock now (for the end of a replaced job's grace).
    pub at: Instant,
}

#[derive(Debug, Clone)]
pub struct Accepted {
    pub hash: BlockHash,
    pub header: Header,
    /// What the hash achieved.
    pub achieved: Difficulty,
    /// What the share is credited with: the easier of the job's and the current difficulty
    /// (a miner may apply a lower difficulty to the job it holds, and crediting the job's
    /// higher one then would pay for work not done).
    pub credited: Difficulty,
    /// The hash also meets the network target.
    pub is_block: bool,
}

pub fn validate(
    ctx: &ShareContext<'_>,
    submit: &Submit,
    dedup: &mut Dedup,
) -> Result<Accepted, Reject> {
    let issued = ctx.issued.ok_or(Reject::UnknownJob)?;
    let job = &issued.job;
    if job.generation != ctx.current_generation || issued.expires.is_some_and(|e| ctx.at >= e) {
        return Err(Reject::StaleJob);
    }
    if submit.extranonce2.len() != ctx.extranonce2_size {
        return Err(Reject::BadExtranonce2Size {
            expected: ctx.extranonce2_size,
            got: submit.extranonce2.len(),
        });
    }
    let ntime = submit.ntime.0;
    if ntime < job.notify.ntime.0 || ntime > ctx.now.saturating_add(MAX_NTIME_AHEAD_SECS) {
        return Err(Reject::NtimeOutOfRange);
    }
    let version = match (submit.version_bits, ctx.version_mask) {
        (None, _) => job.notify.version,
        (Some(bits), Some(mask)) if bits.0 & !mask.0 == 0 => job.notify.version.rolled(bits, mask),
        // Some firmware always sends the sixth parameter; zero bits change nothing.
        (Some(bits), None) if bits.0 == 0 => job.notify.version,
        (Some(_), _) => return Err(Reject::BadVersionBits),
    };
    let header = job.notify.header(
        ctx.extranonce1,
        &submit.extranonce2,
        submit.ntime,
        submit.nonce,
        version,
    );
    let hash = header_hash(&header);
    let (mut credited, target) = if ctx.current_difficulty < issued.difficulty {
        (ctx.current_difficulty, ctx.current_target)
    } else {
        (issued.difficulty, issued.target)
    };
    let is_block = job.template.target.is_met_by(&hash);
    if !target.is_met_by(&hash) {
        // A block is never refused, even where the network target is easier than the share
        // target (regtest); it is credited at the network difficulty then.
        if !is_block {
            return Err(Reject::LowDifficulty);
        }
        credited = job.template.target.difficulty();
    }
    if !dedup.insert(job.generation, &hash) {
        return Err(Reject::Duplicate);
    }
    Ok(Accepted {
        hash,
        header,
        achieved: Target::achieved_difficulty(&hash),
        credited,
        is_block,
    })
}
