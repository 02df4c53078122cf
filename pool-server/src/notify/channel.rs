//! The channels an alert can go out on, each named by a destination written `KIND:ADDRESS`:
//! a plain `https://...` URL is the generic JSON webhook; `slack:`, `mattermost:`,
//! `discord:`, `wecom:`, `dingtalk:`, `ntfy:` and `telegram:` before a URL send the body that
//! receiver reads; `mailto:someone@example.com` is email over the pool's SMTP relay.
//!
//! Every channel is given the same message (one account, one rule, one state; its alerts in
//! the order they happened) and confirms it its own way: a 2xx answer, and for the chat
//! APIs that answer 200 to errors too (WeCom, DingTalk, Telegram) the error code in the body.

use std::fmt;

use serde_json::{json, Value};

use super::outbox::Message;
use super::{Alert, AlertState};

/// Lines of alerts in one message at most; the rest are counted.
const MAX_LINES: usize = 40;
/// Discord refuses content over 2,000 characters.
const DISCORD_MAX: usize = 2000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The whole message as JSON (`id`, `status`, `account`, `rule`, `alerts`, `text`, `link`).
    Json,
    /// Slack's and Mattermost's incoming webhooks: `{"text": ...}`.
    Slack,
    /// Discord's webhooks: `{"content": ...}`.
    Discord,
    /// WeCom (Enterprise WeChat) and DingTalk robots: `{"msgtype":"text","text":{"content"}}`.
    Robot,
    /// ntfy: the text as the body, the heading as `Title`.
    Ntfy,
    /// Telegram's bot API: `sendMessage` to the `chat_id` in the URL's query.
    Telegram,
    /// Email through the pool's SMTP relay (`--alert-smtp-url`).
    Email,
}

impl Kind {
    /// The channel label in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Json => "webhook",
            Kind::Slack => "slack",
            Kind::Discord => "discord",
            Kind::Robot => "robot",
            Kind::Ntfy => "ntfy",
            Kind::Telegram => "telegram",
            Kind::Email => "email",
        }
    }

    pub const ALL: [Kind; 7] = [
        Kind::Json,
        Kind::Slack,
        Kind::Discord,
        Kind::Robot,
        Kind::Ntfy,
        Kind::Telegram,
        Kind::Email,
    ];
}

/// Where one destination sends, parsed from its `KIND:ADDRESS` spelling.
#[derive(Clone, PartialEq, Eq)]
pub struct Target {
    pub kind: Kind,
    /// The URL, or for email the mailbox.
    pub address: String,
    /// How it was written (what is stored, and digested into its id).
    pub spec: String,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The address may carry a secret (a token in a path or query).
        write!(f, "Target({})", self.kind.as_str())
    }
}

fn http_url(s: &str) -> Result<reqwest::Url, String> {
    let u = reqwest::Url::parse(s).map_err(|e| format!("not a URL: {e}"))?;
    if u.scheme() != "http" && u.scheme() != "https" {
        return Err("a webhook is an http:// or https:// URL".into());
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err("a webhook URL needs a host".into());
    }
    Ok(u)
}

impl Target {
    pub fn parse(spec: &str) -> Result<Target, String> {
        let spec = spec.trim();
        if let Some(mailbox) = spec.strip_prefix("mailto:") {
            let address: lettre::Address = mailbox
                .parse()
                .map_err(|e| format!("{mailbox:?} is not an email address: {e}"))?;
            return Ok(Target {
                kind: Kind::Email,
                address: address.to_string(),
                spec: format!("mailto:{address}"),
            });
        }
        let (kind, url) =
            match spec.split_once(':') {
                Some(("http" | "https", _)) => (Kind::Json, spec),
                Some(("json" | "webhook", rest)) => (Kind::Json, rest),
                Some(("slack" | "mattermost", rest)) => (Kind::Slack, rest),
                Some(("discord", rest)) => (Kind::Discord, rest),
                Some(("wecom" | "dingtalk", rest)) => (Kind::Robot, rest),
                Some(("ntfy", rest)) => (Kind::Ntfy, rest),
                Some(("telegram", rest)) => (Kind::Telegram, rest),
                _ => return Err(
                    "a destination is an http(s) URL, KIND:URL (KIND one of slack, mattermost, \
                     discord, wecom, dingtalk, ntfy, telegram) or mailto:ADDRESS"
                        .into(),
                ),
            };
        let u = http_url(url)?;
        if kind == Kind::Telegram && !u.query_pairs().any(|(k, _)| k == "chat_id") {
            return Err(
                "a Telegram destination is telegram:https://HOST/botTOKEN?chat_id=CHAT".into(),
            );
        }
        Ok(Target {
            kind,
            address: url.to_owned(),
            spec: spec.to_owned(),
        })
    }

    /// The URL to check against the operator's network, for the kinds sent over HTTP.
    pub fn url(&self) -> Option<&str> {
        (self.kind != Kind::Email).then_some(self.address.as_str())
    }

