//! One connection to one pool: configure (version rolling), subscribe, authorize, then follow
//! notifications and submit shares, until the connection ends, the pool asks us to reconnect,
//! or the primary pool is back.
//!
//! The I/O side of a session; what the pool says is checked and kept in [`PoolState`]. Every
//! write has a deadline (`--timeout`) and gives way to shutdown, so a pool that stops reading
//! can neither wedge the worker nor keep it past SIGTERM.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use protocol::{
    ClientRequest, Configure, Difficulty, Id, Message, ServerNotification, StratumCodec, Submit,
    VersionMask, WorkerName,
};
use serde_json::json;
use tokio::net::TcpStream;
use tokio::sync::mpsc::Receiver;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

use super::pool_text::PoolText;
use super::state::{Heard, Pending, PoolState};
use crate::config::PoolUrl;
use crate::miner::FoundShare;
use crate::status::Status;
use crate::work::WorkBoard;

/// A session that lasted this long, or had a share accepted, was a working one: its end
/// resets the reconnect backoff. Anything shorter keeps the backoff growing.
pub const STABLE_AFTER: Duration = Duration::from_secs(60);

/// How a session ended.
#[derive(Debug)]
pub enum Outcome {
    Shutdown,
    /// The pool sent `client.reconnect` (to a host the operator allows).
    Reconnect {
        to: Option<PoolUrl>,
        wait: Duration,
        healthy: bool,
    },
    /// The primary answers again (we were on a backup).
    Failback,
    /// The connection failed or ended; `mined` tells whether it ever delivered work,
    /// `healthy` whether it lasted [`STABLE_AFTER`] or had a share accepted.
    Lost {
        reason: String,
        mined: bool,
        healthy: bool,
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
    /// Hosts `client.reconnect` may send the worker to besides the pool's own (`*`: any).
    pub allow_redirect: Vec<String>,
    /// Submits per second at most.
    pub max_share_rate: f64,
    /// How `stratum+ssl://` pools are trusted (`None`: no TLS pool was named).
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// A connection to a pool, plain or over TLS.
pub trait Conn: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Conn for T {}

/// Connect to `pool` (and shake hands, for TLS) within `timeout`.
async fn connect(pool: &PoolUrl, cfg: &SessionConfig) -> Result<Box<dyn Conn>, String> {
    let addr = format!("{}:{}", pool.host, pool.port);
    let stream = match tokio::time::timeout(cfg.timeout, TcpStream::connect(&addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(format!("connect {addr}: {e}")),
        Err(_) => return Err(format!("connect {addr}: timed out")),
    };
    let _ = stream.set_nodelay(true);
    if !pool.tls {
        return Ok(Box::new(stream));
    }
    let config = cfg
        .tls
        .clone()
        .ok_or_else(|| format!("{pool}: no TLS configuration"))?;
    let name = protocol::tls::server_name(&pool.host).map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(config);
    match tokio::time::timeout(cfg.timeout, tls.connect(name, stream)).await {
        Ok(Ok(s)) => Ok(Box::new(s)),
        Ok(Err(e)) => Err(format!("TLS with {addr}: {e}")),
        Err(_) => Err(format!("TLS with {addr}: timed out")),
    }
}

impl SessionConfig {
    /// Whether `client.reconnect` to `to` is followed from a session on `pool`.
    pub fn redirect_allowed(&self, pool: &PoolUrl, to: &PoolUrl) -> bool {
        to.host.eq_ignore_ascii_case(&pool.host)
            || self
                .allow_redirect
                .iter()
                .any(|h| h == "*" || h.eq_ignore_ascii_case(&to.host))
    }
}

/// Lines longer than this from a pool are refused (coinbases with many outputs stay far below).
const MAX_LINE: usize = 256 * 1024;

/// What a session is plugged into: the work board it publishes jobs on, the status it
/// counts into, the shares it submits, and the shutdown signal.
pub struct Plumbing<'a> {
    /// What one session leaves the next (subscription id, search counters).
    pub memory: &'a Arc<super::state::Memory>,
    pub board: &'a WorkBoard,
    pub status: &'a Status,
    pub shares: &'a mut Receiver<FoundShare>,
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
        memory,
        board,
        status,
        shares,
        shutdown,
    } = io;
    let started = Instant::now();
    let accepted_before = status.accepted.load(Ordering::Relaxed);
    let healthy = || {
        started.elapsed() >= STABLE_AFTER
            || status.accepted.load(Ordering::Relaxed) > accepted_before
    };
    let stream = tokio::select! {
        _ = shutdown.cancelled() => return Outcome::Shutdown,
        s = connect(pool, cfg) => match s {
            Ok(s) => s,
            Err(why) => return lost(why, false, false),
        },
    };
    let mut framed = Framed::new(stream, StratumCodec::with_max_line(MAX_LINE));
    let mut pending: HashMap<u64, (Pending, Instant)> = HashMap::new();
    let mut next_id = 1u64;
    let asked_mask = cfg.version_rolling.then_some(VersionMask::BIP320);
    let mut state =
        PoolState::new(connection, asked_mask, cfg.max_share_rate).remembering(memory.clone());

    let mut opening = Vec::new();
    if let Some(mask) = asked_mask {
        opening.push((
            Pending::Configure,
            ClientRequest::Configure(Configure::version_rolling(mask, 2)),
        ));
    }
    opening.push((
        Pending::Subscribe,
        ClientRequest::Subscribe {
            user_agent: Some(concat!("miner-worker/", env!("CARGO_PKG_VERSION")).into()),
            // As cgminer does: a pool that still has the session resumes it.
            resume: memory.subscription(),
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
        let call = Message::Call(req.to_call(Id::number(id)));
        if let Err(out) = send(&mut framed, call, cfg.timeout, shutdown, false, false).await {
            return out;
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
    status.connected.store(true, Ordering::Relaxed);
    tracing::info!(pool = %pool, "connected");
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Outcome::Shutdown,
            frame = framed.next() => {
                let msg = match frame {
                    None => return lost("pool closed the connection".into(), state.mined, healthy()),
                    Some(Err(e)) => return lost(format!("read: {e}"), state.mined, healthy()),
                    Some(Ok(Err(e))) => {
                        if state.logs.allow("unreadable") {
                            tracing::warn!(error = %PoolText(&e.to_string()), "unreadable line from pool");
                        }
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
                        if let Err(reason) = state.on_response(kind, r.outcome, board, status) {
                            return lost(reason, state.mined, healthy());
                        }
                    }
                    Message::Call(call) => match ServerNotification::from_call(&call) {
                        Ok(n) => match state.on_notification(n, board, status) {
                            Heard::Nothing => {}
                            Heard::Reconnect { to: Some(to), .. } if !cfg.redirect_allowed(pool, &to) => {
                                if state.logs.allow("redirect") {
                                    tracing::warn!(
                                        to = %PoolText(&to.to_string()),
                                        "client.reconnect to another host ignored (allow it with --allow-redirect)"
                                    );
                                }
                            }
                            Heard::Reconnect { to, wait } => {
                                return Outcome::Reconnect { to, wait, healthy: healthy() };
                            }
                        },
                        Err(_) if !call.id.is_null() => {
                            // A request we do not implement (client.get_version, ...).
                            let answer = if call.method == "client.get_version" {
                                Message::ok(call.id, json!(concat!("miner-worker/", env!("CARGO_PKG_VERSION"))))
                            } else {
                                Message::err(call.id, protocol::StratumError::new(protocol::ErrorCode::Other, "not supported"))
                            };
                            if let Err(out) = send(&mut framed, answer, cfg.timeout, shutdown, state.mined, healthy()).await {
                                return out;
                            }
                        }
                        Err(e) => {
                            if state.logs.allow("ignored") {
                                tracing::debug!(
                                    method = %PoolText(&call.method),
                                    error = %PoolText(&e.to_string()),
                                    "ignored notification"
                                );
                            }
                        }
                    },
                }
            }
            Some(share) = shares.recv() => {
                if share.work.connection != state.connection {
                    continue;
                }
                // Found on the previous block: the pool would only answer "stale" (as
                // cpuminer does, such a share is dropped rather than sent).
                if state.job().is_some_and(|j| j.prevhash != share.work.job.prevhash) {
                    tracing::debug!("share for a replaced block; not submitted");
                    continue;
                }
                // Over the cap: dropped and counted (a block candidate always goes).
                if !state.take_submit(share.is_block) {
                    status.drop_share("rate-cap");
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
                let call = Message::Call(ClientRequest::Submit(submit).to_call(Id::number(id)));
                if let Err(out) = send(&mut framed, call, cfg.timeout, shutdown, state.mined, healthy()).await {
                    return out;
                }
            }
            _ = tick.tick() => {
                status.sample();
                state.tick(board, status);
                for (kind, n) in state.logs.summaries() {
                    tracing::warn!(kind, "{n} similar in 10 s (not logged)");
                }
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
                                return lost(format!("no answer to {kind:?}"), state.mined, healthy())
                            }
                            _ => tracing::debug!(?kind, "no answer; going on without it"),
                        }
                    }
                }
                if now.duration_since(last_rx) > cfg.idle_timeout {
                    return lost("pool silent for too long".into(), state.mined, healthy());
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

/// One line to the pool, within `timeout` and giving way to shutdown: a pool that stops
/// reading ends the session, it never holds the worker.
async fn send(
    framed: &mut Framed<Box<dyn Conn>, StratumCodec>,
    msg: Message,
    timeout: Duration,
    shutdown: &CancellationToken,
    mined: bool,
    healthy: bool,
) -> Result<(), Outcome> {
    tokio::select! {
        _ = shutdown.cancelled() => Err(Outcome::Shutdown),
        r = tokio::time::timeout(timeout, framed.send(msg)) => match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(lost(format!("send: {e}"), mined, healthy)),
            Err(_) => Err(lost(format!("send: the pool read nothing for {timeout:?}"), mined, healthy)),
        },
    }
}

fn lost(reason: String, mined: bool, healthy: bool) -> Outcome {
    Outcome::Lost {
        reason,
        mined,
        healthy,
    }
}
