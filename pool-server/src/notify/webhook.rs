//! Delivery over HTTP: one POST per message, its id as the `Idempotency-Key` header where the
//! receiver takes one, confirmed by a 2xx answer (and, for the chat APIs that answer 200 to
//! errors, by the code in its body). The shapes of the bodies are in [`super::channel`].

use std::time::Duration;

use super::channel::{self, Body, Kind, Request};

/// How long a receiver has to answer.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// The part of an answer read to confirm it, at most.
const MAX_ANSWER: usize = 64 * 1024;

/// Send `request`; `Err` with the reason when it was not confirmed.
pub async fn send(http: &reqwest::Client, kind: Kind, request: Request) -> Result<(), String> {
    let mut r = http.post(&request.url).timeout(TIMEOUT);
    for (name, value) in &request.headers {
        r = r.header(*name, value);
    }
    r = match request.body {
        Body::Json(v) => r.json(&v),
        Body::Text(t) => r.body(t),
    };
    // The error names the URL, which may carry a secret: say only what kind it was.
    let mut answer = r.send().await.map_err(|e| {
        if e.is_timeout() {
            "no answer in time".to_owned()
        } else if e.is_connect() {
            "connection refused or unreachable".to_owned()
        } else {
            "request failed".to_owned()
        }
    })?;
    if !answer.status().is_success() {
        return Err(format!("answered {}", answer.status().as_u16()));
    }
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = answer.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() >= MAX_ANSWER {
            break;
        }
    }
    channel::confirmed(kind, &String::from_utf8_lossy(&body))
}
