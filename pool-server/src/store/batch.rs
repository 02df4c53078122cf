//! A batch: the unit the store writes exactly once.
//!
//! Every batch the batcher cuts gets an id (a UUID v7, so ids sort by time) that it keeps on
//! its way to the database, into the spool and back out of it. The database records the ids
//! of the batches it stored (`share_batches`) in the same transaction as their shares, and a
//! batch whose id is already there adds nothing. That is what makes a write that timed out
//! yet committed, or a spool replayed twice after a crash, harmless, and it costs one small
//! row per batch instead of a unique index entry per share (the biggest part of a share's
//! bytes on disk before).
//!
//! In the spool a batch is one JSON line, `{"id", "shares": [...], "blocks": [...]}`: plain
//! structs, which read back without the buffering a tagged enum costs (a spool is written
//! and read at full load, when the database is behind). Lines of older spools still read:
//! `{"id", "events"}` from before the split, and one event per line from before batches had
//! ids; such a line reads as a batch of one whose id is the share's own id, which is just as
//! stable across replays.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::ack::Acks;
use super::{BlockRecord, ShareRecord, StoreEvent};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    pub id: Uuid,
    pub events: Vec<StoreEvent>,
    /// Sessions to tell once the batch is stored (never written anywhere).
    #[serde(skip)]
    pub acks: Acks,
}

/// A batch as a spool line writes it (blocks are upserted apart from the shares, so their
/// order among the shares does not matter).
#[derive(Serialize)]
struct LineOut<'a> {
    id: Uuid,
    shares: Vec<&'a ShareRecord>,
    blocks: Vec<&'a BlockRecord>,
}

/// A spool line as written now.
#[derive(Deserialize)]
struct LineIn {
    id: Uuid,
    shares: Vec<ShareRecord>,
    blocks: Vec<BlockRecord>,
}

/// How a line of an older spool reads: a batch of events, or one event.
#[derive(Deserialize)]
#[serde(untagged)]
enum OlderLine {
    Batch(Batch),
    Event(StoreEvent),
}

impl Batch {
    /// A batch with a fresh id.
    pub fn new(events: Vec<StoreEvent>) -> Batch {
        Batch {
            id: Uuid::now_v7(),
            events,
            acks: Acks::default(),
        }
    }

    /// The batch as one spool line (without the newline).
    pub fn write_spool_line(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        serde_json::to_writer(
            out,
            &LineOut {
                id: self.id,
                shares: self.shares().collect(),
                blocks: self.blocks().collect(),
            },
        )
    }

    /// Parse a spool line (as written now, or by an older pool).
    pub fn from_spool_line(line: &[u8]) -> serde_json::Result<Batch> {
        if let Ok(l) = serde_json::from_slice::<LineIn>(line) {
            let shares = l.shares.into_iter().map(StoreEvent::Share);
            return Ok(Batch {
                id: l.id,
                events: shares
                    .chain(l.blocks.into_iter().map(StoreEvent::Block))
                    .collect(),
                acks: Acks::default(),
            });
        }
        Ok(match serde_json::from_slice(line)? {
            OlderLine::Batch(b) => b,
            OlderLine::Event(e) => Batch {
                id: match &e {
                    StoreEvent::Share(s) => s.id,
                    // Blocks are written by upsert: writing one twice changes nothing.
                    StoreEvent::Block(_) => Uuid::nil(),
                },
                events: vec![e],
                acks: Acks::default(),
            },
        })
    }

    pub fn shares(&self) -> impl Iterator<Item = &ShareRecord> {
        self.events.iter().filter_map(|e| match e {
            StoreEvent::Share(s) => Some(s),
            StoreEvent::Block(_) => None,
        })
    }

    pub fn blocks(&self) -> impl Iterator<Item = &BlockRecord> {
        self.events.iter().filter_map(|e| match e {
            StoreEvent::Block(b) => Some(b),
            StoreEvent::Share(_) => None,
        })
    }

    /// Shares in the batch: what its row in `share_batches` counts.
    pub fn share_count(&self) -> i32 {
        i32::try_from(self.shares().count()).unwrap_or(i32::MAX)
    }
}

/// Events in `batches`.
pub fn events_in(batches: &[Batch]) -> usize {
    batches.iter().map(|b| b.events.len()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share() -> StoreEvent {
        StoreEvent::Share(ShareRecord {
            id: Uuid::now_v7(),
            worker: "a.b".into(),
            session_id: 1,
            job_id: "1".into(),
            height: 1,
            assigned_difficulty: 1.0,
            achieved_difficulty: 2.0,
            accepted: true,
            reason: None,
            block_hash: None,
            created_at: chrono::Utc::now(),
        })
    }

    fn block() -> StoreEvent {
        StoreEvent::Block(BlockRecord {
            hash: "00ab".into(),
            height: 7,
            prev_hash: "00cd".into(),
            chain: "embedded".into(),
            worker: Some("a.b".into()),
            network_difficulty: 1.5,
            status: "accepted".into(),
            detail: None,
            raw: vec![1, 2, 3],
            found_at: chrono::Utc::now(),
            coinbase_plan: None,
        })
    }

    #[test]
    fn a_batch_reads_back_with_its_id() {
        let b = Batch::new(vec![share(), share(), block()]);
        let mut line = Vec::new();
        b.write_spool_line(&mut line).unwrap();
        assert_eq!(Batch::from_spool_line(&line).unwrap(), b);
    }

    #[test]
    fn a_batch_line_of_an_older_spool_reads_back_with_its_id() {
        let b = Batch::new(vec![share(), share()]);
        let line = serde_json::to_vec(&b).unwrap();
        assert_eq!(Batch::from_spool_line(&line).unwrap(), b);
    }

    #[test]
    fn a_lone_event_of_an_older_spool_is_a_batch_named_after_its_share() {
        let e = share();
        let StoreEvent::Share(s) = &e else {
            unreachable!()
        };
        let line = serde_json::to_vec(&e).unwrap();
        let b = Batch::from_spool_line(&line).unwrap();
        assert_eq!(b.id, s.id);
        assert_eq!(b.events, vec![e.clone()]);
        // Read twice, the same id: a replay is still recognised.
        assert_eq!(Batch::from_spool_line(&line).unwrap().id, b.id);
    }

    #[test]
    fn garbage_is_not_a_batch() {
        assert!(Batch::from_spool_line(b"{\"id\":1}").is_err());
        assert!(Batch::from_spool_line(b"[]").is_err());
    }
}
