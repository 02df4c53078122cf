//! How the embedded chain resumes with many blocks: the time to open its block file and
//! rebuild the block tree, and the peak resident memory of doing it, for `--blocks` blocks
//! (default 100,000) of about `--block-bytes` each.
//!
//! Each measure runs in a child process of its own, so its peak memory is its own: `raw` opens
//! a file of today's layout; `hex` opens one of the earlier layout (a `HEIGHT HEX` line per
//! block), which this first open converts. Medians over `--runs`.
//!
//! Usage: pool-chainbench [--blocks N] [--block-bytes B] [--runs R]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use bitcoin::block::{Header, Version};
use bitcoin::hashes::Hash;
use bitcoin::{Block, ScriptBuf, TxMerkleNode};
use clap::Parser;

use pool_server::chain::block_file::{BlockFile, Durability};
use pool_server::chain::coinbase::{subsidy, CoinbaseBuilder};
use pool_server::chain::embedded::EmbeddedChain;
use pool_server::chain::rules::ChainParams;
use protocol::CompactTarget;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 100_000)]
    blocks: u64,
    #[arg(long, default_value_t = 1_000)]
    block_bytes: usize,
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

const CHILD: &str = "POOL_CHAINBENCH_OPEN";

fn params() -> ChainParams {
    ChainParams::at_genesis_limit(
        "chainbench",
        CompactTarget::from_consensus(0x207fffff),
        2016,
    )
}

/// Block `height` on `prev`, its coinbase padded to about `bytes` (resuming reads no proof of
/// work: the file is the node's own).
fn block(prev: bitcoin::BlockHash, height: u64, bytes: usize) -> Block {
    let pad = "x".repeat(bytes.saturating_sub(200).min(90));
    let mut coinbase = CoinbaseBuilder::new(ScriptBuf::from_bytes(vec![0x51]), &pad, 8)
        .build(height, subsidy(height), None, 0)
        .with_extranonce(&[0; 8]);
    let filler = bytes.saturating_sub(300);
    if filler > 0 {
        coinbase.output.push(bitcoin::TxOut {
            value: bitcoin::Amount::ZERO,
            script_pubkey: ScriptBuf::from_bytes(vec![0x6a; filler]),
        });
    }
    let mut b = Block {
        header: Header {
            version: Version::from_consensus(0x2000_0000),
            prev_blockhash: prev,
            merkle_root: TxMerkleNode::all_zeros(),
            time: 1_767_225_600 + height as u32,
            bits: bitcoin::CompactTarget::from_consensus(0x207fffff),
            nonce: 0,
        },
        txdata: vec![coinbase],
    };
    b.header.merkle_root = b.compute_merkle_root().expect("one transaction");
    b
}

/// Write the chain in both layouts under `dir`; their paths.
fn prepare(dir: &Path, n: u64, bytes: usize) -> (PathBuf, PathBuf) {
    let raw = dir.join("raw.blocks");
    let hex = dir.join("hex.blocks");
    let (file, _) = BlockFile::open(&raw).expect("block file");
    let mut text = std::io::BufWriter::new(std::fs::File::create(&hex).expect("hex file"));
    let genesis = params().genesis();
    let mut prev = genesis.block_hash();
    let mut put = |h: u64, b: &Block| {
        file.append(h, b, Durability::Written).expect("append");
        let line = hex::encode(bitcoin::consensus::serialize(b));
        writeln!(text, "{h} {line}").expect("write");
    };
    put(0, &genesis);
    for h in 1..=n {
        let b = block(prev, h, bytes);
        prev = b.block_hash();
        put(h, &b);
    }
    text.flush().expect("flush");
    (raw, hex)
}

fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// In the child: open the chain at `path`, print seconds, peak RSS and the tip's height.
fn open(path: &Path) {
    let t = Instant::now();
    let (file, entries) = BlockFile::open(path).expect("open the block file");
    let (chain, _) = EmbeddedChain::open(params(), file, entries, Vec::new()).expect("resume");
    let secs = t.elapsed().as_secs_f64();
    println!("{secs} {} {}", peak_rss(), chain.tip().0);
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn cpu() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// Removes the bench's files however it ends.
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn main() {
    if let Ok(path) = std::env::var(CHILD) {
        open(Path::new(&path));
        return;
    }
    let args = Args::parse();
    let dir = std::env::temp_dir().join(format!("pool-chainbench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let _gone = Cleanup(dir.clone());
    eprintln!(
        "writing {} blocks of about {} bytes ...",
        args.blocks, args.block_bytes
    );
    let (raw, hex) = prepare(dir.as_path(), args.blocks, args.block_bytes);
    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    println!(
        "CPU: {} ({} threads); {} blocks, file {:.1} MB raw, {:.1} MB hex",
        cpu(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        args.blocks,
        size(&raw) as f64 / 1e6,
        size(&hex) as f64 / 1e6
    );
    let exe = std::env::current_exe().expect("own path");
    for (name, source) in [("raw", &raw), ("hex (converted)", &hex)] {
        let (mut secs, mut rss) = (Vec::new(), Vec::new());
        for run in 0..args.runs {
            let copy = dir.as_path().join(format!("run-{run}.blocks"));
            std::fs::copy(source, &copy).expect("copy");
            let out = Command::new(&exe)
                .env(CHILD, &copy)
                .output()
                .expect("run the child");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let text = String::from_utf8_lossy(&out.stdout);
            let v: Vec<f64> = text
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            assert_eq!(
                v.get(2).copied(),
                Some(args.blocks as f64),
                "resumed at the tip"
            );
            secs.push(v[0]);
            rss.push(v[1]);
            std::fs::remove_file(&copy).ok();
        }
        println!(
            "{name:>16}: open and rebuild {:.2} s, peak resident {:.1} MB (medians of {})",
            median(secs),
            median(rss) / 1e6,
            args.runs
        );
    }
}
