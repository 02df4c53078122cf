//! Wallet payouts on a real node, end to end: two accounts (one named by its address, one told
//! its address through the admin API) mine blocks through Stratum on a regtest node; their
//! credits mature after 100 confirmations; `sendmany` from the node's wallet pays them; and
//! what the node says each address received equals, to the satoshi, what `/api/accounts` says
//! was paid. The pool killed with SIGKILL while a payout is pending (sent to a node that has
//! not answered yet) pays nobody twice after it restarts. Each payout sent or failed is told
//! once, to the operator's webhook as one notice and to each account's own as its part.

use crate::common;

use common::accounts::*;
use common::process::PoolProcess;
use common::receiver::Receiver;
use common::regtest::*;
use serde_json::{json, Value};

const TOKEN: &str = "payout-test-token";

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on a child process of this test.
    unsafe { libc::kill(pid as i32, sig) };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wallet_payouts_match_the_node_to_the_satoshi_and_survive_a_kill() {
    let Some(bin) = bitcoind_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (n1, n2, pool_addr) = regtest_pair(&bin, dir.path(), &[]).await;
    // The miners' addresses belong to the second node's wallet; the pool's coinbases go to the
    // first's, which pays.
    let alice_addr = n2.call("getnewaddress", json!([])).await.unwrap();
    let bob_addr = n2.call("getnewaddress", json!([])).await.unwrap();
    let alice = alice_addr.as_str().unwrap().to_owned();
    let pool_addr_text = pool_addr.as_str().unwrap().to_owned();
    let pool_dir = dir.path().join("pool");
    let operator = Receiver::start(0).await;
    let bob_rx = Receiver::start(0).await;
    let pool = payout_pool(
        &pool_dir,
        &n1,
        &[
            "--alert-webhook",
            &operator.url,
            "--alert-allow-private-destinations",
            "--alert-group-wait",
            "100ms",
            "--payout-address",
            &pool_addr_text,
            "--pool-fee",
            "1",
            "--payout-method",
            "wallet",
            "--payout-interval",
            "1s",
            "--payout-threshold",
            "0.001",
            "--api-token",
            TOKEN,
            "--log",
            "info",
        ],
    );
    let http = pool.http.clone();
    // Bob's alerts go to his own webhook (set up by the operator's token).
    let added = reqwest::Client::new()
        .post(format!("{http}/api/accounts/bob/subscriptions"))
        .bearer_auth(TOKEN)
        .json(&json!({ "url": bob_rx.url }))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 201);
    let alice_worker = format!("{alice}.rig");
    let mut miners = alice_and_bob(pool.stratum, &alice_worker).await;
    mine_blocks(&mut miners, 2).await;
    drop(miners);

    // Credited, immature: nothing is paid yet.
    let a = until_account(&http, &alice, "credits", |v| {
        v["balance"]["immature_sats"].as_i64().unwrap_or(0) > 0
    })
    .await;
    assert_eq!(a["balance"]["address"], alice.as_str());
    assert_eq!(a["balance"]["paid_sats"], 0);
    let b = until_account(&http, "bob", "credits", |v| {
        v["balance"]["immature_sats"].as_i64().unwrap_or(0) > 0
    })
    .await;
    assert!(b["balance"]["address"].is_null(), "bob has no address yet");

    // 100 blocks on top: mature. Alice's account is an address: paid at the next run. Bob's
    // waits for an address.
    let other = n1.call("getnewaddress", json!([])).await.unwrap();
    n1.call("generatetoaddress", json!([100, other]))
        .await
        .unwrap();
    let a = until_account(&http, &alice, "a payout sent", |v| {
        // Blocks may mature over two runs: the first run's payout can be sent while the
        // second's is still pending.
        v["balance"]["immature_sats"] == 0
            && v["balance"]["due_sats"] == 0
            && v["balance"]["pending_sats"] == 0
            && v["balance"]["paid_sats"].as_i64().unwrap_or(0) > 0
    })
    .await;
    assert_eq!(a["balance"]["paid_sats"], a["balance"]["mature_sats"]);
    for p in a["payouts"].as_array().unwrap() {
        assert_eq!(p["state"], "sent");
        assert_eq!(p["txid"].as_str().unwrap().len(), 64);
    }
    let b = until_account(&http, "bob", "mature", |v| {
        v["balance"]["immature_sats"] == 0 && v["balance"]["due_sats"].as_i64().unwrap_or(0) > 0
    })
    .await;
    assert_eq!(b["balance"]["paid_sats"], 0);
    assert!(b["payouts"].as_array().unwrap().is_empty());
    confirm(&n1, &n2, &other).await;
    let received = n2
        .call("getreceivedbyaddress", json!([alice_addr, 1]))
        .await
        .unwrap();
    assert_eq!(sats(&received), a["balance"]["paid_sats"].as_i64().unwrap());

    // The admin API is token-guarded and checks the network.
    let client = reqwest::Client::new();
    let put = |body: Value, token: &'static str| {
        client
            .put(format!("{http}/api/accounts/bob/address"))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    assert_eq!(
        put(json!({"address": bob_addr}), "wrong")
            .await
            .unwrap()
            .status(),
        401
    );
    let mainnet = "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2";
    assert_eq!(
        put(json!({"address": mainnet}), TOKEN)
            .await
            .unwrap()
            .status(),
        400
    );

    // An address the node cannot pay (segwit, on a node without it): the node refuses the
    // payout; it is failed with the node's reason, bob's balance stays due, and it is retried.
    let segwit = protocol::bitcoin::Address::p2wsh(
        protocol::bitcoin::Script::new(),
        protocol::bitcoin::Network::Regtest,
    )
    .to_string();
    assert_eq!(
        put(json!({"address": segwit}), TOKEN)
            .await
            .unwrap()
            .status(),
        204
    );
    let failed = until_account(&http, "bob", "a refused payout", |v| {
        v["payouts"][0]["state"] == "failed"
    })
    .await;
    assert!(
        failed["payouts"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("node error"),
        "{failed}"
    );
    assert_eq!(failed["balance"]["due_sats"], b["balance"]["due_sats"]);
    assert_eq!(failed["balance"]["paid_sats"], 0);
    assert!(pool.metric("pool_payouts_total{result=\"failed\"}").await >= 1.0);

    // The node stops answering; bob is given his address; the payout is recorded pending and
    // its sendmany waits in the stopped node's socket. The pool is killed there.
    signal(n1.child.id(), libc::SIGSTOP);
    assert_eq!(
        put(json!({"address": bob_addr}), TOKEN)
            .await
            .unwrap()
            .status(),
        204
    );
    let pending = until_account(&http, "bob", "a pending payout", |v| {
        v["payouts"][0]["state"] == "pending"
    })
    .await;
    assert_eq!(pending["balance"]["due_sats"], 0, "pending is not due");
    let (args, stratum, http_again) = pool.kill_hard();
    signal(n1.child.id(), libc::SIGCONT);

    // Restarted: the pending payout is resolved from the wallet (made: sent; never made:
    // failed after the grace, then paid by a new run). Either way, paid once.
    let pool = PoolProcess::spawn_with(&pool_dir, args, stratum, http_again);
    let b = until_account(&http, "bob", "paid", |v| {
        v["balance"]["due_sats"] == 0
            && v["balance"]["pending_sats"] == 0
            && v["balance"]["paid_sats"].as_i64().unwrap_or(0) > 0
    })
    .await;
    let payouts = b["payouts"].as_array().unwrap();
    let sent: Vec<&Value> = payouts.iter().filter(|p| p["state"] == "sent").collect();
    assert_eq!(sent.len(), 1, "one payout sent to bob: {payouts:?}");
    assert!(payouts.iter().all(|p| p["state"] != "pending"));
    let first = payouts
        .iter()
        .find(|p| p["id"] == pending["payouts"][0]["id"])
        .unwrap();
    eprintln!("the payout pending at the kill ended {}", first["state"]);
    assert!(first["state"] == "sent" || first["state"] == "failed");
    assert_eq!(b["balance"]["paid_sats"], b["balance"]["mature_sats"]);
    confirm(&n1, &n2, &other).await;
    for (addr, account) in [(&bob_addr, "bob"), (&alice_addr, alice.as_str())] {
        let received = n2
            .call("getreceivedbyaddress", json!([addr, 1]))
            .await
            .unwrap();
        let paid = balance(&http, account).await["balance"]["paid_sats"]
            .as_i64()
            .unwrap();
        assert_eq!(
            sats(&received),
            paid,
            "{account}: the node and the API agree"
        );
    }
    // Every payout the wallet made carries its id: one transaction per id, and exactly the
    // payouts the API calls sent.
    let listed = n1
        .call("listtransactions", json!(["*", 1000, 0, true]))
        .await
        .unwrap();
    let mut made = std::collections::BTreeMap::<String, std::collections::BTreeSet<String>>::new();
    for e in listed.as_array().unwrap() {
        if let Some(c) = e["comment"]
            .as_str()
            .and_then(|c| c.strip_prefix("pool payout "))
        {
            made.entry(c.to_owned())
                .or_default()
                .insert(e["txid"].as_str().unwrap().to_owned());
        }
    }
    assert!(made.values().all(|txids| txids.len() == 1), "{made:?}");
    let mut sent_ids = std::collections::BTreeSet::new();
    for account in ["bob", alice.as_str()] {
        for p in balance(&http, account).await["payouts"].as_array().unwrap() {
            if p["state"] == "sent" {
                assert_eq!(
                    made[p["id"].as_str().unwrap()].first().unwrap(),
                    p["txid"].as_str().unwrap()
                );
                sent_ids.insert(p["id"].as_str().unwrap().to_owned());
            }
        }
    }
    assert_eq!(
        made.keys()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>(),
        sent_ids
    );
    assert_eq!(pool.metric("pool_rewards_sats{state=\"due\"}").await, 0.0);

    // Told once each: the operator one notice per payout and state, bob his part of each.
    let mut settled = std::collections::BTreeSet::new();
    for account in ["bob", alice.as_str()] {
        for p in balance(&http, account).await["payouts"].as_array().unwrap() {
            let rule = format!("payout_{}", p["state"].as_str().unwrap());
            settled.insert((rule, p["id"].as_str().unwrap().to_owned()));
        }
    }
    let notices = |rx: &Receiver| -> Vec<(String, String)> {
        rx.hits()
            .iter()
            .flat_map(|(_, b)| b["alerts"].as_array().unwrap().clone())
            .filter(|a| a["rule"].as_str().unwrap().starts_with("payout_"))
            .map(|a| {
                (
                    a["rule"].as_str().unwrap().to_owned(),
                    a["summary"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let mut told = Vec::new();
    for _ in 0..100 {
        told = notices(&operator);
        if told.len() >= settled.len() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(told.len(), settled.len(), "{told:?} for {settled:?}");
    for (rule, id) in &settled {
        let n = told
            .iter()
            .filter(|(r, s)| r == rule && s.contains(&format!("payout {id} ")))
            .count();
        assert_eq!(n, 1, "{rule} {id}: {told:?}");
    }
    // Bob's own are sent beside the operator's: wait for his payment's too.
    let mut bobs = notices(&bob_rx);
    for _ in 0..100 {
        if bobs.iter().any(|(r, _)| r == "payout_sent") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        bobs = notices(&bob_rx);
    }
    assert!(
        bobs.iter()
            .any(|(r, s)| r == "payout_failed" && s.contains("to bob failed")),
        "{bobs:?}"
    );
    assert_eq!(
        bobs.iter()
            .filter(|(r, s)| r == "payout_sent" && s.starts_with("bob was paid"))
            .count(),
        1,
        "{bobs:?}"
    );
    drop(pool);
}
