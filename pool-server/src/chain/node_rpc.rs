//! A Bitcoin-compatible node as the template source: `getblocktemplate` for work,
//! `submitblock` for found blocks, new tips from ZMQ `hashblock` when configured, long polling
//! (`longpollid`) when the node offers it, and a short `getbestblockhash` poll as the
//! fallback; a full template refresh on an interval brings new transactions to miners.
//!
//! While the node is unreachable the last template keeps being served; once it is older than
//! `max_age` it is marked stale (`pool_template_stale`, `/api/pool`) and the source retries
//! with backoff.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::{Block, BlockHash};
use futures::future::BoxFuture;

use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use super::block_template::BlockTemplate;
use super::metrics::ChainMetrics;
use super::rpc::{NodeConfig, RpcClient, RpcError, LONGPOLL_PATIENCE};
use super::{BlockVerdict, Template, TemplateSource};

/// The node as a [`TemplateSource`].
pub struct NodeSource {
    rpc: RpcClient,
    tx: watch::Sender<Arc<Template>>,
    stale: AtomicBool,
    refresh_now: Notify,
    metrics: ChainMetrics,
}

impl NodeSource {
    /// Fetch the first template (retrying for `patience`) and start following the node.
    pub async fn start(
        cfg: NodeConfig,
        metrics: ChainMetrics,
        shutdown: CancellationToken,
        patience: Duration,
    ) -> anyhow::Result<Arc<NodeSource>> {
        let rpc = RpcClient::new(cfg.clone());
        let deadline = Instant::now() + patience;
        let first = loop {
            match rpc
                .getblocktemplate(None, Duration::from_secs(10))
                .await
                .and_then(|t| t.to_template().map(|x| (t, x)).map_err(RpcError::from))
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
            match result.and_then(|t| t.to_template().map(|x| (t, x)).map_err(RpcError::from)) {
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
