//! The calls a miner sends to a pool, typed.
//!
//! Parsing is lenient where real miners differ (extra trailing parameters, job ids as numbers,
//! difficulties as strings, hex in upper case) and strict where a wrong value would corrupt work
//! (hex lengths of header fields).

use serde_json::{json, Map, Value};

use crate::error::ParamsError;
use crate::fields::{
    value_str, Extranonce2, JobId, Nonce, Ntime, SubscriptionId, Version, VersionMask, WorkerName,
};
use crate::jsonrpc::{Call, Id};
use crate::target::Difficulty;

pub const SUBSCRIBE: &str = "mining.subscribe";
pub const AUTHORIZE: &str = "mining.authorize";
pub const SUBMIT: &str = "mining.submit";
pub const CONFIGURE: &str = "mining.configure";
pub const SUGGEST_DIFFICULTY: &str = "mining.suggest_difficulty";
pub const EXTRANONCE_SUBSCRIBE: &str = "mining.extranonce.subscribe";

/// `mining.submit`: a share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submit {
    pub worker: WorkerName,
    pub job_id: JobId,
    pub extranonce2: Extranonce2,
    pub ntime: Ntime,
    pub nonce: Nonce,
    /// BIP 310: the rolled version bits, when version rolling was negotiated.
    pub version_bits: Option<Version>,
}

/// BIP 310 `version-rolling` parameters of a `mining.configure` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionRollingRequest {
    pub mask: VersionMask,
    pub min_bit_count: u32,
}

/// `mining.configure` (BIP 310): extension names and their parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Configure {
    pub extensions: Vec<String>,
    pub params: Map<String, Value>,
}

impl Configure {
    pub fn version_rolling(mask: VersionMask, min_bit_count: u32) -> Configure {
        let mut params = Map::new();
        params.insert("version-rolling.mask".into(), json!(mask.to_hex()));
        params.insert("version-rolling.min-bit-count".into(), json!(min_bit_count));
        Configure {
            extensions: vec!["version-rolling".into()],
            params,
        }
    }

    /// The version-rolling request, when the miner asked for it. A missing mask means "all
    /// bits" as BIP 310 says; a malformed one is an error.
    pub fn version_rolling_request(&self) -> Result<Option<VersionRollingRequest>, ParamsError> {
        if !self.extensions.iter().any(|e| e == "version-rolling") {
            return Ok(None);
        }
        let mask = match self.params.get("version-rolling.mask") {
            None => VersionMask(u32::MAX),
            Some(v) => VersionMask::from_hex(value_str("version-rolling.mask", v)?)?,
        };
        let min_bit_count = self
            .params
            .get("version-rolling.min-bit-count")
            .and_then(Value::as_u64)
            .unwrap_or(0) as u32;
        Ok(Some(VersionRollingRequest {
            mask,
            min_bit_count,
        }))
    }
}

/// Every call a miner may make.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientRequest {
    /// `mining.subscribe [user_agent, session_id?]`
    Subscribe {
        user_agent: Option<String>,
        /// The subscription id of an earlier session the miner would like to resume.
        resume: Option<SubscriptionId>,
    },
    /// `mining.authorize [worker, password]`
    Authorize {
        worker: WorkerName,
        password: Option<String>,
    },
    Submit(Submit),
    Configure(Configure),
    /// `mining.suggest_difficulty [difficulty]`
    SuggestDifficulty(Difficulty),
    /// `mining.extranonce.subscribe []` (NiceHash extension)
    ExtranonceSubscribe,
}

fn param<'a>(p: &'a [Value], index: usize, name: &'static str) -> Result<&'a Value, ParamsError> {
    p.get(index).ok_or(ParamsError::Missing { index, name })
}

fn str_param<'a>(p: &'a [Value], index: usize, name: &'static str) -> Result<&'a str, ParamsError> {
    value_str(name, param(p, index, name)?)
}

/// A string parameter, also accepting a number (some firmware sends job ids as numbers).
fn string_like(p: &[Value], index: usize, name: &'static str) -> Result<String, ParamsError> {
    match param(p, index, name)? {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(ParamsError::WrongType {
            name,
            expected: "a string",
        }),
    }
}

fn difficulty_param(v: &Value) -> Result<Difficulty, ParamsError> {
    let raw = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .ok_or(ParamsError::WrongType {
        name: "difficulty",
        expected: "a number",
    })?;
    Difficulty::new(raw).map_err(|e| ParamsError::Invalid {
        name: "difficulty",
        reason: e.to_string(),
    })
}

impl Submit {
    pub fn from_params(p: &[Value]) -> Result<Submit, ParamsError> {
        let version_bits = match p.get(5) {
            None | Some(Value::Null) => None,
            Some(v) => Some(value_str("version_bits", v)?),
        };
        Submit::from_fields(
            str_param(p, 0, "worker")?,
            &string_like(p, 1, "job_id")?,
            str_param(p, 2, "extranonce2")?,
            str_param(p, 3, "ntime")?,
            str_param(p, 4, "nonce")?,
            version_bits,
        )
    }

