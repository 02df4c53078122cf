//! A simulated miner that never gives up, for load and fault tests: it subscribes, authorizes,
//! submits one share at a time at a steady pace, and when the connection ends (a pool restart,
//! `client.reconnect`) it connects again with a short backoff, as a real miner does. With the
//! pool's share difficulty pinned near zero every nonce is a valid share, so mining costs the
//! test nothing and every `true` it counts is a share the pool must have stored.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use protocol::{
    ClientRequest, Extranonce2, Id, Message, Nonce, Notify, ServerNotification, StratumCodec,
    Submit, SubscribeResult, WorkerName,
};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

/// Pool flags under which every hash is a valid share, and vardiff keeps it so: mining costs
/// the test nothing and every `true` is a share the pool must store.
pub const ANY_HASH: [&str; 6] = [
    "--start-difficulty",
    "1e-12",
    "--vardiff-min",
    "1e-12",
    "--vardiff-max",
    "1e-12",
];

/// What one simulated miner saw.
#[derive(Default)]
pub struct Tally {
    /// Shares answered `true`.
    pub accepted: AtomicU64,
    /// Shares answered with an error.
    pub rejected: AtomicU64,
    /// Sessions that reached the first job.
    pub sessions: AtomicU64,
    /// Sessions that presented their subscription id and kept their extranonce1.
    pub resumed: AtomicU64,
    /// Sessions that presented it and were given another extranonce1.
    pub not_resumed: AtomicU64,
    /// `client.reconnect` to another host followed.
    pub redirected: AtomicU64,
    /// Shares whose connection ended before their answer came (the pool may or may not
    /// have kept them: the miner cannot know, and must not count them).
    pub unanswered: AtomicU64,
}

/// How a simulated miner behaves beyond the basics (cgminer's way: it presents its
/// subscription id when it reconnects and follows `client.reconnect` to another host).
#[derive(Clone, Default)]
pub struct Manners {
    /// Connect from this local address (bans and caps count per address).
    pub from: Option<std::net::IpAddr>,
    /// Present the last subscription id when reconnecting.
    pub resume: bool,
    /// Follow `client.reconnect` to the host and port it names (back to `pool` after a
    /// connection to it is lost).
    pub follow_redirects: bool,
}

