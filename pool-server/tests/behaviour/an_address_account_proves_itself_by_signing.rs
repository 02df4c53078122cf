//! An account named by a Bitcoin address sets its alert key by signing the pool's challenge
//! with that address: here with a real node's wallet (`signmessage`, a legacy address). The
//! proof replaces a key someone else set first from Stratum; a signature of another message,
//! another key or another address is refused.

use serde_json::{json, Value};

use crate::common::regtest::{bitcoind_or_skip, Node};
use crate::common::*;

async fn post(pool: &TestPool, path: &str, method: reqwest::Method, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .request(method, format!("{}{path}", pool.http()))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn subscriptions_with(pool: &TestPool, account: &str, key: &str) -> u16 {
    reqwest::Client::new()
        .get(format!(
            "{}/api/accounts/{account}/subscriptions",
            pool.http()
        ))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_signed_challenge_sets_the_key_and_a_wrong_signature_is_refused() {
    let Some(bin) = bitcoind_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(
        &bin,
        dir.path().join("node"),
        crate::common::process::free_port(),
        crate::common::process::free_port(),
        None,
    );
    node.ready().await;
    let address = node.call("getnewaddress", json!([])).await.unwrap();
    let address = address.as_str().unwrap().to_owned();
    let other = node.call("getnewaddress", json!([])).await.unwrap();
    let other = other.as_str().unwrap().to_owned();
    let pool = start_pool(&["--network", "regtest"]).await;

    // Mallory got there first from Stratum with a key of its own.
    let mut c = Client::connect(pool.stratum()).await;
    c.subscribe().await;
    let r = c
        .request(protocol::ClientRequest::Authorize {
            worker: protocol::WorkerName::new(format!("{address}.rig")),
            password: Some("x,key=mallory-got-here-first".into()),
        })
        .await;
    assert_eq!(r.unwrap(), Value::Bool(true));
    for _ in 0..100 {
        if subscriptions_with(&pool, &address, "mallory-got-here-first").await == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        subscriptions_with(&pool, &address, "mallory-got-here-first").await,
        200
    );

    // The owner asks for a challenge for its key, signs it with its wallet, sends it back.
    let key = "the-owners-own-key-01";
    let challenge = format!("/api/accounts/{address}/key-challenge");
    let (status, c1) = post(
        &pool,
        &challenge,
        reqwest::Method::POST,
        json!({ "key": key }),
    )
    .await;
    assert_eq!(status, 200, "{c1}");
    let message = c1["message"].as_str().unwrap().to_owned();
    assert!(message.contains(&address), "{message}");
    let signature = node
        .call("signmessage", json!([address, message]))
        .await
        .unwrap();
    let put = format!("/api/accounts/{address}/key");
    // A wrong signature: the same message signed by another address; a signature of
    // another message; the right signature offered for another key.
    let by_other = node
        .call("signmessage", json!([other, message]))
        .await
        .unwrap();
    let other_message = node
        .call("signmessage", json!([address, "something else"]))
        .await
        .unwrap();
    for (k, sig) in [
        (key, &by_other),
        (key, &other_message),
        ("a-key-nobody-signed-1", &signature),
    ] {
        let body = json!({ "key": k, "expires": c1["expires"], "signature": sig });
        let (status, why) = post(&pool, &put, reqwest::Method::PUT, body).await;
        assert_eq!(status, 401, "{why}");
    }
    assert_eq!(subscriptions_with(&pool, &address, key).await, 401);
    // The right one: the owner's key now, mallory's gone.
    let body = json!({ "key": key, "expires": c1["expires"], "signature": signature });
    let (status, why) = post(&pool, &put, reqwest::Method::PUT, body).await;
    assert_eq!(status, 204, "{why}");
    assert_eq!(subscriptions_with(&pool, &address, key).await, 200);
    assert_eq!(
        subscriptions_with(&pool, &address, "mallory-got-here-first").await,
        401
    );
    // A name that is no address cannot ask.
    let (status, _) = post(
        &pool,
        "/api/accounts/alice/key-challenge",
        reqwest::Method::POST,
        json!({ "key": key }),
    )
    .await;
    assert_eq!(status, 400);
    pool.stop().await;
}
