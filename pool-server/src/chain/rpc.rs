//! The node's JSON-RPC client: JSON-RPC 1.0 over HTTP with basic auth (user and password, or
//! the node's cookie file), a few retries on transport failures, and errors that say whether
//! the request reached the node at all (so a payout knows whether it may have been made).
//! Used by the node template source and by wallet payouts.

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use bitcoin::{Block, BlockHash};
use serde_json::{json, Value};

use super::block_template::{BadTemplate, BlockTemplate};

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

impl From<BadTemplate> for RpcError {
    fn from(e: BadTemplate) -> Self {
        RpcError::Shape(e.0)
    }
}

/// JSON-RPC 1.0 over HTTP with basic auth (user/password or the node's cookie file).
#[derive(Clone)]
pub struct RpcClient {
    http: reqwest::Client,
    cfg: NodeConfig,
}

/// How long a long poll may wait for the node: it answers when its tip changes, which can
/// take an hour on a quiet chain; giving up sooner would leave the node's thread busy anyway.
pub const LONGPOLL_PATIENCE: Duration = Duration::from_secs(3600);

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
