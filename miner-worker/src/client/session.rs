//! One connection to one pool: configure (version rolling), subscribe, authorize, then follow
//! notifications and submit shares, until the connection ends, the pool asks us to reconnect,
//! or the primary pool is back.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use protocol::{
    ClientRequest, Configure, ConfigureResult, Difficulty, Extranonce1, Id, Message, Notify,
    ServerNotification, Submit, SubscribeResult, VersionMask, WorkerName,
};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

use crate::config::PoolUrl;
use crate::miner::FoundShare;
use crate::status::Status;
use crate::work::{JobWork, WorkBoard};

/// How a session ended.
#[derive(Debug)]
pub enum Outcome {
    Shutdown,
    /// The pool sent `client.reconnect`.
    Reconnect {
        to: Option<PoolUrl>,
        wait: Duration,
    },
    /// The primary answers again (we were on a backup).
    Failback,
    /// The connection failed or ended; `mined` tells whether it ever delivered work.
    Lost {
        reason: String,
        mined: bool,
    },
}

pub struct SessionConfig {
    pub login: String,
    pub password: String,
    pub version_rolling: bool,
    pub suggest_difficulty: Option<Difficulty>,
    pub extranonce_subscribe: bool,
    pub timeout: Duration,
    pub idle_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Pending {
    Configure,
    Subscribe,
    Authorize,
    Submit,
    Other,
}

struct State {
    extranonce1: Option<Extranonce1>,
    extranonce2_size: usize,
    difficulty: Difficulty,
    version_mask: Option<VersionMask>,
    job: Option<Notify>,
    connection: u64,
    units: Arc<std::sync::atomic::AtomicU64>,
    mined: bool,
}

/// Lines longer than this from a pool are refused (coinbases with many outputs stay far below).
const MAX_LINE: usize = 256 * 1024;

/// What a session is plugged into: the work board it publishes jobs on, the status it
/// counts into, the shares it submits, and the shutdown signal.
pub struct Plumbing<'a> {
    pub board: &'a WorkBoard,
    pub status: &'a Status,
    pub shares: &'a mut UnboundedReceiver<FoundShare>,
    pub shutdown: &'a CancellationToken,
}

