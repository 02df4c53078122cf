//! A balance carried into a coinbase is paid once: the coinbase planner offers an account
//! its mature balance less what coinbases of blocks found but not yet credited already carry
//! for it, and less what immature credited coinbases carry; a block refused, orphaned or voided
//! gives its carry back. Read through the planner itself, on a real SQLite store.

use crate::common;

use chrono::{Duration, Utc};
use pool_server::rewards::coinbase_plan::{PaidCoinbase, PlannedCredit, WindowFacts};
use pool_server::rewards::planner::Planner;
use pool_server::rewards::{accounts, block_plans, RewardConfig, Scheme};
use pool_server::store::Backend;
use protocol::bitcoin::{Address, Network, ScriptBuf};

const BOB_SATS: i64 = 1_000_000;

fn reward_row(hash: &str, height: i64, state: &str) -> String {
    format!(
        "INSERT INTO block_rewards (block_hash, height, chain, scheme, reward_sats, fee_bps,
             fee_sats, window_difficulty, credited_difficulty, shares, window_start_us,
             window_end_us, state, confirmations, credited_at, state_at, payout, pool_sats)
         VALUES ('{hash}', {height}, 'embedded', 'pplns', 5000000000, 0, 0, 1, 1, 1, 0, 0,
             '{state}', 1, '2026-12-01T00:00:00Z', '2026-12-01T00:00:00Z', 'coinbase', 0)"
    )
}

fn plan_carrying(carry: u64, script: &ScriptBuf, address: &str) -> PaidCoinbase {
    PaidCoinbase {
        reward_sats: 5_000_000_000,
        fee_sats: 0,
        pool_sats: 5_000_000_000 - 10 - carry,
        pool_script: ScriptBuf::from_bytes(vec![0x51]),
        credits: vec![PlannedCredit {
            account: "bob".into(),
            sats: 10,
            work: 1,
            carry_sats: carry,
            paid_sats: 10 + carry,
            address: Some(address.to_owned()),
            script: Some(script.clone()),
        }],
        window: WindowFacts::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_carried_balance_is_offered_again_only_when_its_block_fails() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/carry.sqlite", dir.path().display());
    let backend = Backend::connect(&url).await.unwrap();
    backend.migrate().await.unwrap();
    let Backend::Sqlite(db) = &backend else {
        unreachable!()
    };
    let exec = |sql: String| async move {
        sqlx::query(&sql).execute(db).await.unwrap();
    };
    let address = Address::p2wsh(&ScriptBuf::from_bytes(vec![0x51, 7]), Network::Regtest);
    let text = address.to_string();
    let script = address.script_pubkey();
    // Bob is owed a mature credit his coinbase never paid (he had no address then).
    exec(reward_row("aa", 1, "mature")).await;
    exec(format!(
        "INSERT INTO block_credits (block_hash, account, sats, difficulty) VALUES ('aa', 'bob', {BOB_SATS}, 1)"
    ))
    .await;
    accounts::set_address(&backend, "bob", Some(&text), Utc::now())
        .await
        .unwrap();
    let (_tx, rx) = tokio::sync::watch::channel(common::template_at(1.0));
    let mut planner = Planner::new(
        backend.clone(),
        rx,
        "embedded",
        RewardConfig {
            scheme: Scheme::Pplns,
            pplns_window: 2.0,
            fee_bps: 0,
            maturity: 100,
            credit_delay: std::time::Duration::ZERO,
            share_retention: std::time::Duration::from_secs(86_400),
        },
        Network::Regtest,
        std::time::Duration::from_secs(1),
        std::time::Duration::ZERO,
    );
    let mut carry = async |what: &str| -> u64 {
        let plan = planner.read(Utc::now()).await.unwrap();
        let c = plan.carry.get("bob").copied().unwrap_or(0);
        eprintln!("{what}: bob's carry {c}");
        c
    };
    assert_eq!(carry("owed, nothing carried yet").await, BOB_SATS as u64);

    // A block found whose coinbase carries 400,000 of it: on record before it is submitted,
    // not credited yet. Only the rest is offered.
    let now = Utc::now();
    block_plans::record(&backend, "bb", &plan_carrying(400_000, &script, &text), now)
        .await
        .unwrap();
    assert_eq!(carry("carried by a block in flight").await, 600_000);
    // The node refused that block: its carry is offered again.
    exec(format!(
        "INSERT INTO blocks (hash, height, prev_hash, chain, worker, network_difficulty, status, raw, found_at)
         VALUES ('bb', 2, 'aa', 'embedded', 'bob.rig', 1, 'rejected', x'00', '{}')",
        now.to_rfc3339()
    ))
    .await;
    assert_eq!(carry("its block refused").await, BOB_SATS as u64);
    // Accepted after all and credited (immature): the carry is no longer due.
    exec("UPDATE blocks SET status = 'accepted' WHERE hash = 'bb'".into()).await;
    exec(reward_row("bb", 2, "immature")).await;
    exec(format!(
        "INSERT INTO block_credits (block_hash, account, sats, difficulty, carry_sats, paid_sats, address)
         VALUES ('bb', 'bob', 10, 1, 400000, 400010, '{text}')"
    ))
    .await;
    assert_eq!(carry("credited, immature").await, 600_000);
    let b = &accounts::balances(&backend, Network::Regtest, Some("bob"))
        .await
        .unwrap()[0];
    assert_eq!((b.due_sats, b.in_coinbase_sats), (600_000, 400_010));
    // Its block left the chain: void, the carry is owed again.
    exec("UPDATE block_rewards SET state = 'void' WHERE block_hash = 'bb'".into()).await;
    assert_eq!(carry("voided").await, BOB_SATS as u64);
    // Back and mature: paid, final; the rest (600,000) and bob's part of it (10) are settled.
    exec("UPDATE block_rewards SET state = 'mature' WHERE block_hash = 'bb'".into()).await;
    assert_eq!(carry("mature").await, 600_000);
    let b = &accounts::balances(&backend, Network::Regtest, Some("bob"))
        .await
        .unwrap()[0];
    assert_eq!((b.paid_sats, b.due_sats), (400_010, 600_000));
    // A plan older than a day whose block never appeared no longer holds anything back.
    block_plans::record(
        &backend,
        "cc",
        &plan_carrying(600_000, &script, &text),
        now - Duration::days(2),
    )
    .await
    .unwrap();
    assert_eq!(carry("a stale plan").await, 600_000);
    block_plans::record(&backend, "dd", &plan_carrying(600_000, &script, &text), now)
        .await
        .unwrap();
    assert_eq!(carry("all of it in flight").await, 0);
}
