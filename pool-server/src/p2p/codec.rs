//! Bitcoin's P2P framing for the network of pools: magic, command, payload length, checksum,
//! then the payload in consensus encoding, with the message types of the `bitcoin` crate.
//!
//! Anyone can connect, so the decoder judges each frame by its 24-byte header before it
//! reserves room for the payload: a frame for another network (wrong magic), a command field
//! that is not a NUL-padded ASCII name, or a payload longer than its command may carry is an
//! error at once, so a peer can never make us buffer more than one frame's allowed size. The
//! checksum is checked before the payload is decoded. Every error names the command, so the
//! log and the peer's misbehaviour score say what was wrong in the protocol's own terms.

use bitcoin::hashes::{sha256d, Hash};
use bitcoin::p2p::message::{NetworkMessage, RawNetworkMessage};
use bitcoin::p2p::Magic;
use bytes::{BufMut, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// Magic (4), command (12), payload length (4), checksum (4).
pub const HEADER_LEN: usize = 24;

/// Largest `block` payload: a block at the consensus weight limit (4,000,000 weight units
/// serialize to at most 4,000,000 bytes), Bitcoin Core's message limit.
pub const MAX_BLOCK_PAYLOAD: u32 = 4_000_000;
/// Largest `inv` / `getdata` / `notfound`: 50,000 entries of 36 bytes and their count.
pub const MAX_INVENTORY_PAYLOAD: u32 = 9 + 50_000 * 36;
/// Largest payload of any other command (`headers` with 2,000 headers is 162,003 bytes).
pub const MAX_OTHER_PAYLOAD: u32 = 200_000;

/// The most a frame of `command` may carry.
pub fn max_payload(command: &str) -> u32 {
    match command {
        "block" => MAX_BLOCK_PAYLOAD,
        "inv" | "getdata" | "notfound" => MAX_INVENTORY_PAYLOAD,
        _ => MAX_OTHER_PAYLOAD,
    }
}

/// Why a frame was refused. After any of these the stream is out of step (or the peer is
/// hostile): the connection is closed.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame for another network: magic {got}, ours is {ours}")]
    WrongMagic { got: Magic, ours: Magic },
    #[error("frame command field is not a NUL-padded ASCII name: {0:02x?}")]
    BadCommand([u8; 12]),
    #[error(
        "{command} frame announces {len} bytes of payload; a {command} may carry at most {max}"
    )]
    Oversize { command: String, len: u32, max: u32 },
    #[error("{command} frame fails its checksum")]
    BadChecksum { command: String },
    #[error("{command} payload does not decode: {reason}")]
    Malformed { command: String, reason: String },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl FrameError {
    /// The frame's command, where the header was readable.
    pub fn command(&self) -> Option<&str> {
        match self {
            FrameError::Oversize { command, .. }
            | FrameError::BadChecksum { command }
            | FrameError::Malformed { command, .. } => Some(command),
            _ => None,
        }
    }
}

/// Frames of one network (one magic) in and out, counting their bytes.
#[derive(Debug, Clone)]
pub struct FrameCodec {
    magic: Magic,
    bytes_in: u64,
    bytes_out: u64,
}

impl FrameCodec {
    pub fn new(magic: Magic) -> Self {
        FrameCodec {
            magic,
            bytes_in: 0,
            bytes_out: 0,
        }
    }

    pub fn magic(&self) -> Magic {
        self.magic
    }

    /// Bytes of whole frames decoded so far.
    pub fn bytes_in(&self) -> u64 {
        self.bytes_in
    }

    /// Bytes of frames encoded so far.
    pub fn bytes_out(&self) -> u64 {
        self.bytes_out
    }
}

/// The command name in a header's 12-byte field: printable ASCII, then NULs only.
fn command_name(field: &[u8; 12]) -> Option<&str> {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    let (name, pad) = field.split_at(end);
    let printable = name.iter().all(|b| b.is_ascii_graphic());
    (printable && pad.iter().all(|b| *b == 0))
        .then(|| std::str::from_utf8(name).ok())
        .flatten()
}

impl Decoder for FrameCodec {
    type Item = NetworkMessage;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<NetworkMessage>, FrameError> {
        if src.len() < HEADER_LEN {
            return Ok(None);
        }
        let got = Magic::from_bytes(src[0..4].try_into().expect("4 bytes"));
        if got != self.magic {
            return Err(FrameError::WrongMagic {
                got,
                ours: self.magic,
            });
        }
        let field: [u8; 12] = src[4..16].try_into().expect("12 bytes");
        let command = command_name(&field).ok_or(FrameError::BadCommand(field))?;
        let len = u32::from_le_bytes(src[16..20].try_into().expect("4 bytes"));
        let max = max_payload(command);
        if len > max {
            return Err(FrameError::Oversize {
                command: command.to_owned(),
                len,
                max,
            });
        }
        let total = HEADER_LEN + len as usize;
        if src.len() < total {
            // Bounded by `max` above: at most one frame's allowed size.
            src.reserve(total - src.len());
            return Ok(None);
        }
        let command = command.to_owned();
        let frame = src.split_to(total);
        self.bytes_in += total as u64;
        let checksum = sha256d::Hash::hash(&frame[HEADER_LEN..]);
        if checksum[..4] != frame[20..24] {
            return Err(FrameError::BadChecksum { command });
        }
        match bitcoin::consensus::deserialize::<RawNetworkMessage>(&frame) {
            Ok(raw) => Ok(Some(raw.into_payload())),
            Err(e) => Err(FrameError::Malformed {
                command,
                reason: e.to_string(),
            }),
        }
    }
}

