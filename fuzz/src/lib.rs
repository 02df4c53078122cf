//! What the fuzzers check, as plain functions: each takes arbitrary bytes and panics only when
//! an invariant breaks. `cargo fuzz` drives them through the targets in `fuzz_targets/`
//! (`scripts/fuzz`); `tests/corpus_replays.rs` runs every committed corpus and regression
//! input through them in the ordinary test suite, so a crash once found stays fixed.
//!
//! - [`codec`]: the line codec, fed in arbitrary chunks, against a plain model of lines.
//! - [`messages`]: JSON-RPC parsing and the typed Stratum methods, which must round-trip.
//! - [`submit`]: a `mining.submit` line through the pool's share validation.
//! - [`p2p_frames`]: the P2P frame decoder, fed in arbitrary chunks: bounded, and every
//!   message it yields round-trips.
//! - [`p2p_blocks`]: blocks from a peer through the embedded chain's checks: never a panic,
//!   the orphan pool stays bounded, and what was stored is never taken twice.
//! - [`p2p_headers`]: header chains from a peer through the node's judgment of their work:
//!   never a panic, judging stores nothing, and more work never makes a chain lead less.
//! - [`client_lines`]: lines a pool sends, through the worker's client state: never a
//!   panic, and the work it publishes is bounded, BIP 9 and never searched twice.

use std::sync::{Arc, OnceLock};

use bitcoin::hashes::Hash;
use bytes::BytesMut;
use pool_server::chain::coinbase::CoinbaseBuilder;
use pool_server::chain::Template;
use pool_server::jobs::{Job, JobBuilder, JobIds};
use pool_server::share::{validate, Dedup, IssuedJob, Reject, ShareContext};
use protocol::{
    header_hash, ClientRequest, CompactTarget, Difficulty, Extranonce1, Extranonce2, FrameError,
    JobId, Message, Nonce, Ntime, ServerNotification, StratumCodec, Submit, Version, VersionMask,
    WorkerName,
};
use tokio_util::codec::Decoder;

/// A small line limit, so inputs of a few hundred bytes reach the oversize paths.
const MAX_LINE: usize = 64;

