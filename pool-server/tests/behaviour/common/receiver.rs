//! A real HTTP receiver for alert tests: a webhook, a chat robot, ntfy or a bot API, as the
//! pool's sender meets them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

/// A real HTTP receiver on loopback, on every path: records each request's
/// `Idempotency-Key` and body (JSON, or the text as a JSON string), its path and `Title`,
/// answers 500 to the first `fail_first` of them, and holds its answers to the first `held`
/// for `hold`. A confirmed answer is `{"ok":true,"errcode":0}`, as the chat APIs answer.
pub struct Receiver {
    pub url: String,
    hits: Arc<Mutex<Vec<(String, Value)>>>,
    /// Path (with query) and `Title` of each request.
    meta: Arc<Mutex<Vec<(String, String)>>>,
}

impl Receiver {
    pub async fn start(fail_first: usize) -> Receiver {
        Receiver::start_with(fail_first, Duration::ZERO, 0).await
    }

    pub async fn start_with(fail_first: usize, hold: Duration, held: usize) -> Receiver {
        let hits: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
        let meta: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let (seen, seen_meta) = (hits.clone(), meta.clone());
        let app = axum::Router::new().fallback(axum::routing::post(
            move |uri: axum::http::Uri, headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let (seen, seen_meta) = (seen.clone(), seen_meta.clone());
                async move {
                    let header = |name: &str| {
                        headers
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_owned()
                    };
                    let body = serde_json::from_slice(&body).unwrap_or_else(|_| {
                        Value::String(String::from_utf8_lossy(&body).into_owned())
                    });
                    let n = {
                        let mut seen = seen.lock().unwrap();
                        seen.push((header("idempotency-key"), body));
                        seen_meta
                            .lock()
                            .unwrap()
                            .push((uri.to_string(), header("title")));
                        seen.len()
                    };
                    if n <= held {
                        tokio::time::sleep(hold).await;
                    }
                    if n <= fail_first {
                        (axum::http::StatusCode::INTERNAL_SERVER_ERROR, String::new())
                    } else {
                        (
                            axum::http::StatusCode::OK,
                            r#"{"ok":true,"errcode":0}"#.to_owned(),
                        )
                    }
                }
            },
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { url, hits, meta }
    }

    pub fn hits(&self) -> Vec<(String, Value)> {
        self.hits.lock().unwrap().clone()
    }

    /// Path (with query) and `Title` of each request, in order.
    pub fn meta(&self) -> Vec<(String, String)> {
        self.meta.lock().unwrap().clone()
    }

    /// The body and `Title` of the request to `path`.
    pub fn to(&self, path: &str) -> (Value, String) {
        let meta = self.meta.lock().unwrap().clone();
        let i = meta
            .iter()
            .position(|(p, _)| p == path)
            .unwrap_or_else(|| panic!("nothing came to {path}: {meta:?}"));
        (self.hits()[i].1.clone(), meta[i].1.clone())
    }

    pub async fn until(&self, n: usize) -> Vec<(String, Value)> {
        for _ in 0..400 {
            if self.hits().len() >= n {
                return self.hits();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{n} requests never came: {:?}", self.hits());
    }
}
