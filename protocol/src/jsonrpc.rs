//! The JSON-RPC 1.0 envelope Stratum V1 uses: every line is either a call (`method` and
//! `params`, with an `id` that is null for notifications) or a response (`result` or `error`).
//!
//! Real miners and pools are loose here: ids come as numbers, strings or null, `params` may be
//! missing or null, `jsonrpc` keys appear or not. Parsing accepts all of that; writing always
//! produces the classic form `{"id":..,"method":..,"params":[..]}` /
//! `{"id":..,"result":..,"error":..}` that every miner understands.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{FrameError, StratumError};

/// A request id, echoed back verbatim in the response.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Id {
    Number(serde_json::Number),
    String(String),
    #[default]
    Null,
}

impl Id {
    pub fn number(n: u64) -> Id {
        Id::Number(n.into())
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Id::Null)
    }

    /// The id as an integer, when it is one (clients match responses by it).
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Id::Number(n) => n.as_u64(),
            Id::String(s) => s.parse().ok(),
            Id::Null => None,
        }
    }
}

/// A method call: a request when `id` is not null, a notification when it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub id: Id,
    pub method: String,
    pub params: Vec<Value>,
}

/// A response to an earlier call.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub id: Id,
    pub outcome: Result<Value, StratumError>,
}

/// One line of Stratum.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Call(Call),
    Response(Response),
}

impl Message {
    /// Parse one line (without its line ending).
    pub fn from_json(line: &str) -> Result<Message, FrameError> {
        let value: Value =
            serde_json::from_str(line).map_err(|e| FrameError::InvalidJson(e.to_string()))?;
        Message::from_value(value)
    }

    /// Parse one already-decoded JSON value.
    pub fn from_value(value: Value) -> Result<Message, FrameError> {
        let Value::Object(mut obj) = value else {
            return Err(FrameError::NotAMessage("not a JSON object".into()));
        };
        let id = match obj.remove("id") {
            None | Some(Value::Null) => Id::Null,
            Some(v) => serde_json::from_value(v).map_err(|_| {
                FrameError::NotAMessage("id must be a number, string or null".into())
            })?,
        };
        match obj.remove("method") {
            Some(Value::String(method)) => {
                let params = match obj.remove("params") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::Array(a)) => a,
                    // A few clients send a bare value or an object; keep it as one parameter.
                    Some(other) => vec![other],
                };
                Ok(Message::Call(Call { id, method, params }))
            }
            Some(_) => Err(FrameError::NotAMessage("method must be a string".into())),
            None => {
                let error = obj.remove("error").unwrap_or(Value::Null);
                let result = obj.remove("result");
                if result.is_none() && error.is_null() {
                    return Err(FrameError::NotAMessage(
                        "neither method nor result nor error".into(),
                    ));
                }
                let outcome = if error.is_null() {
                    Ok(result.unwrap_or(Value::Null))
                } else {
                    Err(serde_json::from_value::<StratumError>(error)
                        .map_err(|e| FrameError::NotAMessage(format!("bad error field: {e}")))?)
                };
                Ok(Message::Response(Response { id, outcome }))
            }
        }
    }

    pub fn to_value(&self) -> Value {
        let mut obj = Map::new();
        match self {
            Message::Call(c) => {
                obj.insert("id".into(), serde_json::to_value(&c.id).expect("id"));
                obj.insert("method".into(), Value::String(c.method.clone()));
                obj.insert("params".into(), Value::Array(c.params.clone()));
            }
            Message::Response(r) => {
                obj.insert("id".into(), serde_json::to_value(&r.id).expect("id"));
                match &r.outcome {
                    Ok(v) => {
                        obj.insert("result".into(), v.clone());
                        obj.insert("error".into(), Value::Null);
                    }
                    Err(e) => {
                        obj.insert("result".into(), Value::Null);
                        obj.insert("error".into(), serde_json::to_value(e).expect("error"));
                    }
                }
            }
        }
        Value::Object(obj)
    }

    /// The JSON text of this message, without a line ending.
    pub fn to_json(&self) -> String {
        self.to_value().to_string()
    }

    pub fn ok(id: Id, result: Value) -> Message {
        Message::Response(Response {
            id,
            outcome: Ok(result),
        })
    }

    pub fn err(id: Id, error: StratumError) -> Message {
        Message::Response(Response {
            id,
            outcome: Err(error),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn ids_of_every_kind_survive() {
        for (line, id) in [
            (r#"{"id":7,"method":"m","params":[]}"#, Id::number(7)),
            (
                r#"{"id":"abc","method":"m","params":[]}"#,
                Id::String("abc".into()),
            ),
            (r#"{"id":null,"method":"m","params":[]}"#, Id::Null),
            (r#"{"method":"m"}"#, Id::Null),
        ] {
            let Message::Call(c) = Message::from_json(line).unwrap() else {
                panic!("not a call")
            };
            assert_eq!(c.id, id);
        }
    }

    #[test]
    fn error_in_object_form_is_accepted() {
        let m = Message::from_json(
            r#"{"id":4,"result":null,"error":{"code":23,"message":"Low difficulty share"}}"#,
        )
        .unwrap();
        let Message::Response(r) = m else { panic!() };
        assert_eq!(r.outcome.unwrap_err().code, ErrorCode::LowDifficulty);
    }

    #[test]
    fn non_objects_are_typed_errors() {
        assert!(matches!(
            Message::from_json("[1,2]"),
            Err(FrameError::NotAMessage(_))
        ));
        assert!(matches!(
            Message::from_json("{nope"),
            Err(FrameError::InvalidJson(_))
        ));
    }
}
