//! The embedded chain's block store: every block the node has accepted (its best chain and any
//! side branch), in the order they were accepted, so each block's parent comes before it. The
//! node rebuilds its block tree from this file at start (it needs no database to resume, so it
//! starts in spool mode while the database is away) and serves peers' `getdata` from it, by an
//! index of where each block lies.
//!
//! The layout: [`MAGIC`], then one record per block: its height (u64, little-endian), its
//! length (u32, little-endian) and its raw consensus bytes. Opening reads each record's
//! 12-byte head and 80-byte header and skips its body, so a start holds the headers the tree
//! needs, never the blocks (with 100,000 blocks: see BENCHMARKS.md). A file of the earlier
//! layout (a `HEIGHT HEX` line per block, twice the bytes) is converted on open, a block at a
//! time.
//!
//! Blocks found here are synced to disk as they are appended; blocks from peers are not (a
//! crash loses at most a few, which the peers still have). A torn last record (a crash
//! mid-append) is cut off when the file is opened. The share database keeps its own record of
//! the blocks; this file is the node's.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bitcoin::block::Header;
use bitcoin::{Block, BlockHash};
use parking_lot::Mutex;

/// What a block file of this layout begins with.
pub const MAGIC: &[u8; 10] = b"rpblocks1\n";
/// A record's head: height (8 bytes) and length (4).
const HEAD: usize = 12;
/// A block's header, the first bytes of its body.
const HEADER: usize = 80;
/// The largest block a record may hold (a block's weight limit, in bytes at most).
const MAX_BLOCK_BYTES: u32 = 4_000_000;

/// Whether an append must be on disk before it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// A block found here: synced, it exists nowhere else yet.
    Synced,
    /// A block from a peer: written, synced with the next synced append or by the OS.
    Written,
}

/// A block the file holds, as opening it reads it: where it stands and its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub height: u64,
    pub header: Header,
}

/// Where each block's bytes start in the file, and how many.
type Index = HashMap<BlockHash, (u64, u32)>;

struct Inner {
    append: File,
    read: File,
    len: u64,
    index: Index,
}

