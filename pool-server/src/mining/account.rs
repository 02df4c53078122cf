//! Who may mine: the account part of `account.rig` must be an address of the pool's network
//! or match the operator's pattern.

use std::str::FromStr;

use bitcoin::{Address, Network};
use protocol::WorkerName;
use regex::Regex;

/// A miner setting its account's key (`key=SECRET` in the Stratum password): the account and
/// the digest kept for the secret. The first key of an account wins.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyClaim {
    pub account: String,
    pub digest: String,
}

/// A key shorter than this is refused: it must not be guessable through the API.
pub const MIN_KEY: usize = 16;

/// The `key=SECRET` in a Stratum password (`x,key=...`), when it is long enough to be one.
pub fn key_in_password(password: &str) -> Option<&str> {
    password
        .split([',', ';', ' '])
        .find_map(|p| p.trim().strip_prefix("key="))
        .filter(|k| k.len() >= MIN_KEY && k.len() <= 256)
}

/// The digest kept for `secret` of `account` (bound to the account: one secret on two
/// accounts gives two digests).
pub fn key_digest(account: &str, secret: &str) -> String {
    use bitcoin::hashes::{sha256, Hash};
    let h = sha256::Hash::hash(format!("pool-account-key\0{account}\0{secret}").as_bytes());
    hex::encode(h.to_byte_array())
}

pub struct AccountPolicy {
    network: Network,
    pattern: Option<Regex>,
}

/// Longest worker name accepted (it is stored and used as a metric label).
pub const MAX_WORKER_NAME: usize = 128;

impl AccountPolicy {
    pub fn new(network: Network, pattern: &str) -> Result<Self, regex::Error> {
        Ok(AccountPolicy {
            network,
            pattern: if pattern.is_empty() {
                None
            } else {
                Some(Regex::new(pattern)?)
            },
        })
    }

    pub fn check(&self, worker: &WorkerName) -> Result<(), String> {
        let name = worker.as_str();
        if name.is_empty() || name.len() > MAX_WORKER_NAME {
            return Err(format!("worker name must be 1 to {MAX_WORKER_NAME} bytes"));
        }
        if name
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || crate::logging::is_bidi_control(c))
        {
            return Err(
                "worker name must not contain spaces, control or bidirectional characters".into(),
            );
        }
        let account = worker.account();
        let is_address = Address::from_str(account)
            .ok()
            .and_then(|a| a.require_network(self.network).ok())
            .is_some();
        if is_address || self.pattern.as_ref().is_some_and(|p| p.is_match(account)) {
            Ok(())
        } else {
            Err(format!(
                "account {account:?} is neither a {} address nor an allowed account name",
                self.network
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_in_the_password_is_long_enough_or_none() {
        assert_eq!(
            key_in_password("x,key=correct-horse-battery"),
            Some("correct-horse-battery")
        );
        assert_eq!(
            key_in_password("d=8;key=0123456789abcdef"),
            Some("0123456789abcdef")
        );
        assert_eq!(key_in_password("x,key=short"), None);
        assert_eq!(key_in_password("x"), None);
        assert_ne!(key_digest("alice", "k"), key_digest("bob", "k"));
    }

    #[test]
    fn addresses_of_the_network_or_the_pattern() {
        let p = AccountPolicy::new(Network::Regtest, "").unwrap();
        assert!(p
            .check(&WorkerName::new(
                "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080.rig1"
            ))
            .is_ok());
        assert!(p
            .check(&WorkerName::new(
                "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"
            ))
            .is_err());
        assert!(p.check(&WorkerName::new("alice")).is_err());
        let p = AccountPolicy::new(Network::Regtest, "^[a-z]+$").unwrap();
        assert!(p.check(&WorkerName::new("alice.rig")).is_ok());
        assert!(p.check(&WorkerName::new("Alice")).is_err());
        assert!(p.check(&WorkerName::new("a b")).is_err());
        assert!(p.check(&WorkerName::new("alice.\u{202E}gir")).is_err());
        assert!(p.check(&WorkerName::new("alice.r\nig")).is_err());
    }
}
