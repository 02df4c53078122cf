//! Every committed fuzz input, corpus and regressions alike, through the fuzzers' checks: a
//! crash once found stays fixed, and the suite covers what fuzzing covered without needing
//! libFuzzer or a nightly compiler.

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for e in entries {
            let path = e.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(
                outcome.is_ok(),
                "{} breaks the {target} checks",
                path.display()
            );
            n += 1;
        }
    }
    assert!(n > 0, "no inputs committed for {target}");
    eprintln!("{target}: {n} inputs replayed");
}

#[test]
fn codec_corpus_replays_clean() {
    replay("codec", pool_fuzz::codec);
}

#[test]
fn messages_corpus_replays_clean() {
    replay("messages", pool_fuzz::messages);
}

#[test]
fn submit_corpus_replays_clean() {
    replay("submit", pool_fuzz::submit);
}

#[test]
fn p2p_frames_corpus_replays_clean() {
    replay("p2p_frames", pool_fuzz::p2p_frames);
}

#[test]
fn client_lines_corpus_replays_clean() {
    replay("client_lines", pool_fuzz::client_lines);
}

#[test]
fn p2p_blocks_corpus_replays_clean() {
    replay("p2p_blocks", pool_fuzz::p2p_blocks);
}

#[test]
fn p2p_headers_corpus_replays_clean() {
    replay("p2p_headers", pool_fuzz::p2p_headers);
}

/// The P2P seeds are real frames of every command the node speaks, not only the error paths:
/// each decodes, whole, to the message its name says.
#[test]
fn p2p_seed_frames_decode_to_their_messages() {
    use bitcoin::p2p::Magic;
    use bytes::BytesMut;
    use pool_server::p2p::FrameCodec;
    use tokio_util::codec::Decoder;

    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/p2p_frames");
    for name in [
        "ping",
        "version",
        "headers",
        "inv",
        "getheaders",
        "addr",
        "block",
        "unknown_command",
    ] {
        let data = std::fs::read(dir.join(name)).unwrap();
        let mut buf = BytesMut::from(&data[1..]);
        let msg = FrameCodec::new(Magic::REGTEST)
            .decode(&mut buf)
            .unwrap_or_else(|e| panic!("seed {name}: {e}"))
            .unwrap_or_else(|| panic!("seed {name} is not a whole frame"));
        let want = if name == "unknown_command" {
            "poolnews"
        } else {
            name
        };
        assert_eq!(msg.command().to_string(), want, "seed {name}");
        assert!(buf.is_empty(), "seed {name} has bytes after its frame");
    }
}
