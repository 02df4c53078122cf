//! One task per connection: the Stratum V1 transport of a single miner.
//!
//! It reads V1's JSON lines and job updates in one `select!` loop, turns each request into a
//! call on the connection's [`Channel`] (which holds the mining state and rules), and answers
//! in V1's terms: ids, `mining.*` notifications, error codes. Replies and what the channel asks
//! to tell the miner are written as whole batches, so there are no locks across awaits and no
//! per-session writer task. Bad lines are answered with a V1 error and count as offences.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use protocol::{
    Call, ClientRequest, ConfigureResult, Difficulty, ErrorCode, FrameError, Id, Inbound, Message,
    ParamsError, ServerNotification, StratumError, SubscribeResult,
};
use serde_json::{json, Map, Value};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::mining::account::key_in_password;
use crate::mining::{Channel, MiningContext, ToMiner};
use crate::net;

/// Lines read from one buffer before their answers are written (then the loop's other
/// waits get their turn).
const MAX_LINES_PER_WRITE: usize = 64;

/// Bytes of the write buffer a session keeps between writes.
const KEEP_OUT: usize = 512;

/// A write that takes longer than this means the miner stopped reading.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where miners are told to reconnect when this pool-server shuts down, `(host, port)`:
/// another edge while draining; `None` for this one (after its restart).
pub type Farewell = Arc<parking_lot::RwLock<Option<(String, u16)>>>;

/// What every V1 session shares: the mining context and the transport's own limits.
pub struct SessionContext {
    pub mining: Arc<MiningContext>,
    pub farewell: Farewell,
    /// The certificate, when the Stratum ports also speak TLS.
    pub tls: Option<Arc<net::tls::TlsTerminator>>,
    pub idle_timeout: Duration,
    pub auth_timeout: Duration,
    pub max_line: usize,
}

struct Session {
    ctx: Arc<SessionContext>,
    channel: Channel,
    out: Vec<u8>,
    /// With durable answers: accepted shares' ids, waiting for the store to hold them.
    held: VecDeque<(u64, Id, Instant)>,
}

/// A held answer whose share the store has not taken in this long is answered with an error
/// (the store lost it: the miner must not count it).
const HELD_AT_MOST: Duration = Duration::from_secs(60);

/// Run one connection to its end: plain Stratum, or Stratum over TLS when the pool has a
/// certificate and the client's first byte opens a handshake. Returns why it ended (a
/// metrics label).
pub async fn run(
    ctx: Arc<SessionContext>,
    stream: TcpStream,
    peer: SocketAddr,
    start_difficulty: Difficulty,
    shutdown: CancellationToken,
) -> &'static str {
    let _ = stream.set_nodelay(true);
    let channel = Channel::new(ctx.mining.clone(), peer, start_difficulty);
    let span = tracing::info_span!("session", session = channel.id(), peer = %peer);
    let session = Session {
        ctx: ctx.clone(),
        channel,
        out: Vec::new(),
        held: VecDeque::new(),
    };
    let Some(tls) = ctx.tls.clone() else {
        let (reader, writer) = stream.into_split();
        return session.run(reader, writer, shutdown).instrument(span).await;
    };
    match net::tls::opens_tls(&stream, ctx.auth_timeout).await {
        None => "auth-timeout",
        Some(false) => {
            let (reader, writer) = stream.into_split();
            session.run(reader, writer, shutdown).instrument(span).await
        }
        // On the heap: a TLS session's state (rustls' buffers) is kilobytes, and inline it
        // would make every plain session's task that much bigger too.
        Some(true) => {
            Box::pin(over_tls(session, tls, stream, peer, shutdown))
                .instrument(span)
                .await
        }
    }
}