    /// A submit from its fields as text (`job_id` already a string), checked as
    /// [`Submit::from_params`] checks them.
    pub fn from_fields(
        worker: &str,
        job_id: &str,
        extranonce2: &str,
        ntime: &str,
        nonce: &str,
        version_bits: Option<&str>,
    ) -> Result<Submit, ParamsError> {
        Ok(Submit {
            worker: WorkerName::new(worker),
            job_id: JobId::new(job_id),
            extranonce2: Extranonce2::from_hex(extranonce2)?,
            ntime: Ntime::from_hex(ntime)?,
            nonce: Nonce::from_hex(nonce)?,
            version_bits: version_bits.map(Version::from_hex).transpose()?,
        })
    }

    pub fn to_params(&self) -> Vec<Value> {
        let mut v = vec![
            json!(self.worker.as_str()),
            json!(self.job_id.as_str()),
            json!(self.extranonce2.to_hex()),
            json!(self.ntime.to_hex()),
            json!(self.nonce.to_hex()),
        ];
        if let Some(bits) = self.version_bits {
            v.push(json!(bits.to_hex()));
        }
        v
    }
}

impl ClientRequest {
    /// The typed request behind a call; unknown methods are an error the pool answers with 20.
    pub fn from_call(call: &Call) -> Result<ClientRequest, ParamsError> {
        let p = call.params.as_slice();
        Ok(match call.method.as_str() {
            SUBSCRIBE => ClientRequest::Subscribe {
                user_agent: p.first().and_then(Value::as_str).map(str::to_owned),
                resume: match p.get(1) {
                    Some(Value::String(s)) => SubscriptionId::parse(s),
                    _ => None,
                },
            },
            AUTHORIZE => ClientRequest::Authorize {
                worker: WorkerName::new(str_param(p, 0, "worker")?),
                // An empty password is no password (we send "" for none: some pools want
                // two parameters).
                password: p
                    .get(1)
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            },
            SUBMIT => ClientRequest::Submit(Submit::from_params(p)?),
            CONFIGURE => {
                let extensions = match param(p, 0, "extensions")? {
                    Value::Array(a) => a
                        .iter()
                        .map(|e| value_str("extensions", e).map(str::to_owned))
                        .collect::<Result<Vec<_>, _>>()?,
                    _ => {
                        return Err(ParamsError::WrongType {
                            name: "extensions",
                            expected: "an array of strings",
                        })
                    }
                };
                let params = match p.get(1) {
                    Some(Value::Object(m)) => m.clone(),
                    None | Some(Value::Null) => Map::new(),
                    Some(_) => {
                        return Err(ParamsError::WrongType {
                            name: "extension-params",
                            expected: "an object",
                        })
                    }
                };
                ClientRequest::Configure(Configure { extensions, params })
            }
            SUGGEST_DIFFICULTY => {
                ClientRequest::SuggestDifficulty(difficulty_param(param(p, 0, "difficulty")?)?)
            }
            EXTRANONCE_SUBSCRIBE => ClientRequest::ExtranonceSubscribe,
            other => return Err(ParamsError::UnknownMethod(other.to_owned())),
        })
    }

    pub fn method(&self) -> &'static str {
        match self {
            ClientRequest::Subscribe { .. } => SUBSCRIBE,
            ClientRequest::Authorize { .. } => AUTHORIZE,
            ClientRequest::Submit(_) => SUBMIT,
            ClientRequest::Configure(_) => CONFIGURE,
            ClientRequest::SuggestDifficulty(_) => SUGGEST_DIFFICULTY,
            ClientRequest::ExtranonceSubscribe => EXTRANONCE_SUBSCRIBE,
        }
    }

    pub fn to_params(&self) -> Vec<Value> {
        match self {
            ClientRequest::Subscribe { user_agent, resume } => {
                let mut v = Vec::new();
                if let Some(ua) = user_agent {
                    v.push(json!(ua));
                    if let Some(r) = resume {
                        v.push(json!(r.as_str()));
                    }
                }
                v
            }
            ClientRequest::Authorize { worker, password } => vec![
                json!(worker.as_str()),
                json!(password.as_deref().unwrap_or("")),
            ],
            ClientRequest::Submit(s) => s.to_params(),
            ClientRequest::Configure(c) => {
                vec![json!(c.extensions), Value::Object(c.params.clone())]
            }
            ClientRequest::SuggestDifficulty(d) => vec![json!(d.as_f64())],
            ClientRequest::ExtranonceSubscribe => Vec::new(),
        }
    }

    pub fn to_call(&self, id: Id) -> Call {
        Call {
            id,
            method: self.method().to_owned(),
            params: self.to_params(),
        }
    }
}
