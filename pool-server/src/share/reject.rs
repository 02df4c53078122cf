//! Why a share was refused: the Stratum code miners see, the text they see, and the short
//! label that metrics and the share store use.

use protocol::{ErrorCode, StratumError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reject {
    UnknownJob,
    StaleJob,
    Duplicate,
    LowDifficulty,
    Unauthorized,
    NotSubscribed,
    BadExtranonce2Size { expected: usize, got: usize },
    NtimeOutOfRange,
    BadVersionBits,
    Malformed(String),
}

impl Reject {
    pub fn code(&self) -> ErrorCode {
        match self {
            Reject::UnknownJob | Reject::StaleJob => ErrorCode::JobNotFound,
            Reject::Duplicate => ErrorCode::Duplicate,
            Reject::LowDifficulty => ErrorCode::LowDifficulty,
            Reject::Unauthorized => ErrorCode::Unauthorized,
            Reject::NotSubscribed => ErrorCode::NotSubscribed,
            Reject::BadExtranonce2Size { .. }
            | Reject::NtimeOutOfRange
            | Reject::BadVersionBits
            | Reject::Malformed(_) => ErrorCode::Other,
        }
    }

    /// Stable label for metrics and the `shares.reason` column.
    pub fn label(&self) -> &'static str {
        match self {
            Reject::UnknownJob => "job-not-found",
            Reject::StaleJob => "stale",
            Reject::Duplicate => "duplicate",
            Reject::LowDifficulty => "low-difficulty",
            Reject::Unauthorized => "unauthorized",
            Reject::NotSubscribed => "not-subscribed",
            Reject::BadExtranonce2Size { .. } => "bad-extranonce2-size",
            Reject::NtimeOutOfRange => "ntime-out-of-range",
            Reject::BadVersionBits => "bad-version-bits",
            Reject::Malformed(_) => "malformed",
        }
    }

    pub fn message(&self) -> String {
        match self {
            Reject::UnknownJob => "Job not found".into(),
            Reject::StaleJob => "Stale job".into(),
            Reject::Duplicate => "Duplicate share".into(),
            Reject::LowDifficulty => "Low difficulty share".into(),
            Reject::Unauthorized => "Unauthorized worker".into(),
            Reject::NotSubscribed => "Not subscribed".into(),
            Reject::BadExtranonce2Size { expected, got } => {
                format!("Incorrect size of extranonce2: expected {expected} bytes, got {got}")
            }
            Reject::NtimeOutOfRange => "ntime out of range".into(),
            Reject::BadVersionBits => "Version bits outside the negotiated mask".into(),
            Reject::Malformed(m) => m.clone(),
        }
    }

    pub fn to_stratum(&self) -> StratumError {
        StratumError::new(self.code(), self.message())
    }

    /// Every label, for pre-registering metric series.
    pub const LABELS: [&'static str; 10] = [
        "job-not-found",
        "stale",
        "duplicate",
        "low-difficulty",
        "unauthorized",
        "not-subscribed",
        "bad-extranonce2-size",
        "ntime-out-of-range",
        "bad-version-bits",
        "malformed",
    ];
}
