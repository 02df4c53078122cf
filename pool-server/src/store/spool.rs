//! The append-only spool: where batches go while the database is unreachable.
//!
//! One JSON line per [`Batch`] (with the id that makes its write happen once), fsynced per
//! append, so an accepted share survives the database being away and the pool restarting.
//! After a successful replay the file is truncated. A spool written before batches had ids
//! (one event per line) still reads.
//!
//! The file only ever holds whole lines. A torn last line (a crash mid-write) is cut off when
//! the spool opens, and an append that fails (a full disk) is cut back off at once, so the
//! next append never lands glued to a fragment.
//!
//! Replay reads the file in chunks from a cursor while appends go on behind it, so a spool of
//! any size replays in bounded memory; the file is cut only when the cursor has reached its
//! end. A whole line that does not parse is moved to
//! `shares.spool.bad` beside the spool, never deleted. The directory is fsynced when the file
//! is created, so the file itself survives a power loss.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::batch::Batch;
use super::StoreEvent;

pub struct Spool {
    path: PathBuf,
    file: File,
    /// Bytes of whole lines in the file.
    len: u64,
    /// Events in the file.
    depth: u64,
    /// Bytes, and events, at the start of the file already replayed into the database.
    replayed_len: u64,
    replayed: u64,
}

/// Batches read from the spool, and where the next read starts.
pub struct Chunk {
    pub batches: Vec<Batch>,
    pub end: u64,
    /// Lines read (batches, and unreadable lines skipped).
    pub lines: u64,
    /// Events read (the spool's count, whatever is later set aside of them).
    pub events: u64,
}

