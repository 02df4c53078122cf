//! A Bitcoin-compatible node as the template source: `getblocktemplate` for work,
//! `submitblock` for found blocks, new tips from ZMQ `hashblock` when configured, long polling
//! (`longpollid`) when the node offers it, and a short `getbestblockhash` poll as the
//! fallback; a full template refresh on an interval brings new transactions to miners.
//!
//! While the node is unreachable the last template keeps being served; once it is older than
//! `max_age` it is marked stale (`pool_template_stale`, `/api/pool`) and the source retries
//! with backoff.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use bitcoin::{Amount, Block, BlockHash, ScriptBuf, Transaction, Txid};
use futures::future::BoxFuture;
use protocol::{CompactTarget, Version};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use super::{BlockVerdict, Template, TemplateSource};
use crate::metrics::Metrics;

/// How to reach the node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub url: String,
    pub user: Option<String>,
    pub password: Option<String>,
    pub cookie_file: Option<PathBuf>,
    /// How often to ask for the best block when long polling is not available.
    pub poll: Duration,
    /// Full template refresh (new transactions) interval.
    pub refresh: Duration,
    /// A template older than this while the node is away is stale.
    pub max_age: Duration,
    /// ZMQ `hashblock` publisher of the node, if any.
    pub zmq: Option<String>,
    /// Use long polling when the node offers it.
    pub longpoll: bool,
}

/// Errors talking to the node.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// The request never reached the node (no connection could be made): nothing was sent.
    #[error("node unreachable, nothing sent: {0}")]
    Unreached(String),
    /// The request may have reached the node, but no answer came (a timeout, a reset).
    #[error("node unreachable: {0}")]
    Transport(String),
    #[error("node error {code}: {message}")]
    Node { code: i64, message: String },
    #[error("unexpected answer from the node: {0}")]
    Shape(String),
}

/// JSON-RPC 1.0 over HTTP with basic auth (user/password or the node's cookie file).
#[derive(Clone)]
pub struct RpcClient {
    http: reqwest::Client,
    cfg: NodeConfig,
}

/// How long a long poll may wait for the node: it answers when its tip changes, which can
/// take an hour on a quiet chain; giving up sooner would leave the node's thread busy anyway.
const LONGPOLL_PATIENCE: Duration = Duration::from_secs(3600);

/// Transport failures retried per call before the error is returned.
const RETRIES: u32 = 2;

/// An error with its causes ("error sending request: connection reset by peer"), without
/// the URL (it may carry credentials).
fn error_chain(e: reqwest::Error) -> String {
    let mut causes = Vec::new();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        causes.push(c.to_string());
        cause = c.source();
    }
    std::iter::once(e.without_url().to_string())
        .chain(causes)
        .collect::<Vec<_>>()
        .join(": ")
}

impl RpcClient {
    pub fn new(cfg: NodeConfig) -> Self {
        RpcClient {
            http: reqwest::Client::new(),
            cfg,
        }
    }

