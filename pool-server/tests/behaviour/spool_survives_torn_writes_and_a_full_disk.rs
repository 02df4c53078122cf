//! The spool keeps every event it said it kept: a torn last line (a crash mid-write) is cut
//! off at open instead of swallowing the next append, an append that fails on a full disk is
//! cut back so the next one starts on a line of its own, and unreadable lines are moved aside,
//! not deleted. (The full disk is played with RLIMIT_FSIZE: writes past it fail with EFBIG
//! after writing what fits, as on a disk that fills mid-write.)

use std::io::Write;

use chrono::Utc;
use pool_server::store::spool::Spool;
use pool_server::store::{Batch, ShareRecord, StoreEvent};
use uuid::Uuid;

fn share(n: i64) -> StoreEvent {
    StoreEvent::Share(ShareRecord {
        id: Uuid::new_v4(),
        worker: "alice.rig1".into(),
        session_id: n,
        job_id: format!("{n:x}"),
        height: 7,
        assigned_difficulty: 1.0,
        achieved_difficulty: 2.0,
        accepted: true,
        reason: None,
        block_hash: None,
        created_at: Utc::now(),
    })
}

fn batch(events: Vec<StoreEvent>) -> [Batch; 1] {
    [Batch::new(events)]
}

fn sessions(events: &[StoreEvent]) -> Vec<i64> {
    events
        .iter()
        .map(|e| match e {
            StoreEvent::Share(s) => s.session_id,
            StoreEvent::Block(_) => -1,
        })
        .collect()
}

#[test]
fn a_torn_last_line_is_cut_and_bad_lines_move_aside() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path()).unwrap();
    spool
        .append(&batch(vec![share(1), share(2), share(3)]))
        .unwrap();
    let path = spool.path().to_owned();
    drop(spool);
    // A crash in the middle of the next line, and a damaged line before it.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(b"{\"not\": \"an event\"}\n{\"Share\":{\"id\":\"")
        .unwrap();
    drop(f);

    let mut spool = Spool::open(dir.path()).unwrap();
    assert_eq!(spool.depth(), 3);
    spool.append(&batch(vec![share(4)])).unwrap();
    assert_eq!(sessions(&spool.read_all().unwrap()), [1, 2, 3, 4]);
    let aside = std::fs::read_to_string(path.with_extension("spool.bad")).unwrap();
    assert_eq!(aside, "{\"not\": \"an event\"}\n");
}

#[test]
fn a_full_disk_loses_only_the_batch_that_did_not_fit() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path()).unwrap();
    spool.append(&batch(vec![share(1), share(2)])).unwrap();
    let used = std::fs::metadata(spool.path()).unwrap().len();
    let limit = |bytes: u64| unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let r = libc::rlimit {
            rlim_cur: bytes,
            rlim_max: libc::RLIM_INFINITY,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &r), 0);
    };
    // Room for half a line more: the next batch fails part-way.
    limit(used + 100);
    let err = spool.append(&batch(vec![share(3), share(4)])).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EFBIG), "{err}");
    assert_eq!(spool.depth(), 2);
    assert_eq!(
        std::fs::metadata(spool.path()).unwrap().len(),
        used,
        "cut back"
    );
    // Space comes back: the next batch is whole, nothing before it lost or glued.
    limit(libc::RLIM_INFINITY);
    spool.append(&batch(vec![share(5)])).unwrap();
    assert_eq!(spool.depth(), 3);
    drop(spool);
    let spool = Spool::open(dir.path()).unwrap();
    assert_eq!(sessions(&spool.read_all().unwrap()), [1, 2, 5]);
}
