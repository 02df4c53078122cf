//! The handshake: each side sends `version`, answers the other's with `verack`, and only then
//! speaks. What our `version` says (protocol version, best height, user agent, a nonce), and
//! what a peer's must say for us to go on.
//!
//! A peer on another network never gets this far: its frames carry another magic, which the
//! codec refuses ([`super::codec::FrameError::WrongMagic`]) with both magics in the log line.

use std::net::SocketAddr;

use bitcoin::p2p::message_network::VersionMessage;
use bitcoin::p2p::{Address, ServiceFlags};

/// The protocol version we speak (Bitcoin's 70016).
pub const PROTOCOL_VERSION: u32 = 70016;
/// Oldest version a peer may speak: blocks are announced by `headers` after `sendheaders`,
/// which came with 70012.
pub const MIN_PEER_VERSION: u32 = 70012;
/// Longest user agent accepted (Bitcoin Core's limit).
pub const MAX_USER_AGENT: usize = 256;

/// What our `version` carries.
pub fn user_agent() -> String {
    format!("/rust-pool:{}/", env!("CARGO_PKG_VERSION"))
}

/// Our `version` to the peer at `remote`, from `local`, with our best height and this
/// connection's `nonce` (a peer's `version` carrying it back means we dialled ourselves).
pub fn our_version(
    local: SocketAddr,
    remote: SocketAddr,
    best_height: u64,
    nonce: u64,
    unix_time: i64,
) -> VersionMessage {
    let mut v = VersionMessage::new(
        ServiceFlags::NETWORK,
        unix_time,
        Address::new(&remote, ServiceFlags::NONE),
        Address::new(&local, ServiceFlags::NETWORK),
        nonce,
        user_agent(),
        i32::try_from(best_height).unwrap_or(i32::MAX),
    );
    v.version = PROTOCOL_VERSION;
    v
}

/// Why a peer's `version` ends the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error(
        "peer speaks protocol version {0}; at least {MIN_PEER_VERSION} is needed (sendheaders)"
    )]
    TooOld(u32),
    #[error("connected to ourselves: the peer's version carries this connection's own nonce")]
    SelfConnection,
    #[error("peer's user agent is {0} bytes long; at most {MAX_USER_AGENT} are accepted")]
    UserAgentTooLong(usize),
    #[error("peer claims a negative best height ({0})")]
    NegativeHeight(i32),
    #[error("peer does not serve blocks (no NETWORK service bit)")]
    NotANode,
}

/// What we keep of a peer's `version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerVersion {
    pub version: u32,
    pub user_agent: String,
    pub best_height: u64,
    /// The port its `version` says it listens on (0: it takes no connections).
    pub listen_port: Option<u16>,
}

/// Accept or refuse a peer's `version`, given the nonces of our own open handshakes.
pub fn check_peer_version(
    theirs: &VersionMessage,
    our_nonces: impl IntoIterator<Item = u64>,
) -> Result<PeerVersion, HandshakeError> {
    if our_nonces.into_iter().any(|n| n == theirs.nonce) {
        return Err(HandshakeError::SelfConnection);
    }
    if theirs.version < MIN_PEER_VERSION {
        return Err(HandshakeError::TooOld(theirs.version));
    }
    if theirs.user_agent.len() > MAX_USER_AGENT {
        return Err(HandshakeError::UserAgentTooLong(theirs.user_agent.len()));
    }
    if !theirs.services.has(ServiceFlags::NETWORK) {
        return Err(HandshakeError::NotANode);
    }
    let best_height = u64::try_from(theirs.start_height)
        .map_err(|_| HandshakeError::NegativeHeight(theirs.start_height))?;
    Ok(PeerVersion {
        version: theirs.version,
        user_agent: theirs.user_agent.clone(),
        best_height,
        listen_port: Some(theirs.sender.port).filter(|p| *p != 0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(nonce: u64) -> VersionMessage {
        our_version(
            "127.0.0.1:18556".parse().unwrap(),
            "127.0.0.1:18555".parse().unwrap(),
            1234,
            nonce,
            1_700_000_000,
        )
    }

    #[test]
    fn our_version_is_accepted_by_our_own_rules() {
        let v = peer(7);
        assert_eq!(v.version, PROTOCOL_VERSION);
        let got = check_peer_version(&v, [1, 2]).unwrap();
        assert_eq!(got.best_height, 1234);
        assert!(got.user_agent.starts_with("/rust-pool:"));
    }

    #[test]
    fn a_version_carrying_our_nonce_is_a_connection_to_ourselves() {
        assert_eq!(
            check_peer_version(&peer(9), [3, 9]),
            Err(HandshakeError::SelfConnection)
        );
    }

    #[test]
    fn old_versions_long_user_agents_negative_heights_and_non_nodes_are_refused() {
        let mut v = peer(1);
        v.version = 70011;
        assert_eq!(
            check_peer_version(&v, []),
            Err(HandshakeError::TooOld(70011))
        );
        let mut v = peer(1);
        v.user_agent = "x".repeat(MAX_USER_AGENT + 1);
        assert_eq!(
            check_peer_version(&v, []),
            Err(HandshakeError::UserAgentTooLong(MAX_USER_AGENT + 1))
        );
        let mut v = peer(1);
        v.start_height = -5;
        assert_eq!(
            check_peer_version(&v, []),
            Err(HandshakeError::NegativeHeight(-5))
        );
        let mut v = peer(1);
        v.services = ServiceFlags::NONE;
        assert_eq!(check_peer_version(&v, []), Err(HandshakeError::NotANode));
        let err = HandshakeError::TooOld(70011).to_string();
        assert!(err.contains("70011") && err.contains("70012"), "{err}");
    }
}
