//! One of several: a task that must run on one pool-server of a database at a time (the
//! payer, the alert sender) holds a PostgreSQL advisory lock on a connection of its own for
//! as long as the process lives; another pool-server's task waits to take over. A SQLite
//! database belongs to one pool-server, which needs no lock.

use std::time::Duration;

use super::Backend;

/// Become the one holder of `name` (waits while another pool-server holds it; `None` on
/// SQLite). `role` says in the log what the holder does. Keep the connection: dropping it
/// closes it and lets the lock go.
pub async fn hold(
    backend: &Backend,
    name: &str,
    role: &str,
    retry: Duration,
) -> Option<sqlx::PgConnection> {
    let Backend::Postgres(p) = backend else {
        return None;
    };
    let mut said = false;
    loop {
        match p.acquire().await {
            Ok(mut conn) => {
                let got: Result<bool, _> =
                    sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext($1))")
                        .bind(name)
                        .fetch_one(&mut *conn)
                        .await;
                if got.unwrap_or(false) {
                    tracing::info!("this pool-server {role}");
                    return Some(conn.detach());
                }
                if !said {
                    tracing::info!("another pool-server {role}; waiting to take over");
                    said = true;
                }
            }
            Err(e) => tracing::debug!(error = %e, lock = name, "database unavailable"),
        }
        tokio::time::sleep(retry).await;
    }
}
