//! Miners' own subscriptions: an account's destinations (any [`super::channel`]: a webhook,
//! a chat webhook, ntfy, Telegram, email), each sent the alerts of that account's workers
//! and nothing else. An account proves itself with its key: the secret its miner put
//! in the Stratum password (`key=SECRET`, at least 16 characters) the first time, kept only as
//! a digest. The operator's token may manage any account (and reset a key).

use uuid::Uuid;

use super::channel::Target;
use crate::mining::account::key_digest;
use crate::store::{Backend, Dialect};
use crate::with_pool;

/// Subscriptions one account may have.
pub const MAX_PER_ACCOUNT: i64 = 10;

/// One subscription as the API shows it: the URL's secret parts are never shown back.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Subscription {
    pub id: String,
    /// The channel (`webhook`, `slack`, `telegram`, `email` ...).
    pub kind: &'static str,
    /// The kind, scheme and host only (a webhook's path often is its secret; a mailbox's
    /// name is personal).
    pub shown: String,
}

/// Set `account`'s key digest unless it has one (the first key wins).
pub async fn claim_key(
    backend: &Backend,
    account: &str,
    digest: &str,
    now_ms: i64,
) -> anyhow::Result<bool> {
    let n = with_pool!(backend, p => sqlx::query(&p.sql(
        "INSERT INTO account_keys (account, key_hash, set_ms) VALUES ($1, $2, $3)
         ON CONFLICT (account) DO NOTHING",
    ))
    .bind(account)
    .bind(digest)
    .bind(now_ms)
    .execute(p)
    .await?
    .rows_affected());
    Ok(n == 1)
}

/// Set `account`'s key digest, replacing any (an address account's signed proof).
pub async fn set_key(
    backend: &Backend,
    account: &str,
    digest: &str,
    now_ms: i64,
) -> anyhow::Result<()> {
    with_pool!(backend, p => sqlx::query(&p.sql(
        "INSERT INTO account_keys (account, key_hash, set_ms) VALUES ($1, $2, $3)
         ON CONFLICT (account) DO UPDATE SET key_hash = excluded.key_hash, set_ms = excluded.set_ms",
    ))
    .bind(account)
    .bind(digest)
    .bind(now_ms)
    .execute(p)
    .await
    .map(|_| ())?);
    Ok(())
}

/// Whether `secret` is `account`'s key, compared in constant time.
pub async fn key_matches(backend: &Backend, account: &str, secret: &str) -> anyhow::Result<bool> {
    let stored: Option<String> = with_pool!(backend, p => sqlx::query_scalar(&p.sql(
        "SELECT key_hash FROM account_keys WHERE account = $1",
    ))
    .bind(account)
    .fetch_optional(p)
    .await?);
    let Some(stored) = stored else {
        return Ok(false);
    };
    let given = key_digest(account, secret);
    let diff = stored
        .bytes()
        .zip(given.bytes())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    Ok(stored.len() == given.len() && std::hint::black_box(diff) == 0)
}

/// Forget `account`'s key (the operator's reset: its miner may set a new one).
pub async fn reset_key(backend: &Backend, account: &str) -> anyhow::Result<()> {
    with_pool!(backend, p => sqlx::query(&p.sql("DELETE FROM account_keys WHERE account = $1"))
        .bind(account)
        .execute(p)
        .await
        .map(|_| ())?);
    Ok(())
}

impl Subscription {
    fn new(id: String, spec: &str) -> Subscription {
        match Target::parse(spec) {
            Ok(t) => Subscription {
                id,
                kind: t.kind.as_str(),
                shown: t.shown(),
            },
            Err(_) => Subscription {
                id,
                kind: "unknown",
                shown: String::new(),
            },
        }
    }
}

pub async fn list(backend: &Backend, account: &str) -> anyhow::Result<Vec<Subscription>> {
    let rows: Vec<(String, String)> = backend
        .rows_by_key(
            "SELECT id, url FROM alert_subscriptions WHERE account = $1 ORDER BY created_ms, id
             LIMIT $2",
            account,
            MAX_PER_ACCOUNT,
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|(id, spec)| Subscription::new(id, &spec))
        .collect())
}

/// Add a destination for `account`; `None` when it already has [`MAX_PER_ACCOUNT`].
pub async fn add(
    backend: &Backend,
    account: &str,
    target: &Target,
    now_ms: i64,
) -> anyhow::Result<Option<Subscription>> {
    if list(backend, account).await?.len() as i64 >= MAX_PER_ACCOUNT {
        return Ok(None);
    }
    let id = format!("sub-{}", Uuid::now_v7().simple());
    with_pool!(backend, p => sqlx::query(&p.sql(
        "INSERT INTO alert_subscriptions (id, account, url, created_ms) VALUES ($1, $2, $3, $4)",
    ))
    .bind(&id)
    .bind(account)
    .bind(&target.spec)
    .bind(now_ms)
    .execute(p)
    .await
    .map(|_| ())?);
    Ok(Some(Subscription::new(id, &target.spec)))
}

/// Remove one of `account`'s subscriptions; whether it was there.
pub async fn remove(backend: &Backend, account: &str, id: &str) -> anyhow::Result<bool> {
    let n = with_pool!(backend, p => sqlx::query(&p.sql(
        "DELETE FROM alert_subscriptions WHERE account = $1 AND id = $2",
    ))
    .bind(account)
    .bind(id)
    .execute(p)
    .await?
    .rows_affected());
    Ok(n == 1)
}

/// The destination ids (subscription ids) of `account`.
pub async fn destinations_of(backend: &Backend, account: &str) -> anyhow::Result<Vec<String>> {
    Ok(list(backend, account)
        .await?
        .into_iter()
        .map(|s| s.id)
        .collect())
}

/// Where subscription `id` sends, if it still exists (and still reads as a destination).
pub async fn target_of(backend: &Backend, id: &str) -> anyhow::Result<Option<Target>> {
    let spec: Option<String> = with_pool!(backend, p => sqlx::query_scalar(&p.sql(
        "SELECT url FROM alert_subscriptions WHERE id = $1",
    ))
    .bind(id)
    .fetch_optional(p)
    .await?);
    Ok(spec.and_then(|s| Target::parse(&s).ok()))
}
