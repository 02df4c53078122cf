//! Rewards on the embedded chain, end to end: two accounts submit work at 2:1, blocks are found
//! through Stratum, and each block's reward (less the pool's fee) is credited once, near 2:1,
//! to the satoshi of the coinbase; credits mature with depth; a reorganisation that leaves a
//! block behind voids its credits, visibly. PROP on PostgreSQL credits the work since the
//! previous block. Coinbase payouts pay each block's window in the block's own coinbase.

use crate::common;

use std::time::{Duration, Instant};

use common::p2p::{magic, BlockMaker, ScriptedPeer, NETWORK};
use common::*;
use protocol::bitcoin::{Address, ScriptBuf, Transaction};
use protocol::{assemble_coinbase, Extranonce2, Notify};
use serde_json::Value;

const SHARE_DIFFICULTY: &str = "0.000001";
/// A block every 20 shares or so; the PPLNS window (2 x) holds about 40.
const NETWORK_DIFFICULTY: f64 = 0.00002;

async fn pool(extra: &[&str]) -> TestPool {
    let bits = bits_for(NETWORK_DIFFICULTY);
    let mut args = vec![
        "--genesis-bits",
        &bits,
        "--p2p-network",
        NETWORK,
        "--retarget-interval",
        "1000000",
        "--start-difficulty",
        SHARE_DIFFICULTY,
        "--vardiff-min",
        SHARE_DIFFICULTY,
        "--vardiff-max",
        SHARE_DIFFICULTY,
        // Long enough for the shares before a block to be stored (the store flushes every
        // 250 ms) on a loaded machine, as the 10 s default is in production.
        "--credit-delay",
        "3s",
        "--pool-fee",
        "1",
        "--maturity",
        "2",
    ];
    args.extend_from_slice(extra);
    start_pool(&args).await
}

async fn miner(pool: &TestPool, worker: &str) -> Client {
    let mut c = Client::connect(pool.stratum()).await;
    c.subscribe().await;
    assert_eq!(c.authorize(worker).await.unwrap(), Value::Bool(true));
    c.wait_job().await;
    c
}

/// One share from `c` as `worker` on its current job; the block hash when it was a block.
async fn share(c: &mut Client, worker: &str, counter: u64) -> Option<String> {
    let job: Notify = c.job.clone().unwrap();
    let (accepted, found) = c.share_as(worker, counter).await;
    let accepted = accepted == Ok(Value::Bool(true));
    let block = job.nbits.to_target().unwrap().is_met_by(&found.hash);
    (accepted && block).then(|| found.hash.to_string())
}

/// Mine as alice, alice, bob, ... until at least `blocks` blocks are found, the last after
/// 60 shares or more (so its PPLNS window is full); their hashes.
async fn mine_blocks(
    pool: &TestPool,
    a: &mut Client,
    b: &mut Client,
    blocks: usize,
) -> Vec<String> {
    let mut found = Vec::new();
    let mut counter = 0u64;
    let t = Instant::now();
    while found.len() < blocks || counter < 60 {
        assert!(t.elapsed() < Duration::from_secs(120), "blocks in time");
        for turn in 0..3 {
            counter += 1;
            let got = if turn < 2 {
                share(a, "alice.rig", counter).await
            } else {
                share(b, "bob.rig", counter).await
            };
            if let Some(hash) = got {
                a.wait_clean_job(&hash).await;
                b.wait_clean_job(&hash).await;
                found.push(hash);
            }
        }
    }
    assert_eq!(pool.get("/api/pool").await["source"], "embedded");
    found
}

