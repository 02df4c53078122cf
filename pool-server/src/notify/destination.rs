//! Where alerts go: the operator's destinations (`--alert-webhook`), each sent every alert,
//! and the miners' own subscriptions. A destination is named by its kind and a digest of
//! its address, so logs, metrics and the outbox can say which one without showing a URL or
//! a mailbox that may carry a secret.

use bitcoin::hashes::{sha256, Hash};

use super::channel::Target;

#[derive(Clone)]
pub struct Destination {
    /// The kind (`webhook`, `slack`, `email` ...) and the first 8 bytes of the spelling's
    /// SHA-256, in hex.
    pub id: String,
    pub target: Target,
}

impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Destination({})", self.id)
    }
}

impl Destination {
    pub fn new(target: Target) -> Destination {
        let digest = sha256::Hash::hash(target.spec.as_bytes()).to_byte_array();
        Destination {
            id: format!("{}-{}", target.kind.as_str(), hex::encode(&digest[..8])),
            target,
        }
    }
}
