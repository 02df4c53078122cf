//! One shutdown signal for the whole process.
//!
//! Every long-running task holds a clone of the [`CancellationToken`] and leaves its loop when
//! it fires: listeners stop accepting, sessions tell miners to reconnect, the store flushes.

pub use tokio_util::sync::CancellationToken;

/// Resolve on SIGINT or SIGTERM.
pub async fn signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
