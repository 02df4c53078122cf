//! Silences: what matches one is not sent until it ends (maintenance, a rig being moved). The
//! operator silences anything (`POST /api/silences`, admin token); a miner silences its own
//! account's alerts with the account's key. An alert that fired while silenced is not sent,
//! nor is its resolve; it is still counted, logged and listed by `/api/alerts`.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::matcher::Matchers;
use crate::store::{Backend, Dialect};
use crate::with_pool;

/// Active silences one account may have.
pub const MAX_PER_ACCOUNT: i64 = 10;
/// Active silences in all, at most (the operator's included).
pub const MAX_ACTIVE: i64 = 1000;
/// The longest comment kept.
pub const MAX_COMMENT: usize = 512;

#[derive(Debug, Clone, serde::Serialize)]
pub struct Silence {
    pub id: String,
    pub matchers: String,
    /// The account whose miner made it; none when the operator did.
    pub account: Option<String>,
    pub ends_at: DateTime<Utc>,
    pub comment: String,
}

type Row = (String, String, Option<String>, i64, String);

fn silence((id, matchers, account, ends_ms, comment): Row) -> Silence {
    Silence {
        id,
        matchers,
        account,
        ends_at: DateTime::from_timestamp_millis(ends_ms).unwrap_or_default(),
        comment,
    }
}

/// The silences in force at `now_ms`: all of them, or those `account`'s miner made.
pub async fn active(
    backend: &Backend,
    now_ms: i64,
    account: Option<&str>,
) -> anyhow::Result<Vec<Silence>> {
    let rows: Vec<Row> = with_pool!(backend, p => sqlx::query_as(&p.sql(
        "SELECT id, matchers, account, ends_ms, comment FROM alert_silences
         WHERE ends_ms > $1 AND ($2 IS NULL OR account = $2) ORDER BY ends_ms, id LIMIT $3",
    ))
    .bind(now_ms)
    .bind(account)
    .bind(MAX_ACTIVE)
    .fetch_all(p)
    .await?);
    Ok(rows.into_iter().map(silence).collect())
}

/// The matchers of every silence in force at `now_ms`.
pub async fn in_force(backend: &Backend, now_ms: i64) -> anyhow::Result<Vec<Matchers>> {
    Ok(active(backend, now_ms, None)
        .await?
        .iter()
        .filter_map(|s| Matchers::parse(&s.matchers).ok())
        .collect())
}

/// Add a silence until `ends_ms`; `None` when its maker has as many as it may.
pub async fn add(
    backend: &Backend,
    matchers: &Matchers,
    account: Option<&str>,
    ends_ms: i64,
    comment: &str,
    now_ms: i64,
) -> anyhow::Result<Option<Silence>> {
    let limit = if account.is_some() {
        MAX_PER_ACCOUNT
    } else {
        MAX_ACTIVE
    };
    if active(backend, now_ms, account).await?.len() as i64 >= limit {
        return Ok(None);
    }
    let id = format!("silence-{}", Uuid::now_v7().simple());
    let comment: String = comment.chars().take(MAX_COMMENT).collect();
    let text = matchers.to_string();
    with_pool!(backend, p => sqlx::query(&p.sql(
        "INSERT INTO alert_silences (id, matchers, account, ends_ms, created_ms, comment)
         VALUES ($1, $2, $3, $4, $5, $6)",
    ))
    .bind(&id)
    .bind(&text)
    .bind(account)
    .bind(ends_ms)
    .bind(now_ms)
    .bind(&comment)
    .execute(p)
    .await
    .map(|_| ())?);
    Ok(Some(silence((
        id,
        text,
        account.map(str::to_owned),
        ends_ms,
        comment,
    ))))
}

/// End a silence now (the operator's: any; a miner's: its own). Whether there was one.
pub async fn end(
    backend: &Backend,
    id: &str,
    account: Option<&str>,
    now_ms: i64,
) -> anyhow::Result<bool> {
    let n = with_pool!(backend, p => sqlx::query(&p.sql(
        "UPDATE alert_silences SET ends_ms = $1
         WHERE id = $2 AND ends_ms > $1 AND ($3 IS NULL OR account = $3)",
    ))
    .bind(now_ms)
    .bind(id)
    .bind(account)
    .execute(p)
    .await?
    .rows_affected());
    Ok(n == 1)
}