pub async fn run(
    pool: &PoolUrl,
    cfg: &SessionConfig,
    connection: u64,
    failback_to: Option<(PoolUrl, Duration)>,
    io: Plumbing<'_>,
) -> Outcome {
    let Plumbing {
        board,
        status,
        shares,
        shutdown,
    } = io;
    let addr = format!("{}:{}", pool.host, pool.port);
    let stream = match tokio::time::timeout(cfg.timeout, TcpStream::connect(&addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return lost(format!("connect {addr}: {e}"), false),
        Err(_) => return lost(format!("connect {addr}: timed out"), false),
    };
    let _ = stream.set_nodelay(true);
    let mut framed = Framed::new(stream, protocol::StratumCodec::with_max_line(MAX_LINE));
    let mut pending: HashMap<u64, (Pending, Instant)> = HashMap::new();
    let mut next_id = 1u64;
    let mut state = State {
        extranonce1: None,
        extranonce2_size: 0,
        difficulty: Difficulty::ONE,
        version_mask: None,
        job: None,
        connection,
        units: Default::default(),
        mined: false,
    };

    let mut opening = Vec::new();
    if cfg.version_rolling {
        opening.push((
            Pending::Configure,
            ClientRequest::Configure(Configure::version_rolling(VersionMask::BIP320, 2)),
        ));
    }
    opening.push((
        Pending::Subscribe,
        ClientRequest::Subscribe {
            user_agent: Some(concat!("miner-worker/", env!("CARGO_PKG_VERSION")).into()),
            resume: None,
        },
    ));
    opening.push((
        Pending::Authorize,
        ClientRequest::Authorize {
            worker: WorkerName::new(&cfg.login),
            password: Some(cfg.password.clone()),
        },
    ));
    if let Some(d) = cfg.suggest_difficulty {
        opening.push((Pending::Other, ClientRequest::SuggestDifficulty(d)));
    }
    if cfg.extranonce_subscribe {
        opening.push((Pending::Other, ClientRequest::ExtranonceSubscribe));
    }
    for (kind, req) in opening {
        let id = next_id;
        next_id += 1;
        pending.insert(id, (kind, Instant::now()));
        if let Err(e) = framed
            .send(Message::Call(req.to_call(Id::number(id))))
            .await
        {
            return lost(format!("send: {e}"), false);
        }
    }
    // Drop shares queued for an earlier connection.
    while shares.try_recv().is_ok() {}

    let mut last_rx = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut failback = failback_to.map(|(url, every)| {
        let mut t = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        (url, t)
    });
    status
        .connected
        .store(true, std::sync::atomic::Ordering::Relaxed);
    tracing::info!(pool = %pool, "connected");
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Outcome::Shutdown,
            frame = framed.next() => {
                let msg = match frame {
                    None => return lost("pool closed the connection".into(), state.mined),
                    Some(Err(e)) => return lost(format!("read: {e}"), state.mined),
                    Some(Ok(Err(e))) => {
                        tracing::warn!(error = %e, "unreadable line from pool");
                        continue;
                    }
                    Some(Ok(Ok(m))) => m,
                };
                last_rx = Instant::now();
                match msg {
                    Message::Response(r) => {
                        let Some((kind, _)) = r.id.as_u64().and_then(|id| pending.remove(&id)) else {
                            continue;
                        };
                        if let Some(out) = on_response(kind, r.outcome, &mut state, board, status) {
                            return out;
                        }
                    }
                    Message::Call(call) => {
                        match ServerNotification::from_call(&call) {
                            Ok(n) => {
                                if let Some(out) = on_notification(n, &mut state, board, status) {
                                    return out;
                                }
                            }
                            Err(_) if !call.id.is_null() => {
                                // A request we do not implement (client.get_version, ...).
                                let answer = if call.method == "client.get_version" {
                                    Message::ok(call.id, json!(concat!("miner-worker/", env!("CARGO_PKG_VERSION"))))
                                } else {
                                    Message::err(call.id, protocol::StratumError::new(protocol::ErrorCode::Other, "not supported"))
                                };
                                let _ = framed.send(answer).await;
                            }
                            Err(e) => tracing::debug!(method = %call.method, error = %e, "ignored notification"),
                        }
                    }
                }
            }
            Some(share) = shares.recv() => {
                if share.work.connection != state.connection {
                    continue;
                }
                // Found on the previous block: the pool would only answer "stale" (as
                // cpuminer does, such a share is dropped rather than sent).
                if state.job.as_ref().is_some_and(|j| j.prevhash != share.work.job.prevhash) {
                    tracing::debug!(job = %share.work.job.job_id, "share for a replaced block; not submitted");
                    continue;
                }
                let id = next_id;
                next_id += 1;
                let submit = Submit {
                    worker: WorkerName::new(&cfg.login),
                    job_id: share.work.job.job_id.clone(),
                    extranonce2: share.extranonce2,
                    ntime: share.ntime,
                    nonce: share.nonce,
                    version_bits: share.version_bits,
                };
                pending.insert(id, (Pending::Submit, Instant::now()));
                if let Err(e) = framed.send(Message::Call(ClientRequest::Submit(submit).to_call(Id::number(id)))).await {
                    return lost(format!("send: {e}"), state.mined);
                }
            }
            _ = tick.tick() => {
                status.sample();
                let now = Instant::now();
                let expired: Vec<u64> = pending
                    .iter()
                    .filter(|(_, (_, sent))| now.duration_since(*sent) > cfg.timeout)
                    .map(|(id, _)| *id)
                    .collect();
                for id in expired {
                    if let Some((kind, _)) = pending.remove(&id) {
                        match kind {
                            Pending::Submit => status.reject("timeout"),
                            Pending::Subscribe | Pending::Authorize => {
                                return lost(format!("no answer to {kind:?}"), state.mined)
                            }
                            _ => tracing::debug!(?kind, "no answer; going on without it"),
                        }
                    }
                }
                if now.duration_since(last_rx) > cfg.idle_timeout {
                    return lost("pool silent for too long".into(), state.mined);
                }
            }
            Some(_) = async {
                match failback.as_mut() {
                    Some((_, t)) => Some(t.tick().await),
                    None => std::future::pending().await,
                }
            } => {
                let (url, _) = failback.as_ref().expect("failback armed");
                let addr = format!("{}:{}", url.host, url.port);
                if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(&addr)).await {
                    tracing::info!(primary = %url, "primary pool is back");
                    return Outcome::Failback;
                }
            }
        }
    }
}

fn lost(reason: String, mined: bool) -> Outcome {
    Outcome::Lost { reason, mined }
}

