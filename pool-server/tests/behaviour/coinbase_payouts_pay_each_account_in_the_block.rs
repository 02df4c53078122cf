//! Coinbase payouts on a real node, end to end: two accounts mine through Stratum on a regtest
//! node with `--payout-method coinbase`; every block they find pays them in its own coinbase,
//! one output per account with an address, the pool's output taking the fee and what is not
//! paid; the node's `getblock` and `gettxout` show exactly the outputs the ledger stored; an
//! account without an address is credited, not paid, until it has one, and its matured balance
//! is then carried into a later coinbase; after maturity, what the node's wallet holds at each
//! address equals what `/api/accounts` says was paid, to the satoshi.

use crate::common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::accounts::*;
use common::regtest::*;
use common::Client;
use protocol::bitcoin;
use serde_json::{json, Value};

const TOKEN: &str = "coinbase-payout-token";

/// The block's raw bytes from the node.
async fn block_of(node: &Node, hash: &str) -> bitcoin::Block {
    let hex = match node.call("getblock", json!([hash, 0])).await {
        Ok(v) => v,
        Err(_) => node.call("getblock", json!([hash, false])).await.unwrap(),
    };
    let raw = hex::decode(hex.as_str().unwrap()).unwrap();
    bitcoin::consensus::deserialize(&raw).unwrap()
}

