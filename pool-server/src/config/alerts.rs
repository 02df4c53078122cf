//! The built-in alert rules (see `notify/`): on by default, judged from the pool's own live
//! statistics.

use std::time::Duration;

use clap::Args;

use super::parse::parse_interval;
use crate::notify::channel::{Kind, Target};
use crate::notify::routes::Route;
use crate::notify::WatchConfig;

#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Alerts")]
pub struct AlertArgs {
    /// Alerts: how often every worker is looked at (0 is refused; the rules take the time
    /// between looks into account).
    #[arg(long, env = "POOL_ALERT_LOOK", default_value = "5s", value_parser = parse_interval)]
    pub alert_look: Duration,

    /// Alerts: false alarms allowed per worker-day for each rule. Smaller waits for more
    /// evidence (a worker's silence or shortfall must be less likely than this).
    #[arg(long, env = "POOL_ALERT_FALSE_ALARMS_PER_DAY", default_value_t = 1e-4, value_parser = parse_probability)]
    pub alert_false_alarms_per_day: f64,

    /// Alerts: a worker with no connection this long is offline.
    #[arg(long, env = "POOL_ALERT_OFFLINE_GRACE", default_value = "2m", value_parser = parse_interval)]
    pub alert_offline_grace: Duration,

    /// Alerts: "hashrate dropped" when a worker runs below this fraction of its own usual
    /// rate (its 24 h average).
    #[arg(long, env = "POOL_ALERT_DROP_FRACTION", default_value_t = 0.5, value_parser = parse_probability)]
    pub alert_drop_fraction: f64,

    /// Alerts: "rejects high" above this fraction of a worker's shares (over about an hour).
    #[arg(long, env = "POOL_ALERT_MAX_REJECT_RATIO", default_value_t = 0.1, value_parser = parse_probability)]
    pub alert_max_reject_ratio: f64,

    /// Alerts: a destination every alert goes to (repeat, or separate with commas, for
    /// several): an http(s) URL gets the alerts as JSON; slack:URL, mattermost:URL,
    /// discord:URL, wecom:URL, dingtalk:URL, ntfy:URL and telegram:URL?chat_id=ID get the
    /// body that receiver reads; mailto:ADDRESS mails through --alert-smtp-url. Alerts are
    /// written to the share database first, sent until confirmed, with a growing wait.
    #[arg(long, env = "POOL_ALERT_WEBHOOK", value_delimiter = ',', value_parser = parse_destination)]
    pub alert_webhook: Vec<String>,

    /// Alerts: a route, MATCHERS -> DESTINATION: what the matchers select (account=PATTERN,
    /// worker=PATTERN, rule=NAME, severity=critical|warning|info; * and ? as wildcards, all
    /// must hold) goes to that destination as well (repeat, or separate with commas).
    #[arg(long, env = "POOL_ALERT_ROUTE", value_delimiter = ',', value_parser = parse_route)]
    pub alert_route: Vec<String>,

    /// Alerts: a firing alert is told again this long after it was last told, while it
    /// lasts (0: never).
    #[arg(long, env = "POOL_ALERT_REPEAT", default_value = "24h", value_parser = super::parse::parse_duration)]
    pub alert_repeat: Duration,

    /// Alerts: messages one destination is sent per minute at most (chat APIs limit what
    /// they take); the rest wait their turn, in order.
    #[arg(long, env = "POOL_ALERT_RATE_LIMIT", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub alert_rate_limit: u32,

    /// Alerts: the SMTP relay that mails alerts (smtp://HOST:25 plain,
    /// smtp://USER:PASS@HOST:587?tls=required for STARTTLS, smtps://USER:PASS@HOST:465 for
    /// TLS). Without it no alert is mailed and miners cannot subscribe an email address.
    #[arg(long, env = "POOL_ALERT_SMTP_URL", hide_env_values = true)]
    pub alert_smtp_url: Option<String>,

    /// Alerts: a PEM certificate the SMTP relay's certificate may chain to (a private CA),
    /// besides the web's roots.
    #[arg(long, env = "POOL_ALERT_SMTP_CA")]
    pub alert_smtp_ca: Option<std::path::PathBuf>,

    /// Alerts: the sender of alert mails.
    #[arg(
        long,
        env = "POOL_ALERT_MAIL_FROM",
        default_value = "Pool alerts <alerts@localhost>"
    )]
    pub alert_mail_from: String,

    /// Alerts: the pool's public web address (https://pool.example.com); alerts then link to
    /// the worker's or account's dashboard page.
    #[arg(long, env = "POOL_ALERT_LINK_BASE", value_parser = parse_link_base)]
    pub alert_link_base: Option<String>,

    /// Alerts: how long an alert waits for others of the same account and rule to go out in
    /// one message (40 rigs going down together are one message, then one resolve).
    #[arg(long, env = "POOL_ALERT_GROUP_WAIT", default_value = "30s", value_parser = super::parse::parse_duration)]
    pub alert_group_wait: Duration,

    /// Alerts: the operator's pool-wide rules (share database away, template stale, peers
    /// gone, payouts failing, shares lost) fire once their condition has held this long.
    #[arg(long, env = "POOL_ALERT_POOL_HOLD", default_value = "2m", value_parser = super::parse::parse_duration)]
    pub alert_pool_hold: Duration,

    /// Alerts: let miners' webhooks point at loopback, private and link-local addresses
    /// (refused by default: a webhook must not become a way into this network).
    #[arg(long, env = "POOL_ALERT_ALLOW_PRIVATE_DESTINATIONS")]
    pub alert_allow_private_destinations: bool,
}

impl AlertArgs {
    pub fn watch(&self) -> WatchConfig {
        WatchConfig {
            drop_fraction: self.alert_drop_fraction,
            false_alarms_per_day: self.alert_false_alarms_per_day,
            disconnect_grace: self.alert_offline_grace,
            max_reject_ratio: self.alert_max_reject_ratio,
            pool_hold: self.alert_pool_hold,
            ..WatchConfig::default()
        }
    }
}

/// A destination as [`Target`] reads it.
fn parse_destination(s: &str) -> Result<String, String> {
    Target::parse(s).map(|t| t.spec)
}

/// A route as [`Route`] reads it.
fn parse_route(s: &str) -> Result<String, String> {
    Route::parse(s).map(|_| s.trim().to_owned())
}

/// An `http://` or `https://` URL with a host.
fn parse_link_base(s: &str) -> Result<String, String> {
    match Target::parse(s) {
        Ok(t) if t.kind == Kind::Json => Ok(t.address),
        _ => Err(format!("{s:?} is not an http:// or https:// address")),
    }
}

/// A number strictly between 0 and 1.
fn parse_probability(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))?;
    if v > 0.0 && v < 1.0 {
        Ok(v)
    } else {
        Err(format!("{s:?}: must be above 0 and below 1"))
    }
}
