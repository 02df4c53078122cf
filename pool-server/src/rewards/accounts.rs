//! Accounts: the part of a worker name before the dot. Balances are never stored as running
//! totals; they are summed from the ledger (credits by their block's state) and the payouts
//! (items by their payout's state), so they cannot drift from what they summarise.
//!
//! - `immature`: credits of blocks with fewer than `--maturity` confirmations;
//! - `mature`: credits of mature blocks (final); `void`: credits of blocks that left the chain;
//! - `paid`: items of payouts sent, and coinbase outputs of mature blocks (coinbase payouts);
//! - `pending`: items of payouts recorded but not yet known sent;
//! - `in_coinbase`: outputs paid to the account by coinbases of immature blocks;
//! - `due` = mature - paid - pending - the balances carried into immature coinbases: what the
//!   next payout (or coinbase) pays.
//!
//! An account whose name is an address of `--network` is paid there; another is paid at the
//! address the operator set for it (`PUT /api/accounts/{name}/address`), or not at all.

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::store::{Backend, Dialect};
use crate::with_pool;

/// One account's numbers, in satoshis.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Balance {
    pub account: String,
    /// Where payouts go (`None`: nowhere yet; its balance waits).
    pub address: Option<String>,
    pub immature_sats: i64,
    pub mature_sats: i64,
    pub void_sats: i64,
    pub paid_sats: i64,
    pub pending_sats: i64,
    /// Paid by coinbases of blocks not mature yet (final when they mature).
    pub in_coinbase_sats: i64,
    /// Of those, balance from earlier blocks (no longer due).
    pub carried_sats: i64,
    pub due_sats: i64,
}

/// The pool's totals over every account.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    pub immature_sats: i64,
    pub due_sats: i64,
    pub pending_sats: i64,
    pub in_coinbase_sats: i64,
}

/// `name` itself when it is an address of `network`.
pub fn address_in_name(name: &str, network: bitcoin::Network) -> Option<String> {
    bitcoin::Address::from_str(name)
        .ok()?
        .require_network(network)
        .ok()
        .map(|a| a.to_string())
}

/// Check an address an operator gives for an account.
pub fn parse_address(text: &str, network: bitcoin::Network) -> Result<String, String> {
    let a = bitcoin::Address::from_str(text.trim())
        .map_err(|e| format!("{text:?} is not an address: {e}"))?;
    a.require_network(network)
        .map(|a| a.to_string())
        .map_err(|_| format!("{text:?} is not a {network} address"))
}

/// Every account's balance (or just `only`'s), by name.
pub async fn balances(
    backend: &Backend,
    network: bitcoin::Network,
    only: Option<&str>,
) -> anyhow::Result<Vec<Balance>> {
    // One account's rows come by its index: `$1 IS NULL OR account = $1` would read them all.
    macro_rules! either {
        ($head:literal, $column:literal, $tail:literal $(,)?) => {
            match only {
                Some(_) => concat!($head, $column, " = $1", $tail),
                None => concat!($head, "$1 IS NULL", $tail),
            }
        };
    }
    let credits: Vec<(String, String, i64, i64, i64)> = with_pool!(backend, p => sqlx::query_as(&p.sql(either!(
        "SELECT c.account, r.state, CAST(sum(c.sats) AS BIGINT), CAST(sum(c.paid_sats) AS BIGINT),
                CAST(sum(c.carry_sats) AS BIGINT)
         FROM block_credits c JOIN block_rewards r ON r.block_hash = c.block_hash
         WHERE ", "c.account", "
         GROUP BY c.account, r.state",
    )))
    .bind(only)
    .fetch_all(p)
    .await?);
    let paid: Vec<(String, String, i64)> = with_pool!(backend, p => sqlx::query_as(&p.sql(either!(
        "SELECT i.account, o.state, CAST(sum(i.sats) AS BIGINT)
         FROM payout_items i JOIN payouts o ON o.id = i.payout_id
         WHERE ", "i.account", " AND o.state <> 'failed'
         GROUP BY i.account, o.state",
    )))
    .bind(only)
    .fetch_all(p)
    .await?);
    let addresses: Vec<(String, Option<String>)> = with_pool!(backend, p => sqlx::query_as(&p.sql(
        either!("SELECT name, address FROM accounts WHERE ", "name", ""),
    ))
    .bind(only)
    .fetch_all(p)
    .await?);
    let mut out: BTreeMap<String, Balance> = BTreeMap::new();
    fn entry<'a>(
        out: &'a mut BTreeMap<String, Balance>,
        name: &str,
        network: bitcoin::Network,
    ) -> &'a mut Balance {
        out.entry(name.to_owned()).or_insert_with(|| Balance {
            account: name.to_owned(),
            address: address_in_name(name, network),
            ..Balance::default()
        })
    }
    for (account, state, sats, paid, carried) in credits {
        let b = entry(&mut out, &account, network);
        match state.as_str() {
            "immature" => {
                b.immature_sats += sats;
                b.in_coinbase_sats += paid;
                b.carried_sats += carried;
            }
            "mature" => {
                b.mature_sats += sats;
                b.paid_sats += paid;
            }
            _ => b.void_sats += sats,
        }
    }
    for (account, state, sats) in paid {
        let b = entry(&mut out, &account, network);
        if state == "sent" {
            b.paid_sats += sats;
        } else {
            b.pending_sats += sats;
        }
    }
    for (account, address) in addresses {
        let b = entry(&mut out, &account, network);
        if b.address.is_none() {
            b.address = address;
        }
    }
    Ok(out
        .into_values()
        .map(|mut b| {
            b.due_sats = b.mature_sats - b.paid_sats - b.pending_sats - b.carried_sats;
            b
        })
        .collect())
}

