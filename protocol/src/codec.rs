//! Newline-delimited framing for Stratum, as a `tokio-util` codec.
//!
//! Every decoded item is itself a `Result`: a malformed line (too long, not UTF-8, not JSON,
//! not a message) is reported as an `Err` item and the stream goes on, because a pool must
//! answer garbage with an error and keep the connection's accepted work. Only I/O errors end
//! the stream. A line longer than the limit is never buffered whole: its bytes are dropped as
//! they arrive until the next newline.

use bytes::{Buf, BufMut, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::error::FrameError;
use crate::jsonrpc::Message;

/// The default maximum line length: far above any real Stratum line, far below a memory risk.
pub const DEFAULT_MAX_LINE: usize = 16 * 1024;

/// What a line decodes to.
pub trait FromLine: Sized {
    /// Read one line of text (without its line ending).
    fn from_line(line: &str) -> Result<Self, FrameError>;
}

impl FromLine for Message {
    fn from_line(line: &str) -> Result<Self, FrameError> {
        Message::from_json(line)
    }
}

/// Stratum's framing, decoding each line to a `T`: a [`Message`] for [`StratumCodec`], an
/// [`crate::Inbound`] on a pool's side.
#[derive(Debug, Clone)]
pub struct LineCodec<T> {
    max_line: usize,
    /// Bytes already scanned for a newline in the current buffer.
    scanned: usize,
    /// Dropping the rest of an oversize line until its newline.
    discarding: bool,
    item: std::marker::PhantomData<fn() -> T>,
}

/// Lines as [`Message`]s.
pub type StratumCodec = LineCodec<Message>;

impl<T: FromLine> LineCodec<T> {
    pub fn new() -> Self {
        Self::with_max_line(DEFAULT_MAX_LINE)
    }

    pub fn with_max_line(max_line: usize) -> Self {
        LineCodec {
            max_line,
            scanned: 0,
            discarding: false,
            item: std::marker::PhantomData,
        }
    }

    pub fn max_line(&self) -> usize {
        self.max_line
    }

    /// One whole line (without its `\n`): `None` for a blank keep-alive line, else the
    /// message or why it is not one. The same rules hold mid-stream and at EOF.
    fn finish_line(&self, line: &[u8]) -> Option<Result<T, FrameError>> {
        let body = line.strip_suffix(b"\r").unwrap_or(line);
        if body.len() > self.max_line {
            return Some(Err(FrameError::LineTooLong { max: self.max_line }));
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        Some(match std::str::from_utf8(body) {
            Ok(text) => T::from_line(text),
            Err(_) => Err(FrameError::InvalidUtf8),
        })
    }
}

impl<T: FromLine> Default for LineCodec<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: FromLine> Decoder for LineCodec<T> {
    type Item = Result<T, FrameError>;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Self::Item>, Self::Error> {
        loop {
            let newline = buf[self.scanned..].iter().position(|b| *b == b'\n');
            if self.discarding {
                match newline {
                    Some(i) => {
                        buf.advance(self.scanned + i + 1);
                        self.scanned = 0;
                        self.discarding = false;
                        continue;
                    }
                    None => {
                        buf.clear();
                        self.scanned = 0;
                        return Ok(None);
                    }
                }
            }
            match newline {
                Some(i) => {
                    let end = self.scanned + i;
                    self.scanned = 0;
                    let line = buf.split_to(end + 1);
                    match self.finish_line(&line[..end]) {
                        Some(item) => return Ok(Some(item)),
                        None => continue, // blank keep-alive lines are not messages
                    }
                }
                None if buf.len() > self.max_line.saturating_add(1) => {
                    // Over the limit with no newline in sight: drop what we hold and skip the
                    // rest of this line as it streams in.
                    buf.clear();
                    self.scanned = 0;
                    self.discarding = true;
                    return Ok(Some(Err(FrameError::LineTooLong { max: self.max_line })));
                }
                None => {
                    self.scanned = buf.len();
                    return Ok(None);
                }
            }
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Self::Item>, Self::Error> {
        match self.decode(buf)? {
            Some(item) => Ok(Some(item)),
            None if self.discarding || buf.iter().all(u8::is_ascii_whitespace) => {
                buf.clear();
                Ok(None)
            }
            None => {
                // A final line without its newline.
                let line = buf.split_to(buf.len());
                self.scanned = 0;
                Ok(self.finish_line(&line))
            }
        }
    }
}

impl Encoder<&Message> for StratumCodec {
    type Error = std::io::Error;

    fn encode(&mut self, msg: &Message, dst: &mut BytesMut) -> Result<(), Self::Error> {
        let mut w = dst.writer();
        serde_json::to_writer(&mut w, &msg.to_value())?;
        w.into_inner().put_u8(b'\n');
        Ok(())
    }
}

impl Encoder<Message> for StratumCodec {
    type Error = std::io::Error;

    fn encode(&mut self, msg: Message, dst: &mut BytesMut) -> Result<(), Self::Error> {
        Encoder::<&Message>::encode(self, &msg, dst)
    }
}
