//! The generic JSON webhook: one POST per message, its id as the `Idempotency-Key` header,
//! confirmed by any 2xx answer. The body carries the alerts as the API shows them and a
//! `text` of one line per alert, which chat webhooks that read `text` show as it is.

use std::time::Duration;

use serde_json::json;

use super::outbox::Message;
use super::{Alert, AlertState};

/// How long a receiver has to answer.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// One line per alert, after a heading that says how many and of whom.
pub fn text(alerts: &[Alert]) -> String {
    let Some(first) = alerts.first() else {
        return String::new();
    };
    let what = match first.state {
        AlertState::Firing => "firing",
        AlertState::Resolved => "resolved",
    };
    let mut t = format!(
        "[{what}] {}: {} {}",
        first.account,
        alerts.len(),
        first.rule.as_str().replace('_', " ")
    );
    for a in alerts {
        t.push_str("\n- ");
        t.push_str(&a.summary);
    }
    t
}

/// POST `message` to `url`; `Err` with the reason when it was not confirmed.
pub async fn send(http: &reqwest::Client, url: &str, message: &Message) -> Result<(), String> {
    let first = message.alerts.first().ok_or("an empty message")?;
    let body = json!({
        "id": message.id,
        "status": first.state,
        "account": first.account,
        "rule": first.rule,
        "alerts": message.alerts,
        "text": text(&message.alerts),
    });
    let r = http
        .post(url)
        .header("Idempotency-Key", &message.id)
        .timeout(TIMEOUT)
        .json(&body)
        .send()
        .await
        // The error names the URL, which may carry a secret: say only what kind it was.
        .map_err(|e| {
            if e.is_timeout() {
                "no answer in time".to_owned()
            } else if e.is_connect() {
                "connection refused or unreachable".to_owned()
            } else {
                "request failed".to_owned()
            }
        })?;
    if r.status().is_success() {
        Ok(())
    } else {
        Err(format!("answered {}", r.status().as_u16()))
    }
}
