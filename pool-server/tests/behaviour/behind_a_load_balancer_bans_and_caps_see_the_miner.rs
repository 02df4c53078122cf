//! Behind a real HAProxy (Debian's, `scripts/prepare/haproxy`) that sends the PROXY protocol,
//! v1 (`send-proxy`) and v2 (`send-proxy-v2`), the pool sees each miner's own address: the
//! per-IP cap counts miners, not the balancer, and the log names them. A connection from the
//! trusted balancer's address without a header is closed.

use crate::common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::haproxy::Haproxy;
use common::process::{free_port, PoolProcess};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpSocket;

/// A HAProxy process with a v1 and a v2 frontend in front of `pool`.
struct Balancer {
    _haproxy: Haproxy,
    v1: SocketAddr,
    v2: SocketAddr,
}

impl Balancer {
    fn start(pool: SocketAddr) -> Balancer {
        let v1: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let v2: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let cfg = format!(
            "frontend fe_v1\n  bind {v1}\n  default_backend be_v1\n\
             frontend fe_v2\n  bind {v2}\n  default_backend be_v2\n\
             backend be_v1\n  server pool {pool} send-proxy\n\
             backend be_v2\n  server pool {pool} send-proxy-v2\n"
        );
        Balancer {
            _haproxy: Haproxy::start(&cfg, v2),
            v1,
            v2,
        }
    }
}

/// A miner at `from` connected to `to`, subscribed: whether the pool answered.
struct Miner {
    lines: BufReader<tokio::net::TcpStream>,
}

impl Miner {
    async fn connect(from: IpAddr, to: SocketAddr) -> Miner {
        for _ in 0..100 {
            let sock = TcpSocket::new_v4().unwrap();
            sock.bind(SocketAddr::new(from, 0)).unwrap();
            if let Ok(s) = sock.connect(to).await {
                return Miner {
                    lines: BufReader::new(s),
                };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("cannot reach {to}");
    }

    /// Subscribe; true when the pool answers, false when it closes the connection.
    async fn subscribe(&mut self) -> bool {
        let line = b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[\"lb-test/1.0\"]}\n";
        if self.lines.get_mut().write_all(line).await.is_err() {
            return false;
        }
        let mut answer = String::new();
        let read = tokio::time::timeout(Duration::from_secs(5), self.lines.read_line(&mut answer))
            .await
            .expect("an answer or a close within 5 s");
        matches!(read, Ok(n) if n > 0) && answer.contains("\"result\"")
    }
}

fn ip(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_ip_cap_counts_miners_behind_haproxy_by_their_own_address() {
    let dir = tempfile::tempdir().unwrap();
    let pool = PoolProcess::spawn(
        dir.path(),
        &[
            "--proxy-protocol-from",
            "127.0.0.1/32",
            "--max-connections-per-ip",
            "2",
            "--log",
            "info,pool_server::stratum=debug",
        ],
    );
    let lb = Balancer::start(pool.stratum);
    for front in [lb.v1, lb.v2] {
        // Two miners' connections from one address fit the cap of two...
        let mut first = Miner::connect(ip(5), front).await;
        let mut second = Miner::connect(ip(5), front).await;
        assert!(first.subscribe().await, "via {front}");
        assert!(second.subscribe().await);
        // ...a third from it does not, while another miner's does: the pool counts miners,
        // although every connection reaches it from the balancer's one address.
        let mut third = Miner::connect(ip(5), front).await;
        assert!(!third.subscribe().await, "the cap holds for 127.0.0.5");
        let mut other = Miner::connect(ip(6), front).await;
        assert!(other.subscribe().await, "127.0.0.6 has a cap of its own");
        drop((first, second, third, other));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let refused = pool
        .metric("pool_disconnects_total{cause=\"max-connections-per-ip\"}")
        .await;
    assert_eq!(refused, 2.0, "one per frontend");
    // The refusals name the miner, not the balancer.
    let log = pool.log_text();
    assert!(log.contains("peer=127.0.0.5"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_address_without_a_proxy_header_is_closed_and_others_need_none() {
    let dir = tempfile::tempdir().unwrap();
    let pool = PoolProcess::spawn(dir.path(), &["--proxy-protocol-from", "127.0.0.1"]);
    let cause = "pool_disconnects_total{cause=\"proxy-header\"}";
    let before = pool.metric(cause).await;
    // From the balancer's address, Stratum without the header: closed.
    let mut direct = Miner::connect(ip(1), pool.stratum).await;
    assert!(!direct.subscribe().await);
    assert_eq!(pool.metric(cause).await, before + 1.0);
    // From any other address no header is read: a miner that reaches the pool directly
    // mines as before.
    let mut miner = Miner::connect(ip(7), pool.stratum).await;
    assert!(miner.subscribe().await);
}
