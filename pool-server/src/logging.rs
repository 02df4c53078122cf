//! Logs: human-readable by default, JSON lines with `--log-json` for ELK or Loki.
//!
//! Events carry structured fields rather than prose: `worker`, `job`, `result`, `reason`,
//! `block`, `height`, `session`, `peer` (see the README's log field table).

use tracing_subscriber::EnvFilter;

pub fn init(filter: &str, json: bool) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(filter)?;
    // Colours only for a person at a terminal, never into files or journald.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi && !json);
    let result = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init()
    } else {
        builder.try_init()
    };
    result.map_err(|e| anyhow::anyhow!("logging: {e}"))
}