/// What the codec must make of one line: skipped when blank, too long, or parsed.
fn model_line(raw: &[u8]) -> Option<Result<Message, FrameError>> {
    let body = raw.strip_suffix(b"\r").unwrap_or(raw);
    if body.len() > MAX_LINE {
        return Some(Err(FrameError::LineTooLong { max: MAX_LINE }));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    Some(match std::str::from_utf8(body) {
        Ok(text) => Message::from_json(text),
        Err(_) => Err(FrameError::InvalidUtf8),
    })
}

fn same_item(a: &Result<Message, FrameError>, b: &Result<Message, FrameError>) -> bool {
    match (a, b) {
        (Ok(x), Ok(y)) => x == y,
        (Err(x), Err(y)) => std::mem::discriminant(x) == std::mem::discriminant(y),
        _ => false,
    }
}

/// The codec, fed `data[1..]` in chunks whose sizes come from `data[0]`, yields exactly what
/// splitting at `\n` yields, and never holds much more than one line's limit.
pub fn codec(data: &[u8]) {
    let Some((&seed, input)) = data.split_first() else {
        return;
    };
    let chunk = 1 + seed as usize % 97;
    let mut codec = StratumCodec::with_max_line(MAX_LINE);
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for piece in input.chunks(chunk) {
        buf.extend_from_slice(piece);
        while let Some(item) = codec.decode(&mut buf).expect("decoding never fails on I/O") {
            got.push(item);
        }
        assert!(
            buf.len() <= MAX_LINE + 1 + chunk,
            "the codec holds {} bytes with a {MAX_LINE}-byte limit",
            buf.len()
        );
    }
    while let Some(item) = codec
        .decode_eof(&mut buf)
        .expect("decoding never fails on I/O")
    {
        got.push(item);
    }
    let want: Vec<_> = input
        .split(|b| *b == b'\n')
        .filter_map(model_line)
        .collect();
    assert_eq!(got.len(), want.len(), "items: {got:?}\nmodel: {want:?}");
    for (g, w) in got.iter().zip(&want) {
        assert!(same_item(g, w), "codec {g:?} but model {w:?}");
    }
}

/// Any line that parses re-serializes to itself, and so does any typed request or
/// notification read from it: pool and worker write what the other reads.
pub fn messages(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(msg) = Message::from_json(text) else {
        return;
    };
    let again = Message::from_json(&msg.to_json()).expect("our own JSON parses");
    assert_eq!(again, msg, "message round trip");
    let Message::Call(call) = msg else {
        return;
    };
    if let Ok(req) = ClientRequest::from_call(&call) {
        let back = ClientRequest::from_call(&req.to_call(call.id.clone()))
            .expect("our own request parses");
        assert_eq!(back, req, "client request round trip");
    }
    if let Ok(n) = ServerNotification::from_call(&call) {
        let back = ServerNotification::from_call(&n.to_call()).expect("our own notification");
        assert_eq!(back, n, "server notification round trip");
    }
}

/// The session a fuzzed share is judged in: a job on an easy network target (so shares can be
/// blocks too) with a real merkle branch, issued at a low share difficulty.
struct Bench {
    issued: IssuedJob,
    extranonce1: Extranonce1,
    mask: VersionMask,
}

const NOW: u32 = 1_750_000_000;
const EXTRANONCE2_SIZE: usize = 4;

fn bench() -> &'static Bench {
    static BENCH: OnceLock<Bench> = OnceLock::new();
    BENCH.get_or_init(|| {
        let txs: Vec<bitcoin::Transaction> = (0..3u8)
            .map(|i| bitcoin::Transaction {
                version: bitcoin::transaction::Version::ONE,
                lock_time: bitcoin::absolute::LockTime::from_consensus(i as u32),
                input: vec![],
                output: vec![],
            })
            .collect();
        let bits = CompactTarget::from_consensus(0x207fffff);
        let template = Arc::new(Template {
            height: 500,
            prev_hash: bitcoin::BlockHash::from_byte_array([7; 32]),
            version: Version(0x2000_0000),
            bits,
            target: bits.to_target().expect("regtest bits are valid"),
            min_time: NOW - 600,
            cur_time: NOW,
            coinbase_value: bitcoin::Amount::from_sat(50_0000_0000),
            txids: Arc::new(txs.iter().map(|t| t.compute_txid()).collect()),
            transactions: Arc::new(txs),
            witness_commitment: None,
            created: std::time::Instant::now(),
        });
        let coinbase =
            CoinbaseBuilder::new(bitcoin::ScriptBuf::new(), "/fuzz/", 4 + EXTRANONCE2_SIZE);
        let job: Job = JobBuilder::new(coinbase, JobIds::starting_at(1)).build(&template);
        assert_eq!(job.id, JobId::new("1"), "the corpus names job 1");
        Bench {
            issued: IssuedJob::new(
                Arc::new(job),
                Difficulty::new(1e-6).expect("a valid difficulty"),
            ),
            extranonce1: Extranonce1(vec![0xde, 0xad, 0xbe, 0xef]),
            mask: VersionMask::BIP320,
        }
    })
}

/// A submit from raw bytes, for inputs that are not a JSON line: the fuzzer then reaches
/// every branch of validation without having to write JSON first.
fn raw_submit(data: &[u8]) -> Submit {
    let byte = |i: usize| data.get(i).copied().unwrap_or(0);
    let word = |i: usize| u32::from_le_bytes([byte(i), byte(i + 1), byte(i + 2), byte(i + 3)]);
    let en2_len = byte(0) as usize % 7;
    Submit {
        worker: WorkerName::new("fuzz.rig"),
        job_id: JobId::new(if byte(1) % 8 == 0 { "2" } else { "1" }),
        extranonce2: Extranonce2((0..en2_len).map(|i| byte(2 + i)).collect()),
        ntime: Ntime(NOW - 700 + word(9) % 9000),
        nonce: Nonce(word(13)),
        version_bits: (byte(17) % 3 != 0).then(|| Version(word(18))),
    }
}