fn on_response(
    kind: Pending,
    outcome: Result<Value, protocol::StratumError>,
    state: &mut State,
    board: &WorkBoard,
    status: &Status,
) -> Option<Outcome> {
    match kind {
        Pending::Configure => {
            state.version_mask = outcome
                .ok()
                .and_then(|v| ConfigureResult::from_value(&v).ok())
                .and_then(|c| c.version_rolling)
                .filter(|m| m.0 != 0);
            tracing::info!(mask = ?state.version_mask, "version rolling");
        }
        Pending::Subscribe => match outcome.map(|v| SubscribeResult::from_value(&v)) {
            Ok(Ok(s)) => {
                state.extranonce1 = Some(s.extranonce1);
                state.extranonce2_size = s.extranonce2_size;
                publish(state, board, true);
            }
            Ok(Err(e)) => return Some(lost(format!("bad subscribe answer: {e}"), false)),
            Err(e) => return Some(lost(format!("subscribe refused: {e}"), false)),
        },
        Pending::Authorize => match outcome {
            Ok(Value::Bool(true)) => tracing::info!("authorized"),
            Ok(other) => tracing::error!(answer = %other, "authorization refused; check the login"),
            Err(e) => tracing::error!(error = %e, "authorization refused; check the login"),
        },
        Pending::Submit => match outcome {
            Ok(Value::Bool(true)) => {
                status.accept();
                tracing::info!("{} yes!", status.line());
            }
            Ok(other) => {
                status.reject("rejected");
                tracing::warn!(answer = %other, "{} booooo", status.line());
            }
            Err(e) => {
                let reason = match e.code {
                    protocol::ErrorCode::JobNotFound => "stale",
                    protocol::ErrorCode::Duplicate => "duplicate",
                    protocol::ErrorCode::LowDifficulty => "low-difficulty",
                    protocol::ErrorCode::Unauthorized => "unauthorized",
                    protocol::ErrorCode::NotSubscribed => "not-subscribed",
                    _ => "other",
                };
                status.reject(reason);
                tracing::warn!(reason, message = %e.message, "{} booooo", status.line());
            }
        },
        Pending::Other => {}
    }
    None
}

fn publish(state: &mut State, board: &WorkBoard, clean: bool) {
    let (Some(job), Some(en1)) = (state.job.clone(), state.extranonce1.clone()) else {
        return;
    };
    state.mined = true;
    board.publish(
        JobWork::new(
            job,
            en1,
            state.extranonce2_size,
            state.difficulty,
            state.version_mask,
            state.connection,
            state.units.clone(),
        ),
        clean,
    );
}

fn on_notification(
    n: ServerNotification,
    state: &mut State,
    board: &WorkBoard,
    status: &Status,
) -> Option<Outcome> {
    match n {
        ServerNotification::Notify(job) => {
            let clean = job.clean_jobs
                || state
                    .job
                    .as_ref()
                    .is_none_or(|j| j.prevhash != job.prevhash);
            tracing::debug!(job = %job.job_id, clean, "new job");
            state.job = Some(job);
            publish(state, board, clean);
        }
        ServerNotification::SetDifficulty(d) => {
            let raised = d > state.difficulty;
            state.difficulty = d;
            status.set_difficulty(d.as_f64());
            tracing::info!(difficulty = %d, "difficulty");
            // A higher difficulty is honoured at once (never submit shares the pool will
            // refuse); a lower one waits for the next job, as Stratum says.
            if raised {
                publish(state, board, false);
            }
        }
        ServerNotification::SetExtranonce {
            extranonce1,
            extranonce2_size,
        } => {
            tracing::info!(%extranonce1, extranonce2_size, "new extranonce");
            state.extranonce1 = Some(extranonce1);
            state.extranonce2_size = extranonce2_size;
            state.units = Default::default();
            publish(state, board, true);
        }
        ServerNotification::SetVersionMask(m) => {
            state.version_mask = state.version_mask.map(|_| m).filter(|m| m.0 != 0);
            publish(state, board, true);
        }
        ServerNotification::Reconnect {
            host,
            port,
            wait_secs,
        } => {
            let to = match (host, port) {
                (Some(h), Some(p)) => Some(PoolUrl { host: h, port: p }),
                _ => None,
            };
            return Some(Outcome::Reconnect {
                to,
                wait: Duration::from_secs(wait_secs.unwrap_or(0).min(600)),
            });
        }
        ServerNotification::ShowMessage(m) => tracing::info!(message = %m, "pool says"),
    }
    None
}