pub struct BlockFile {
    path: PathBuf,
    inner: Mutex<Inner>,
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// One record's bytes.
fn record(height: u64, block: &Block) -> Vec<u8> {
    let raw = bitcoin::consensus::serialize(block);
    let mut out = Vec::with_capacity(HEAD + raw.len());
    out.extend(height.to_le_bytes());
    out.extend((raw.len() as u32).to_le_bytes());
    out.extend(raw);
    out
}

/// Read the records of `f` (positioned after the magic, `len` bytes long): each block's entry
/// and where its bytes lie, and the length of the whole records (a torn tail is left out).
fn scan(f: File, len: u64) -> io::Result<(Vec<Entry>, Index, u64)> {
    let mut reader = BufReader::with_capacity(1 << 16, f);
    let mut entries = Vec::new();
    let mut index = HashMap::new();
    let mut at = MAGIC.len() as u64;
    let mut head = [0u8; HEAD + HEADER];
    loop {
        if at + (HEAD + HEADER) as u64 > len || reader.read_exact(&mut head).is_err() {
            break;
        }
        let height = u64::from_le_bytes(head[..8].try_into().expect("8 bytes"));
        let size = u32::from_le_bytes(head[8..12].try_into().expect("4 bytes"));
        let end = at + HEAD as u64 + u64::from(size);
        if (size as usize) < HEADER || size > MAX_BLOCK_BYTES || end > len {
            break;
        }
        let Ok(header) = bitcoin::consensus::deserialize::<Header>(&head[HEAD..]) else {
            break;
        };
        index.insert(header.block_hash(), (at + HEAD as u64, size));
        entries.push(Entry { height, header });
        reader.seek_relative(i64::from(size) - HEADER as i64)?;
        at = end;
    }
    Ok((entries, index, at))
}

/// Convert a file of the earlier `HEIGHT HEX` layout at `path` into this one, a block at a
/// time (a torn last line is left out, as it always was).
fn convert_hex(path: &Path) -> io::Result<()> {
    let tmp = path.with_extension("converting");
    {
        let mut reader = BufReader::new(File::open(path)?);
        let mut out = io::BufWriter::new(File::create(&tmp)?);
        out.write_all(MAGIC)?;
        let mut line = String::new();
        loop {
            line.clear();
            let n = reader.read_line(&mut line)?;
            if n == 0 || !line.ends_with('\n') {
                break;
            }
            let Some((height, hex)) = line.trim_end().split_once(' ') else {
                break;
            };
            let (Ok(height), Ok(raw)) = (height.parse::<u64>(), hex::decode(hex)) else {
                break;
            };
            let Ok(block) = bitcoin::consensus::deserialize::<Block>(&raw) else {
                break;
            };
            out.write_all(&record(height, &block))?;
        }
        out.into_inner()?.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    tracing::info!(file = %path.display(), "block file converted to the raw layout");
    Ok(())
}

impl BlockFile {
    /// Open (or create) the file and return every block's entry, in file order.
    pub fn open(path: &Path) -> io::Result<(BlockFile, Vec<Entry>)> {
        if let Ok(mut f) = File::open(path) {
            let mut start = [0u8; MAGIC.len()];
            let n = f.read(&mut start)?;
            if n > 0 && (n < MAGIC.len() || &start != MAGIC) && start[0].is_ascii_digit() {
                convert_hex(path)?;
            }
        }
        let append = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)?;
        let mut on_disk = append.metadata()?.len();
        if on_disk < MAGIC.len() as u64 {
            // New, or torn before its magic was whole: nothing in it yet.
            append.set_len(0)?;
            on_disk = 0;
        }
        let (entries, index, good_len) = if on_disk == 0 {
            (&append).write_all(MAGIC)?;
            append.sync_all()?;
            (Vec::new(), HashMap::new(), MAGIC.len() as u64)
        } else {
            let mut f = File::open(path)?;
            let mut start = [0u8; MAGIC.len()];
            if f.read_exact(&mut start).is_err() || &start != MAGIC {
                return Err(invalid(format!(
                    "{} is not a block file (move it away, and the chain is rebuilt from the database)",
                    path.display()
                )));
            }
            scan(f, on_disk)?
        };
        if on_disk > good_len {
            // A torn or unreadable tail: cut it, so the next append starts a whole record.
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
            entries,
        ))
    }

