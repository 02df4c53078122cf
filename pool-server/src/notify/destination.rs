//! Where alerts go. Today: the operator's webhooks (`--alert-webhook`), each sent every alert.
//! A destination is named by a digest of its address, so logs, metrics and the outbox can
//! say which one without showing a URL that may carry a secret.

use bitcoin::hashes::{sha256, Hash};

#[derive(Clone)]
pub struct Destination {
    /// `webhook-` and the first 8 bytes of the URL's SHA-256, in hex.
    pub id: String,
    pub url: String,
}

impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Destination({})", self.id)
    }
}

impl Destination {
    pub fn webhook(url: &str) -> Destination {
        let digest = sha256::Hash::hash(url.as_bytes()).to_byte_array();
        Destination {
            id: format!("webhook-{}", hex::encode(&digest[..8])),
            url: url.to_owned(),
        }
    }

    pub fn kind(&self) -> &'static str {
        "webhook"
    }
}