/// Whatever a miner sends as `mining.submit`, validation answers without panicking, and an
/// accepted share is what it claims: its hash is the header's, it meets the target it is
/// credited at (or the network's), and the same share again is a duplicate.
pub fn submit(data: &[u8]) {
    let b = bench();
    let submit = match std::str::from_utf8(data).ok().map(Message::from_json) {
        Some(Ok(Message::Call(call))) => match ClientRequest::from_call(&call) {
            Ok(ClientRequest::Submit(s)) => s,
            _ => return,
        },
        Some(_) => return,
        None => raw_submit(data),
    };
    let mask = data.len().is_multiple_of(2).then_some(b.mask);
    let ctx = ShareContext {
        issued: (submit.job_id == b.issued.job.id).then_some(&b.issued),
        current_generation: b.issued.job.generation,
        current_difficulty: b.issued.difficulty,
        current_target: b.issued.target,
        extranonce1: &b.extranonce1,
        extranonce2_size: EXTRANONCE2_SIZE,
        version_mask: mask,
        now: NOW,
        at: std::time::Instant::now(),
    };
    let mut dedup = Dedup::default();
    let Ok(acc) = validate(&ctx, &submit, &mut dedup) else {
        return;
    };
    assert_eq!(acc.hash, header_hash(&acc.header), "hash of the header");
    assert_eq!(acc.header.nonce, submit.nonce.0);
    assert_eq!(acc.header.time, submit.ntime.0);
    assert!(
        acc.is_block || b.issued.target.is_met_by(&acc.hash),
        "an accepted share meets its target"
    );
    assert_eq!(
        acc.is_block,
        b.issued.job.template.target.is_met_by(&acc.hash)
    );
    assert!(
        matches!(validate(&ctx, &submit, &mut dedup), Err(Reject::Duplicate)),
        "the same share twice is a duplicate"
    );
}

/// The P2P frame decoder fed `data[1..]` in chunks sized by `data[0]`, as a peer's socket
/// would deliver it: it never panics, never holds more than one allowed frame plus a chunk,
/// stops at the first error (the node closes the connection there), and every message it
/// yields encodes back to a frame that decodes to the same message.
pub fn p2p_frames(data: &[u8]) {
    use bitcoin::p2p::Magic;
    use pool_server::p2p::codec::{FrameCodec, HEADER_LEN, MAX_BLOCK_PAYLOAD};
    use tokio_util::codec::Encoder;

    let Some((&seed, input)) = data.split_first() else {
        return;
    };
    let chunk = 1 + seed as usize % 251;
    let mut codec = FrameCodec::new(Magic::REGTEST);
    let mut buf = BytesMut::new();
    for piece in input.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(msg)) => {
                    let mut again = BytesMut::new();
                    codec.encode(msg.clone(), &mut again).expect("encode");
                    let back = codec.decode(&mut again).expect("our own frame decodes");
                    assert_eq!(back, Some(msg), "a decoded message round-trips");
                    assert!(again.is_empty());
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
        assert!(
            buf.len() <= HEADER_LEN + MAX_BLOCK_PAYLOAD as usize + chunk,
            "the decoder holds at most one frame and a chunk"
        );
    }
}

