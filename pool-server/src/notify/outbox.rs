//! The outbox: alerts written to the share database before they are sent, so that nothing is
//! lost and nothing confirmed goes twice. Rows due together for one destination and one group
//! (an account's rigs going down at once) are bound into one message before its first attempt;
//! a retry, or a resend after a restart or a kill, is then the very same message (its id goes
//! out as the `Idempotency-Key` header), and a message confirmed once is never sent again.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::Alert;
use crate::store::{Backend, Dialect};
use crate::with_pool;

/// One alert for one destination, to be queued.
pub struct Outgoing<'a> {
    pub destination: &'a str,
    pub alert: &'a Alert,
}

/// A message due to go: its alerts, in the order they happened.
#[derive(Debug, Clone)]
pub struct Message {
    pub id: String,
    pub destination: String,
    pub alerts: Vec<Alert>,
    /// Attempts made so far.
    pub attempts: i64,
}

/// Alerts of one account, rule and state travel together.
fn group_key(a: &Alert) -> String {
    format!("{}|{}|{:?}", a.account, a.rule.as_str(), a.state)
}

/// Queue `rows`, each due `wait_ms` from `now_ms` (the time a group has to gather).
pub async fn queue(
    backend: &Backend,
    rows: &[Outgoing<'_>],
    now_ms: i64,
    wait_ms: i64,
) -> anyhow::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    queue_marked(backend, None, rows, now_ms, wait_ms).await?;
    Ok(())
}

