//! How a [`ShareRecord`] is stored compactly, in both databases: the reject reason as a small
//! code, the job id as an integer when it is canonical hex (as this pool issues them), the
//! block hash as bytes and only on block shares, and the minute and hour a share counts in
//! for the rollups. Each mapping round-trips: what the API reads back is what was recorded.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::ShareRecord;

/// Reason codes as stored (`share_reasons` in PostgreSQL lists them too). Append only: a
/// code once written never changes meaning.
pub const REASONS: [(i16, &str); 12] = [
    (0, "accepted"),
    (1, "job-not-found"),
    (2, "stale"),
    (3, "duplicate"),
    (4, "low-difficulty"),
    (5, "unauthorized"),
    (6, "not-subscribed"),
    (7, "bad-extranonce2-size"),
    (8, "ntime-out-of-range"),
    (9, "bad-version-bits"),
    (10, "malformed"),
    (OTHER, "other"),
];

pub const ACCEPTED: i16 = 0;
/// A reason this version does not know (from a spool written by another version).
pub const OTHER: i16 = 99;

/// The stored code of a share's outcome.
pub fn reason_code(s: &ShareRecord) -> i16 {
    if s.accepted {
        return ACCEPTED;
    }
    let label = s.reason.as_deref().unwrap_or("other");
    REASONS
        .iter()
        .find(|(_, l)| *l == label)
        .map_or(OTHER, |(c, _)| *c)
}

/// The label of a stored code (`None` for an accepted share).
pub fn reason_label(code: i16) -> Option<&'static str> {
    if code == ACCEPTED {
        return None;
    }
    Some(
        REASONS
            .iter()
            .find(|(c, _)| *c == code)
            .map_or("other", |(_, l)| l),
    )
}

/// A job id as an integer when it is canonical lowercase hex of at most 16 digits (so it
/// reads back the same), else the text.
pub fn split_job(job: &str) -> (Option<i64>, Option<&str>) {
    let canonical = !job.is_empty()
        && job.len() <= 16
        && job.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && (job == "0" || !job.starts_with('0'));
    match canonical.then(|| u64::from_str_radix(job, 16)) {
        Some(Ok(n)) => (Some(n as i64), None),
        _ => (None, Some(job)),
    }
}

/// The job id [`split_job`] stored.
pub fn join_job(job: Option<i64>, text: Option<String>) -> String {
    match job {
        Some(n) => format!("{:x}", n as u64),
        None => text.unwrap_or_default(),
    }
}

/// A block hash as stored: its 32 bytes in display order (what the hex shows).
pub fn hash_bytes(hex_hash: Option<&str>) -> Option<Vec<u8>> {
    hex_hash.and_then(|h| hex::decode(h).ok())
}

pub fn hash_hex(bytes: Option<Vec<u8>>) -> Option<String> {
    bytes.map(hex::encode)
}

/// Each worker `shares` name, in name order, with the first and last time it appears.
pub fn worker_spans<'a>(
    shares: &[&'a ShareRecord],
) -> BTreeMap<&'a str, (DateTime<Utc>, DateTime<Utc>)> {
    let mut seen: BTreeMap<&str, (DateTime<Utc>, DateTime<Utc>)> = BTreeMap::new();
    for s in shares {
        let e = seen
            .entry(s.worker.as_str())
            .or_insert((s.created_at, s.created_at));
        e.0 = e.0.min(s.created_at);
        e.1 = e.1.max(s.created_at);
    }
    seen
}

/// The start of the minute `t` falls in, in unix seconds.
pub fn minute_of(t: DateTime<Utc>) -> i64 {
    t.timestamp().div_euclid(60) * 60
}

/// The start of the hour a minute falls in, in unix seconds.
pub fn hour_of(minute: i64) -> i64 {
    minute.div_euclid(3600) * 3600
}

/// A share row as both databases return it: id, worker name, session, job, job text,
/// height, assigned and achieved difficulty, reason code, block hash, unix microseconds.
pub type StoredShare = (
    uuid::Uuid,
    String,
    i64,
    Option<i64>,
    Option<String>,
    i64,
    f64,
    f64,
    i16,
    Option<Vec<u8>>,
    i64,
);

/// The record a [`StoredShare`] was written from.
pub fn record(row: StoredShare) -> ShareRecord {
    let (id, worker, session_id, job, job_text, height, assigned, achieved, reason, hash, us) = row;
    ShareRecord {
        id,
        worker,
        session_id,
        job_id: join_job(job, job_text),
        height,
        assigned_difficulty: assigned,
        achieved_difficulty: achieved,
        accepted: reason == ACCEPTED,
        reason: reason_label(reason).map(str::to_owned),
        block_hash: hash_hex(hash),
        created_at: from_micros(us),
    }
}

/// Unix microseconds (SQLite's share time).
pub fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub fn from_micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_round_trip() {
        for job in [
            "0",
            "1f",
            "ffffffffffffffff",
            "01",
            "1F",
            "xyz",
            "",
            "10000000000000000",
        ] {
            let (n, t) = split_job(job);
            assert_eq!(join_job(n, t.map(str::to_owned)), job, "{job}");
        }
        assert_eq!(split_job("ffffffffffffffff").0, Some(-1));
        assert_eq!(split_job("01").0, None);
    }

    #[test]
    fn every_reject_label_has_its_own_code() {
        use crate::share::reject::Reject;
        let all = [
            Reject::UnknownJob,
            Reject::StaleJob,
            Reject::Duplicate,
            Reject::LowDifficulty,
            Reject::Unauthorized,
            Reject::NotSubscribed,
            Reject::BadExtranonce2Size {
                expected: 4,
                got: 2,
            },
            Reject::NtimeOutOfRange,
            Reject::BadVersionBits,
            Reject::Malformed(String::new()),
        ];
        let mut codes = std::collections::BTreeSet::new();
        for r in all {
            let code = REASONS.iter().find(|(_, l)| *l == r.label()).unwrap().0;
            assert!(code != ACCEPTED && code != OTHER && codes.insert(code));
            assert_eq!(reason_label(code), Some(r.label()));
        }
    }
}
