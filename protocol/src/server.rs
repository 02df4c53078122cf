//! What a pool sends to a miner, typed: notifications and the structured results of
//! `mining.subscribe` and `mining.configure`.

use serde_json::{json, Map, Value};

use crate::error::ParamsError;
use crate::fields::{value_str, Extranonce1, VersionMask};
use crate::job::Notify;
use crate::jsonrpc::{Call, Id};
use crate::target::Difficulty;

pub const NOTIFY: &str = "mining.notify";
pub const SET_DIFFICULTY: &str = "mining.set_difficulty";
pub const SET_EXTRANONCE: &str = "mining.set_extranonce";
pub const SET_VERSION_MASK: &str = "mining.set_version_mask";
pub const RECONNECT: &str = "client.reconnect";
pub const SHOW_MESSAGE: &str = "client.show_message";

/// Every notification a pool may send.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerNotification {
    Notify(Notify),
    SetDifficulty(Difficulty),
    SetExtranonce {
        extranonce1: Extranonce1,
        extranonce2_size: usize,
    },
    SetVersionMask(VersionMask),
    /// Reconnect, to `host:port` when given, else to the same pool, after `wait_secs`.
    Reconnect {
        host: Option<String>,
        port: Option<u16>,
        wait_secs: Option<u64>,
    },
    ShowMessage(String),
}

/// The longest extranonce2 a pool may ask for, in bytes. Pools use 2 to 8; 16 leaves room for
/// proxies that split the space further, and keeps a hostile `2^64 - 1` from ever reaching an
/// allocation.
pub const MAX_EXTRANONCE2_SIZE: usize = 16;

/// The longest extranonce1 a pool may assign, in bytes (pools use 2 to 8).
pub const MAX_EXTRANONCE1_LEN: usize = 32;

/// An extranonce2 size as a pool sends it, checked against [`MAX_EXTRANONCE2_SIZE`].
fn extranonce2_size(v: Option<&Value>, index: usize) -> Result<usize, ParamsError> {
    let n = v.and_then(Value::as_u64).ok_or(ParamsError::Missing {
        index,
        name: "extranonce2_size",
    })?;
    usize::try_from(n)
        .ok()
        .filter(|n| *n <= MAX_EXTRANONCE2_SIZE)
        .ok_or_else(|| ParamsError::Invalid {
            name: "extranonce2_size",
            reason: format!("{n} bytes (at most {MAX_EXTRANONCE2_SIZE})"),
        })
}

/// An extranonce1 as a pool sends it, at most [`MAX_EXTRANONCE1_LEN`] bytes.
fn extranonce1(v: &Value) -> Result<Extranonce1, ParamsError> {
    let en1 = Extranonce1::from_hex(value_str("extranonce1", v)?)?;
    if en1.0.len() > MAX_EXTRANONCE1_LEN {
        return Err(ParamsError::Invalid {
            name: "extranonce1",
            reason: format!("{} bytes (at most {MAX_EXTRANONCE1_LEN})", en1.0.len()),
        });
    }
    Ok(en1)
}

/// A whole number as pools write it: `3333`, `3333.0` (pools in languages without integers)
/// or `"3333"`.
fn loose_uint(v: &Value) -> Option<u64> {
    v.as_u64()
        .or_else(|| {
            v.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= u32::MAX as f64)
                .map(|f| f as u64)
        })
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

impl ServerNotification {
    pub fn from_call(call: &Call) -> Result<ServerNotification, ParamsError> {
        let p = call.params.as_slice();
        let first = || {
            p.first().ok_or(ParamsError::Missing {
                index: 0,
                name: "param",
            })
        };
        Ok(match call.method.as_str() {
            NOTIFY => ServerNotification::Notify(Notify::from_params(p)?),
            SET_DIFFICULTY => {
                let v = first()?;
                let raw = v
                    .as_f64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                    .ok_or(ParamsError::WrongType {
                        name: "difficulty",
                        expected: "a number",
                    })?;
                ServerNotification::SetDifficulty(Difficulty::new(raw).map_err(|e| {
                    ParamsError::Invalid {
                        name: "difficulty",
                        reason: e.to_string(),
                    }
                })?)
            }
            SET_EXTRANONCE => ServerNotification::SetExtranonce {
                extranonce1: extranonce1(first()?)?,
                extranonce2_size: extranonce2_size(p.get(1), 1)?,
            },
            SET_VERSION_MASK => ServerNotification::SetVersionMask(VersionMask::from_hex(
                value_str("version_mask", first()?)?,
            )?),
            RECONNECT => ServerNotification::Reconnect {
                host: p
                    .first()
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
                port: p
                    .get(1)
                    .and_then(loose_uint)
                    .and_then(|n| u16::try_from(n).ok()),
                wait_secs: p.get(2).and_then(loose_uint),
            },
            SHOW_MESSAGE => ServerNotification::ShowMessage(
                p.first()
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            ),
            other => return Err(ParamsError::UnknownMethod(other.to_owned())),
        })
    }

