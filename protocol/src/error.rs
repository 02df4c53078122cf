//! Errors in Stratum's own terms: the numbered error codes that go on the wire, and the typed
//! reasons a line or a parameter list could not be understood.

use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// The error codes Stratum V1 pools and miners agree on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 20: anything else (malformed parameters, unknown method, internal trouble).
    Other,
    /// 21: job not found, or stale.
    JobNotFound,
    /// 22: duplicate share.
    Duplicate,
    /// 23: share above target (low difficulty).
    LowDifficulty,
    /// 24: unauthorized worker.
    Unauthorized,
    /// 25: not subscribed.
    NotSubscribed,
    /// Any other number a peer sends.
    Unknown(i64),
}

impl ErrorCode {
    pub fn code(self) -> i64 {
        match self {
            ErrorCode::Other => 20,
            ErrorCode::JobNotFound => 21,
            ErrorCode::Duplicate => 22,
            ErrorCode::LowDifficulty => 23,
            ErrorCode::Unauthorized => 24,
            ErrorCode::NotSubscribed => 25,
            ErrorCode::Unknown(c) => c,
        }
    }

    pub fn from_code(code: i64) -> Self {
        match code {
            20 => ErrorCode::Other,
            21 => ErrorCode::JobNotFound,
            22 => ErrorCode::Duplicate,
            23 => ErrorCode::LowDifficulty,
            24 => ErrorCode::Unauthorized,
            25 => ErrorCode::NotSubscribed,
            c => ErrorCode::Unknown(c),
        }
    }
}

/// An error as sent in a response's `error` field: `[code, "message", null]`.
///
/// Parsing also accepts the object form `{"code": .., "message": ..}` that some pools send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StratumError {
    pub code: ErrorCode,
    pub message: String,
}

impl StratumError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        StratumError {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for StratumError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code.code())
    }
}

impl std::error::Error for StratumError {}

impl Serialize for StratumError {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(3))?;
        seq.serialize_element(&self.code.code())?;
        seq.serialize_element(&self.message)?;
        seq.serialize_element(&Value::Null)?;
        seq.end()
    }
}

impl<'de> Deserialize<'de> for StratumError {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StratumError;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("[code, message, data] or {code, message}")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StratumError, A::Error> {
                let code: i64 = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let message: Option<String> = seq.next_element()?;
                while seq.next_element::<de::IgnoredAny>()?.is_some() {}
                Ok(StratumError::new(
                    ErrorCode::from_code(code),
                    message.unwrap_or_default(),
                ))
            }
            fn visit_map<A: de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<StratumError, A::Error> {
                let mut code = None;
                let mut message = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "code" => code = Some(map.next_value::<i64>()?),
                        "message" => message = Some(map.next_value::<String>()?),
                        _ => {
                            map.next_value::<de::IgnoredAny>()?;
                        }
                    }
                }
                let code = code.ok_or_else(|| de::Error::missing_field("code"))?;
                Ok(StratumError::new(
                    ErrorCode::from_code(code),
                    message.unwrap_or_default(),
                ))
            }
        }
        d.deserialize_any(V)
    }
}

/// Why a method's parameter list was refused. Maps to code 20 on the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    #[error("missing parameter {index} ({name})")]
    Missing { index: usize, name: &'static str },
    #[error("parameter {name} must be {expected}")]
    WrongType {
        name: &'static str,
        expected: &'static str,
    },
    #[error("parameter {name} is not hex: {reason}")]
    Hex { name: &'static str, reason: String },
    #[error("parameter {name} must be {expected} hex characters, got {got}")]
    HexLength {
        name: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("parameter {name}: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[error("unknown method {0:?}")]
    UnknownMethod(String),
}

impl ParamsError {
    /// The response error a server sends for this: always code 20, with this text.
    pub fn to_stratum(&self) -> StratumError {
        StratumError::new(ErrorCode::Other, self.to_string())
    }
}

/// A line that could not become a message. The connection survives these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("line longer than {max} bytes")]
    LineTooLong { max: usize },
    #[error("line is not valid UTF-8")]
    InvalidUtf8,
    #[error("line is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("JSON is not a Stratum message: {0}")]
    NotAMessage(String),
}