/// The TLS handshake, then the session over it.
async fn over_tls(
    session: Session,
    tls: Arc<net::tls::TlsTerminator>,
    stream: TcpStream,
    peer: SocketAddr,
    shutdown: CancellationToken,
) -> &'static str {
    match tls.accept(stream).await {
        Ok(tls) => {
            let metrics = session.ctx.mining.metrics.clone();
            metrics.tls_sessions.inc();
            let (reader, writer) = tokio::io::split(tls);
            let cause = session.run(reader, writer, shutdown).await;
            metrics.tls_sessions.dec();
            cause
        }
        Err(e) => {
            tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
            "tls-handshake"
        }
    }
}

impl Session {
    async fn run<R, W>(
        mut self,
        reader: R,
        mut writer: W,
        shutdown: CancellationToken,
    ) -> &'static str
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut lines = FramedRead::with_capacity(
            reader,
            protocol::LineCodec::<Inbound>::with_max_line(self.ctx.max_line),
            512,
        );
        let mining = self.ctx.mining.clone();
        let opened = Instant::now();
        let mut last_rx = opened;
        let mut jobs_open = true;
        let mut bans_open = true;
        let mut tick = tokio::time::interval(self.channel.tick_every());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let acks = self.channel.durable().map(|(a, _)| a.clone());
        // Waits that outlive a round of the loop stay registered across rounds (each of them
        // made anew per round would take a lock to register and another to deregister, on
        // every line): the shutdown, the job and ban feeds, and the deadline, which is moved
        // only when it fires early (a line came since it was set).
        let stopped = shutdown.cancelled();
        let jobs = changes(mining.jobs.subscribe());
        let bans = changes(mining.bans.changes());
        let deadline =
            tokio::time::sleep_until(opened + self.ctx.auth_timeout.min(self.ctx.idle_timeout));
        tokio::pin!(stopped, jobs, bans, deadline);
        let cause = loop {
            let started = self.channel.started();
            let mut ended = None;
            tokio::select! {
                _ = &mut stopped => {
                    self.say_reconnect();
                    ended = Some("shutdown");
                }
                item = lines.next() => match item {
                    None => break "closed",
                    Some(Err(_)) => break "io-error",
                    Some(Ok(frame)) => {
                        last_rx = Instant::now();
                        self.on_frame(frame).await;
                        // Lines already here (in the buffer, or in the socket: a read that
                        // filled the buffer leaves the socket readable, one that did not makes
                        // this poll return at once) are answered in the same write.
                        for _ in 1..MAX_LINES_PER_WRITE {
                            if self.channel.banned() {
                                break;
                            }
                            match lines.next().now_or_never() {
                                Some(Some(Ok(frame))) => self.on_frame(frame).await,
                                // The answers so far still go out (to a half-closed miner).
                                Some(None) => {
                                    ended = Some("closed");
                                    break;
                                }
                                Some(Some(Err(_))) => {
                                    ended = Some("io-error");
                                    break;
                                }
                                None => break,
                            }
                        }
                    }
                },
                (rx, open) = &mut jobs, if started && jobs_open => {
                    if open {
                        let job = rx.borrow().clone();
                        self.channel.on_job(job);
                        jobs.set(changes(rx));
                    } else {
                        // The job feed ends only at shutdown: the session ends when told to
                        // (the drain first learns where to send its miner).
                        jobs_open = false;
                    }
                }
                _ = tick.tick(), if started => self.channel.on_tick(),
                _ = async { acks.as_ref().expect("held answers need acks").moved().await },
                    if !self.held.is_empty() => {}
                (rx, open) = &mut bans, if bans_open => {
                    // A feed that ended (the pool is stopping) is not waited on again.
                    bans_open = open;
                    bans.set(changes(rx));
                    // Someone was banned: if it is this address, this session goes too.
                    if self.channel.address_banned() {
                        ended = Some("banned");
                    }
                }
                () = &mut deadline => {
                    let due = if started {
                        last_rx + self.ctx.idle_timeout
                    } else {
                        (opened + self.ctx.auth_timeout).min(last_rx + self.ctx.idle_timeout)
                    };
                    if Instant::now() >= due {
                        ended = Some(if started { "idle-timeout" } else { "auth-timeout" });
                    } else {
                        deadline.as_mut().reset(due);
                    }
                }
            }
            self.relay();
            self.release_held();
            if ended.is_none() && self.channel.banned() {
                let msg =
                    ServerNotification::ShowMessage("banned: too many invalid messages".into());
                self.push(&Message::Call(msg.to_call()));
                ended = Some("banned");
            }
            if !self.out.is_empty() {
                match tokio::time::timeout(WRITE_TIMEOUT, writer.write_all(&self.out)).await {
                    Ok(Ok(())) => self.out.clear(),
                    Ok(Err(_)) => break "io-error",
                    Err(_) => break "write-timeout",
                }
                // Answers fit in a small buffer, kept; a job's notify does not, and is rare
                // (its buffer, kept, would be most of an idle connection's memory).
                if self.out.capacity() > KEEP_OUT {
                    self.out = Vec::new();
                }
            }
            if let Some(cause) = ended {
                break cause;
            }
        };
        if cause == "shutdown" && !self.held.is_empty() {
            // The store is still running: the answers it is about to confirm go out first.
            // On the heap: a rare end, kept out of every session's task size.
            let acks = acks.as_ref().expect("held answers need acks");
            let _ = Box::pin(tokio::time::timeout(Duration::from_secs(3), async {
                while !self.held.is_empty() {
                    acks.moved().await;
                    self.release_held();
                }
            }))
            .await;
            let _ = tokio::time::timeout(WRITE_TIMEOUT, writer.write_all(&self.out)).await;
        }
        let _ = writer.shutdown().await;
        // A dropped miner may come back for its channel, and so may the miners of an edge that
        // shuts down (to another edge, or to this one restarted); a refused one may not.
        let resumable = matches!(
            cause,
            "closed" | "io-error" | "idle-timeout" | "write-timeout" | "shutdown"
        );
        self.channel.close(resumable);
        tracing::debug!(cause, "session ended");
        cause
    }

    /// Answer `true` to the held shares the store now holds (durable answers), and with an
    /// error to any it never took.
    fn release_held(&mut self) {
        let Some((acks, _)) = self.channel.durable() else {
            return;
        };
        let stored = acks.stored();
        while let Some((seq, _, at)) = self.held.front() {
            let lost = at.elapsed() > HELD_AT_MOST;
            if *seq > stored && !lost {
                break;
            }
            let (_, id, _) = self.held.pop_front().expect("a front");
            let answer = if lost {
                Err(StratumError::new(
                    ErrorCode::Other,
                    "the share could not be stored".to_owned(),
                ))
            } else {
                Ok(json!(true))
            };
            self.reply(id, answer);
        }
    }

    /// Render what the channel queued for the miner, in order, as V1 notifications.
    fn relay(&mut self) {
        for send in self.channel.sends() {
            match send {
                ToMiner::Difficulty(d) => {
                    let call = ServerNotification::SetDifficulty(d).to_call();
                    write_line(&mut self.out, &Message::Call(call));
                }
                ToMiner::Job { job, clean } => self.out.extend_from_slice(&job.notify_line(clean)),
            }
        }
    }

    /// `client.reconnect`: to another edge at once while draining, else to this pool in 5 s
    /// (we are going away, come back).
    fn say_reconnect(&mut self) {
        let to = self.ctx.farewell.read().clone();
        let bye = match to {
            Some((host, port)) => ServerNotification::Reconnect {
                host: Some(host),
                port: Some(port),
                wait_secs: Some(0),
            },
            None => ServerNotification::Reconnect {
                host: None,
                port: None,
                wait_secs: Some(5),
            },
        };
        self.push(&Message::Call(bye.to_call()));
    }

    fn push(&mut self, msg: &Message) {
        write_line(&mut self.out, msg);
    }

    fn reply(&mut self, id: Id, result: Result<Value, StratumError>) {
        if result == Ok(Value::Bool(true)) {
            return quick_true(&mut self.out, &id);
        }
        self.push(&Message::Response(protocol::Response {
            id,
            outcome: result,
        }));
    }

    async fn on_frame(&mut self, frame: Result<Inbound, FrameError>) {
        match frame {
            Ok(Inbound::Submit { id, submit }) => self.on_submit(id, submit).await,
            // On the heap: the other requests are few (a handful per connection), and their
            // futures, inline, would make every session's task kilobytes bigger.
            Ok(Inbound::Message(msg)) => Box::pin(self.on_message(msg)).await,
            Err(e) => self.on_bad_line(e),
        }
    }

    fn on_bad_line(&mut self, e: FrameError) {
        self.channel.offend("malformed lines");
        tracing::debug!(error = %e, "malformed line");
        self.reply(
            Id::Null,
            Err(StratumError::new(ErrorCode::Other, e.to_string())),
        );
    }

    async fn on_message(&mut self, msg: Message) {
        let call = match msg {
            Message::Call(c) => c,
            // Answers to calls we never make (client.get_version): nothing to do.
            Message::Response(_) => return,
        };
        match ClientRequest::from_call(&call) {
            Ok(req) => self.on_request(call.id, req).await,
            Err(ParamsError::UnknownMethod(m)) => match super::extensions::answer(&m) {
                Some(answer) => self.reply(call.id, answer),
                None => {
                    // The name is not echoed, and logged only escaped and cut.
                    self.channel.unknown_message();
                    let shown: String = m.chars().take(64).collect();
                    tracing::debug!(method = %shown.escape_debug(), "unknown method");
                    self.reply(
                        call.id,
                        Err(StratumError::new(ErrorCode::Other, "Unknown method")),
                    );
                }
            },
            Err(e) => {
                self.channel.offend("malformed requests");
                if call.method == protocol::client::SUBMIT {
                    self.record_malformed_submit(&call, &e).await;
                }
                self.reply(call.id, Err(e.to_stratum()));
            }
        }
    }

    async fn on_request(&mut self, id: Id, req: ClientRequest) {
        match req {
            ClientRequest::Subscribe { user_agent, resume } => {
                if let Err(e) = self.channel.open(resume).await {
                    self.reply(id, Err(StratumError::new(ErrorCode::Other, e.to_string())));
                    return;
                }
                let sid = self
                    .channel
                    .resume_token()
                    .map_or_else(String::new, |s| s.as_str().to_owned());
                let result = SubscribeResult {
                    subscriptions: vec![
                        ("mining.set_difficulty".into(), sid.clone()),
                        ("mining.notify".into(), sid),
                    ],
                    extranonce1: self.channel.extranonce1().expect("opened").clone(),
                    extranonce2_size: self.ctx.mining.extranonce2_size,
                };
                tracing::debug!(agent = user_agent.as_deref().unwrap_or(""), "subscribed");
                self.reply(id, Ok(result.to_value()));
                self.channel.maybe_start();
            }
            ClientRequest::Authorize { worker, password } => {
                if let Err(why) = self.channel.authorize(&worker) {
                    self.reply(id, Err(StratumError::new(ErrorCode::Unauthorized, why.0)));
                    return;
                }
                if let Some(key) = password.as_deref().and_then(key_in_password) {
                    self.channel.claim_key(&worker, key);
                }
                if let Some(d) = password.as_deref().and_then(password_difficulty) {
                    self.channel.suggest(d);
                    self.relay();
                }
                self.reply(id, Ok(json!(true)));
                self.channel.maybe_start();
            }
            ClientRequest::Configure(c) => {
                let mut result = ConfigureResult {
                    version_rolling: None,
                    other: Map::new(),
                };
                match c.version_rolling_request() {
                    Ok(Some(req)) => {
                        result.version_rolling = self
                            .channel
                            .negotiate_version_rolling(req.mask, req.min_bit_count);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        self.reply(id, Err(e.to_stratum()));
                        return;
                    }
                }
                for ext in &c.extensions {
                    if ext != "version-rolling" {
                        result
                            .other
                            .insert(ext.clone(), json!(ext == "subscribe-extranonce"));
                    }
                }
                self.reply(id, Ok(result.to_value()));
            }
            ClientRequest::SuggestDifficulty(d) => {
                self.channel.suggest(d);
                self.relay();
                self.reply(id, Ok(json!(true)));
            }
            ClientRequest::ExtranonceSubscribe => {
                // Our extranonce1 never changes mid-session; the subscription is harmless.
                self.reply(id, Ok(json!(true)));
            }
            ClientRequest::Submit(submit) => self.on_submit(id, submit).await,
        }
    }

    async fn on_submit(&mut self, id: Id, submit: protocol::Submit) {
        let verdict = self.channel.submit(&submit).await;
        match (verdict, self.channel.durable()) {
            // Held until the store holds the share.
            (Ok(_), Some((_, seq))) => self.held.push_back((seq, id, Instant::now())),
            (verdict, _) => {
                self.reply(id, verdict.map(|_| json!(true)).map_err(|r| r.to_stratum()))
            }
        }
    }

    /// A `mining.submit` whose parameters did not parse: recorded against the worker it
    /// names, when it names one this session authorized.
    async fn record_malformed_submit(&mut self, call: &Call, e: &ParamsError) {
        let Some(worker) = call.params.first().and_then(Value::as_str) else {
            return;
        };
        let job = call
            .params
            .get(1)
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .unwrap_or_default();
        self.channel
            .unparsed_submit(worker, &job, e.to_string())
            .await;
    }
}

