//! Events: what the record says happened, told once. A block a worker of the pool found, a
//! payout sent or failed, a block's reward matured are read from the share database (the
//! one truth for every pool-server on it) by the one sender of that database, and each is
//! queued in the same transaction that marks it told (`notify_events`), so a crash between
//! the two tells it again or never, and never twice.
//!
//! An account hears about its own: the block its worker found, its part of a payout, its
//! credit of a block that matured. The operator hears one notice per block or payout, not
//! one per account.

use chrono::{DateTime, Duration as Span, Utc};

use super::outbox::{self, Outgoing};
use super::routes::Routing;
use super::{silences, Alert, AlertState, Rule, POOL};
use crate::rewards::payout::coins;
use crate::store::{Backend, Dialect};
use crate::with_pool;
use protocol::account_of;

/// Events older than this are not looked for (nor those from before the first start).
const LOOKBACK_HOURS: i64 = 24;
/// Rows read per kind and pass at most.
const LIMIT: i64 = 1000;

/// One thing to tell, once: `key` names it in `notify_events`.
#[derive(Debug, Clone)]
pub struct Event {
    pub key: String,
    pub alert: Alert,
}

fn notice(rule: Rule, account: &str, worker: &str, at: DateTime<Utc>, summary: String) -> Alert {
    Alert {
        rule,
        state: AlertState::Notice,
        worker: worker.to_owned(),
        account: account.to_owned(),
        at,
        summary,
    }
}

fn sats(v: i64) -> String {
    format!("{} BTC", coins(v))
}

/// Record `now` as the time from which events are told, unless a start before did: nothing
/// from before the first start with events is told.
pub async fn mark_start(backend: &Backend, now: DateTime<Utc>) -> anyhow::Result<()> {
    with_pool!(backend, p => sqlx::query(&p.sql(
        "INSERT INTO notify_events (key, at_ms) VALUES ('since', $1) ON CONFLICT (key) DO NOTHING",
    ))
    .bind(now.timestamp_millis())
    .execute(p)
    .await
    .map(|_| ())?);
    Ok(())
}

/// The time from which events are told: the first start (see [`mark_start`]), or
/// [`LOOKBACK_HOURS`] ago, whichever is later.
async fn since(backend: &Backend, now: DateTime<Utc>) -> anyhow::Result<DateTime<Utc>> {
    mark_start(backend, now).await?;
    let first: i64 = with_pool!(backend, p => sqlx::query_scalar(&p.sql(
        "SELECT at_ms FROM notify_events WHERE key = 'since'",
    ))
    .fetch_one(p)
    .await?);
    let first = DateTime::from_timestamp_millis(first).unwrap_or(now);
    Ok(first.max(now - Span::hours(LOOKBACK_HOURS)))
}

