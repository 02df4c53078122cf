//! A scripted Stratum V1 pool for the worker's tests: accept the worker's connection, answer
//! its handshake, send notifications, read its submits, and check them against the job.

#![allow(dead_code)] // each behaviour module uses its own part of this module

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use protocol::bitcoin::hashes::Hash;
use protocol::{
    header_hash, Call, ClientRequest, CompactTarget, ConfigureResult, Difficulty, Extranonce1,
    HexBytes, JobId, Message, Notify, Ntime, PrevHash, ServerNotification, Submit, SubscribeResult,
    Version,
};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

pub struct Peer {
    pub reader: BufReader<OwnedReadHalf>,
    pub writer: OwnedWriteHalf,
}

impl Peer {
    pub async fn accept(l: &TcpListener, within: Duration) -> Peer {
        let (s, _) = tokio::time::timeout(within, l.accept())
            .await
            .expect("the worker connects in time")
            .unwrap();
        Peer::from(s)
    }

    pub fn from(s: TcpStream) -> Peer {
        let (r, w) = s.into_split();
        Peer {
            reader: BufReader::new(r),
            writer: w,
        }
    }

    pub async fn call(&mut self, within: Duration) -> Option<Call> {
        let mut line = String::new();
        match tokio::time::timeout(within, self.reader.read_line(&mut line)).await {
            Ok(Ok(n)) if n > 0 => match Message::from_json(line.trim()).unwrap() {
                Message::Call(c) => Some(c),
                Message::Response(_) => None,
            },
            _ => None,
        }
    }

    /// Whether the other side closes the connection within `within` (lines still in flight
    /// are read and dropped).
    pub async fn closed(&mut self, within: Duration) -> bool {
        let until = Instant::now() + within;
        let mut line = String::new();
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            line.clear();
            match tokio::time::timeout(left, self.reader.read_line(&mut line)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
        false
    }

    pub async fn send(&mut self, m: Message) {
        let mut s = m.to_json();
        s.push('\n');
        self.writer.write_all(s.as_bytes()).await.unwrap();
    }

    pub async fn notify(&mut self, n: ServerNotification) {
        self.send(Message::Call(n.to_call())).await;
    }

    /// Answer configure/subscribe/authorize until both subscribe and authorize are done.
    pub async fn handshake(&mut self, en1: &[u8], rolling: bool) {
        let configure = ConfigureResult {
            version_rolling: rolling.then_some(protocol::VersionMask::BIP320),
            other: Default::default(),
        }
        .to_value();
        let subscribe = SubscribeResult {
            subscriptions: vec![("mining.notify".into(), "1".into())],
            extranonce1: Extranonce1(en1.to_vec()),
            extranonce2_size: 4,
        }
        .to_value();
        self.handshake_answering(configure, subscribe).await;
    }

    /// The handshake with these answers to `mining.configure` and `mining.subscribe`, as raw
    /// JSON (a hostile pool's answers need not be well typed).
    pub async fn handshake_answering(&mut self, configure: Value, subscribe: Value) {
        let (mut sub, mut auth) = (false, false);
        while !(sub && auth) {
            let c = self
                .call(Duration::from_secs(10))
                .await
                .expect("handshake call");
            let reply = match ClientRequest::from_call(&c).unwrap() {
                ClientRequest::Configure(_) => configure.clone(),
                ClientRequest::Subscribe { .. } => {
                    sub = true;
                    subscribe.clone()
                }
                ClientRequest::Authorize { .. } => {
                    auth = true;
                    json!(true)
                }
                _ => json!(true),
            };
            self.send(Message::ok(c.id, reply)).await;
        }
    }

    /// The next submit (answering it `true`), skipping other calls.
    pub async fn submit(&mut self, within: Duration) -> Option<Submit> {
        let until = Instant::now() + within;
        loop {
            let left = until.checked_duration_since(Instant::now())?;
            let c = self.call(left).await?;
            if let Ok(ClientRequest::Submit(s)) = ClientRequest::from_call(&c) {
                self.send(Message::ok(c.id, json!(true))).await;
                return Some(s);
            }
            self.send(Message::ok(c.id, json!(true))).await;
        }
    }
}

pub fn job(id: &str, clean: bool) -> Notify {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32;
    Notify {
        job_id: JobId::new(id),
        prevhash: PrevHash::from_block_hash(protocol::bitcoin::BlockHash::from_byte_array(
            [id.as_bytes()[0]; 32],
        )),
        coinb1: HexBytes(hex::decode("01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff20").unwrap()),
        coinb2: HexBytes(hex::decode("0c2f736372697074656420706565722fffffffff0100f2052a01000000015100000000").unwrap()),
        merkle_branch: vec![],
        version: Version(0x2000_0000),
        nbits: CompactTarget::from_consensus(0x1d00ffff),
        ntime: Ntime(now),
        clean_jobs: clean,
    }
}

pub fn valid(job: &Notify, en1: &[u8], s: &Submit, diff: f64) -> bool {
    let version = match s.version_bits {
        Some(b) => job.version.rolled(b, protocol::VersionMask::BIP320),
        None => job.version,
    };
    let h = job.header(
        &Extranonce1(en1.to_vec()),
        &s.extranonce2,
        s.ntime,
        s.nonce,
        version,
    );
    Difficulty::new(diff)
        .unwrap()
        .to_target()
        .is_met_by(&header_hash(&h))
}