impl Spool {
    pub fn open(dir: &Path) -> std::io::Result<Spool> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("shares.spool");
        let created = !path.exists();
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&path)?;
        if created {
            File::open(dir)?.sync_all()?;
        }
        let mut spool = Spool {
            path,
            file,
            len: 0,
            depth: 0,
            replayed_len: 0,
            replayed: 0,
        };
        spool.repair()?;
        Ok(spool)
    }

    /// Cut a torn last line and move unreadable lines aside; count what is left.
    fn repair(&mut self) -> std::io::Result<()> {
        let mut raw = Vec::new();
        File::open(&self.path)?.read_to_end(&mut raw)?;
        let whole = raw.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        if whole < raw.len() {
            tracing::warn!(
                bytes = raw.len() - whole,
                "cutting a torn last line off the spool (a crash mid-write)"
            );
        }
        let mut good = Vec::with_capacity(whole);
        let mut bad = Vec::new();
        let mut depth = 0;
        for line in raw[..whole].split_inclusive(|b| *b == b'\n') {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if let Ok(batch) = Batch::from_spool_line(line) {
                good.extend_from_slice(line);
                depth += batch.events.len() as u64;
            } else {
                bad.extend_from_slice(line);
            }
        }
        if !bad.is_empty() {
            let aside = self.path.with_extension("spool.bad");
            tracing::warn!(file = %aside.display(), "moving unreadable spool lines aside");
            let mut f = OpenOptions::new().create(true).append(true).open(&aside)?;
            f.write_all(&bad)?;
            f.sync_all()?;
        }
        if good.len() != raw.len() {
            // Rewrite in place: the good lines are a prefix-free subset, so write them and cut.
            self.file.set_len(0)?;
            self.file.write_all(&good)?;
            self.file.sync_all()?;
        }
        self.len = good.len() as u64;
        self.depth = depth;
        Ok(())
    }

    /// Events in the file (replayed or not) since it was last cut.
    pub fn depth(&self) -> u64 {
        self.depth
    }

    /// Events still waiting for the database.
    pub fn pending(&self) -> u64 {
        self.depth.saturating_sub(self.replayed)
    }

    /// Whole batches after the replay cursor, until they hold `max` events or more (at least
    /// one batch, whatever its size). Reads whole lines only, and only those appended before
    /// the call, so appends may go on meanwhile.
    pub fn read_pending(&self, max: usize) -> std::io::Result<Chunk> {
        let mut file = File::open(&self.path)?;
        file.seek(SeekFrom::Start(self.replayed_len))?;
        let mut reader = BufReader::new(file.take(self.len - self.replayed_len));
        let mut chunk = Chunk {
            batches: Vec::new(),
            end: self.replayed_len,
            lines: 0,
            events: 0,
        };
        let mut line = Vec::new();
        while (chunk.events as usize) < max {
            line.clear();
            let n = reader.read_until(b'\n', &mut line)?;
            if n == 0 {
                break;
            }
            chunk.end += n as u64;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            chunk.lines += 1;
            match Batch::from_spool_line(&line) {
                Ok(b) => {
                    chunk.events += b.events.len() as u64;
                    chunk.batches.push(b);
                }
                // Lines are checked at open and written whole since: this is disk damage.
                Err(e) => tracing::error!(offset = chunk.end, error = %e, "unreadable spool line"),
            }
        }
        Ok(chunk)
    }

    /// The events of `chunk` (read by [`Spool::read_pending`]) are in the database.
    pub fn replayed(&mut self, chunk: &Chunk) {
        self.replayed_len = chunk.end;
        self.replayed += chunk.events;
    }

    /// Cut the file if every event in it has been replayed; `false` when appends came in.
    pub fn clear_if_replayed(&mut self) -> std::io::Result<bool> {
        if self.replayed_len < self.len {
            return Ok(false);
        }
        self.clear()?;
        Ok(true)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append `batches` durably, or not at all: on failure the file is cut back to what it
    /// held before, so a later append starts on a line of its own.
    pub fn append(&mut self, batches: &[Batch]) -> std::io::Result<()> {
        let events = super::batch::events_in(batches);
        let mut buf = Vec::with_capacity(events * 256);
        for b in batches {
            b.write_spool_line(&mut buf)?;
            buf.push(b'\n');
        }
        let written = self
            .file
            .write_all(&buf)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            if let Err(cut) = self.file.set_len(self.len) {
                tracing::error!(error = %cut, "cannot cut a failed append off the spool");
            }
            return Err(e);
        }
        self.len += buf.len() as u64;
        self.depth += events as u64;
        Ok(())
    }

    /// Every event in the file, in order (replayed or not).
    pub fn read_all(&self) -> std::io::Result<Vec<StoreEvent>> {
        let reader = BufReader::new(File::open(&self.path)?);
        let mut out = Vec::new();
        for (n, line) in reader.lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            match Batch::from_spool_line(line.as_bytes()) {
                Ok(b) => out.extend(b.events),
                // Lines are checked at open and written whole since: this is disk damage.
                Err(e) => {
                    tracing::error!(line = n + 1, error = %e, "unreadable spool line")
                }
            }
        }
        Ok(out)
    }

    /// Where rows the database refuses on their own are set aside.
    pub fn quarantine_path(&self) -> PathBuf {
        self.path.with_file_name("quarantine.jsonl")
    }

    /// Keep `event`, which the database refuses, beside the spool with the reason, so it
    /// no longer blocks the events behind it and is not lost either.
    pub fn quarantine(&self, event: &StoreEvent, why: &str) -> std::io::Result<()> {
        let line = serde_json::json!({ "error": why, "event": event });
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.quarantine_path())?;
        let mut buf = serde_json::to_vec(&line)?;
        buf.push(b'\n');
        f.write_all(&buf)?;
        f.sync_all()
    }

    /// Forget everything spooled (after it reached the database).
    pub fn clear(&mut self) -> std::io::Result<()> {
        self.file.set_len(0)?;
        self.file.sync_all()?;
        self.len = 0;
        self.depth = 0;
        self.replayed_len = 0;
        self.replayed = 0;
        Ok(())
    }
}
