//! The simulated miners' submitting, made cheap so that the two cores measure the pool.
//!
//! Each connection is split: its reader is a task of its own (woken only when the pool
//! writes), its writer belongs to a group of `--per-task` connections driven by one task and
//! one timer. The group's task sends bursts of `--pipeline` submit lines in one write, round
//! robin over its connections, as many as the offered rate makes due (a token bucket, so the
//! rate holds whatever the timer's resolution). A burst is what a fast miner (or a proxy in
//! front of many) does: cgminer queues the shares it finds and writes them back to back.
//!
//! Submit lines are formatted from a per-connection prefix (id aside, fixed while the job
//! stands) with the counters written in hex in place. The send time travels in the request
//! id (microseconds since the start, shifted left by [`SEQ_BITS`]), so the reader computes
//! each answer's latency from the answer alone and no map of requests is kept.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use protocol::{JobId, Message, Notify, Ntime, ServerNotification};
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

use super::{quick_answer, Conn, Shared, Writer};

/// Low bits of a request id that count within one microsecond (a burst's lines).
pub const SEQ_BITS: u32 = 12;

/// What one connection's writer needs from its reader: the job to submit to.
struct Work {
    /// `...","<job id>","` up to the extranonce2, rebuilt when the job changes.
    prefix: String,
    ntime: String,
}

/// One connection as its group's writer sees it.
pub struct Link {
    writer: Writer,
    work: Arc<Mutex<Option<Work>>>,
    en2_size: usize,
    counter: u64,
    /// The last line's counter (a duplicate resends it).
    last: Option<u64>,
}

fn work_of(worker: &str, job: &Notify) -> Work {
    work_for(worker, &job.job_id, job.ntime)
}

fn work_for(worker: &str, job_id: &JobId, ntime: Ntime) -> Work {
    Work {
        prefix: format!(
            ",\"method\":\"mining.submit\",\"params\":[{},{},\"",
            serde_json::Value::from(worker),
            serde_json::Value::from(job_id.as_str())
        ),
        ntime: ntime.to_hex(),
    }
}

/// Split `c` (already subscribed, authorized and holding a job) into its group's writer and
/// a reader task.
pub fn link(c: Conn, i: usize, sh: Arc<Shared>, stop: watch::Receiver<bool>) -> Link {
    let worker = format!("load.{i}");
    let work = Arc::new(Mutex::new(c.job.as_ref().map(|j| work_of(&worker, j))));
    let Conn {
        reader,
        writer,
        en2_size,
        line,
        ..
    } = c;
    let mut reader = Conn {
        reader,
        writer: Box::new(tokio::io::sink()),
        en1: protocol::Extranonce1(vec![]),
        en2_size,
        job: None,
        line,
    };
    let w = work.clone();
    tokio::spawn(async move { read(&mut reader, &worker, w, sh, stop).await });
    Link {
        writer,
        work,
        en2_size,
        counter: 0,
        last: None,
    }
}

