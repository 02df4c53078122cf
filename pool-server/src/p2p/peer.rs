//! One connection to another node, over Bitcoin frames ([`FrameCodec`]): the handshake first,
//! under a deadline, so a peer that connects and says nothing (or speaks before it has
//! introduced itself) holds a socket for seconds at most.

use std::time::Duration;

use bitcoin::p2p::message::NetworkMessage;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::Framed;

use super::codec::{FrameCodec, FrameError};
use super::handshake::{check_peer_version, HandshakeError, PeerVersion};
use bitcoin::p2p::message_network::VersionMessage;

/// Why a connection ended (or never began).
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    #[error("no handshake within {0:?}")]
    HandshakeTimeout(Duration),
    #[error("peer sent {0} before the handshake was done")]
    BeforeHandshake(String),
    #[error("peer sent a second version")]
    DuplicateVersion,
    #[error("peer closed the connection")]
    Closed,
}

/// Exchange `version` and `verack` on `framed` within `deadline`: send `ours`, check the peer's
/// (refusing our own nonces, see [`check_peer_version`]), acknowledge it, and wait for its
/// acknowledgement of ours. Anything else before both are done ends the connection.
pub async fn handshake<S>(
    framed: &mut Framed<S, FrameCodec>,
    ours: VersionMessage,
    our_nonces: &[u64],
    deadline: Duration,
) -> Result<PeerVersion, PeerError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let exchange = async {
        framed.send(NetworkMessage::Version(ours)).await?;
        let mut theirs: Option<PeerVersion> = None;
        let mut acked = false;
        loop {
            if acked {
                if let Some(v) = theirs.take() {
                    return Ok(v);
                }
            }
            match framed.next().await.ok_or(PeerError::Closed)?? {
                NetworkMessage::Version(v) => {
                    if theirs.is_some() {
                        return Err(PeerError::DuplicateVersion);
                    }
                    theirs = Some(check_peer_version(&v, our_nonces.iter().copied())?);
                    framed.send(NetworkMessage::Verack).await?;
                }
                NetworkMessage::Verack if !acked => acked = true,
                other => return Err(PeerError::BeforeHandshake(other.command().to_string())),
            }
        }
    };
    tokio::time::timeout(deadline, exchange)
        .await
        .map_err(|_| PeerError::HandshakeTimeout(deadline))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::p2p::handshake::our_version;
    use bitcoin::p2p::Magic;
    use tokio::net::{TcpListener, TcpStream};

    const MAGIC: Magic = Magic::REGTEST;
    const DEADLINE: Duration = Duration::from_secs(5);

    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (b, _) = l.accept().await.unwrap();
        (a, b)
    }

    fn version(height: u64, nonce: u64) -> VersionMessage {
        let addr = "127.0.0.1:18555".parse().unwrap();
        our_version(addr, addr, height, nonce, 1_767_225_600)
    }

    #[tokio::test]
    async fn two_nodes_learn_each_others_height() {
        let (a, b) = pair().await;
        let mut a = Framed::new(a, FrameCodec::new(MAGIC));
        let mut b = Framed::new(b, FrameCodec::new(MAGIC));
        let (got_a, got_b) = tokio::join!(
            handshake(&mut a, version(10, 1), &[1], DEADLINE),
            handshake(&mut b, version(20, 2), &[2], DEADLINE),
        );
        assert_eq!(got_a.unwrap().best_height, 20);
        assert_eq!(got_b.unwrap().best_height, 10);
    }

    #[tokio::test]
    async fn a_node_of_another_network_is_refused_at_its_first_frame() {
        let (a, b) = pair().await;
        let mut a = Framed::new(a, FrameCodec::new(MAGIC));
        let mut b = Framed::new(b, FrameCodec::new(Magic::SIGNET));
        let (got_a, _) = tokio::join!(
            handshake(&mut a, version(1, 1), &[1], DEADLINE),
            handshake(&mut b, version(1, 2), &[2], DEADLINE),
        );
        let err = got_a.unwrap_err();
        assert!(
            matches!(err, PeerError::Frame(FrameError::WrongMagic { .. })),
            "{err}"
        );
    }

    #[tokio::test]
    async fn dialling_ourselves_is_caught_by_the_nonce() {
        let (a, b) = pair().await;
        let mut a = Framed::new(a, FrameCodec::new(MAGIC));
        let mut b = Framed::new(b, FrameCodec::new(MAGIC));
        // One node on both ends: each end's version carries a nonce the node itself issued.
        let (got_a, _) = tokio::join!(
            handshake(&mut a, version(1, 7), &[7, 8], DEADLINE),
            handshake(&mut b, version(1, 8), &[7, 8], DEADLINE),
        );
        assert!(matches!(
            got_a.unwrap_err(),
            PeerError::Handshake(HandshakeError::SelfConnection)
        ));
    }

    #[tokio::test]
    async fn a_silent_peer_times_out_and_one_that_speaks_first_is_dropped() {
        let (a, _silent) = pair().await;
        let mut a = Framed::new(a, FrameCodec::new(MAGIC));
        let err = handshake(&mut a, version(1, 1), &[1], Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(matches!(err, PeerError::HandshakeTimeout(_)), "{err}");

        let (a, b) = pair().await;
        let mut a = Framed::new(a, FrameCodec::new(MAGIC));
        let mut b = Framed::new(b, FrameCodec::new(MAGIC));
        b.send(NetworkMessage::Ping(5)).await.unwrap();
        let err = handshake(&mut a, version(1, 1), &[1], DEADLINE)
            .await
            .unwrap_err();
        assert!(
            matches!(err, PeerError::BeforeHandshake(ref c) if c == "ping"),
            "{err}"
        );
    }
}
