//! The line codec: both line endings, typed per-line errors that leave the stream usable, and
//! an oversize line refused without ever being held in memory.

use bytes::BytesMut;
use futures::StreamExt;
use protocol::{FrameError, Message, StratumCodec};
use tokio::io::AsyncWriteExt;
use tokio_util::codec::{Decoder, FramedRead};

#[test]
fn lf_and_crlf_and_blank_lines() {
    let mut codec = StratumCodec::new();
    let mut buf = BytesMut::from(
        &b"{\"id\":1,\"method\":\"a\",\"params\":[]}\r\n\n  \r\n{\"id\":2,\"method\":\"b\"}\n"[..],
    );
    let a = codec.decode(&mut buf).unwrap().unwrap().unwrap();
    let b = codec.decode(&mut buf).unwrap().unwrap().unwrap();
    assert!(matches!(a, Message::Call(c) if c.method == "a"));
    assert!(matches!(b, Message::Call(c) if c.method == "b"));
    assert!(codec.decode(&mut buf).unwrap().is_none());
}

#[test]
fn bad_utf8_and_bad_json_are_items_not_stream_errors() {
    let mut codec = StratumCodec::new();
    let mut buf = BytesMut::from(&b"\xff\xfe\n{not json\n{\"id\":3,\"method\":\"c\"}\n"[..]);
    assert_eq!(
        codec.decode(&mut buf).unwrap().unwrap(),
        Err(FrameError::InvalidUtf8)
    );
    assert!(matches!(
        codec.decode(&mut buf).unwrap().unwrap(),
        Err(FrameError::InvalidJson(_))
    ));
    assert!(codec.decode(&mut buf).unwrap().unwrap().is_ok());
}

#[test]
fn one_mib_line_without_newline_errors_without_buffering_it() {
    let mut codec = StratumCodec::new();
    let mut buf = BytesMut::with_capacity(8 * 1024);
    let chunk = vec![b'a'; 4096];
    let mut errors = 0;
    let mut peak = 0;
    for _ in 0..256 {
        buf.extend_from_slice(&chunk);
        peak = peak.max(buf.len());
        while let Some(item) = codec.decode(&mut buf).unwrap() {
            assert_eq!(item, Err(FrameError::LineTooLong { max: 16 * 1024 }));
            errors += 1;
        }
    }
    assert_eq!(errors, 1, "one error per oversize line");
    assert!(peak <= 16 * 1024 + 4096 + 1, "held {peak} bytes");
    // The line ends; the next one is read normally.
    buf.extend_from_slice(b"tail of the long line\n{\"id\":1,\"method\":\"ok\"}\n");
    let next = codec.decode(&mut buf).unwrap().unwrap().unwrap();
    assert!(matches!(next, Message::Call(c) if c.method == "ok"));
}

#[test]
fn line_exactly_at_limit_is_accepted() {
    let mut codec = StratumCodec::with_max_line(64);
    let body = format!("{{\"id\":1,\"method\":\"{}\"}}", "m".repeat(64 - 20));
    assert_eq!(body.len(), 64);
    let mut buf = BytesMut::from(format!("{body}\r\n").as_bytes());
    assert!(codec.decode(&mut buf).unwrap().unwrap().is_ok());
    let mut buf = BytesMut::from(format!("{body} \n").as_bytes());
    assert_eq!(
        codec.decode(&mut buf).unwrap().unwrap(),
        Err(FrameError::LineTooLong { max: 64 })
    );
}

/// Found by the codec fuzzer: a last line with no newline, one byte over the limit, was
/// parsed at EOF as if the limit did not apply.
#[test]
fn unterminated_last_line_over_the_limit_is_too_long_at_eof() {
    let mut codec = StratumCodec::with_max_line(64);
    let body = format!("{{\"id\":1,\"method\":\"{}\"}}", "m".repeat(65 - 20));
    let mut buf = BytesMut::from(body.as_bytes());
    assert!(codec.decode(&mut buf).unwrap().is_none());
    assert_eq!(
        codec.decode_eof(&mut buf).unwrap().unwrap(),
        Err(FrameError::LineTooLong { max: 64 })
    );
}

#[tokio::test]
async fn framed_stream_survives_garbage_over_a_socket() {
    let (mut tx, rx) = tokio::io::duplex(1024);
    let writer = tokio::spawn(async move {
        tx.write_all(b"garbage\n").await.unwrap();
        tx.write_all(&vec![b'x'; 100_000]).await.unwrap();
        tx.write_all(b"\n{\"id\":5,\"method\":\"mining.subscribe\",\"params\":[]}\n")
            .await
            .unwrap();
        tx.write_all(b"{\"id\":6,\"method\":\"last\"}")
            .await
            .unwrap(); // no newline at EOF
    });
    let items: Vec<_> = FramedRead::new(rx, StratumCodec::new())
        .map(|r| r.unwrap())
        .collect()
        .await;
    writer.await.unwrap();
    assert_eq!(items.len(), 4, "{items:?}");
    assert!(matches!(items[0], Err(FrameError::InvalidJson(_))));
    assert_eq!(items[1], Err(FrameError::LineTooLong { max: 16 * 1024 }));
    assert!(matches!(&items[2], Ok(Message::Call(c)) if c.method == "mining.subscribe"));
    assert!(matches!(&items[3], Ok(Message::Call(c)) if c.method == "last"));
}

/// A limit as large as `usize` holds (a configuration's choice) is still arithmetic that
/// cannot overflow: a line without a newline is kept, not a panic.
#[test]
fn the_largest_limit_does_not_overflow() {
    let mut codec = StratumCodec::with_max_line(usize::MAX);
    let mut buf = BytesMut::from(&b"{\"id\":1,\"method\":\"partial"[..]);
    assert_eq!(codec.decode(&mut buf).unwrap(), None);
    buf.extend_from_slice(b"\",\"params\":[]}\n");
    assert!(matches!(
        codec.decode(&mut buf).unwrap(),
        Some(Ok(Message::Call(_)))
    ));
}