    /// Hold exactly `blocks`, in that order (written anew, then moved into place): each
    /// given whole, or by hash when this file holds it (read back one at a time).
    pub fn rewrite(&self, blocks: &[(u64, BlockHash, Option<&Block>)]) -> io::Result<()> {
        let tmp = self.path.with_extension("tmp");
        let mut index = HashMap::new();
        let mut len = MAGIC.len() as u64;
        {
            let mut out = io::BufWriter::new(File::create(&tmp)?);
            out.write_all(MAGIC)?;
            for (height, hash, block) in blocks {
                let read;
                let block = match block {
                    Some(b) => *b,
                    None => {
                        read = self.read(hash)?.ok_or_else(|| {
                            invalid(format!("block {hash} is not in the block file"))
                        })?;
                        &read
                    }
                };
                let rec = record(*height, block);
                index.insert(*hash, (len + HEAD as u64, (rec.len() - HEAD) as u32));
                out.write_all(&rec)?;
                len += rec.len() as u64;
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
        let rec = record(height, block);
        let mut inner = self.inner.lock();
        let start = inner.len;
        if let Err(e) = inner.append.write_all(&rec) {
            // Leave no partial record behind for the next append to run into.
            let _ = inner.append.set_len(start);
            return Err(e);
        }
        if durability == Durability::Synced {
            inner.append.sync_data()?;
        }
        inner.index.insert(
            block.block_hash(),
            (start + HEAD as u64, (rec.len() - HEAD) as u32),
        );
        inner.len += rec.len() as u64;
        Ok(())
    }

    /// The block with `hash`, read back from the file.
    pub fn read(&self, hash: &BlockHash) -> io::Result<Option<Block>> {
        let inner = self.inner.lock();
        let Some(&(at, len)) = inner.index.get(hash) else {
            return Ok(None);
        };
        let mut raw = vec![0u8; len as usize];
        inner.read.read_exact_at(&mut raw, at)?;
        drop(inner);
        bitcoin::consensus::deserialize(&raw)
            .map(Some)
            .map_err(invalid)
    }

    /// The bytes of the block with `hash`, when the file holds it.
    pub fn size(&self, hash: &BlockHash) -> Option<u64> {
        self.inner
            .lock()
            .index
            .get(hash)
            .map(|(_, len)| u64::from(*len))
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

    /// Bytes on disk.
    pub fn bytes(&self) -> u64 {
        self.inner.lock().len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::blockdata::constants::genesis_block;
    use bitcoin::Network;

    fn blocks() -> Vec<Block> {
        [Network::Regtest, Network::Testnet, Network::Signet]
            .into_iter()
            .map(genesis_block)
            .collect()
    }

    fn heights(kept: &[Entry]) -> Vec<u64> {
        kept.iter().map(|e| e.height).collect()
    }

    #[test]
    fn keeps_every_block_serves_it_by_hash_and_cuts_a_torn_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chain.blocks");
        let blocks = blocks();
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
        // Raw bytes, not hex: a record is the block's size and 12 bytes more.
        let size: u64 = blocks.iter().map(|b| b.total_size() as u64 + 12).sum();
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            MAGIC.len() as u64 + size
        );
        // A crash in the middle of an append.
        let main = genesis_block(Network::Bitcoin);
        let torn = record(3, &main);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(&torn[..torn.len() - 7])
            .unwrap();
        let (f, kept) = BlockFile::open(&path).unwrap();
        assert_eq!(heights(&kept), [0, 1, 2]);
        assert_eq!(kept[2].header, blocks[2].header);
        f.append(3, &main, Durability::Written).unwrap();
        assert_eq!(f.read(&main.block_hash()).unwrap(), Some(main.clone()));
        assert_eq!(
            f.read(&blocks[0].block_hash()).unwrap().as_ref(),
            Some(&blocks[0])
        );
        drop(f);
        let (f, kept) = BlockFile::open(&path).unwrap();
        assert_eq!(heights(&kept), [0, 1, 2, 3]);
        let keep: Vec<_> = kept[2..]
            .iter()
            .map(|e| (e.height, e.header.block_hash(), None))
            .collect();
        f.rewrite(&keep).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f.read(&blocks[0].block_hash()).unwrap(), None);
        assert_eq!(f.read(&main.block_hash()).unwrap(), Some(main));
        drop(f);
        assert_eq!(heights(&BlockFile::open(&path).unwrap().1), [2, 3]);
    }

    #[test]
    fn a_file_of_the_hex_layout_is_converted_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chain.blocks");
        let blocks = blocks();
        let mut text = String::new();
        for (h, b) in blocks.iter().enumerate() {
            text += &format!("{h} {}\n", hex::encode(bitcoin::consensus::serialize(b)));
        }
        text += "3 0100ab"; // a torn last line
        std::fs::write(&path, &text).unwrap();
        let (f, kept) = BlockFile::open(&path).unwrap();
        assert_eq!(heights(&kept), [0, 1, 2]);
        for b in &blocks {
            assert_eq!(f.read(&b.block_hash()).unwrap().as_ref(), Some(b));
        }
        assert!(std::fs::metadata(&path).unwrap().len() < text.len() as u64 / 2 + 64);
        drop(f);
        assert_eq!(heights(&BlockFile::open(&path).unwrap().1), [0, 1, 2]);
    }
}
