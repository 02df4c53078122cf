//! Scripted clients that model how stock miners treat jobs and difficulty, mining real shares
//! at a set hash rate (real SHA-256d on real headers, paced to `hashrate` hashes a second).
//!
//! What they model, from the miners' public sources:
//! - pooler cpuminer and our miner-worker switch to every new `mining.notify`;
//! - cpuminer-opt switches only when the job id, read as a hex number (`strtoul(id, 16)`),
//!   differs from the one it mines (so `d33e.1` is the same job as `d33e` to it);
//! - some firmware keeps its job until a notify says `clean_jobs`;
//! - cgminer applies a new difficulty at once to the work it holds;
//! - clients that pipeline: found shares wait and go out several at a time.
//!
//! Each applies `mining.set_difficulty` to the jobs that follow it (as cpuminer does), except
//! the one that applies it at once.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use protocol::{
    header_hash, ClientRequest, Difficulty, Extranonce2, Id, Message, Nonce, Notify,
    ServerNotification, Submit, SubscribeResult, WorkerName,
};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    /// Every notify is new work.
    EveryNotify,
    /// New work only when the id parses to another hex number (cpuminer-opt).
    HexIdChanges,
    /// New work only on `clean_jobs`.
    CleanJobsOnly,
}

#[derive(Debug, Clone, Copy)]
pub struct Behaviour {
    pub switch: Switch,
    /// Shares held back until this many are found (1: each goes out at once).
    pub pipeline: usize,
    /// A new difficulty applies to the job already held (cgminer), not only to later jobs.
    pub difficulty_at_once: bool,
}

/// What a run saw.
#[derive(Debug, Default)]
pub struct Report {
    /// Each difficulty the pool set, with when (since the first job).
    pub difficulties: Vec<(Duration, f64)>,
    pub accepted: u64,
    pub rejected: Vec<String>,
    pub hashes: u64,
    pub mined_for: Duration,
}

impl Report {
    /// The rate the client actually hashed at.
    pub fn hashrate(&self) -> f64 {
        self.hashes as f64 / self.mined_for.as_secs_f64()
    }
}

/// `strtoul(id, NULL, 16)`: the longest hex prefix, 0 when there is none.
pub fn hex_number(id: &str) -> u64 {
    let digits: String = id.chars().take_while(char::is_ascii_hexdigit).collect();
    u64::from_str_radix(&digits, 16).unwrap_or(u64::MAX)
}

struct Work {
    job: Notify,
    difficulty: Difficulty,
    en2: u64,
    nonce: u64,
}