/// `/api/blocks/{hash}/rewards` once the ledger has credited the block.
async fn rewards_of(http: &str, hash: &str) -> Value {
    let t = Instant::now();
    loop {
        let r = reqwest::get(format!("{http}/api/blocks/{hash}/rewards"))
            .await
            .unwrap();
        if r.status() == 200 {
            return r.json().await.unwrap();
        }
        assert!(t.elapsed() < Duration::from_secs(60), "{hash} credited");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn script_of(address: &str) -> bitcoin::ScriptBuf {
    address
        .parse::<bitcoin::Address<_>>()
        .unwrap()
        .require_network(bitcoin::Network::Regtest)
        .unwrap()
        .script_pubkey()
}

/// The block's coinbase on the node pays exactly what the ledger stored: one output per paid
/// account at its address, the pool's output, nothing else; `gettxout` finds each unspent.
/// Returns what each account was paid.
async fn check_block(
    node: &Node,
    http: &str,
    hash: &str,
    pool_addr: &str,
) -> BTreeMap<String, i64> {
    let stored = rewards_of(http, hash).await;
    assert_eq!(stored["payout"], "coinbase", "{stored}");
    let block = block_of(node, hash).await;
    let coinbase = &block.txdata[0];
    let txid = coinbase.compute_txid().to_string();
    let mut outputs: Vec<(bitcoin::ScriptBuf, i64, u32)> = coinbase
        .output
        .iter()
        .enumerate()
        .map(|(i, o)| (o.script_pubkey.clone(), o.value.to_sat() as i64, i as u32))
        .collect();
    let total: i64 = outputs.iter().map(|o| o.1).sum();
    assert_eq!(total, stored["reward_sats"].as_i64().unwrap());
    let mut paid = BTreeMap::new();
    let mut credited = 0;
    for c in stored["credits"].as_array().unwrap() {
        credited += c["sats"].as_i64().unwrap();
        let value = c["paid_sats"].as_i64().unwrap();
        if value == 0 {
            assert_eq!(c["carry_sats"], 0, "{c}");
            continue;
        }
        assert_eq!(
            value,
            c["sats"].as_i64().unwrap() + c["carry_sats"].as_i64().unwrap()
        );
        let script = script_of(c["address"].as_str().unwrap());
        let at = outputs
            .iter()
            .position(|o| o.0 == script && o.1 == value)
            .unwrap_or_else(|| panic!("{hash}: no output of {value} sats for {c}"));
        let (_, _, vout) = outputs.swap_remove(at);
        let utxo = node.call("gettxout", json!([txid, vout])).await.unwrap();
        assert_eq!(sats(&utxo["value"]), value, "gettxout {txid}:{vout}");
        paid.insert(c["account"].as_str().unwrap().to_owned(), value);
    }
    assert_eq!(
        credited + stored["fee_sats"].as_i64().unwrap(),
        stored["reward_sats"].as_i64().unwrap(),
        "the credits and the fee make the reward"
    );
    // What is left is the pool's output.
    let pool_sats = stored["pool_sats"].as_i64().unwrap();
    if pool_sats > 0 {
        assert_eq!(
            outputs.len(),
            1,
            "{hash}: only the pool's output is left: {outputs:?}"
        );
        assert_eq!(outputs[0].0, script_of(pool_addr));
        assert_eq!(outputs[0].1, pool_sats);
    } else {
        assert!(outputs.is_empty(), "{outputs:?}");
    }
    paid
}

/// Whether the job `c` mines pays carried balances: its coinbase (completed with any
/// extranonce) leaves the pool's output less than the fee, or none.
fn job_carries(c: &Client, fee_address: &str) -> bool {
    let Some(job) = &c.job else { return false };
    let raw = protocol::assemble_coinbase(
        job.coinb1.as_bytes(),
        c.extranonce1.as_ref().unwrap(),
        &protocol::Extranonce2::from_counter(0, c.extranonce2_size),
        job.coinb2.as_bytes(),
    );
    let tx: bitcoin::Transaction = bitcoin::consensus::deserialize(&raw).unwrap();
    let total: u64 = tx.output.iter().map(|o| o.value.to_sat()).sum();
    let pool: u64 = tx
        .output
        .iter()
        .filter(|o| o.script_pubkey == script_of(fee_address))
        .map(|o| o.value.to_sat())
        .sum();
    // The fee is 2 % of the reward.
    pool < total / 50
}

/// What `node`'s wallet holds unspent at `address` (coinbase outputs count once mature).
async fn unspent_at(node: &Node, address: &str) -> i64 {
    let list = node
        .call("listunspent", json!([1, 9_999_999, [address]]))
        .await
        .unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .map(|u| sats(&u["amount"]))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coinbase_outputs_match_the_ledger_and_the_node_to_the_satoshi() {
    let Some(bin) = bitcoind_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (n1, n2, pool_addr) = regtest_pair(&bin, dir.path(), &[]).await;
    let alice_addr = n2.call("getnewaddress", json!([])).await.unwrap();
    let bob_addr = n2.call("getnewaddress", json!([])).await.unwrap();
    let alice = alice_addr.as_str().unwrap().to_owned();
    let bob_address = bob_addr.as_str().unwrap().to_owned();
    // The pool's output goes to a fresh address of the first node, so nothing else is there.
    let fee_addr = n1.call("getnewaddress", json!([])).await.unwrap();
    let fee_address = fee_addr.as_str().unwrap().to_owned();
    let _ = pool_addr;
    let pool_dir = dir.path().join("pool");
    let pool = payout_pool(
        &pool_dir,
        &n1,
        &[
            "--pool-fee",
            "2",
            "--payout-method",
            "coinbase",
            "--pool-fee-address",
            &fee_address,
            "--plan-interval",
            "1s",
            "--dust-limit",
            "0.00001",
            "--api-token",
            TOKEN,
            "--log",
            "info,pool_server::rewards=debug,pool_server::jobs=debug",
        ],
    );
    let http = pool.http.clone();
    let alice_worker = format!("{alice}.rig");
    let mut miners = alice_and_bob(pool.stratum, &alice_worker).await;
    // Blocks until alice has been paid in one (the first jobs know no window yet: the pool's
    // output takes those, and their finders are credited).
    let mut paid: BTreeMap<String, i64> = BTreeMap::new();
    let mut blocks = Vec::new();
    let t = Instant::now();
    while !paid.contains_key(&alice) {
        assert!(
            t.elapsed() < Duration::from_secs(180),
            "alice paid in a coinbase"
        );
        for hash in mine_blocks(&mut miners, 1).await {
            for (account, sats) in check_block(&n1, &http, &hash, &fee_address).await {
                *paid.entry(account).or_default() += sats;
            }
            blocks.push(hash);
        }
    }
    assert!(
        !paid.contains_key("bob"),
        "bob has no address: credited, never paid"
    );
    let b = balance(&http, "bob").await;
    assert!(b["balance"]["immature_sats"].as_i64().unwrap() > 0, "{b}");
    let a = balance(&http, &alice).await;
    assert_eq!(a["balance"]["in_coinbase_sats"], paid[&alice], "{a}");
    assert_eq!(a["balance"]["paid_sats"], 0, "not final before maturity");

    // 100 blocks on top: the coinbases are mature; alice's outputs count as paid; bob's
    // credits are due. Then bob is given his address.
    let other = n1.call("getnewaddress", json!([])).await.unwrap();
    n1.call("generatetoaddress", json!([100, other]))
        .await
        .unwrap();
    let a = until_account(&http, &alice, "coinbase outputs mature", |v| {
        v["balance"]["immature_sats"] == 0 && v["balance"]["in_coinbase_sats"] == 0
    })
    .await;
    assert_eq!(a["balance"]["paid_sats"], paid[&alice]);
    let bob_due = until_account(&http, "bob", "mature", |v| {
        v["balance"]["immature_sats"] == 0
    })
    .await["balance"]["due_sats"]
        .as_i64()
        .unwrap();
    assert!(bob_due > 0);
    let put = reqwest::Client::new()
        .put(format!("{http}/api/accounts/bob/address"))
        .bearer_auth(TOKEN)
        .json(&json!({ "address": bob_address }))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 204);

    // Bob's next coinbase outputs carry his balance (out of the pool's part) on top of his
    // part; a balance carried is no longer due, so nothing is carried twice.
    let mut carried = 0i64;
    let mut unpaid = 0i64;
    let t = Instant::now();
    while carried == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "bob's balance carried; the pool's log: {}",
            pool.log_text()
        );
        // Regtest blocks come in a few shares: wait until the miners hold the job whose
        // coinbase carries (the planner reads each new tip, then the job is rebuilt), so the
        // next block is found on it.
        let waited = Instant::now();
        while !miners.iter().all(|(c, _)| job_carries(c, &fee_address)) {
            assert!(
                waited.elapsed() < Duration::from_secs(30),
                "a job carrying bob's balance; the pool's log: {}",
                pool.log_text()
            );
            for (c, _) in miners.iter_mut() {
                c.drain().await;
            }
        }
        for hash in mine_blocks(&mut miners, 1).await {
            let stored = rewards_of(&http, &hash).await;
            for c in stored["credits"].as_array().unwrap() {
                if c["account"] == "bob" {
                    carried += c["carry_sats"].as_i64().unwrap();
                    if c["paid_sats"] == 0 {
                        // A job built before the planner read bob's address.
                        unpaid += c["sats"].as_i64().unwrap();
                    }
                }
            }
            for (account, sats) in check_block(&n1, &http, &hash, &fee_address).await {
                *paid.entry(account).or_default() += sats;
            }
            blocks.push(hash);
        }
        let b = balance(&http, "bob").await;
        assert_eq!(
            b["balance"]["due_sats"].as_i64().unwrap(),
            bob_due - carried,
            "carried balance is no longer due: {b}"
        );
    }
    assert!(carried <= bob_due);
    drop(miners);

    // Mature again; the second node's wallet holds, at each address, exactly what the API
    // says was paid.
    n1.call("generatetoaddress", json!([100, other]))
        .await
        .unwrap();
    let tip = n1.call("getbestblockhash", json!([])).await.unwrap();
    until("n2 to follow", Duration::from_secs(30), || async {
        n2.call("getbestblockhash", json!([])).await.ok() == Some(tip.clone())
    })
    .await;
    for (account, address) in [
        (alice.as_str(), alice.as_str()),
        ("bob", bob_address.as_str()),
    ] {
        let v = until_account(&http, account, "all mature", |v| {
            v["balance"]["immature_sats"] == 0 && v["balance"]["in_coinbase_sats"] == 0
        })
        .await;
        let api_paid = v["balance"]["paid_sats"].as_i64().unwrap();
        assert_eq!(
            api_paid, paid[account],
            "{account}: the API and the blocks agree"
        );
        assert_eq!(
            unspent_at(&n2, address).await,
            api_paid,
            "{account}: the node's wallet and the API agree"
        );
        assert_eq!(v["balance"]["pending_sats"], 0);
    }
    let b = balance(&http, "bob").await;
    assert_eq!(
        b["balance"]["due_sats"].as_i64().unwrap(),
        bob_due - carried + unpaid,
        "bob is owed what was neither paid nor carried: {b}"
    );
    assert!(
        pool.metric("pool_blocks_credited_total{scheme=\"pplns\"}")
            .await
            >= blocks.len() as f64
    );
}
