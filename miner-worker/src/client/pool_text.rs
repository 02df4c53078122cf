//! Text a pool (or anyone on the path of a clear-text connection) sent, made safe to log:
//! control characters escaped, so a message cannot forge log lines or move the terminal, and
//! the length capped, so one message cannot fill a disk.

use std::fmt;

/// At most this many characters of pool text reach a log line.
pub const MAX_CHARS: usize = 200;

/// Pool text for a log line: `Display` escapes control characters (`\n`, `\r`, `\0`, `\u{1b}`,
/// ...) and cuts the text at [`MAX_CHARS`], saying how much was left out.
pub struct PoolText<'a>(pub &'a str);

impl fmt::Display for PoolText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut chars = self.0.chars();
        for c in chars.by_ref().take(MAX_CHARS) {
            if c.is_control() || c == '\u{2028}' || c == '\u{2029}' {
                write!(f, "{}", c.escape_default())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        let rest = chars.count();
        if rest > 0 {
            write!(f, "... ({rest} more characters)")?;
        }
        Ok(())
    }
}

/// Pool text as an owned, safe string.
pub fn escape(s: &str) -> String {
    PoolText(s).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_length_capped() {
        assert_eq!(
            escape("ok\r\n2026-12-06T00:00:00Z INFO forged\0\u{1b}[2J"),
            "ok\\r\\n2026-12-06T00:00:00Z INFO forged\\u{0}\\u{1b}[2J"
        );
        let long = "x".repeat(MAX_CHARS + 50);
        let out = escape(&long);
        assert!(out.starts_with(&"x".repeat(MAX_CHARS)));
        assert!(out.ends_with("... (50 more characters)"), "{out}");
        assert_eq!(escape("héllo"), "héllo");
    }
}
