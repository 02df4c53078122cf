//! A Bitcoin-compatible node as the template source instead of the embedded chain.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::parse::parse_interval;

#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Node")]
pub struct NodeArgs {
    /// JSON-RPC URL of a Bitcoin-compatible node (`http://127.0.0.1:8332`). When set, work
    /// comes from its `getblocktemplate` and found blocks go to its `submitblock`, instead of
    /// the embedded chain.
    #[arg(long, env = "POOL_NODE_RPC_URL")]
    pub node_rpc_url: Option<String>,

    /// Node RPC user (with --node-rpc-password).
    #[arg(long, env = "POOL_NODE_RPC_USER")]
    pub node_rpc_user: Option<String>,

    /// Node RPC password. Never logged.
    #[arg(long, env = "POOL_NODE_RPC_PASSWORD", hide_env_values = true)]
    pub node_rpc_password: Option<String>,

    /// The node's cookie file (`.cookie` in its data directory), instead of user and password.
    #[arg(long, env = "POOL_NODE_RPC_COOKIE")]
    pub node_rpc_cookie: Option<PathBuf>,

    /// The node's ZMQ `hashblock` publisher (`tcp://127.0.0.1:28332`, the node's
    /// `-zmqpubhashblock`): new tips arrive the moment the node has them.
    #[arg(long, env = "POOL_NODE_ZMQ")]
    pub node_zmq: Option<String>,

    /// Do not use the node's long polling (rely on ZMQ and polling).
    #[arg(long, env = "POOL_NODE_NO_LONGPOLL")]
    pub node_no_longpoll: bool,

    /// Best-block poll interval when the node does not offer long polling.
    #[arg(long, env = "POOL_NODE_POLL", default_value = "500ms", value_parser = parse_interval)]
    pub node_poll: Duration,

    /// Fetch a fresh template (new transactions) at least this often.
    #[arg(long, env = "POOL_NODE_TEMPLATE_REFRESH", default_value = "30s", value_parser = parse_interval)]
    pub node_template_refresh: Duration,

    /// While the node is unreachable, serve the last template for this long, then mark it stale.
    #[arg(long, env = "POOL_NODE_TEMPLATE_MAX_AGE", default_value = "120s", value_parser = parse_interval)]
    pub node_template_max_age: Duration,
}
