//! Accepting a connection without spinning when the process runs out of descriptors.

use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The next connection on `listener`, or `None` at shutdown. A failed accept (out of file
/// descriptors and the like) is logged and retried after a pause instead of spinning.
pub async fn accept(
    listener: &TcpListener,
    shutdown: &CancellationToken,
) -> Option<(tokio::net::TcpStream, std::net::SocketAddr)> {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return None,
            a = listener.accept() => a,
        };
        match accepted {
            Ok(x) => return Some(x),
            Err(e) => {
                let local = listener.local_addr().ok();
                tracing::warn!(error = %e, listener = ?local, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