/// Totals over every account (for the gauges).
pub async fn totals(backend: &Backend) -> anyhow::Result<Totals> {
    let (immature, mature, coinbase_paid, carried, in_coinbase): (i64, i64, i64, i64, i64) = with_pool!(backend, p => sqlx::query_as(&p.sql(
        "SELECT CAST(coalesce(sum(CASE WHEN r.state = 'immature' THEN c.sats ELSE 0 END), 0) AS BIGINT),
                CAST(coalesce(sum(CASE WHEN r.state = 'mature' THEN c.sats ELSE 0 END), 0) AS BIGINT),
                CAST(coalesce(sum(CASE WHEN r.state = 'mature' THEN c.paid_sats ELSE 0 END), 0) AS BIGINT),
                CAST(coalesce(sum(CASE WHEN r.state = 'immature' THEN c.carry_sats ELSE 0 END), 0) AS BIGINT),
                CAST(coalesce(sum(CASE WHEN r.state = 'immature' THEN c.paid_sats ELSE 0 END), 0) AS BIGINT)
         FROM block_credits c JOIN block_rewards r ON r.block_hash = c.block_hash",
    ))
    .fetch_one(p)
    .await?);
    let (paid, pending): (i64, i64) = with_pool!(backend, p => sqlx::query_as(&p.sql(
        "SELECT CAST(coalesce(sum(CASE WHEN o.state = 'sent' THEN i.sats ELSE 0 END), 0) AS BIGINT),
                CAST(coalesce(sum(CASE WHEN o.state = 'pending' THEN i.sats ELSE 0 END), 0) AS BIGINT)
         FROM payout_items i JOIN payouts o ON o.id = i.payout_id",
    ))
    .fetch_one(p)
    .await?);
    Ok(Totals {
        immature_sats: immature,
        due_sats: mature - coinbase_paid - paid - pending - carried,
        pending_sats: pending,
        in_coinbase_sats: in_coinbase,
    })
}

/// Set (or with `None`, clear) where `account` is paid.
pub async fn set_address(
    backend: &Backend,
    account: &str,
    address: Option<&str>,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    with_pool!(backend, p => sqlx::query(&p.sql(
        "INSERT INTO accounts (name, address, updated_at) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO UPDATE SET address = excluded.address, updated_at = excluded.updated_at",
    ))
    .bind(account)
    .bind(address)
    .bind(now)
    .execute(p)
    .await?
    .rows_affected());
    Ok(())
}

/// One block's credit to an account, newest first, for the account page.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AccountCredit {
    pub block_hash: String,
    pub height: i64,
    pub state: String,
    pub confirmations: i64,
    pub sats: i64,
    pub difficulty: f64,
    /// Coinbase payouts: the output the block paid the account, and the balance it carried.
    pub paid_sats: i64,
    pub carry_sats: i64,
    pub credited_at: DateTime<Utc>,
}

pub async fn recent_credits(
    backend: &Backend,
    account: &str,
    limit: i64,
) -> anyhow::Result<Vec<AccountCredit>> {
    backend.rows_by_key(
        "SELECT r.block_hash, r.height, r.state, r.confirmations, c.sats, c.difficulty, c.paid_sats,
                    c.carry_sats, r.credited_at
             FROM block_credits c JOIN block_rewards r ON r.block_hash = c.block_hash
             WHERE c.account = $1 ORDER BY r.height DESC, r.block_hash LIMIT $2",
        account,
        limit,
    )
    .await
}

/// One payout to an account, newest first.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AccountPayout {
    pub id: String,
    pub method: String,
    pub state: String,
    pub txid: Option<String>,
    /// Why it failed (the node's words), or how it was resolved.
    pub detail: Option<String>,
    pub address: String,
    pub sats: i64,
    pub created_at: DateTime<Utc>,
    pub settled_at: Option<DateTime<Utc>>,
}

pub async fn recent_payouts(
    backend: &Backend,
    account: &str,
    limit: i64,
) -> anyhow::Result<Vec<AccountPayout>> {
    backend.rows_by_key(
        "SELECT o.id, o.method, o.state, o.txid, o.detail, i.address, i.sats, o.created_at, o.settled_at
             FROM payout_items i JOIN payouts o ON o.id = i.payout_id
             WHERE i.account = $1 ORDER BY o.created_at DESC, o.id LIMIT $2",
        account,
        limit,
    )
    .await
}

/// Where `account` is paid: itself when it is an address of `network`, else the address the
/// operator set (`set`, from [`set_addresses`]).
pub fn address_of(
    account: &str,
    network: bitcoin::Network,
    set: &BTreeMap<String, String>,
) -> Option<String> {
    address_in_name(account, network).or_else(|| set.get(account).cloned())
}

/// Every address the operator set, by account.
pub async fn set_addresses(backend: &Backend) -> anyhow::Result<BTreeMap<String, String>> {
    let rows: Vec<(String, String)> = with_pool!(backend, p => sqlx::query_as(&p.sql(
        "SELECT name, address FROM accounts WHERE address IS NOT NULL",
    ))
    .fetch_all(p)
    .await?);
    Ok(rows.into_iter().collect())
}
