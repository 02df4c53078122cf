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

/// What one simulated miner saw.
#[derive(Default)]
pub struct Tally {
    /// Shares answered `true`.
    pub accepted: AtomicU64,
    /// Shares answered with an error.
    pub rejected: AtomicU64,
    /// Sessions that reached the first job.
    pub sessions: AtomicU64,
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
    let mut backoff = Duration::from_millis(50);
    while !stop.is_cancelled() {
        if session(pool, &worker, every, &stop, &tally).await {
            backoff = Duration::from_millis(50);
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_millis(500));
    }
}

/// One connection; `true` if it got as far as mining.
async fn session(
    pool: SocketAddr,
    worker: &str,
    every: Duration,
    stop: &CancellationToken,
    tally: &Tally,
) -> bool {
    let Ok(stream) = TcpStream::connect(pool).await else {
        return false;
    };
    let _ = stream.set_nodelay(true);
    let mut framed = Framed::new(stream, StratumCodec::new());
    let opening = [
        ClientRequest::Subscribe {
            user_agent: Some("sim-miner/1.0".into()),
            resume: None,
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
    let mut next_id = 3u64;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let ready = subscribed.is_some() && job.is_some() && in_flight.is_none();
        tokio::select! {
            // Stop only between shares, so every share sent has its answer counted.
            _ = stop.cancelled(), if in_flight.is_none() => return mined,
            frame = framed.next() => {
                let Some(Ok(Ok(msg))) = frame else { return mined };
                match msg {
                    Message::Response(r) => match r.id.as_u64() {
                        Some(1) => subscribed = r.outcome.ok().and_then(|v| SubscribeResult::from_value(&v).ok()),
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
                    Message::Call(c) => {
                        if let Ok(ServerNotification::Notify(n)) = ServerNotification::from_call(&c) {
                            if job.is_none() {
                                tally.sessions.fetch_add(1, Ordering::SeqCst);
                                mined = true;
                            }
                            job = Some(n);
                        }
                    }
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
                    return mined;
                }
                in_flight = Some(next_id);
                next_id += 1;
            }
        }
    }
}