/// Mine as `worker` with `behaviour` at `hashrate` H/s for `duration`.
pub async fn mine(
    pool: SocketAddr,
    worker: &str,
    behaviour: Behaviour,
    hashrate: f64,
    duration: Duration,
) -> Report {
    let stream = TcpStream::connect(pool).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (r, mut w) = stream.into_split();
    let mut lines = BufReader::new(r).lines();
    let opening = [
        ClientRequest::Subscribe {
            user_agent: Some("scripted/1.0".into()),
            resume: None,
        },
        ClientRequest::Authorize {
            worker: WorkerName::new(worker),
            password: Some("x".into()),
        },
    ];
    for (i, req) in opening.into_iter().enumerate() {
        let mut line = Message::Call(req.to_call(Id::number(i as u64 + 1))).to_json();
        line.push('\n');
        w.write_all(line.as_bytes()).await.unwrap();
    }

    let mut report = Report::default();
    let mut subscribed: Option<SubscribeResult> = None;
    let mut difficulty: Option<Difficulty> = None;
    let mut work: Option<Work> = None;
    let mut held: Vec<Submit> = Vec::new();
    let mut next_id = 10u64;
    let mut en2_counter = 0u64;
    let mut began: Option<Instant> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    loop {
        tokio::select! {
            line = lines.next_line() => {
                let Ok(Some(line)) = line else { panic!("{worker}: the pool closed the connection") };
                match Message::from_json(&line).expect("valid JSON") {
                    Message::Response(r) => match r.id.as_u64() {
                        Some(1) => subscribed = Some(SubscribeResult::from_value(&r.outcome.unwrap()).unwrap()),
                        Some(2) => assert_eq!(r.outcome, Ok(Value::Bool(true))),
                        Some(_) => match r.outcome {
                            Ok(Value::Bool(true)) => report.accepted += 1,
                            other => report.rejected.push(format!("{other:?}")),
                        },
                        None => {}
                    },
                    Message::Call(c) => match ServerNotification::from_call(&c) {
                        Ok(ServerNotification::SetDifficulty(d)) => {
                            difficulty = Some(d);
                            let at = began.map_or(Duration::ZERO, |b| b.elapsed());
                            report.difficulties.push((at, d.as_f64()));
                            if behaviour.difficulty_at_once {
                                if let Some(w) = work.as_mut() {
                                    w.difficulty = d;
                                }
                            }
                        }
                        Ok(ServerNotification::Notify(job)) => {
                            let switch = match (&work, behaviour.switch) {
                                (None, _) => true,
                                (Some(_), Switch::EveryNotify) => true,
                                (Some(w), Switch::HexIdChanges) => {
                                    hex_number(w.job.job_id.as_str()) != hex_number(job.job_id.as_str())
                                }
                                (Some(_), Switch::CleanJobsOnly) => job.clean_jobs,
                            };
                            if switch {
                                en2_counter += 1;
                                work = Some(Work {
                                    job,
                                    difficulty: difficulty.expect("difficulty before the job"),
                                    en2: en2_counter,
                                    nonce: 0,
                                });
                                began.get_or_insert_with(Instant::now);
                            }
                        }
                        _ => {}
                    },
                }
            }
            _ = tick.tick() => {
                let (Some(start), Some(sub), Some(wk)) = (began, &subscribed, work.as_mut()) else {
                    continue;
                };
                let elapsed = start.elapsed();
                if elapsed >= duration {
                    break;
                }
                // Hash what is due by now: the set rate, caught up after any stall.
                let due = (hashrate * elapsed.as_secs_f64()) as u64;
                let en1 = &sub.extranonce1;
                let en2 = Extranonce2::from_counter(wk.en2, sub.extranonce2_size);
                let target = wk.difficulty.to_target();
                let mut header = wk.job.header(en1, &en2, wk.job.ntime, Nonce(0), wk.job.version);
                while report.hashes < due {
                    header.nonce = wk.nonce as u32;
                    if target.is_met_by(&header_hash(&header)) {
                        held.push(Submit {
                            worker: WorkerName::new(worker),
                            job_id: wk.job.job_id.clone(),
                            extranonce2: en2.clone(),
                            ntime: wk.job.ntime,
                            nonce: Nonce(header.nonce),
                            version_bits: None,
                        });
                    }
                    wk.nonce += 1;
                    report.hashes += 1;
                }
                if held.len() >= behaviour.pipeline {
                    let mut out = Vec::new();
                    for s in held.drain(..) {
                        let call = ClientRequest::Submit(s).to_call(Id::number(next_id));
                        next_id += 1;
                        out.extend_from_slice(Message::Call(call).to_json().as_bytes());
                        out.push(b'\n');
                    }
                    w.write_all(&out).await.unwrap();
                }
            }
        }
    }
    report.mined_for = began.expect("mined").elapsed();
    // Collect the answers still on their way.
    let sent = next_id - 10;
    let deadline = Instant::now() + Duration::from_secs(5);
    while report.accepted + (report.rejected.len() as u64) < sent && Instant::now() < deadline {
        let Ok(Ok(Some(line))) =
            tokio::time::timeout(Duration::from_secs(1), lines.next_line()).await
        else {
            break;
        };
        if let Ok(Message::Response(r)) = Message::from_json(&line) {
            if r.id.as_u64().is_some_and(|i| i >= 10) {
                match r.outcome {
                    Ok(Value::Bool(true)) => report.accepted += 1,
                    other => report.rejected.push(format!("{other:?}")),
                }
            }
        }
    }
    report
}