fn write_line(out: &mut Vec<u8>, msg: &Message) {
    serde_json::to_writer(&mut *out, &msg.to_value()).expect("JSON to a Vec cannot fail");
    out.push(b'\n');
}

/// `true` to `id`, nearly every answer: byte for byte what [`write_line`] writes, without
/// building a JSON tree.
fn quick_true(out: &mut Vec<u8>, id: &Id) {
    out.extend_from_slice(b"{\"error\":null,\"id\":");
    serde_json::to_writer(&mut *out, id).expect("JSON to a Vec cannot fail");
    out.extend_from_slice(b",\"result\":true}\n");
}

/// The next change of a watched value, owning its receiver so that the wait can stay
/// pinned across rounds of a `select!` loop; `false` once the sender is gone.
async fn changes<T>(mut rx: watch::Receiver<T>) -> (watch::Receiver<T>, bool) {
    let open = rx.changed().await.is_ok();
    (rx, open)
}

/// `d=NUM` in a password (`x,d=512` or `d=0.5`) is a requested difficulty.
fn password_difficulty(password: &str) -> Option<Difficulty> {
    password
        .split([',', ';', ' '])
        .find_map(|p| p.trim().strip_prefix("d="))
        .and_then(|d| d.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_true_answers_are_the_general_ones() {
        for id in [Id::number(7), Id::String("a\"b".into()), Id::Null] {
            let mut quick = Vec::new();
            quick_true(&mut quick, &id);
            let mut general = Vec::new();
            write_line(&mut general, &Message::ok(id, json!(true)));
            assert_eq!(String::from_utf8(quick), String::from_utf8(general));
        }
    }

    #[test]
    fn password_can_carry_a_difficulty() {
        assert_eq!(password_difficulty("x,d=512").unwrap().as_f64(), 512.0);
        assert_eq!(password_difficulty("d=0.5").unwrap().as_f64(), 0.5);
        assert!(password_difficulty("x").is_none());
        assert!(password_difficulty("d=-1").is_none());
    }
}
