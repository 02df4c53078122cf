//! The embedded chain's own copy of its recent blocks, so a pool-server resumes its chain
//! while the share database is away (it starts in spool mode then, and the database's copy
//! of the chain cannot be read). The database stays the record of every block; this file
//! only holds what resuming needs: the last blocks, one `HEIGHT HEX` line each, synced to
//! disk as each block is appended (blocks are rare), compacted when it is opened. A torn last
//! line (a crash mid-append) is ignored and cut off.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use bitcoin::Block;
use parking_lot::Mutex;

pub struct BlockFile {
    path: PathBuf,
    file: Mutex<File>,
}

impl BlockFile {
    /// Open (or create) the file and return the last `keep` blocks it holds, ascending.
    pub fn open(path: &Path, keep: usize) -> io::Result<(BlockFile, Vec<(u64, Block)>)> {
        let mut blocks: Vec<(u64, Block)> = Vec::new();
        if let Ok(f) = File::open(path) {
            for line in BufReader::new(f).lines() {
                let Ok(line) = line else { break };
                let Some(block) = parse(&line) else { break };
                blocks.push(block);
            }
        }
        // Keep one ascending run ending at the highest block (a chain that was started over
        // leaves nothing behind that could be taken for its tip).
        if let Some(start) = blocks.windows(2).rposition(|w| w[1].0 != w[0].0 + 1) {
            blocks.drain(..=start);
        }
        let skip = blocks.len().saturating_sub(keep);
        blocks.drain(..skip);
        let file = rewrite(path, &blocks)?;
        Ok((
            BlockFile {
                path: path.to_owned(),
                file: Mutex::new(file),
            },
            blocks,
        ))
    }

    /// Hold exactly `blocks` (the database's copy, when it is ahead of the file's).
    pub fn reset(&self, blocks: &[(u64, Block)]) -> io::Result<()> {
        let mut f = self.file.lock();
        *f = rewrite(&self.path, blocks)?;
        Ok(())
    }

    /// Append a block and sync it to disk.
    pub fn append(&self, height: u64, block: &Block) -> io::Result<()> {
        let line = format!(
            "{height} {}\n",
            hex::encode(bitcoin::consensus::serialize(block))
        );
        let mut f = self.file.lock();
        f.write_all(line.as_bytes())?;
        f.sync_data()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Write `blocks` to a new file, move it into place, and open it for appending.
fn rewrite(path: &Path, blocks: &[(u64, Block)]) -> io::Result<File> {
    let tmp = path.with_extension("tmp");
    {
        let mut out = File::create(&tmp)?;
        for (height, block) in blocks {
            writeln!(
                out,
                "{height} {}",
                hex::encode(bitcoin::consensus::serialize(block))
            )?;
        }
        out.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir).and_then(|d| d.sync_all()).ok();
    }
    OpenOptions::new().append(true).open(path)
}

fn parse(line: &str) -> Option<(u64, Block)> {
    let (height, hex) = line.split_once(' ')?;
    let raw = hex::decode(hex.trim_end()).ok()?;
    Some((
        height.parse().ok()?,
        bitcoin::consensus::deserialize(&raw).ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::blockdata::constants::genesis_block;
    use bitcoin::Network;

    #[test]
    fn keeps_the_last_blocks_and_cuts_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chain.blocks");
        let g = genesis_block(Network::Regtest);
        {
            let (f, none) = BlockFile::open(&path, 3).unwrap();
            assert!(none.is_empty());
            for h in 0..5 {
                f.append(h, &g).unwrap();
            }
        }
        // A crash in the middle of an append.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"5 0100ab")
            .unwrap();
        let (f, kept) = BlockFile::open(&path, 3).unwrap();
        assert_eq!(kept.iter().map(|b| b.0).collect::<Vec<_>>(), [2, 3, 4]);
        f.append(5, &g).unwrap();
        drop(f);
        let (_, kept) = BlockFile::open(&path, 3).unwrap();
        assert_eq!(kept.iter().map(|b| b.0).collect::<Vec<_>>(), [3, 4, 5]);
    }
}