impl Encoder<NetworkMessage> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, msg: NetworkMessage, dst: &mut BytesMut) -> Result<(), FrameError> {
        let raw = RawNetworkMessage::new(self.magic, msg);
        let bytes = bitcoin::consensus::serialize(&raw);
        dst.reserve(bytes.len());
        dst.put_slice(&bytes);
        self.bytes_out += bytes.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::p2p::message_network::VersionMessage;

    const MAGIC: Magic = Magic::REGTEST;

    fn frame(msg: NetworkMessage) -> BytesMut {
        let mut buf = BytesMut::new();
        FrameCodec::new(MAGIC).encode(msg, &mut buf).unwrap();
        buf
    }

    #[test]
    fn a_frame_fed_a_byte_at_a_time_decodes_once_whole() {
        let whole = frame(NetworkMessage::Ping(0x0102_0304_0506_0708));
        let mut codec = FrameCodec::new(MAGIC);
        let mut buf = BytesMut::new();
        for (i, b) in whole.iter().enumerate() {
            buf.put_u8(*b);
            let got = codec.decode(&mut buf).unwrap();
            if i + 1 < whole.len() {
                assert!(got.is_none(), "decoded early at byte {i}");
            } else {
                assert_eq!(got, Some(NetworkMessage::Ping(0x0102_0304_0506_0708)));
            }
        }
        assert!(buf.is_empty());
    }

    #[test]
    fn an_oversize_length_is_refused_from_the_header_alone() {
        let mut buf = frame(NetworkMessage::Ping(1));
        buf.truncate(HEADER_LEN);
        buf[4..16].copy_from_slice(b"headers\0\0\0\0\0");
        buf[16..20].copy_from_slice(&(MAX_OTHER_PAYLOAD + 1).to_le_bytes());
        let err = FrameCodec::new(MAGIC).decode(&mut buf).unwrap_err();
        assert!(
            matches!(err, FrameError::Oversize { ref command, .. } if command == "headers"),
            "{err}"
        );
        assert!(buf.capacity() < 4096, "nothing reserved for the payload");
    }

    #[test]
    fn another_networks_magic_a_bad_command_and_a_bad_checksum_are_errors() {
        let mut buf = frame(NetworkMessage::Verack);
        buf[0] ^= 1;
        assert!(matches!(
            FrameCodec::new(MAGIC).decode(&mut buf),
            Err(FrameError::WrongMagic { .. })
        ));
        let mut buf = frame(NetworkMessage::Verack);
        buf[4..16].copy_from_slice(b"ver\0ack\0\0\0\0\0");
        assert!(matches!(
            FrameCodec::new(MAGIC).decode(&mut buf),
            Err(FrameError::BadCommand(_))
        ));
        let mut buf = frame(NetworkMessage::Ping(7));
        let last = buf.len() - 1;
        buf[last] ^= 0x80;
        let err = FrameCodec::new(MAGIC).decode(&mut buf).unwrap_err();
        assert!(matches!(err, FrameError::BadChecksum { .. }), "{err}");
        assert_eq!(err.command(), Some("ping"));
    }

    #[test]
    fn a_truncated_payload_with_a_good_checksum_is_malformed() {
        // A `version` payload of 10 bytes, correctly framed and checksummed.
        let payload = [0u8; 10];
        let mut buf = BytesMut::new();
        buf.put_slice(&MAGIC.to_bytes());
        buf.put_slice(b"version\0\0\0\0\0");
        buf.put_slice(&(payload.len() as u32).to_le_bytes());
        buf.put_slice(&sha256d::Hash::hash(&payload)[..4]);
        buf.put_slice(&payload);
        let err = FrameCodec::new(MAGIC).decode(&mut buf).unwrap_err();
        assert!(
            matches!(err, FrameError::Malformed { ref command, .. } if command == "version"),
            "{err}"
        );
    }

    #[test]
    fn messages_round_trip_and_unknown_commands_pass_through() {
        let version = NetworkMessage::Version(VersionMessage::new(
            bitcoin::p2p::ServiceFlags::NETWORK,
            1_700_000_000,
            bitcoin::p2p::Address::new(&"127.0.0.1:1".parse().unwrap(), Default::default()),
            bitcoin::p2p::Address::new(&"127.0.0.1:2".parse().unwrap(), Default::default()),
            42,
            "/rust-pool:test/".into(),
            7,
        ));
        let unknown = NetworkMessage::Unknown {
            command: bitcoin::p2p::message::CommandString::try_from_static("poolnews").unwrap(),
            payload: vec![1, 2, 3],
        };
        for msg in [
            version,
            NetworkMessage::Verack,
            NetworkMessage::GetAddr,
            unknown,
        ] {
            let mut buf = frame(msg.clone());
            let mut codec = FrameCodec::new(MAGIC);
            assert_eq!(codec.decode(&mut buf).unwrap(), Some(msg));
            assert!(buf.is_empty());
        }
    }
}
