//! The embedded chain's block store: every block the node has accepted (its best chain and any
//! side branch), one `HEIGHT HEX` line each, in the order they were accepted, so each line's
//! parent comes before it. The node rebuilds its block tree from this file at start (it needs
//! no database to resume, so it starts in spool mode while the database is away) and serves
//! peers' `getdata` from it, by an index of where each block's line starts.
//!
//! Blocks found here are synced to disk as they are appended; blocks from peers are not (a
//! crash loses at most a few, which the peers still have). A torn last line (a crash mid-append)
//! is cut off when the file is opened. The share database keeps its own record of the blocks;
//! this file is the node's.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bitcoin::{Block, BlockHash};
use parking_lot::Mutex;

/// Whether an append must be on disk before it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// A block found here: synced, it exists nowhere else yet.
    Synced,
    /// A block from a peer: written, synced with the next synced append or by the OS.
    Written,
}

struct Inner {
    append: File,
    read: File,
    len: u64,
    /// Where each block's hex starts, and how long it is.
    index: HashMap<BlockHash, (u64, u32)>,
}

pub struct BlockFile {
    path: PathBuf,
    inner: Mutex<Inner>,
}

impl BlockFile {
    /// Open (or create) the file and return every block it holds, in file order.
    pub fn open(path: &Path) -> io::Result<(BlockFile, Vec<(u64, Block)>)> {
        let mut blocks = Vec::new();
        let mut index = HashMap::new();
        let mut good_len: u64 = 0;
        if let Ok(f) = File::open(path) {
            let mut reader = BufReader::new(f);
            let mut line = String::new();
            loop {
                line.clear();
                let n = reader.read_line(&mut line)?;
                if n == 0 || !line.ends_with('\n') {
                    break;
                }
                let Some((height, block)) = parse(&line) else {
                    break;
                };
                index.insert(block.block_hash(), hex_span(good_len, line.trim_end()));
                blocks.push((height, block));
                good_len += n as u64;
            }
        }
        let append = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)?;
        if append.metadata()?.len() != good_len {
            // A torn or unreadable tail: cut it, so the next append starts a whole line.
            append.set_len(good_len)?;
            append.sync_all()?;
        }
        let read = File::open(path)?;
        Ok((
            BlockFile {
                path: path.to_owned(),
                inner: Mutex::new(Inner {
                    append,
                    read,
                    len: good_len,
                    index,
                }),
            },
            blocks,
        ))
    }

    /// Hold exactly `blocks` (written anew, then moved into place).
    pub fn reset(&self, blocks: &[(u64, Block)]) -> io::Result<()> {
        let tmp = self.path.with_extension("tmp");
        let mut index = HashMap::new();
        let mut len = 0u64;
        {
            let mut out = io::BufWriter::new(File::create(&tmp)?);
            for (height, block) in blocks {
                let line = line_of(*height, block);
                index.insert(block.block_hash(), hex_span(len, line.trim_end()));
                out.write_all(line.as_bytes())?;
                len += line.len() as u64;
            }
            out.into_inner()?.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir).and_then(|d| d.sync_all()).ok();
        }
        let mut inner = self.inner.lock();
        inner.append = OpenOptions::new().append(true).open(&self.path)?;
        inner.read = File::open(&self.path)?;
        inner.len = len;
        inner.index = index;
        Ok(())
    }

    /// Append a block (synced to disk first when `durability` says so).
    pub fn append(&self, height: u64, block: &Block, durability: Durability) -> io::Result<()> {
        let line = line_of(height, block);
        let mut inner = self.inner.lock();
        let start = inner.len;
        if let Err(e) = inner.append.write_all(line.as_bytes()) {
            // Leave no partial line behind for the next append to run into.
            let _ = inner.append.set_len(start);
            return Err(e);
        }
        if durability == Durability::Synced {
            inner.append.sync_data()?;
        }
        inner
            .index
            .insert(block.block_hash(), hex_span(start, line.trim_end()));
        inner.len += line.len() as u64;
        Ok(())
    }

    /// The block with `hash`, read back from the file.
    pub fn read(&self, hash: &BlockHash) -> io::Result<Option<Block>> {
        let inner = self.inner.lock();
        let Some(&(at, len)) = inner.index.get(hash) else {
            return Ok(None);
        };
        let mut hex = vec![0u8; len as usize];
        inner.read.read_exact_at(&mut hex, at)?;
        drop(inner);
        let raw = hex::decode(&hex).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        bitcoin::consensus::deserialize(&raw)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    pub fn len(&self) -> usize {
        self.inner.lock().index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Where the hex of `line` (without its newline), starting at `start` in the file, lies.
fn hex_span(start: u64, line: &str) -> (u64, u32) {
    let skip = line.find(' ').map_or(0, |i| i + 1);
    (start + skip as u64, (line.len() - skip) as u32)
}

fn line_of(height: u64, block: &Block) -> String {
    format!(
        "{height} {}\n",
        hex::encode(bitcoin::consensus::serialize(block))
    )
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
    fn keeps_every_block_serves_it_by_hash_and_cuts_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chain.blocks");
        let blocks: Vec<Block> = [Network::Regtest, Network::Testnet, Network::Signet]
            .into_iter()
            .map(genesis_block)
            .collect();
        {
            let (f, none) = BlockFile::open(&path).unwrap();
            assert!(none.is_empty());
            for (h, b) in blocks.iter().enumerate() {
                f.append(h as u64, b, Durability::Synced).unwrap();
            }
            assert_eq!(
                f.read(&blocks[1].block_hash()).unwrap().as_ref(),
                Some(&blocks[1])
            );
        }
        // A crash in the middle of an append.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"3 0100ab")
            .unwrap();
        let (f, kept) = BlockFile::open(&path).unwrap();
        assert_eq!(kept.iter().map(|b| b.0).collect::<Vec<_>>(), [0, 1, 2]);
        let main = genesis_block(Network::Bitcoin);
        f.append(3, &main, Durability::Written).unwrap();
        assert_eq!(f.read(&main.block_hash()).unwrap(), Some(main.clone()));
        assert_eq!(
            f.read(&blocks[0].block_hash()).unwrap().as_ref(),
            Some(&blocks[0])
        );
        drop(f);
        let (f, kept) = BlockFile::open(&path).unwrap();
        assert_eq!(kept.iter().map(|b| b.0).collect::<Vec<_>>(), [0, 1, 2, 3]);
        f.reset(&kept[2..]).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f.read(&blocks[0].block_hash()).unwrap(), None);
        assert_eq!(f.read(&main.block_hash()).unwrap(), Some(main));
    }
}
