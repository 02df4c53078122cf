//! Logs: human-readable by default, JSON lines with `--log-json` for ELK or Loki.
//!
//! Events carry structured fields rather than prose: `worker`, `job`, `result`, `reason`,
//! `block`, `height`, `session`, `peer` (see the README's log field table).
//!
//! Fields carry what miners send (worker names, job ids, methods, error text), so a text log
//! line is escaped as a whole before it is written: a newline, carriage return, escape
//! sequence or bidi control inside an event becomes `\u{..}` and cannot forge another line.
//! (JSON lines are escaped by the JSON encoder.)

use std::io::{self, Write};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// Bidirectional-text controls: they reorder what a reader sees (U+202E and friends).
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `line` with every control and bidi character escaped, but its final newline (and, when
/// `keep_esc`, the terminal's colour escapes) kept.
pub fn escape_line(line: &str, keep_esc: bool) -> std::borrow::Cow<'_, str> {
    let body = line.strip_suffix('\n').unwrap_or(line);
    let unsafe_char =
        |c: char| (c.is_control() && !(keep_esc && c == '\x1b')) || is_bidi_control(c);
    if !body.chars().any(unsafe_char) {
        return line.into();
    }
    let mut out = String::with_capacity(line.len() + 16);
    for c in body.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    if body.len() < line.len() {
        out.push('\n');
    }
    out.into()
}

/// Standard output, one escaped event at a time (the formatter writes each event whole).
pub struct EscapingStdout {
    keep_esc: bool,
}

pub struct EscapingWriter {
    keep_esc: bool,
    out: io::Stdout,
}

impl Write for EscapingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        self.out
            .write_all(escape_line(&text, self.keep_esc).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

impl<'a> MakeWriter<'a> for EscapingStdout {
    type Writer = EscapingWriter;

    fn make_writer(&'a self) -> Self::Writer {
        EscapingWriter {
            keep_esc: self.keep_esc,
            out: io::stdout(),
        }
    }
}

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
        builder
            .with_writer(EscapingStdout { keep_esc: ansi })
            .try_init()
    };
    result.map_err(|e| anyhow::anyhow!("logging: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forged_line_stays_on_its_own_line() {
        let forged =
            "refused worker=\"x\n2026-01-01T00:00:00Z  INFO block found\x1b[0m\u{202E}\"\n";
        let out = escape_line(forged, false);
        assert_eq!(out.matches('\n').count(), 1);
        assert!(out.ends_with('\n'));
        assert!(!out.contains('\x1b') && !out.contains('\u{202E}'));
        assert!(
            out.contains("\\u{a}2026") && out.contains("\\u{202e}"),
            "{out}"
        );
        assert_eq!(escape_line("plain line\n", false), "plain line\n");
        assert_eq!(
            escape_line("\x1b[32mINFO\x1b[0m ok\n", true),
            "\x1b[32mINFO\x1b[0m ok\n"
        );
    }
}
