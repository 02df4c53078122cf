//! A worker whose connection drops comes back with its subscription id (as cgminer does): the
//! pool resumes the session (same extranonce1, difficulty and credit, and on a pool of several
//! edges, on whichever edge it reaches), and the worker carries on its search where it
//! stopped, so it sends no share twice.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};

use crate::common::{start_pool, start_worker};

/// A TCP relay to `to` whose connections can all be cut at once (a dropped link).
struct Relay {
    addr: SocketAddr,
    links: Arc<parking_lot::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Relay {
    async fn start(to: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let links: Arc<parking_lot::Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let kept = links.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let link = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(to).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                kept.lock().push(link);
            }
        });
        Relay { addr, links }
    }

    fn cut(&self) {
        for link in self.links.lock().drain(..) {
            link.abort();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_link_drops_resumes_its_session_and_sends_no_share_twice() {
    let dir = tempfile::tempdir().unwrap();
    let pool = start_pool(dir.path(), &[]).await;
    let relay = Relay::start(pool.stratum[0]).await;
    let worker = start_worker(relay.addr, "alice.resume", &["--retry-max", "1s"]).await;
    let accepted = || worker.status.accepted.load(Ordering::Relaxed);
    let t = Instant::now();
    while accepted() < 5 {
        assert!(t.elapsed() < Duration::from_secs(60), "no shares");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = accepted();
    relay.cut();
    let t = Instant::now();
    while pool.metrics.resumes.get() < 1 || accepted() < before + 5 {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "{} resumes, {} accepted since the cut",
            pool.metrics.resumes.get(),
            accepted() - before
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        worker.status.rejected.load(Ordering::Relaxed),
        0,
        "no share sent twice: {:?}",
        worker.status.reasons()
    );
    worker.stop().await;
    pool.stop().await.unwrap();
}