impl Tally {
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// Mine until `stop`, reconnecting whenever the pool goes away.
pub async fn run(
    pool: SocketAddr,
    worker: String,
    every: Duration,
    stop: CancellationToken,
    tally: Arc<Tally>,
) {
    run_with(pool, worker, every, Manners::default(), stop, tally).await
}

/// What a session hands the next one.
#[derive(Default)]
struct Carry {
    /// The subscription id and extranonce1 of the last session.
    last: Option<(protocol::SubscriptionId, protocol::Extranonce1)>,
    /// Where `client.reconnect` sent the miner.
    redirect: Option<SocketAddr>,
    /// Request ids (and extranonce2 values) go on from one session to the next, so a
    /// resumed session never sends a share it sent before.
    next_id: u64,
}

/// [`run`] with `manners`.
pub async fn run_with(
    pool: SocketAddr,
    worker: String,
    every: Duration,
    manners: Manners,
    stop: CancellationToken,
    tally: Arc<Tally>,
) {
    let mut backoff = Duration::from_millis(50);
    let mut carry = Carry::default();
    while !stop.is_cancelled() {
        let to = carry.redirect.take().unwrap_or(pool);
        if session(to, &worker, every, &manners, &mut carry, &stop, &tally).await {
            backoff = Duration::from_millis(50);
        }
        if carry.redirect.is_some() {
            continue;
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_millis(500));
    }
}

async fn connect(to: SocketAddr, from: Option<std::net::IpAddr>) -> std::io::Result<TcpStream> {
    match from {
        None => TcpStream::connect(to).await,
        Some(ip) => {
            let sock = tokio::net::TcpSocket::new_v4()?;
            sock.bind(SocketAddr::new(ip, 0))?;
            sock.connect(to).await
        }
    }
}

/// One connection; `true` if it got as far as mining.
async fn session(
    pool: SocketAddr,
    worker: &str,
    every: Duration,
    manners: &Manners,
    carry: &mut Carry,
    stop: &CancellationToken,
    tally: &Tally,
) -> bool {
    let Ok(stream) = connect(pool, manners.from).await else {
        return false;
    };
    let _ = stream.set_nodelay(true);
    let mut framed = Framed::new(stream, StratumCodec::new());
    let asked = carry.last.clone().filter(|_| manners.resume);
    let opening = [
        ClientRequest::Subscribe {
            user_agent: Some("sim-miner/1.0".into()),
            resume: asked.as_ref().map(|(sid, _)| sid.clone()),
        },
        ClientRequest::Authorize {
            worker: WorkerName::new(worker),
            password: Some("x".into()),
        },
    ];
    for (i, req) in opening.into_iter().enumerate() {
        if framed
            .send(Message::Call(req.to_call(Id::number(i as u64 + 1))))
            .await
            .is_err()
        {
            return false;
        }
    }
    let mut subscribed: Option<SubscribeResult> = None;
    let mut job: Option<Notify> = None;
    let mut mined = false;
    let mut in_flight: Option<u64> = None;
    let mut next_id = carry.next_id.max(3);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let ready = subscribed.is_some() && job.is_some() && in_flight.is_none();
        tokio::select! {
            // Stop only between shares, so every share sent has its answer counted.
            _ = stop.cancelled(), if in_flight.is_none() => return mined,
            frame = framed.next() => {
                let Some(Ok(Ok(msg))) = frame else {
                    if in_flight.is_some() {
                        tally.unanswered.fetch_add(1, Ordering::SeqCst);
                    }
                    return mined;
                };
                match msg {
                    Message::Response(r) => match r.id.as_u64() {
                        Some(1) => {
                            subscribed = r.outcome.ok().and_then(|v| SubscribeResult::from_value(&v).ok());
                            if let Some(s) = &subscribed {
                                if let Some((_, en1)) = &asked {
                                    let kept = *en1 == s.extranonce1;
                                    let n = if kept { &tally.resumed } else { &tally.not_resumed };
                                    n.fetch_add(1, Ordering::SeqCst);
                                }
                                carry.last = s
                                    .subscriptions
                                    .get(1)
                                    .and_then(|(_, id)| protocol::SubscriptionId::parse(id))
                                    .map(|id| (id, s.extranonce1.clone()));
                            }
                        }
                        Some(id) if Some(id) == in_flight => {
                            in_flight = None;
                            if r.outcome == Ok(Value::Bool(true)) {
                                tally.accepted.fetch_add(1, Ordering::SeqCst);
                            } else {
                                tally.rejected.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        _ => {}
                    },
                    Message::Call(c) => match ServerNotification::from_call(&c) {
                        Ok(ServerNotification::Notify(n)) => {
                            if job.is_none() {
                                tally.sessions.fetch_add(1, Ordering::SeqCst);
                                mined = true;
                            }
                            job = Some(n);
                        }
                        Ok(ServerNotification::Reconnect { host: Some(h), port: Some(p), .. })
                            if manners.follow_redirects =>
                        {
                            if let Ok(ip) = h.parse::<std::net::IpAddr>() {
                                carry.redirect = Some(SocketAddr::new(ip, p));
                                tally.redirected.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        _ => {}
                    },
                }
            }
            _ = tick.tick(), if ready => {
                let (s, j) = (subscribed.as_ref().unwrap(), job.as_ref().unwrap());
                let submit = Submit {
                    worker: WorkerName::new(worker),
                    job_id: j.job_id.clone(),
                    extranonce2: Extranonce2::from_counter(next_id, s.extranonce2_size),
                    ntime: j.ntime,
                    nonce: Nonce(0),
                    version_bits: None,
                };
                let call = ClientRequest::Submit(submit).to_call(Id::number(next_id));
                if framed.send(Message::Call(call)).await.is_err() {
                    tally.unanswered.fetch_add(1, Ordering::SeqCst);
                    return mined;
                }
                in_flight = Some(next_id);
                next_id += 1;
                carry.next_id = next_id;
            }
        }
    }
}
