//! Methods stock miners send that this pool does not implement, answered without a strike:
//! an unknown method is otherwise an offence once a session's small allowance is spent (a
//! client that sends thousands of them is probing or broken), but these come from honest
//! firmware and must stay harmless.
//!
//! Seen from:
//! - cgminer and bfgminer: `mining.get_transactions` (the block's transactions, for
//!   validating the template; we do not hand them out), `mining.suggest_target` (a target in
//!   place of a difficulty; vardiff decides here), `mining.capabilities` (bfgminer announces
//!   what it supports);
//! - bmminer / Antminer and other ASIC firmware: `mining.multi_version` (older BIP 310 style
//!   version rolling announcement; `mining.configure` is what we grant rolling through);
//! - cpuminer-opt and some proxies: `mining.ping` (keepalive).

use protocol::{ErrorCode, StratumError};
use serde_json::{json, Value};

/// The answer to a known extension, or `None` for a method nobody should send.
pub fn answer(method: &str) -> Option<Result<Value, StratumError>> {
    Some(match method {
        "mining.capabilities" | "mining.multi_version" | "mining.suggest_target" => Ok(json!(true)),
        "mining.ping" => Ok(json!("pong")),
        "mining.get_transactions" => Err(StratumError::new(
            ErrorCode::Other,
            "Not supported: this pool does not hand out the block's transactions",
        )),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stock_extensions_are_answered_and_others_are_not() {
        for m in [
            "mining.capabilities",
            "mining.multi_version",
            "mining.suggest_target",
            "mining.ping",
            "mining.get_transactions",
        ] {
            assert!(answer(m).is_some(), "{m}");
        }
        assert!(answer("mining.anything").is_none());
        assert!(answer("").is_none());
    }
}