/// The reader of one connection: answers (latency from the id), new jobs, the tip.
async fn read(
    c: &mut Conn,
    worker: &str,
    work: Arc<Mutex<Option<Work>>>,
    sh: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let mut lat = Vec::new();
    let mut stopped = false;
    loop {
        let text = tokio::select! {
            _ = stop.changed(), if !stopped => {
                stopped = true;
                sh.totals.latencies_us.lock().append(&mut lat);
                continue;
            }
            m = c.next_line() => match m {
                Ok(text) => text,
                Err(_) => break,
            },
        };
        let (answer, call) = match quick_answer(text) {
            Some(a) => (Some(a), None),
            None => match Message::from_json(text) {
                Ok(Message::Response(r)) => (
                    r.id.as_u64()
                        .map(|id| (id, r.outcome == Ok(serde_json::Value::Bool(true)))),
                    None,
                ),
                Ok(Message::Call(call)) => (None, Some(call)),
                Err(_) => break,
            },
        };
        if let Some((id, accepted)) = answer {
            if id >= 1 << SEQ_BITS {
                let at = Duration::from_micros((id >> SEQ_BITS) - 1);
                let us = sh.started.elapsed().saturating_sub(at).as_micros();
                lat.push(us.min(u32::MAX as u128) as u32);
                if stopped {
                    sh.totals.latencies_us.lock().append(&mut lat);
                }
                let counter = if accepted {
                    &sh.totals.accepted
                } else {
                    &sh.totals.rejected
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
        if let Some(call) = call {
            if let Ok(ServerNotification::Notify(n)) = ServerNotification::from_call(&call) {
                c.record_tip(&n, &sh.tip_from, &sh.totals);
                *work.lock() = Some(work_of(worker, &n));
            }
        }
    }
}

fn hex_into(out: &mut Vec<u8>, value: u64, bytes: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for i in (0..bytes).rev() {
        let b = (value >> (i * 8)) as u8;
        out.push(HEX[(b >> 4) as usize]);
        out.push(HEX[(b & 15) as usize]);
    }
}

impl Link {
    /// Append one submit line with request id `id`: a new share, or a resend of the last.
    fn line(&mut self, out: &mut Vec<u8>, id: u64, dup: bool) -> bool {
        let work = self.work.lock();
        let Some(work) = work.as_ref() else {
            return false;
        };
        let counter = match (dup, self.last) {
            (true, Some(last)) => last,
            _ => {
                self.counter += 1;
                self.counter
            }
        };
        self.last = Some(counter);
        submit_line(out, id, work, self.en2_size, counter);
        true
    }
}

/// One submit line: extranonce2 from the counter's high half, the nonce from its low half,
/// byte for byte what the protocol writes for `Extranonce2::from_counter(counter >> 32,
/// size)` and `Nonce(counter)` (a test pins it).
fn submit_line(out: &mut Vec<u8>, id: u64, work: &Work, en2_size: usize, counter: u64) {
    out.extend_from_slice(b"{\"id\":");
    out.extend_from_slice(id.to_string().as_bytes());
    out.extend_from_slice(work.prefix.as_bytes());
    for _ in 8..en2_size {
        out.extend_from_slice(b"00");
    }
    hex_into(out, counter >> 32, en2_size.min(8));
    out.extend_from_slice(b"\",\"");
    out.extend_from_slice(work.ntime.as_bytes());
    out.extend_from_slice(b"\",\"");
    hex_into(out, counter & 0xffff_ffff, 4);
    out.extend_from_slice(b"\"]}\n");
}

/// Drive a group of links until `stop`: `rate` shares/s across them, in bursts of `burst`.
pub async fn drive(
    mut links: Vec<Link>,
    rate: f64,
    burst: usize,
    sh: Arc<Shared>,
    stopping: Arc<AtomicBool>,
) {
    if links.is_empty() || rate <= 0.0 {
        return;
    }
    let bursts_per_sec = rate / burst as f64;
    let mut tick = tokio::time::interval(Duration::from_millis(2));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let began = Instant::now();
    let mut done = 0u64;
    let mut next = 0usize;
    let mut out = Vec::with_capacity(256 * burst);
    while !stopping.load(Ordering::Relaxed) {
        tick.tick().await;
        let due = (began.elapsed().as_secs_f64() * bursts_per_sec) as u64;
        while done < due && !stopping.load(Ordering::Relaxed) {
            done += 1;
            let n = links.len();
            let link = &mut links[next];
            next = (next + 1) % n;
            out.clear();
            let stamp = (sh.started.elapsed().as_micros() as u64 + 1) << SEQ_BITS;
            let mut lines = 0;
            for k in 0..burst {
                let dup = rand::random::<f64>() < sh.args.invalid;
                if link.line(&mut out, stamp + k as u64 + 1, dup) {
                    lines += 1;
                }
            }
            if lines == 0 {
                continue;
            }
            if link.writer.write_all(&out).await.is_err() {
                continue;
            }
            sh.totals.sent.fetch_add(lines, Ordering::Relaxed);
        }
    }
    // Keep the writers open: closing them would end the sessions before the answers to the
    // last bursts and the new-tip measurement.
    std::future::pending::<()>().await;
    drop(links);
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{ClientRequest, Extranonce2, Id, Nonce, Submit, WorkerName};

    #[test]
    fn submit_lines_are_the_protocols_own() {
        let (job_id, ntime) = (JobId::new("1f"), Ntime(0x6650_0000));
        let work = work_for("load.7", &job_id, ntime);
        for (en2_size, counter) in [(4, 5u64), (8, (3 << 32) | 0xdead_beef), (10, u64::MAX)] {
            let mut line = Vec::new();
            submit_line(&mut line, 42, &work, en2_size, counter);
            let s = Submit {
                worker: WorkerName::new("load.7"),
                job_id: job_id.clone(),
                extranonce2: Extranonce2::from_counter(counter >> 32, en2_size),
                ntime,
                nonce: Nonce(counter as u32),
                version_bits: None,
            };
            let want = Message::Call(ClientRequest::Submit(s).to_call(Id::number(42))).to_json();
            assert_eq!(String::from_utf8(line).unwrap(), want + "\n");
        }
    }
}