async fn rewards_of(pool: &TestPool, hash: &str) -> Value {
    let url = format!("{}/api/blocks/{hash}/rewards", pool.http());
    let t = Instant::now();
    loop {
        let r = reqwest::get(&url).await.unwrap();
        if r.status() == 200 {
            return r.json().await.unwrap();
        }
        assert_eq!(r.status(), 404, "{}", r.text().await.unwrap());
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "block {hash} credited in time"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Each account's credit is its share of the work in the window, within a satoshi.
fn assert_proportional(r: &Value) {
    let pot = (r["reward_sats"].as_i64().unwrap() - r["fee_sats"].as_i64().unwrap()) as f64;
    let work = r["credited_difficulty"].as_f64().unwrap();
    for c in r["credits"].as_array().unwrap() {
        let exact = pot * c["difficulty"].as_f64().unwrap() / work;
        let sats = c["sats"].as_i64().unwrap() as f64;
        assert!((sats - exact).abs() <= 1.0 + exact * 1e-9, "{c} of {r}");
    }
}

/// The sum of a block's credits.
fn credited_sats(r: &Value) -> i64 {
    r["credits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["sats"].as_i64().unwrap())
        .sum()
}

fn credit(r: &Value, account: &str) -> i64 {
    r["credits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["account"] == account)
        .map(|c| c["sats"].as_i64().unwrap())
        .unwrap_or(0)
}

async fn account(pool: &TestPool, name: &str) -> Value {
    pool.get(&format!("/api/accounts/{name}")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pplns_credits_follow_the_work_and_a_reorg_voids_them() {
    let pool = pool(&["--p2p-listen", "127.0.0.1:0"]).await;
    let mut a = miner(&pool, "alice.rig").await;
    let mut b = miner(&pool, "bob.rig").await;
    let blocks = mine_blocks(&pool, &mut a, &mut b, 4).await;

    let (mut alice, mut full) = (0i64, 0);
    for hash in &blocks {
        let r = rewards_of(&pool, hash).await;
        assert_eq!(r["scheme"], "pplns");
        let reward = r["reward_sats"].as_i64().unwrap();
        assert!(reward > 0);
        // 1 % fee, rounded down; the credits are the rest, to the satoshi.
        assert_eq!(r["fee_sats"].as_i64().unwrap(), reward / 100);
        let credited = credited_sats(&r);
        assert_eq!(credited, reward - reward / 100, "{r}");
        // The window asks for twice the network difficulty; it holds at most that, filled
        // unless the block came before that much work was done.
        let window = r["window_difficulty"].as_f64().unwrap();
        assert!(
            (window / (2.0 * NETWORK_DIFFICULTY) - 1.0).abs() < 0.01,
            "{r}"
        );
        let work = r["credited_difficulty"].as_f64().unwrap();
        assert!(work <= window * (1.0 + 1e-9), "{r}");
        assert_proportional(&r);
        if work >= window * (1.0 - 1e-9) {
            // A full window of alice, alice, bob, ...
            let ratio = credit(&r, "alice") as f64 / credit(&r, "bob") as f64;
            assert!((1.6..=2.5).contains(&ratio), "alice:bob {ratio} in {r}");
            full += 1;
        }
        alice += credit(&r, "alice");
    }
    assert!(full >= 1, "the last block's window is full");

    // Depth 2 makes a block mature: all but the tip's are.
    let t = Instant::now();
    let last = blocks.last().unwrap();
    loop {
        let states: Vec<String> = {
            let mut v = Vec::new();
            for h in &blocks {
                v.push(
                    rewards_of(&pool, h).await["state"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                );
            }
            v
        };
        let n = states.len();
        if states[..n - 1].iter().all(|s| s == "mature") && states[n - 1] == "immature" {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "maturity: {states:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let before = account(&pool, "alice").await;
    let last_credit = credit(&rewards_of(&pool, last).await, "alice");
    assert_eq!(
        before["balance"]["immature_sats"].as_i64().unwrap(),
        last_credit
    );
    assert_eq!(
        before["balance"]["mature_sats"].as_i64().unwrap(),
        alice - last_credit
    );
    assert_eq!(before["credits"].as_array().unwrap().len(), blocks.len());

    // A peer brings a longer branch from below the last block: it is left behind, and its
    // credits are void.
    let (height, _) = {
        let p = pool.get("/api/pool").await;
        (p["height"].as_u64().unwrap() - 1, p["prev_hash"].clone())
    };
    let mut maker = BlockMaker::new(&bits_for(NETWORK_DIFFICULTY), 0);
    let last_block = reqwest::get(format!("{}/api/blocks?limit=100", pool.http()))
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let parent = last_block
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["hash"] == last.as_str())
        .unwrap()["prev_hash"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    maker.prev = parent;
    maker.height = height - 1;
    let mut peer = ScriptedPeer::connect(
        "127.0.0.1".parse().unwrap(),
        pool.running.p2p.unwrap(),
        magic(&bits_for(NETWORK_DIFFICULTY)),
    )
    .await;
    peer.handshake(height).await.unwrap();
    for _ in 0..2 {
        let block = maker.next_block();
        peer.send(bitcoin::p2p::message::NetworkMessage::Block(block))
            .await;
    }
    let t = Instant::now();
    loop {
        let r = rewards_of(&pool, last).await;
        if r["state"] == "void" {
            assert_eq!(r["confirmations"], -1);
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "voided in time: {r}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let after = account(&pool, "alice").await;
    assert_eq!(after["balance"]["immature_sats"], 0);
    assert_eq!(after["balance"]["void_sats"].as_i64().unwrap(), last_credit);
    assert_eq!(
        after["balance"]["mature_sats"],
        before["balance"]["mature_sats"]
    );
    let listed = pool.get("/api/accounts").await;
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["account"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice", "bob"]);
    // A page at a time, the next named by the Link header.
    let first = reqwest::get(format!("{}/api/accounts?limit=1", pool.http()))
        .await
        .unwrap();
    assert_eq!(
        first.headers()["link"],
        "</api/accounts?limit=1&after=alice>; rel=\"next\""
    );
    let first: Value = first.json().await.unwrap();
    assert_eq!(first.as_array().unwrap().len(), 1);
    assert_eq!(first[0]["account"], "alice");
    let rest = reqwest::get(format!("{}/api/accounts?limit=1&after=alice", pool.http()))
        .await
        .unwrap();
    assert!(!rest.headers().contains_key("link"), "bob is the last page");
    let rest: Value = rest.json().await.unwrap();
    assert_eq!(rest[0]["account"], "bob");
    let metric = pool
        .metric("pool_blocks_credited_total{scheme=\"pplns\"}")
        .await;
    assert_eq!(metric, blocks.len() as f64);

    // The account page shows the same numbers, the void block among its credits; the
    // dashboard lists both accounts with a link to their pages.
    let dom = common::chromium::dom(format!("{}/account?name=alice", pool.http())).await;
    assert!(dom.contains(r#"data-loaded="true""#), "the page loaded");
    assert_eq!(
        common::chromium::data_value(&dom, "a-void"),
        last_credit as f64
    );
    assert_eq!(
        common::chromium::data_value(&dom, "a-mature"),
        after["balance"]["mature_sats"].as_i64().unwrap() as f64
    );
    assert_eq!(dom.matches("<tr data-block=").count(), blocks.len());
    let dom = common::chromium::dom(pool.http()).await;
    assert!(dom.contains(r#"<tr data-account="alice">"#), "{dom}");
    assert!(dom.contains(r#"href="/account?name=bob""#));
    pool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prop_on_postgresql_credits_the_work_since_the_previous_block() {
    let db = PgTestDb::create().await;
    let pool = pool(&["--database-url", &db.url, "--reward-scheme", "prop"]).await;
    let mut a = miner(&pool, "alice.rig").await;
    let mut b = miner(&pool, "bob.rig").await;
    let blocks = mine_blocks(&pool, &mut a, &mut b, 3).await;
    let mut previous_end: Option<i64> = None;
    for hash in &blocks {
        let r = rewards_of(&pool, hash).await;
        assert_eq!(r["scheme"], "prop");
        let reward = r["reward_sats"].as_i64().unwrap();
        let credited = credited_sats(&r);
        assert_eq!(credited + r["fee_sats"].as_i64().unwrap(), reward);
        // Every accepted share since the previous block counts, and none before it.
        let start = r["window_start_us"].as_i64().unwrap();
        let end = r["window_end_us"].as_i64().unwrap();
        if let Some(prev) = previous_end {
            assert!(
                start > prev,
                "window starts after the previous block's share"
            );
        }
        let shares = r["shares"].as_i64().unwrap();
        let work = r["credited_difficulty"].as_f64().unwrap();
        assert!(
            (work - shares as f64 * 1e-6).abs() < 1e-9,
            "each share counts whole: {shares} shares, {work}"
        );
        assert_proportional(&r);
        previous_end = Some(end);
    }
    // Three windows back to back cover every accepted share up to the last block.
    let total: i64 = {
        let mut n = 0;
        for h in &blocks {
            n += rewards_of(&pool, h).await["shares"].as_i64().unwrap();
        }
        n
    };
    let stored: i64 = {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
        let end = rewards_of(&pool, blocks.last().unwrap()).await["window_end_us"]
            .as_i64()
            .unwrap();
        sqlx::query_scalar("SELECT count(*) FROM shares WHERE reason = 0 AND created_at <= $1")
            .bind(chrono::DateTime::from_timestamp_micros(end).unwrap())
            .fetch_one(&mut c)
            .await
            .unwrap()
    };
    assert_eq!(total, stored);
    pool.stop().await;
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pool_servers_on_one_database_credit_each_block_once_over_both() {
    let db = PgTestDb::create().await;
    let a = pool(&[
        "--database-url",
        &db.url,
        "--p2p-listen",
        "127.0.0.1:0",
        "--reward-scheme",
        "pplns",
    ])
    .await;
    let seed = a.running.p2p.unwrap().to_string();
    let b = pool(&["--database-url", &db.url, "--peer", &seed]).await;
    // Alice mines on A, bob on B: one chain (they peer), one database, one window.
    let mut alice = miner(&a, "alice.rig").await;
    let mut bob = miner(&b, "bob.rig").await;
    let mut found = Vec::new();
    let mut counter = 0u64;
    let t = Instant::now();
    while found.len() < 3 || counter < 60 {
        assert!(t.elapsed() < Duration::from_secs(120), "blocks in time");
        for turn in 0..3 {
            counter += 1;
            let got = if turn < 2 {
                share(&mut alice, "alice.rig", counter).await
            } else {
                share(&mut bob, "bob.rig", counter).await
            };
            if let Some(hash) = got {
                // Both pools move to the new tip (B learns A's blocks from A, and A B's).
                alice.wait_clean_job(&hash).await;
                bob.wait_clean_job(&hash).await;
                found.push(hash);
            }
        }
    }
    for hash in &found {
        let from_a = rewards_of(&a, hash).await;
        let from_b = rewards_of(&b, hash).await;
        // The credits are one record; only where the block stands may move between reads.
        let fixed = |v: &Value| {
            let mut v = v.clone();
            for moving in ["confirmations", "state", "state_at"] {
                v.as_object_mut().unwrap().remove(moving);
            }
            v
        };
        assert_eq!(
            fixed(&from_a),
            fixed(&from_b),
            "one record, read from either pool"
        );
        assert_proportional(&from_a);
    }
    // The last block's window is full and holds shares stored by both pool-servers.
    let last = rewards_of(&a, found.last().unwrap()).await;
    let ratio = credit(&last, "alice") as f64 / credit(&last, "bob") as f64;
    assert!((1.6..=2.5).contains(&ratio), "alice:bob {ratio} in {last}");
    // Each block was credited by one of the two ledgers, never both.
    let credited = a
        .metric("pool_blocks_credited_total{scheme=\"pplns\"}")
        .await
        + b.metric("pool_blocks_credited_total{scheme=\"pplns\"}")
            .await;
    assert_eq!(credited, found.len() as f64);
    a.stop().await;
    b.stop().await;
    db.drop_db().await;
}

/// One share as in [`share`]; when it found a block, the block's hash and its coinbase (as
/// the miner assembled it from the job).
async fn share_with_coinbase(
    c: &mut Client,
    worker: &str,
    counter: u64,
) -> Option<(String, Transaction)> {
    let job: Notify = c.job.clone().unwrap();
    let en1 = c.extranonce1.clone().unwrap();
    let en2 = Extranonce2::from_counter(counter, c.extranonce2_size);
    let hash = share(c, worker, counter).await?;
    let raw = assemble_coinbase(job.coinb1.as_bytes(), &en1, &en2, job.coinb2.as_bytes());
    Some((
        hash,
        protocol::bitcoin::consensus::deserialize(&raw).unwrap(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coinbase_payouts_on_the_embedded_chain_pay_the_window_in_each_block() {
    let addr = |n: u8| {
        Address::p2wsh(
            &ScriptBuf::from_bytes(vec![0x51, n]),
            protocol::bitcoin::Network::Regtest,
        )
    };
    let (alice, bob, fee) = (addr(1), addr(2), addr(3));
    let fee_text = fee.to_string();
    let pool = pool(&[
        "--network",
        "regtest",
        "--payout-method",
        "coinbase",
        "--pool-fee-address",
        &fee_text,
        "--plan-interval",
        "500ms",
        "--dust-limit",
        "0.00000001",
    ])
    .await;
    let (wa, wb) = (format!("{alice}.rig"), format!("{bob}.rig"));
    let mut a = miner(&pool, &wa).await;
    let mut b = miner(&pool, &wb).await;
    let pays = |tx: &Transaction, who: &Address| {
        tx.output
            .iter()
            .filter(|o| o.script_pubkey == who.script_pubkey())
            .map(|o| o.value.to_sat() as i64)
            .sum::<i64>()
    };
    // Alice, alice, bob, ... until two blocks have paid both (the first jobs know no window).
    let mut blocks: Vec<(String, Transaction)> = Vec::new();
    let mut counter = 0u64;
    let t = Instant::now();
    while blocks
        .iter()
        .filter(|(_, tx)| pays(tx, &alice) > 0 && pays(tx, &bob) > 0)
        .count()
        < 2
        || counter < 60
    {
        assert!(t.elapsed() < Duration::from_secs(120), "blocks in time");
        for turn in 0..3 {
            counter += 1;
            let found = if turn < 2 {
                share_with_coinbase(&mut a, &wa, counter).await
            } else {
                share_with_coinbase(&mut b, &wb, counter).await
            };
            if let Some((hash, coinbase)) = found {
                a.wait_clean_job(&hash).await;
                b.wait_clean_job(&hash).await;
                blocks.push((hash, coinbase));
            }
        }
    }
    // Each block's stored split is its coinbase: one output per paid account at its address,
    // the pool's output for the rest, and the credits and fee make the reward.
    let mut ratios = Vec::new();
    for (hash, coinbase) in &blocks {
        let r = rewards_of(&pool, hash).await;
        assert_eq!(r["payout"], "coinbase", "{r}");
        let reward = r["reward_sats"].as_i64().unwrap();
        let total: i64 = coinbase
            .output
            .iter()
            .map(|o| o.value.to_sat() as i64)
            .sum();
        assert_eq!(total, reward);
        assert_eq!(credited_sats(&r) + r["fee_sats"].as_i64().unwrap(), reward);
        let mut stored: Vec<(String, i64)> = r["credits"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["paid_sats"].as_i64().unwrap() > 0)
            .map(|c| {
                (
                    c["address"].as_str().unwrap().to_owned(),
                    c["paid_sats"].as_i64().unwrap(),
                )
            })
            .collect();
        let pool_sats = r["pool_sats"].as_i64().unwrap();
        if pool_sats > 0 {
            stored.push((fee_text.clone(), pool_sats));
        }
        let mut outputs: Vec<(String, i64)> = coinbase
            .output
            .iter()
            .filter(|o| o.value.to_sat() > 0)
            .map(|o| {
                let a = Address::from_script(&o.script_pubkey, protocol::bitcoin::Network::Regtest)
                    .unwrap();
                (a.to_string(), o.value.to_sat() as i64)
            })
            .collect();
        stored.sort();
        outputs.sort();
        assert_eq!(
            stored, outputs,
            "{hash}: the ledger stores the coinbase's outputs"
        );
        let (pa, pb) = (pays(coinbase, &alice), pays(coinbase, &bob));
        if pa > 0 && pb > 0 {
            ratios.push(pa as f64 / pb as f64);
        }
    }
    // Over the coinbases that paid both, alice got about twice what bob got (each window's
    // edge moves the ratio of one block between about 1.6 and 2.5).
    let (sum_a, sum_b) = blocks
        .iter()
        .filter(|(_, tx)| pays(tx, &alice) > 0 && pays(tx, &bob) > 0)
        .fold((0, 0), |(a, b), (_, tx)| {
            (a + pays(tx, &alice), b + pays(tx, &bob))
        });
    let ratio = sum_a as f64 / sum_b as f64;
    assert!(
        (1.6..=2.5).contains(&ratio),
        "alice:bob {ratio}, by block {ratios:?}"
    );
    // Depth 2 makes a block mature: every coinbase output but the tip's counts as paid.
    let (tip_hash, tip_coinbase) = blocks.last().unwrap();
    let paid_before_tip: i64 = blocks[..blocks.len() - 1]
        .iter()
        .map(|(_, tx)| pays(tx, &alice))
        .sum();
    let t = Instant::now();
    loop {
        let v = account(&pool, &alice.to_string()).await;
        if v["balance"]["paid_sats"] == paid_before_tip
            && v["balance"]["in_coinbase_sats"] == pays(tip_coinbase, &alice)
        {
            // What alice is still owed: blocks found before the first plan credited their
            // finder without an output; it is carried into later coinbases.
            let b = &v["balance"];
            assert_eq!(
                b["due_sats"].as_i64().unwrap(),
                b["mature_sats"].as_i64().unwrap()
                    - b["paid_sats"].as_i64().unwrap()
                    - b["carried_sats"].as_i64().unwrap(),
                "{v}"
            );
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "alice paid {paid_before_tip} + {} in {tip_hash}: {v}",
            pays(tip_coinbase, &alice)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