    /// What may be shown back: the kind, and the scheme and host (or the mail domain), never
    /// a path, a query or a mailbox's name.
    pub fn shown(&self) -> String {
        if self.kind == Kind::Email {
            let domain = self.address.rsplit_once('@').map_or("", |(_, d)| d);
            return format!("mailto:…@{domain}");
        }
        let host = reqwest::Url::parse(&self.address)
            .map(|u| format!("{}://{}", u.scheme(), u.host_str().unwrap_or("")))
            .unwrap_or_default();
        match self.kind {
            Kind::Json => host,
            _ => format!("{}:{host}", self.kind.as_str()),
        }
    }
}

/// The heading of a message: its state, account, how many and of what.
pub fn heading(alerts: &[Alert]) -> String {
    let Some(first) = alerts.first() else {
        return String::new();
    };
    let what = first.state.as_str();
    format!(
        "[{what}] {}: {} {}",
        first.account,
        alerts.len(),
        first.rule.as_str().replace('_', " ")
    )
}

/// The heading, one line per alert (at most [`MAX_LINES`]), and the link when there is one.
pub fn text(alerts: &[Alert], link: Option<&str>) -> String {
    let mut t = heading(alerts);
    for a in alerts.iter().take(MAX_LINES) {
        t.push_str("\n- ");
        t.push_str(&a.summary);
    }
    if alerts.len() > MAX_LINES {
        t.push_str(&format!("\n… and {} more", alerts.len() - MAX_LINES));
    }
    if let Some(link) = link {
        t.push('\n');
        t.push_str(link);
    }
    t
}

/// The dashboard page a message points at: the worker's page when it is about one worker,
/// else the account's, under `base` (`--alert-link-base`).
pub fn link(base: Option<&str>, alerts: &[Alert]) -> Option<String> {
    let base = base?.trim_end_matches('/');
    let first = alerts.first()?;
    let mut u = reqwest::Url::parse(base).ok()?;
    let one_worker = alerts.iter().all(|a| a.worker == first.worker) && first.worker.contains('.');
    if one_worker {
        u.set_path(&format!("{}/worker", u.path().trim_end_matches('/')));
        u.query_pairs_mut().append_pair("name", &first.worker);
    } else {
        u.set_path(&format!("{}/account", u.path().trim_end_matches('/')));
        u.query_pairs_mut().append_pair("name", &first.account);
    }
    Some(u.to_string())
}

/// An HTTP request for `message` on `target`: the URL, the extra headers and the body.
pub struct Request {
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
}

pub enum Body {
    Json(Value),
    Text(String),
}

/// The request `target` (not email) is sent for `message`.
pub fn request(target: &Target, message: &Message, link: Option<&str>) -> Request {
    let alerts = &message.alerts;
    let text = text(alerts, link);
    let idempotency = vec![("Idempotency-Key", message.id.clone())];
    match target.kind {
        Kind::Json | Kind::Email => {
            let first = alerts.first();
            Request {
                url: target.address.clone(),
                headers: idempotency,
                body: Body::Json(json!({
                    "id": message.id,
                    "status": first.map(|a| a.state),
                    "account": first.map(|a| &a.account),
                    "rule": first.map(|a| a.rule),
                    "alerts": alerts,
                    "text": text,
                    "link": link,
                })),
            }
        }
        Kind::Slack => Request {
            url: target.address.clone(),
            headers: idempotency,
            body: Body::Json(json!({ "text": text })),
        },
        Kind::Discord => {
            let content: String = text.chars().take(DISCORD_MAX).collect();
            Request {
                url: target.address.clone(),
                headers: idempotency,
                body: Body::Json(json!({ "content": content })),
            }
        }
        Kind::Robot => Request {
            url: target.address.clone(),
            headers: idempotency,
            body: Body::Json(json!({ "msgtype": "text", "text": { "content": text } })),
        },
        Kind::Ntfy => {
            let firing = alerts.first().map(|a| a.state) == Some(AlertState::Firing);
            let mut headers = vec![
                ("Title", heading(alerts)),
                (
                    "Priority",
                    if firing { "high" } else { "default" }.to_owned(),
                ),
                (
                    "Tags",
                    if firing {
                        "warning"
                    } else {
                        "white_check_mark"
                    }
                    .to_owned(),
                ),
            ];
            if let Some(link) = link {
                headers.push(("Click", link.to_owned()));
            }
            headers.extend(idempotency);
            Request {
                url: target.address.clone(),
                headers,
                body: Body::Text(text),
            }
        }
        Kind::Telegram => {
            let mut u = reqwest::Url::parse(&target.address).expect("checked when parsed");
            let chat = u
                .query_pairs()
                .find(|(k, _)| k == "chat_id")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            u.set_query(None);
            let path = format!("{}/sendMessage", u.path().trim_end_matches('/'));
            u.set_path(&path);
            Request {
                url: u.to_string(),
                headers: Vec::new(),
                body: Body::Json(json!({
                    "chat_id": chat,
                    "text": text,
                    "disable_web_page_preview": true,
                })),
            }
        }
    }
}

