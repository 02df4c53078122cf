//! What a peer's misdeeds cost it. Points on Bitcoin Core's scale: [`BAN_SCORE`] in total,
//! counted per address (reconnecting does not wipe the slate), bans the address for a while.
//! A malformed, oversize or mis-checksummed frame, or a frame of another network, is a ban at
//! once; rudeness in the handshake costs a part; a dead or slow peer is dropped, not punished.
//!
//! The counting and the bans are the pool's one [`BanList`] type (the one Stratum uses), with
//! a list of its own for peers.

use std::net::IpAddr;
use std::time::Duration;

use super::codec::FrameError;
use super::handshake::HandshakeError;
use super::peer::PeerError;
use crate::net::bans::BanList;

/// Points that ban an address.
pub const BAN_SCORE: u32 = 100;

/// A ban list for peers: an address is banned for `duration` once its points reach
/// [`BAN_SCORE`].
pub fn peer_ban_list(duration: Duration) -> BanList {
    BanList::new(duration, BAN_SCORE - 1)
}

/// The points `err` costs the peer that caused it.
pub fn penalty(err: &PeerError) -> u32 {
    match err {
        PeerError::Frame(FrameError::Io(_)) => 0,
        // Garbage, an oversize or mis-checksummed frame, or another network's magic: a peer
        // that sends these is not one to talk to again soon.
        PeerError::Frame(_) => BAN_SCORE,
        PeerError::BeforeHandshake(_) | PeerError::DuplicateVersion => BAN_SCORE / 2,
        PeerError::HandshakeTimeout(_) => BAN_SCORE / 5,
        PeerError::Handshake(HandshakeError::SelfConnection) => 0,
        PeerError::Handshake(_) => BAN_SCORE / 5,
        PeerError::Closed | PeerError::PingTimeout(_) | PeerError::SlowPeer => 0,
        // A block that fails the rules: the peer validates nothing, or attacks.
        PeerError::InvalidBlock { .. } => BAN_SCORE,
        PeerError::Protocol(_) => BAN_SCORE / 5,
        // Cheap blocks pushed at us: a few, and the address is banned.
        PeerError::UnrequestedLowWork { .. } => BAN_SCORE / 4,
        // Another history than ours past the maturity depth: no use talking, little harm.
        PeerError::DeepFork { .. } => BAN_SCORE / 10,
        PeerError::Junk(_) => BAN_SCORE,
    }
}

/// Count `err` against `ip`; true when that banned it.
pub fn punish(bans: &BanList, ip: IpAddr, err: &PeerError) -> bool {
    let points = penalty(err);
    points > 0 && bans.offend(ip, points, &format!("p2p peer: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn a_bad_frame_bans_at_once() {
        let bans = peer_ban_list(Duration::from_secs(60));
        let err = PeerError::Frame(FrameError::BadChecksum {
            command: "block".into(),
        });
        assert!(punish(&bans, IP, &err));
        assert!(bans.is_banned(IP));
        assert!(bans.list()[0]
            .reason
            .contains("block frame fails its checksum"));
    }

    #[test]
    fn handshake_rudeness_adds_up_and_dead_or_slow_peers_are_never_banned() {
        let bans = peer_ban_list(Duration::from_secs(60));
        for _ in 0..50 {
            assert!(!punish(&bans, IP, &PeerError::SlowPeer));
            assert!(!punish(
                &bans,
                IP,
                &PeerError::PingTimeout(Duration::from_secs(1))
            ));
            assert!(!punish(
                &bans,
                IP,
                &PeerError::Handshake(HandshakeError::SelfConnection)
            ));
        }
        assert!(!bans.is_banned(IP));
        let timeout = PeerError::HandshakeTimeout(Duration::from_secs(5));
        for _ in 0..4 {
            assert!(!punish(&bans, IP, &timeout));
        }
        assert!(
            punish(&bans, IP, &timeout),
            "the fifth reaches the ban score"
        );
    }
}
