//! A line as a pool reads it: `mining.submit`, nearly every line a pool receives, is read
//! straight into a [`Submit`] without building a JSON tree; anything else, and any submit
//! the quick reading does not take (escaped strings, numeric job ids, a parameter of the wrong
//! shape), goes to the general parser, which also says precisely what is wrong.
//!
//! The quick reading is serde's own JSON parser over borrowed text: key order, whitespace and
//! extra keys (`"jsonrpc":"2.0"`, as some firmware sends) are all accepted as the general
//! parser accepts them.

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;

use crate::client::{Submit, SUBMIT};
use crate::codec::FromLine;
use crate::error::FrameError;
use crate::jsonrpc::{Id, Message};

/// One line from a miner.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    /// A `mining.submit` whose parameters all parsed.
    Submit { id: Id, submit: Submit },
    /// Any other message (a submit the quick reading did not take among them).
    Message(Message),
}

impl Inbound {
    pub fn from_json(line: &str) -> Result<Inbound, FrameError> {
        if let Some((id, submit)) = quick_submit(line) {
            return Ok(Inbound::Submit { id, submit });
        }
        Message::from_json(line).map(Inbound::Message)
    }
}

impl FromLine for Inbound {
    fn from_line(line: &str) -> Result<Self, FrameError> {
        Inbound::from_json(line)
    }
}

#[derive(Deserialize)]
struct SubmitCall<'a> {
    #[serde(default)]
    id: QuickId,
    #[serde(borrow)]
    method: &'a str,
    #[serde(borrow)]
    params: SubmitParams<'a>,
}

/// A numeric (unsigned integer) or string id, or null; anything else is left to the general
/// parser.
#[derive(Default)]
struct QuickId(Id);

impl<'de> Deserialize<'de> for QuickId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = QuickId;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an id")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<QuickId, E> {
                Ok(QuickId(Id::number(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<QuickId, E> {
                Ok(QuickId(Id::String(v.to_owned())))
            }
            fn visit_unit<E: de::Error>(self) -> Result<QuickId, E> {
                Ok(QuickId(Id::Null))
            }
        }
        d.deserialize_any(V)
    }
}

/// Five strings and an optional sixth (version bits, or null).
struct SubmitParams<'a>([&'a str; 5], Option<&'a str>);

impl<'de: 'a, 'a> Deserialize<'de> for SubmitParams<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = SubmitParams<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("five or six strings")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut five = [""; 5];
                for (i, field) in five.iter_mut().enumerate() {
                    *field = seq
                        .next_element::<&'de str>()?
                        .ok_or_else(|| de::Error::invalid_length(i, &self))?;
                }
                let sixth = seq.next_element::<Option<&'de str>>()?.flatten();
                // More than six: the general parser's business.
                if seq.next_element::<IgnoredAny>()?.is_some() {
                    return Err(de::Error::invalid_length(7, &self));
                }
                Ok(SubmitParams(five, sixth))
            }
        }
        d.deserialize_seq(V(std::marker::PhantomData))
    }
}

/// `(id, submit)` when `line` is a `mining.submit` the quick reading takes.
fn quick_submit(line: &str) -> Option<(Id, Submit)> {
    // Cheap refusals first: most other lines never reach the parser.
    if !line.contains(SUBMIT) {
        return None;
    }
    let call: SubmitCall = serde_json::from_str(line).ok()?;
    if call.method != SUBMIT {
        return None;
    }
    let SubmitParams([worker, job, en2, ntime, nonce], version) = call.params;
    let submit = Submit::from_fields(worker, job, en2, ntime, nonce, version).ok()?;
    Some((call.id.0, submit))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ClientRequest;

    /// What the general parser makes of a line, as an [`Inbound`].
    fn general(line: &str) -> Result<(Id, Submit), String> {
        let Message::Call(call) = Message::from_json(line).map_err(|e| e.to_string())? else {
            return Err("not a call".into());
        };
        match ClientRequest::from_call(&call).map_err(|e| e.to_string())? {
            ClientRequest::Submit(s) => Ok((call.id, s)),
            _ => Err("not a submit".into()),
        }
    }

    #[test]
    fn quick_and_general_readings_agree_on_every_submit_they_both_take() {
        for line in [
            r#"{"id":4,"method":"mining.submit","params":["w.1","1f","00000001","66500000","deadbeef"]}"#,
            r#"{"params": ["w.1", "1f", "00000001", "66500000", "deadbeef"], "id": 4, "method": "mining.submit"}"#,
            r#"{"id":"x","method":"mining.submit","params":["w","a","00","66500000","00000000","1fffe000"]}"#,
            r#"{"id":null,"jsonrpc":"2.0","method":"mining.submit","params":["w","a","00","66500000","00000000",null]}"#,
            r#"{"method":"mining.submit","params":["w","a","00","66500000","00000000"]}"#,
        ] {
            let Ok(Inbound::Submit { id, submit }) = Inbound::from_json(line) else {
                panic!("not read quickly: {line}")
            };
            assert_eq!(Ok((id, submit)), general(line), "{line}");
        }
    }

    #[test]
    fn submits_the_quick_reading_leaves_go_to_the_general_parser() {
        for line in [
            // A numeric job id, an escaped worker name, a float id, a bad hex, a missing
            // parameter, a seventh one: each read (or refused) as the general parser does.
            r#"{"id":4,"method":"mining.submit","params":["w",31,"00","66500000","00000000"]}"#,
            r#"{"id":4,"method":"mining.submit","params":["w\u0041","a","00","66500000","00000000"]}"#,
            r#"{"id":4.5,"method":"mining.submit","params":["w","a","00","66500000","00000000"]}"#,
            r#"{"id":4,"method":"mining.submit","params":["w","a","0g","66500000","00000000"]}"#,
            r#"{"id":4,"method":"mining.submit","params":["w","a","00","66500000"]}"#,
            r#"{"id":4,"method":"mining.submit","params":["w","a","00","66500000","00000000","0",1]}"#,
            r#"{"id":4,"method":"mining.subscribe","params":["mining.submit"]}"#,
        ] {
            assert_eq!(
                Inbound::from_json(line),
                Message::from_json(line).map(Inbound::Message),
                "{line}"
            );
        }
    }
}