/// The embedded chain [`p2p_blocks`] feeds, in a temp dir of its own, with the easiest bits so
/// that a header ground a few times meets its target and fuzzed blocks get past the proof of
/// work to the checks behind it.
fn fuzz_chain() -> &'static Arc<pool_server::chain::embedded::EmbeddedChain> {
    use pool_server::chain::block_file::BlockFile;
    use pool_server::chain::embedded::EmbeddedChain;
    use pool_server::chain::rules::ChainParams;
    static CHAIN: OnceLock<Arc<EmbeddedChain>> = OnceLock::new();
    CHAIN.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("pool-fuzz-chain-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let (file, stored) = BlockFile::open(&dir.join("chain.blocks")).expect("chain file");
        let bits = CompactTarget::from_consensus(0x207fffff);
        let params = ChainParams {
            // Shallow, so a fuzzed branch reaches the depth rule as well as the work rule.
            branches: pool_server::chain::branch::BranchRules {
                margin_blocks: 2,
                max_fork_depth: 4,
                max_siblings: 3,
                // Small, so a fuzzed sequence fills the side branches' room too.
                max_side_blocks: 6,
                max_side_bytes: 64 * 1024,
                min_chain_work: pool_server::chain::min_work::none(),
            },
            ..ChainParams::at_genesis_limit("fuzz", bits, 2016)
        };
        EmbeddedChain::open(params, file, stored, vec![])
            .expect("a new chain")
            .0
    })
}

/// A block a peer might send, from `data[1..]`, put on the chain's tip, on the genesis or
/// left where it points (by `data[0]`), its nonce ground until it meets its bits (when it
/// can): it never panics the chain, the orphan pool stays within its bounds, a block once
/// stored comes back a duplicate, the tip only moves to a block that was stored, and a block
/// refused for its branch (too little work, too deep a fork) is never stored: stored or not,
/// vouched for by its headers (`data[0] & 0x40`) or not.
pub fn p2p_blocks(data: &[u8]) {
    use pool_server::chain::embedded::Origin;
    use pool_server::chain::{BlockVerdict, TemplateSource};

    let Some((&how, raw)) = data.split_first() else {
        return;
    };
    let Ok(mut block) = bitcoin::consensus::deserialize::<bitcoin::Block>(raw) else {
        return;
    };
    let chain = fuzz_chain();
    match how % 3 {
        0 => block.header.prev_blockhash = chain.tip().1,
        1 => block.header.prev_blockhash = chain.genesis_hash(),
        _ => {}
    }
    if how & 0x80 != 0 {
        block.header.bits = bitcoin::CompactTarget::from_consensus(0x207fffff);
    }
    if let Ok(target) = CompactTarget::from(block.header.bits).to_target() {
        for _ in 0..64 {
            if target.is_met_by(&block.block_hash()) {
                break;
            }
            block.header.nonce = block.header.nonce.wrapping_add(1);
        }
    }
    let before = chain.tip();
    let origin = if how & 0x40 != 0 {
        Origin::Vouched
    } else {
        Origin::Peer
    };
    let out = chain.accept(&block, origin);
    if let BlockVerdict::Rejected(reason) = &out.verdict {
        if reason == "low-work-branch" || reason == "fork-too-deep" {
            assert!(out.stored.is_empty(), "a refused branch is not stored");
            assert!(!chain.knows(&block.block_hash()), "nor kept aside");
            assert!(
                reason != "low-work-branch" || origin == Origin::Peer,
                "a vouched block is judged by depth only"
            );
        }
    }
    let (orphans, bytes) = chain.orphans();
    assert!(
        orphans <= 1_000 && bytes <= 16 * 1024 * 1024,
        "orphans bounded"
    );
    if !out.stored.is_empty() || out.missing_parent.is_some() {
        assert_eq!(
            chain.accept(&block, Origin::Peer).verdict,
            BlockVerdict::Duplicate,
            "a block kept is never taken twice"
        );
    }
    let after = chain.tip();
    if after != before {
        assert!(out.tip_changed);
        assert!(
            out.stored.iter().any(|s| s.hash == after.1),
            "the new tip was stored"
        );
        assert_eq!(
            chain.templates().borrow().prev_hash,
            after.1,
            "miners follow the tip"
        );
    }
}