    pub fn method(&self) -> &'static str {
        match self {
            ServerNotification::Notify(_) => NOTIFY,
            ServerNotification::SetDifficulty(_) => SET_DIFFICULTY,
            ServerNotification::SetExtranonce { .. } => SET_EXTRANONCE,
            ServerNotification::SetVersionMask(_) => SET_VERSION_MASK,
            ServerNotification::Reconnect { .. } => RECONNECT,
            ServerNotification::ShowMessage(_) => SHOW_MESSAGE,
        }
    }

    pub fn to_params(&self) -> Vec<Value> {
        match self {
            ServerNotification::Notify(n) => n.to_params(),
            ServerNotification::SetDifficulty(d) => vec![json!(d.as_f64())],
            ServerNotification::SetExtranonce {
                extranonce1,
                extranonce2_size,
            } => vec![json!(extranonce1.to_hex()), json!(extranonce2_size)],
            ServerNotification::SetVersionMask(m) => vec![json!(m.to_hex())],
            ServerNotification::Reconnect {
                host,
                port,
                wait_secs,
            } => {
                let mut v = Vec::new();
                if host.is_some() || port.is_some() || wait_secs.is_some() {
                    v.push(json!(host.clone().unwrap_or_default()));
                    v.push(port.map_or(Value::Null, |p| json!(p)));
                    v.push(wait_secs.map_or(Value::Null, |w| json!(w)));
                }
                v
            }
            ServerNotification::ShowMessage(m) => vec![json!(m)],
        }
    }

    /// As a notification call (`id` null).
    pub fn to_call(&self) -> Call {
        Call {
            id: Id::Null,
            method: self.method().to_owned(),
            params: self.to_params(),
        }
    }
}

/// The result of `mining.subscribe`: `[[subscriptions], extranonce1, extranonce2_size]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeResult {
    /// `(method, subscription id)` pairs; informational, miners ignore them.
    pub subscriptions: Vec<(String, String)>,
    pub extranonce1: Extranonce1,
    pub extranonce2_size: usize,
}

impl SubscribeResult {
    pub fn to_value(&self) -> Value {
        json!([
            self.subscriptions
                .iter()
                .map(|(m, id)| json!([m, id]))
                .collect::<Vec<_>>(),
            self.extranonce1.to_hex(),
            self.extranonce2_size
        ])
    }

    /// Parse, accepting both a list of pairs and a single bare pair as the first element.
    /// Sizes beyond [`MAX_EXTRANONCE1_LEN`] / [`MAX_EXTRANONCE2_SIZE`] are refused.
    pub fn from_value(v: &Value) -> Result<SubscribeResult, ParamsError> {
        let a = v.as_array().ok_or(ParamsError::WrongType {
            name: "subscribe result",
            expected: "an array",
        })?;
        let pair = |p: &Value| -> Option<(String, String)> {
            let p = p.as_array()?;
            Some((
                p.first()?.as_str()?.to_owned(),
                p.get(1)
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))?,
            ))
        };
        let subscriptions = match a.first() {
            Some(Value::Array(items)) if items.first().is_some_and(Value::is_array) => {
                items.iter().filter_map(pair).collect()
            }
            Some(p @ Value::Array(_)) => pair(p).into_iter().collect(),
            _ => Vec::new(),
        };
        let extranonce1 = extranonce1(a.get(1).ok_or(ParamsError::Missing {
            index: 1,
            name: "extranonce1",
        })?)?;
        let extranonce2_size = extranonce2_size(a.get(2), 2)?;
        Ok(SubscribeResult {
            subscriptions,
            extranonce1,
            extranonce2_size,
        })
    }
}

/// The result of `mining.configure` as far as version rolling goes.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigureResult {
    /// The mask the pool granted, or `None` when it refused (or did not answer) version rolling.
    pub version_rolling: Option<VersionMask>,
    /// Answers about other extensions, passed through.
    pub other: Map<String, Value>,
}

impl ConfigureResult {
    pub fn to_value(&self) -> Value {
        let mut m = self.other.clone();
        match self.version_rolling {
            Some(mask) => {
                m.insert("version-rolling".into(), json!(true));
                m.insert("version-rolling.mask".into(), json!(mask.to_hex()));
            }
            None => {
                m.insert("version-rolling".into(), json!(false));
            }
        }
        Value::Object(m)
    }

    pub fn from_value(v: &Value) -> Result<ConfigureResult, ParamsError> {
        let mut m = v.as_object().cloned().ok_or(ParamsError::WrongType {
            name: "configure result",
            expected: "an object",
        })?;
        let granted = m
            .remove("version-rolling")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        let mask = m.remove("version-rolling.mask");
        let version_rolling = match (granted, mask) {
            (true, Some(mask)) => Some(VersionMask::from_hex(value_str(
                "version-rolling.mask",
                &mask,
            )?)?),
            (true, None) => Some(VersionMask(u32::MAX)),
            (false, _) => None,
        };
        Ok(ConfigureResult {
            version_rolling,
            other: m,
        })
    }
}