/// Whether a 2xx answer's body says the receiver took the message (the chat APIs answer
/// 200 with an error code).
pub fn confirmed(kind: Kind, body: &str) -> Result<(), String> {
    let parsed = || serde_json::from_str::<Value>(body).unwrap_or(Value::Null);
    match kind {
        Kind::Robot => match parsed()["errcode"].as_i64() {
            Some(0) => Ok(()),
            Some(code) => Err(format!("the robot answered errcode {code}")),
            None => Err("the robot's answer has no errcode".into()),
        },
        Kind::Telegram => match parsed()["ok"].as_bool() {
            Some(true) => Ok(()),
            _ => Err("the bot API answered ok: false".into()),
        },
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::Rule;
    use chrono::Utc;

    fn alert(worker: &str) -> Alert {
        Alert {
            rule: Rule::WorkerOffline,
            state: AlertState::Firing,
            worker: worker.into(),
            account: worker.split('.').next().unwrap().into(),
            at: Utc::now(),
            summary: format!("{worker} is offline"),
        }
    }

    #[test]
    fn each_spelling_names_its_kind() {
        let cases = [
            ("https://h.example/x", Kind::Json),
            ("slack:https://h.example/services/T/B/X", Kind::Slack),
            ("mattermost:https://h.example/hooks/x", Kind::Slack),
            ("discord:https://h.example/api/webhooks/1/x", Kind::Discord),
            (
                "wecom:https://h.example/cgi-bin/webhook/send?key=k",
                Kind::Robot,
            ),
            (
                "dingtalk:https://h.example/robot/send?access_token=t",
                Kind::Robot,
            ),
            ("ntfy:https://h.example/mytopic", Kind::Ntfy),
            (
                "telegram:https://h.example/bot123:abc?chat_id=42",
                Kind::Telegram,
            ),
            ("mailto:alice@h.example", Kind::Email),
        ];
        for (spec, kind) in cases {
            assert_eq!(Target::parse(spec).unwrap().kind, kind, "{spec}");
        }
        for bad in [
            "ftp://h.example",
            "slack:ftp://h.example",
            "telegram:https://h.example/bot1:a",
            "mailto:nobody",
            "irc:https://h.example",
            "https://",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn what_is_shown_back_has_no_path_query_or_mailbox() {
        let t = Target::parse("slack:https://h.example/services/SECRET").unwrap();
        assert_eq!(t.shown(), "slack:https://h.example");
        let t = Target::parse("mailto:alice@h.example").unwrap();
        assert_eq!(t.shown(), "mailto:…@h.example");
        assert!(!format!("{t:?}").contains("alice"));
    }

    #[test]
    fn telegram_posts_send_message_with_the_chat_from_the_query() {
        let t = Target::parse("telegram:https://h.example/bot123:abc?chat_id=-42").unwrap();
        let m = Message {
            id: "m1".into(),
            destination: "d".into(),
            alerts: vec![alert("alice.rig1")],
            attempts: 0,
        };
        let r = request(&t, &m, None);
        assert_eq!(r.url, "https://h.example/bot123:abc/sendMessage");
        let Body::Json(b) = r.body else { panic!() };
        assert_eq!(b["chat_id"], "-42");
        assert!(b["text"]
            .as_str()
            .unwrap()
            .contains("alice.rig1 is offline"));
    }

    #[test]
    fn links_point_at_the_worker_or_the_account() {
        let one = [alert("alice.rig1")];
        assert_eq!(
            link(Some("https://pool.example/"), &one).unwrap(),
            "https://pool.example/worker?name=alice.rig1"
        );
        let two = [alert("alice.rig1"), alert("alice.rig2")];
        assert_eq!(
            link(Some("https://pool.example"), &two).unwrap(),
            "https://pool.example/account?name=alice"
        );
        assert_eq!(link(None, &one), None);
    }

    #[test]
    fn a_long_message_is_cut_and_counted() {
        let many: Vec<Alert> = (0..50).map(|i| alert(&format!("a.rig{i}"))).collect();
        let t = text(&many, None);
        assert_eq!(t.lines().count(), 1 + MAX_LINES + 1);
        assert!(t.ends_with("… and 10 more"));
    }

    #[test]
    fn chat_apis_confirm_by_their_error_code() {
        assert!(confirmed(Kind::Robot, r#"{"errcode":0,"errmsg":"ok"}"#).is_ok());
        assert!(confirmed(Kind::Robot, r#"{"errcode":93000}"#).is_err());
        assert!(confirmed(Kind::Telegram, r#"{"ok":true,"result":{}}"#).is_ok());
        assert!(confirmed(Kind::Telegram, r#"{"ok":false}"#).is_err());
        assert!(confirmed(Kind::Slack, "ok").is_ok());
    }
}