/// Header chains a peer might send, from `data[1..]` in 80-byte headers: by `data[0]` the
/// first is put on the chain's tip, on the genesis or left where it points, and the rest are
/// linked one to the next (or left as they are, by bit 0x40); bit 0x80 gives them all the
/// easiest bits. Through [`pool_server::chain::embedded::EmbeddedChain::headers_could_lead`],
/// the judgment that decides whether their blocks are fetched: it never panics, stores
/// nothing (the tip and what the chain knows stay), and a chain that could lead still could
/// with more headers on top (work only adds up).
pub fn p2p_headers(data: &[u8]) {
    use bitcoin::block::Header;

    let Some((&how, raw)) = data.split_first() else {
        return;
    };
    let mut headers: Vec<Header> = raw
        .chunks_exact(80)
        .take(2_000)
        .filter_map(|c| bitcoin::consensus::deserialize(c).ok())
        .collect();
    if headers.is_empty() {
        return;
    }
    let chain = fuzz_chain();
    match how % 3 {
        0 => headers[0].prev_blockhash = chain.tip().1,
        1 => headers[0].prev_blockhash = chain.genesis_hash(),
        _ => {}
    }
    for i in 0..headers.len() {
        if how & 0x80 != 0 {
            headers[i].bits = bitcoin::CompactTarget::from_consensus(0x207fffff);
        }
        if how & 0x40 == 0 && i > 0 {
            headers[i].prev_blockhash = headers[i - 1].block_hash();
        }
    }
    let before = (chain.tip(), chain.knows(&headers[0].block_hash()));
    let whole = chain.headers_could_lead(&headers);
    let half = chain.headers_could_lead(&headers[..headers.len().div_ceil(2)]);
    assert_eq!(
        (chain.tip(), chain.knows(&headers[0].block_hash())),
        before,
        "judging headers stores nothing"
    );
    if how & 0x40 == 0 {
        if let (Some(Ok(true)), Some(Ok(lead))) = (half, whole) {
            assert!(lead, "more work never makes a chain lead less");
        }
    }
}

/// Lines a pool might send (answers to the worker's configure, subscribe, authorize and
/// submits, and every notification), through the worker's client state in order: it never
/// panics, and the work it publishes keeps the worker's rules: extranonce2 within bounds and
/// of the size the pool set, versions rolled only inside the mask asked for and BIP 9, and no
/// unit (header but nonce) handed out twice.
pub fn client_lines(data: &[u8]) {
    use miner_worker::client::state::{Pending, PoolState};
    use miner_worker::status::Status;
    use miner_worker::work::WorkBoard;

    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let board = WorkBoard::default();
    let status = Status::default();
    let mut state = PoolState::new(1, Some(VersionMask::BIP320), 100.0);
    let mut seen = std::collections::HashSet::new();
    for line in text.lines() {
        let Ok(msg) = Message::from_json(line) else {
            continue;
        };
        match msg {
            Message::Response(r) => {
                let kind = match r.id.as_u64() {
                    Some(1) => Pending::Configure,
                    Some(2) => Pending::Subscribe,
                    Some(3) => Pending::Authorize,
                    Some(4) => Pending::Other,
                    Some(_) => Pending::Submit,
                    None => continue,
                };
                if state.on_response(kind, r.outcome, &board, &status).is_err() {
                    return;
                }
            }
            Message::Call(call) => {
                if let Ok(n) = ServerNotification::from_call(&call) {
                    let _ = state.on_notification(n, &board, &status);
                }
            }
        }
        let Some(work) = board.current() else {
            continue;
        };
        assert!(work.extranonce2_size <= protocol::MAX_EXTRANONCE2_SIZE);
        if let Some(mask) = work.version_mask {
            assert_eq!(
                mask.0 & !VersionMask::BIP320.0,
                0,
                "rolled outside the mask asked"
            );
        }
        for _ in 0..3 {
            let Some(unit) = work.next_unit() else {
                break;
            };
            assert_eq!(unit.extranonce2.0.len(), work.extranonce2_size);
            if unit.version_bits.is_some() {
                assert_eq!(unit.version.0 >> 29, 0b001, "a BIP 9 version");
            }
            assert!(
                seen.insert(unit.header[..76].to_vec()),
                "a unit handed out twice"
            );
        }
    }
}