    fn auth(&self) -> Result<Option<String>, RpcError> {
        let pair = match (&self.cfg.user, &self.cfg.password, &self.cfg.cookie_file) {
            (Some(u), Some(p), _) => format!("{u}:{p}"),
            (_, _, Some(f)) => std::fs::read_to_string(f)
                .map_err(|e| RpcError::Unreached(format!("cookie file {}: {e}", f.display())))?
                .trim()
                .to_owned(),
            _ => return Ok(None),
        };
        Ok(Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )))
    }

    /// The same node, its wallet `name` (`/wallet/NAME`, for a node with several loaded).
    pub fn for_wallet(&self, name: &str) -> RpcClient {
        let mut cfg = self.cfg.clone();
        if let Ok(mut url) = reqwest::Url::parse(&cfg.url) {
            if let Ok(mut path) = url.path_segments_mut() {
                // Percent-encodes the name as a path segment.
                path.pop_if_empty().push("wallet").push(name);
            }
            cfg.url = url.to_string();
        }
        RpcClient {
            http: self.http.clone(),
            cfg,
        }
    }

    /// An idempotent call: a connection the node reset or refused is tried again.
    pub async fn call(
        &self,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, RpcError> {
        self.call_with(method, params, timeout, RETRIES).await
    }

    /// A call that must not be repeated (`sendmany`): sent once, whatever happens; a transport
    /// error then means "unknown" (the node may have done it).
    pub async fn call_once(
        &self,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, RpcError> {
        self.call_with(method, params, timeout, 0).await
    }

    async fn call_with(
        &self,
        method: &str,
        params: Value,
        timeout: Duration,
        retries: u32,
    ) -> Result<Value, RpcError> {
        let body = json!({"jsonrpc": "1.0", "id": "pool", "method": method, "params": params});
        let auth = self.auth()?;
        // A connection the node reset or refused before it read the request is tried again
        // (for idempotent calls; submitblock answers "duplicate" the second time); a timeout
        // is not, as the node may still be working on it.
        let mut attempt = 0;
        let resp = loop {
            let mut req = self.http.post(&self.cfg.url).timeout(timeout).json(&body);
            if let Some(a) = &auth {
                req = req.header(reqwest::header::AUTHORIZATION, a);
            }
            match req.send().await {
                Ok(r) => break r,
                Err(e) if attempt < retries && !e.is_timeout() => {
                    attempt += 1;
                    tracing::debug!(method, error = %error_chain(e), attempt, "node RPC failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100 * attempt as u64)).await;
                }
                Err(e) if e.is_connect() => return Err(RpcError::Unreached(error_chain(e))),
                Err(e) => return Err(RpcError::Transport(error_chain(e))),
            }
        };
        let status = resp.status();
        let body: Value = resp
            .json()
            .await
            .map_err(|e| RpcError::Transport(format!("HTTP {status}: {}", e.without_url())))?;
        if let Some(err) = body.get("error").filter(|e| !e.is_null()) {
            return Err(RpcError::Node {
                code: err["code"].as_i64().unwrap_or(0),
                message: err["message"].as_str().unwrap_or("").to_owned(),
            });
        }
        Ok(body.get("result").cloned().unwrap_or(Value::Null))
    }

    pub async fn getblocktemplate(
        &self,
        longpollid: Option<&str>,
        timeout: Duration,
    ) -> Result<BlockTemplate, RpcError> {
        let mut req = json!({"rules": ["segwit"]});
        if let Some(id) = longpollid {
            req["longpollid"] = json!(id);
        }
        let v = self.call("getblocktemplate", json!([req]), timeout).await?;
        serde_json::from_value(v).map_err(|e| RpcError::Shape(format!("getblocktemplate: {e}")))
    }

    pub async fn best_block_hash(&self) -> Result<String, RpcError> {
        let v = self
            .call("getbestblockhash", json!([]), Duration::from_secs(5))
            .await?;
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| RpcError::Shape("getbestblockhash".into()))
    }

    /// `getblock`'s confirmations: -1 when the block is off the best chain or unknown.
    pub async fn confirmations(&self, hash: &BlockHash) -> Result<i64, RpcError> {
        match self
            .call(
                "getblock",
                json!([hash.to_string()]),
                Duration::from_secs(10),
            )
            .await
        {
            Ok(v) => v["confirmations"]
                .as_i64()
                .ok_or_else(|| RpcError::Shape("getblock: no confirmations".into())),
            // RPC_INVALID_ADDRESS_OR_KEY: "Block not found".
            Err(RpcError::Node { code: -5, .. }) => Ok(-1),
            Err(e) => Err(e),
        }
    }

    /// `submitblock`: null means accepted; otherwise the node's reason.
    pub async fn submit_block(&self, block: &Block) -> Result<Option<String>, RpcError> {
        let hex = bitcoin::consensus::encode::serialize_hex(block);
        let v = self
            .call("submitblock", json!([hex]), Duration::from_secs(30))
            .await?;
        Ok(v.as_str().map(str::to_owned))
    }
}

/// The parts of a `getblocktemplate` answer the pool uses (Core and its forks agree on these).
#[derive(Debug, Clone, Deserialize)]
pub struct BlockTemplate {
    pub version: u32,
    pub previousblockhash: String,
    pub transactions: Vec<TemplateTx>,
    pub coinbasevalue: u64,
    pub longpollid: Option<String>,
    pub mintime: u32,
    pub curtime: u32,
    pub bits: String,
    pub height: u64,
    pub default_witness_commitment: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TemplateTx {
    pub data: String,
    pub txid: Option<String>,
}

impl BlockTemplate {
    /// Into the pool's template, checking what the node sent.
    pub fn to_template(&self) -> Result<Template, RpcError> {
        let bad = |what: &str, e: &dyn std::fmt::Display| RpcError::Shape(format!("{what}: {e}"));
        let prev = BlockHash::from_str(&self.previousblockhash)
            .map_err(|e| bad("previousblockhash", &e))?;
        let bits = u32::from_str_radix(&self.bits, 16).map_err(|e| bad("bits", &e))?;
        let bits = CompactTarget::from_consensus(bits);
        let target = bits.to_target().map_err(|e| bad("bits", &e))?;
        let mut txs = Vec::with_capacity(self.transactions.len());
        let mut txids = Vec::with_capacity(self.transactions.len());
        for t in &self.transactions {
            let raw = hex::decode(&t.data).map_err(|e| bad("transaction data", &e))?;
            let tx: Transaction =
                bitcoin::consensus::deserialize(&raw).map_err(|e| bad("transaction", &e))?;
            let txid = tx.compute_txid();
            if let Some(given) = &t.txid {
                if Txid::from_str(given).ok() != Some(txid) {
                    return Err(RpcError::Shape(format!(
                        "transaction {given} hashes to {txid}"
                    )));
                }
            }
            txids.push(txid);
            txs.push(tx);
        }
        let witness_commitment = match &self.default_witness_commitment {
            Some(h) => Some(ScriptBuf::from_bytes(
                hex::decode(h).map_err(|e| bad("default_witness_commitment", &e))?,
            )),
            None => None,
        };
        Ok(Template {
            height: self.height,
            prev_hash: prev,
            version: Version(self.version),
            bits,
            target,
            min_time: self.mintime,
            cur_time: self.curtime.max(self.mintime),
            coinbase_value: Amount::from_sat(self.coinbasevalue),
            transactions: Arc::new(txs),
            txids: Arc::new(txids),
            witness_commitment,
            created: Instant::now(),
        })
    }
}

/// The node as a [`TemplateSource`].
pub struct NodeSource {
    rpc: RpcClient,
    tx: watch::Sender<Arc<Template>>,
    stale: AtomicBool,
    refresh_now: Notify,
    metrics: Arc<Metrics>,
}

impl NodeSource {
    /// Fetch the first template (retrying for `patience`) and start following the node.
    pub async fn start(
        cfg: NodeConfig,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
        patience: Duration,
    ) -> anyhow::Result<Arc<NodeSource>> {
        let rpc = RpcClient::new(cfg.clone());
        let deadline = Instant::now() + patience;
        let first = loop {
            match rpc
                .getblocktemplate(None, Duration::from_secs(10))
                .await
                .and_then(|t| t.to_template().map(|x| (t, x)))
            {
                Ok(t) => break t,
                Err(e) if Instant::now() < deadline => {
                    tracing::warn!(error = %e, "waiting for the node");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => anyhow::bail!("node at --node-rpc-url: {e}"),
            }
        };
        tracing::info!(height = first.1.height, prev = %first.1.prev_hash, longpoll = first.0.longpollid.is_some(), "node template source ready");
        let (tx, _) = watch::channel(Arc::new(first.1));
        let src = Arc::new(NodeSource {
            rpc,
            tx,
            stale: AtomicBool::new(false),
            refresh_now: Notify::new(),
            metrics,
        });
        if let Some(endpoint) = cfg.zmq.clone() {
            tokio::spawn(src.clone().listen_zmq(endpoint, shutdown.clone()));
        }
        let longpollid = first.0.longpollid.filter(|_| cfg.longpoll);
        tokio::spawn(src.clone().follow(cfg, longpollid, shutdown));
        Ok(src)
    }

    /// Subscribe to the node's `hashblock` and fetch a template on every message; reconnect
    /// with backoff when the publisher goes away.
    async fn listen_zmq(self: Arc<Self>, endpoint: String, shutdown: CancellationToken) {
        use zeromq::{Socket, SocketRecv};
        let mut backoff = Duration::from_millis(250);
        loop {
            let mut sock = zeromq::SubSocket::new();
            let connected = async {
                sock.connect(&endpoint).await?;
                sock.subscribe("hashblock").await
            };
            let result = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = connected => r,
            };
            if let Err(e) = result {
                tracing::warn!(endpoint = %endpoint, error = %e, "ZMQ connect failed");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
                continue;
            }
            tracing::info!(endpoint = %endpoint, "listening for hashblock");
            backoff = Duration::from_millis(250);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    msg = sock.recv() => match msg {
                        Ok(m) => {
                            let hash = m.get(1).map(|b| hex::encode(b.as_ref())).unwrap_or_default();
                            tracing::debug!(block = %hash, "hashblock");
                            self.refresh_now.notify_one();
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "ZMQ connection lost");
                            break;
                        }
                    },
                }
            }
        }
    }

    pub fn is_stale(&self) -> bool {
        self.stale.load(Ordering::Relaxed)
    }

    fn publish(&self, t: Template) {
        let current = self.tx.borrow().clone();
        let new_tip = current.prev_hash != t.prev_hash;
        if new_tip {
            tracing::info!(height = t.height, prev = %t.prev_hash, "new tip from the node");
        }
        self.tx.send_replace(Arc::new(t));
        self.set_stale(false);
    }

    fn set_stale(&self, stale: bool) {
        if self.stale.swap(stale, Ordering::Relaxed) != stale {
            if stale {
                tracing::warn!("node unreachable and the template is old: work is stale");
            } else {
                tracing::info!("node reachable again");
            }
        }
        self.metrics.template_stale.set(stale as i64);
    }

    /// Keep templates current: long poll when the node offers it, else poll the best block;
    /// refresh transactions on an interval; back off while the node is away.
    ///
    /// At most one long poll is in flight, and it is never abandoned: the node keeps an RPC
    /// thread busy for every long poll until its tip changes, even when the client has gone
    /// (an abandoned one sits in CLOSE-WAIT on the node), so refreshes and ZMQ-triggered
    /// fetches use a plain `getblocktemplate` beside it, and a new long poll starts only when
    /// the last one has answered. (At shutdown the one in flight is closed; the node frees
    /// that thread at its next block.)
    async fn follow(
        self: Arc<Self>,
        cfg: NodeConfig,
        mut longpollid: Option<String>,
        shutdown: CancellationToken,
    ) {
        let mut backoff = Duration::from_millis(250);
        let mut last_refresh = Instant::now();
        let mut best = self.tx.borrow().prev_hash.to_string();
        let mut longpoll: Option<tokio::task::JoinHandle<Result<BlockTemplate, RpcError>>> = None;
        let mut recovering = false;
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            if longpoll.is_none() && !recovering {
                if let Some(id) = longpollid.clone() {
                    let rpc = self.rpc.clone();
                    longpoll = Some(tokio::spawn(async move {
                        rpc.getblocktemplate(Some(&id), LONGPOLL_PATIENCE).await
                    }));
                }
            }
            let mut from_longpoll = false;
            let result = if recovering {
                // The node failed us: ask plainly (a long poll would wait for the next block).
                self.rpc
                    .getblocktemplate(None, Duration::from_secs(10))
                    .await
            } else if let Some(lp) = longpoll.as_mut() {
                // Returns when the tip or the transactions change; meanwhile refreshes and
                // ZMQ's new tips take a plain template.
                let (answered, r) = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    r = lp => (true, r.unwrap_or_else(|e| Err(RpcError::Transport(e.to_string())))),
                    _ = self.refresh_now.notified() => (false, self.rpc.getblocktemplate(None, Duration::from_secs(10)).await),
                    _ = tokio::time::sleep(cfg.refresh) => (false, self.rpc.getblocktemplate(None, Duration::from_secs(10)).await),
                };
                if answered {
                    longpoll = None;
                    from_longpoll = true;
                }
                r
            } else {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = self.refresh_now.notified() => {}
                    _ = tokio::time::sleep(cfg.poll) => {}
                }
                match self.rpc.best_block_hash().await {
                    Ok(h) if h == best && last_refresh.elapsed() < cfg.refresh => continue,
                    Ok(h) => {
                        best = h;
                        self.rpc
                            .getblocktemplate(None, Duration::from_secs(10))
                            .await
                    }
                    Err(e) => Err(e),
                }
            };
            match result.and_then(|t| t.to_template().map(|x| (t, x))) {
                // A long poll answered when an older tip appeared, but a plain template for a
                // newer one was published meanwhile: the answer is out of date.
                Ok((_, t)) if from_longpoll && t.height < self.tx.borrow().height => {
                    tracing::debug!(height = t.height, "dropping a late long-poll answer");
                }
                Ok((raw, t)) => {
                    recovering = false;
                    backoff = Duration::from_millis(250);
                    last_refresh = Instant::now();
                    best = t.prev_hash.to_string();
                    if cfg.longpoll {
                        longpollid = raw.longpollid;
                    }
                    self.publish(t);
                }
                Err(e) => {
                    recovering = true;
                    tracing::warn!(error = %e, retry_ms = backoff.as_millis() as u64, "node request failed");
                    if self.tx.borrow().created.elapsed() > cfg.max_age {
                        self.set_stale(true);
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
        if let Some(lp) = longpoll {
            lp.abort();
        }
    }
}

impl TemplateSource for NodeSource {
    fn templates(&self) -> watch::Receiver<Arc<Template>> {
        self.tx.subscribe()
    }

    fn submit_block(&self, block: Block) -> BoxFuture<'_, BlockVerdict> {
        Box::pin(async move {
            let verdict = match self.rpc.submit_block(&block).await {
                Ok(None) => BlockVerdict::Accepted,
                Ok(Some(s)) if s == "duplicate" => BlockVerdict::Duplicate,
                Ok(Some(s)) if s == "inconclusive" => BlockVerdict::Unknown(s),
                Ok(Some(reason)) => BlockVerdict::Rejected(reason),
                Err(RpcError::Node { message, .. }) => BlockVerdict::Rejected(message),
                Err(e) => BlockVerdict::Unknown(e.to_string()),
            };
            // A new tip (ours) or a refusal: either way, fetch fresh work now.
            self.refresh_now.notify_one();
            verdict
        })
    }

    fn kind(&self) -> &'static str {
        "node"
    }

    fn confirmations(&self, hash: BlockHash) -> BoxFuture<'_, Result<i64, String>> {
        Box::pin(async move {
            self.rpc
                .confirmations(&hash)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wallet_is_a_percent_encoded_path_segment_of_the_node_url() {
        let rpc = |url: &str| {
            RpcClient::new(NodeConfig {
                url: url.into(),
                user: None,
                password: None,
                cookie_file: None,
                poll: Duration::from_secs(1),
                refresh: Duration::from_secs(1),
                max_age: Duration::from_secs(1),
                zmq: None,
                longpoll: false,
            })
        };
        for base in ["http://127.0.0.1:8332", "http://127.0.0.1:8332/"] {
            assert_eq!(
                rpc(base).for_wallet("pool payouts/1").cfg.url,
                "http://127.0.0.1:8332/wallet/pool%20payouts%2F1"
            );
        }
    }
}
