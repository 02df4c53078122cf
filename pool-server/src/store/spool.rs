//! The append-only spool: where batches go while the database is unreachable.
//!
//! One JSON line per event, fsynced per batch, so an accepted share survives the database
//! being away and the pool restarting. After a successful replay the file is truncated. A torn
//! last line (a crash mid-write) is skipped with a warning; every complete line is kept.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use super::StoreEvent;

pub struct Spool {
    path: PathBuf,
    file: File,
    depth: u64,
}

impl Spool {
    pub fn open(dir: &Path) -> std::io::Result<Spool> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("shares.spool");
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&path)?;
        let mut spool = Spool {
            path,
            file,
            depth: 0,
        };
        spool.depth = spool.read_all()?.len() as u64;
        Ok(spool)
    }

    /// Events waiting for the database.
    pub fn depth(&self) -> u64 {
        self.depth
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn append(&mut self, events: &[StoreEvent]) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(events.len() * 256);
        for e in events {
            serde_json::to_writer(&mut buf, e)?;
            buf.push(b'\n');
        }
        self.file.write_all(&buf)?;
        self.file.sync_data()?;
        self.depth += events.len() as u64;
        Ok(())
    }

    pub fn read_all(&self) -> std::io::Result<Vec<StoreEvent>> {
        let reader = BufReader::new(File::open(&self.path)?);
        let mut out = Vec::new();
        for (n, line) in reader.lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str(&line) {
                Ok(e) => out.push(e),
                Err(e) => {
                    tracing::warn!(line = n + 1, error = %e, "skipping unreadable spool line")
                }
            }
        }
        Ok(out)
    }

    /// Forget everything spooled (after it reached the database).
    pub fn clear(&mut self) -> std::io::Result<()> {
        self.file.set_len(0)?;
        self.file.sync_all()?;
        self.depth = 0;
        Ok(())
    }
}
