//! Logs: human by default, JSON lines with `--log-json`.

use tracing_subscriber::EnvFilter;

pub fn init(filter: &str, json: bool) -> anyhow::Result<()> {
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(filter)?)
        .with_target(false)
        .with_ansi(ansi && !json);
    let r = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
    r.map_err(|e| anyhow::anyhow!("logging: {e}"))
}