/// Every event since [`since`], told or not.
pub async fn scan(backend: &Backend, now: DateTime<Utc>) -> anyhow::Result<Vec<Event>> {
    let since = since(backend, now).await?;
    let mut out = Vec::new();

    let blocks: Vec<(String, i64, String, String)> = with_pool!(backend, p => sqlx::query_as(&p.sql(
        "SELECT hash, height, worker, status FROM blocks
         WHERE worker IS NOT NULL AND worker <> '' AND found_at >= $1 ORDER BY found_at LIMIT $2",
    ))
    .bind(since)
    .bind(LIMIT)
    .fetch_all(p)
    .await?);
    for (hash, height, worker, status) in blocks {
        let account = account_of(&worker);
        let what = format!("block {height} found by {worker} ({status}): {hash}");
        out.push(Event {
            key: format!("block:{hash}"),
            alert: notice(Rule::BlockFound, POOL, &worker, now, what.clone()),
        });
        out.push(Event {
            key: format!("block:{hash}:{account}"),
            alert: notice(Rule::BlockFound, account, &worker, now, what),
        });
    }

    let payouts: Vec<(String, String, Option<String>, i64, String, i64)> = with_pool!(backend, p => sqlx::query_as(&p.sql(
            "SELECT o.id, o.state, o.txid, o.total_sats, i.account, i.sats
             FROM payouts o JOIN payout_items i ON i.payout_id = o.id
             WHERE o.state IN ('sent', 'failed') AND o.settled_at >= $1
             ORDER BY o.settled_at, o.id LIMIT $2",
        ))
        .bind(since)
        .bind(LIMIT)
        .fetch_all(p)
        .await?);
    let mut last_payout = None;
    for (id, state, txid, total, account, amount) in payouts {
        let sent = state == "sent";
        let rule = if sent {
            Rule::PayoutSent
        } else {
            Rule::PayoutFailed
        };
        let txid = txid.unwrap_or_default();
        if last_payout.as_ref() != Some(&id) {
            let what = if sent {
                format!("payout {id} sent: {} in {txid}", sats(total))
            } else {
                format!(
                    "payout {id} failed: {} not sent; the balances are due again",
                    sats(total)
                )
            };
            out.push(Event {
                key: format!("payout:{id}:{state}"),
                alert: notice(rule, POOL, POOL, now, what),
            });
            last_payout = Some(id.clone());
        }
        let what = if sent {
            format!("{account} was paid {} in {txid}", sats(amount))
        } else {
            format!(
                "a payout of {} to {account} failed; it stays due",
                sats(amount)
            )
        };
        out.push(Event {
            key: format!("payout:{id}:{state}:{account}"),
            alert: notice(rule, &account, &account, now, what),
        });
    }

    let matured: Vec<(String, i64, String, i64)> = with_pool!(backend, p => sqlx::query_as(&p.sql(
        "SELECT r.block_hash, r.height, c.account, c.sats
         FROM block_rewards r JOIN block_credits c ON c.block_hash = r.block_hash
         WHERE r.state = 'mature' AND r.state_at >= $1
         ORDER BY r.state_at, r.block_hash LIMIT $2",
    ))
    .bind(since)
    .bind(LIMIT)
    .fetch_all(p)
    .await?);
    let mut last_block = None;
    for (hash, height, account, amount) in matured {
        if last_block.as_ref() != Some(&hash) {
            out.push(Event {
                key: format!("mature:{hash}"),
                alert: notice(
                    Rule::BalanceMatured,
                    POOL,
                    POOL,
                    now,
                    format!("block {height}'s reward matured: its credits are final"),
                ),
            });
            last_block = Some(hash.clone());
        }
        out.push(Event {
            key: format!("mature:{hash}:{account}"),
            alert: notice(
                Rule::BalanceMatured,
                &account,
                &account,
                now,
                format!(
                    "block {height} matured: {} of {account}'s balance is final",
                    sats(amount)
                ),
            ),
        });
    }
    Ok(out)
}

/// Tell every event of [`scan`] not told yet: each is marked and queued in one transaction.
/// Returns how many were queued.
pub async fn tell(
    backend: &Backend,
    routing: &Routing,
    now: DateTime<Utc>,
    wait_ms: i64,
) -> anyhow::Result<usize> {
    let events = scan(backend, now).await?;
    if events.is_empty() {
        return Ok(0);
    }
    let cutoff = now.timestamp_millis() - 2 * LOOKBACK_HOURS * 3600 * 1000;
    let known: std::collections::HashSet<String> = with_pool!(backend, p => {
        // Keys older than twice the lookback can never be looked for again.
        sqlx::query(&p.sql("DELETE FROM notify_events WHERE key <> 'since' AND at_ms < $1"))
            .bind(cutoff)
            .execute(p)
            .await?;
        sqlx::query_scalar::<_, String>(&p.sql("SELECT key FROM notify_events WHERE at_ms >= $1"))
            .bind(cutoff)
            .fetch_all(p)
            .await?
    })
    .into_iter()
    .collect();
    let silenced = silences::in_force(backend, now.timestamp_millis()).await?;
    let mut told = 0;
    for e in events.into_iter().filter(|e| !known.contains(&e.key)) {
        // A silenced event is marked told with nothing queued: it is not told later either.
        let to = if silenced.iter().any(|m| m.matches(&e.alert)) {
            Vec::new()
        } else {
            routing.destinations(backend, &e.alert).await?
        };
        let rows: Vec<Outgoing> = to
            .iter()
            .map(|d| Outgoing {
                destination: d,
                alert: &e.alert,
            })
            .collect();
        if outbox::queue_once(backend, &e.key, &rows, now.timestamp_millis(), wait_ms).await? {
            told += 1;
        }
    }
    Ok(told)
}