/// Queue `rows` as [`queue`] does, and mark `key` told in the same transaction; nothing when
/// `key` was told already. Whether they were queued.
pub async fn queue_once(
    backend: &Backend,
    key: &str,
    rows: &[Outgoing<'_>],
    now_ms: i64,
    wait_ms: i64,
) -> anyhow::Result<bool> {
    queue_marked(backend, Some(key), rows, now_ms, wait_ms).await
}

async fn queue_marked(
    backend: &Backend,
    key: Option<&str>,
    rows: &[Outgoing<'_>],
    now_ms: i64,
    wait_ms: i64,
) -> anyhow::Result<bool> {
    with_pool!(backend, p => {
        let mut tx = p.begin().await?;
        if let Some(key) = key {
            let marked = sqlx::query(&p.sql(
                "INSERT INTO notify_events (key, at_ms) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
            ))
            .bind(key)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if marked == 0 {
                return Ok(false);
            }
        }
        for r in rows {
            sqlx::query(&p.sql(
                "INSERT INTO notify_outbox (id, destination, group_key, alert, due_ms, created_ms)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            ))
            .bind(Uuid::now_v7().to_string())
            .bind(r.destination)
            .bind(group_key(r.alert))
            .bind(serde_json::to_string(r.alert)?)
            .bind(now_ms + wait_ms)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
    });
    Ok(true)
}

/// Bind the due rows that belong to no message yet into messages, one per destination and
/// group, in one transaction.
async fn bind_messages(backend: &Backend, now_ms: i64, limit: i64) -> anyhow::Result<()> {
    with_pool!(backend, p => {
        let mut tx = p.begin().await?;
        let rows: Vec<(String, String, String)> = sqlx::query_as(&p.sql(
            "SELECT id, destination, group_key FROM notify_outbox
             WHERE state = 'pending' AND message_id IS NULL AND due_ms <= $1
             ORDER BY created_ms, id LIMIT $2",
        ))
        .bind(now_ms)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let mut groups: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        for (id, destination, group) in rows {
            groups.entry((destination, group)).or_default().push(id);
        }
        for ids in groups.values() {
            let message = Uuid::now_v7().to_string();
            for id in ids {
                sqlx::query(&p.sql(
                    "UPDATE notify_outbox SET message_id = $1 WHERE id = $2 AND message_id IS NULL",
                ))
                .bind(&message)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
    });
    Ok(())
}

/// The messages due now (bound first where needed), oldest first.
pub async fn due(backend: &Backend, now_ms: i64, limit: i64) -> anyhow::Result<Vec<Message>> {
    bind_messages(backend, now_ms, limit).await?;
    let rows: Vec<(String, String, String, i64)> = with_pool!(backend, p => sqlx::query_as(&p.sql(
        "SELECT message_id, destination, alert, CAST(attempts AS BIGINT) FROM notify_outbox
         WHERE state = 'pending' AND message_id IS NOT NULL AND due_ms <= $1
         ORDER BY created_ms, id LIMIT $2",
    ))
    .bind(now_ms)
    .bind(limit)
    .fetch_all(p)
    .await?);
    let mut messages: Vec<Message> = Vec::new();
    for (id, destination, alert, attempts) in rows {
        let alert: Alert = serde_json::from_str(&alert)?;
        match messages.iter_mut().find(|m| m.id == id) {
            Some(m) => m.alerts.push(alert),
            None => messages.push(Message {
                id,
                destination,
                alerts: vec![alert],
                attempts,
            }),
        }
    }
    Ok(messages)
}

/// `destination` is at its rate: what of it is due now waits until `until_ms`, in its order,
/// so the reads of what is due fill with the other destinations' messages meanwhile.
pub async fn postpone(
    backend: &Backend,
    destination: &str,
    now_ms: i64,
    until_ms: i64,
) -> anyhow::Result<()> {
    with_pool!(backend, p => sqlx::query(&p.sql(
        "UPDATE notify_outbox SET due_ms = $1
         WHERE destination = $2 AND state = 'pending' AND due_ms <= $3",
    ))
    .bind(until_ms)
    .bind(destination)
    .bind(now_ms)
    .execute(p)
    .await
    .map(|_| ())?);
    Ok(())
}

/// The message was confirmed: it is never sent again.
pub async fn sent(backend: &Backend, message: &str, now_ms: i64) -> anyhow::Result<()> {
    with_pool!(backend, p => sqlx::query(&p.sql(
        "UPDATE notify_outbox SET state = 'sent', sent_ms = $1, attempts = attempts + 1,
             last_error = NULL
         WHERE message_id = $2",
    ))
    .bind(now_ms)
    .bind(message)
    .execute(p)
    .await
    .map(|_| ())?);
    Ok(())
}

/// The message was not confirmed: try again at `due_ms`, or give up (`failed`).
pub async fn failed_attempt(
    backend: &Backend,
    message: &str,
    due_ms: i64,
    error: &str,
    give_up: bool,
) -> anyhow::Result<()> {
    let state = if give_up { "failed" } else { "pending" };
    with_pool!(backend, p => sqlx::query(&p.sql(
        "UPDATE notify_outbox SET state = $1, due_ms = $2, attempts = attempts + 1,
             last_error = $3
         WHERE message_id = $4",
    ))
    .bind(state)
    .bind(due_ms)
    .bind(error)
    .bind(message)
    .execute(p)
    .await
    .map(|_| ())?);
    Ok(())
}

/// Rows not yet confirmed nor given up.
pub async fn pending(backend: &Backend) -> anyhow::Result<i64> {
    Ok(with_pool!(backend, p => sqlx::query_scalar(
        "SELECT CAST(count(*) AS BIGINT) FROM notify_outbox WHERE state = 'pending'",
    )
    .fetch_one(p)
    .await?))
}

/// One message as its history shows it: what was said, to which destination, and how its
/// delivery stands.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Delivery {
    pub message: Option<String>,
    pub destination: String,
    /// `pending` (not confirmed yet), `sent` (confirmed), `failed` (given up).
    pub state: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: Option<chrono::DateTime<chrono::Utc>>,
    pub sent_at: Option<chrono::DateTime<chrono::Utc>>,
    pub alert: Alert,
}

type DeliveryRow = (
    Option<String>,
    String,
    String,
    i64,
    Option<String>,
    i64,
    Option<i64>,
    String,
);

/// The last `limit` rows sent (or to be sent) to `destinations` (all when `None`), newest
/// first.
pub async fn history(
    backend: &Backend,
    destinations: Option<&[String]>,
    limit: i64,
) -> anyhow::Result<Vec<Delivery>> {
    let rows: Vec<DeliveryRow> = match destinations {
        None => with_pool!(backend, p => sqlx::query_as(&p.sql(
            "SELECT message_id, destination, state, CAST(attempts AS BIGINT), last_error,
                 created_ms, sent_ms, alert
             FROM notify_outbox ORDER BY created_ms DESC, id DESC LIMIT $1",
        ))
        .bind(limit)
        .fetch_all(p)
        .await?),
        Some([]) => Vec::new(),
        Some(ids) => {
            // A few destinations (an account has at most ten): one query each, merged.
            let mut all = Vec::new();
            for id in ids {
                let rows: Vec<DeliveryRow> = with_pool!(backend, p => sqlx::query_as(&p.sql(
                    "SELECT message_id, destination, state, CAST(attempts AS BIGINT), last_error,
                         created_ms, sent_ms, alert
                     FROM notify_outbox WHERE destination = $1
                     ORDER BY created_ms DESC, id DESC LIMIT $2",
                ))
                .bind(id)
                .bind(limit)
                .fetch_all(p)
                .await?);
                all.extend(rows);
            }
            all.sort_by_key(|r| std::cmp::Reverse(r.5));
            all.truncate(limit as usize);
            all
        }
    };
    Ok(rows
        .into_iter()
        .filter_map(
            |(message, destination, state, attempts, last_error, created, sent, alert)| {
                Some(Delivery {
                    message,
                    destination,
                    state,
                    attempts,
                    last_error,
                    created_at: chrono::DateTime::from_timestamp_millis(created),
                    sent_at: sent.and_then(chrono::DateTime::from_timestamp_millis),
                    alert: serde_json::from_str(&alert).ok()?,
                })
            },
        )
        .collect())
}

/// Delete confirmed and given-up rows created before `before_ms` (the history keeps 30 days);
/// how many.
pub async fn prune(backend: &Backend, before_ms: i64) -> anyhow::Result<u64> {
    Ok(with_pool!(backend, p => sqlx::query(&p.sql(
        "DELETE FROM notify_outbox WHERE state <> 'pending' AND created_ms < $1",
    ))
    .bind(before_ms)
    .execute(p)
    .await?
    .rows_affected()))
}
