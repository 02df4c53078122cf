//! Parsing of flag values clap does not know: durations, fees, coin amounts, hex masks and
//! bits, listener and peer addresses. Each error names what was expected.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use protocol::{CompactTarget, Difficulty, VersionMask};

/// A fee in basis points (1/100 of a percent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeeBps(pub u32);

pub fn parse_fee(s: &str) -> Result<FeeBps, String> {
    let t = s.trim().trim_end_matches('%').trim();
    let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
    let digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !(frac.is_empty() || digits(frac)) || frac.len() > 2 {
        return Err(format!(
            "{s:?} is not a fee in percent with at most two decimals (like 1, 0.9 or 1.5%)"
        ));
    }
    let bps = whole
        .parse::<u64>()
        .ok()
        .and_then(|w| w.checked_mul(100))
        .and_then(|w| w.checked_add(format!("{frac:0<2}").parse::<u64>().unwrap_or(0)))
        .filter(|b| *b <= 10_000)
        .ok_or_else(|| format!("{s:?}: a fee is at most 100%"))?;
    Ok(FeeBps(bps as u32))
}

pub fn parse_window(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 1e6 => Ok(v),
        _ => Err(format!(
            "{s:?}: the window is a positive multiple of the network difficulty (like 2)"
        )),
    }
}

pub fn parse_coins(s: &str) -> Result<bitcoin::Amount, String> {
    bitcoin::Amount::from_str_in(s.trim(), bitcoin::Denomination::Bitcoin)
        .map_err(|e| format!("{s:?} is not an amount in coins (like 0.01): {e}"))
}

/// One Stratum listening address with its start difficulty.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Listener {
    pub addr: SocketAddr,
    pub start_difficulty: Option<Difficulty>,
}

impl FromStr for Listener {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, diff) = match s.split_once('=') {
            Some((a, d)) => (a, Some(d.parse::<Difficulty>()?)),
            None => (s, None),
        };
        let addr = addr
            .trim()
            .parse()
            .map_err(|e| format!("listener {addr:?}: {e} (expected IP:PORT)"))?;
        Ok(Listener {
            addr,
            start_difficulty: diff,
        })
    }
}

/// `500ms`, `30s`, `10m`, `1.5h`, `7d`, `1h 30m` (humantime's units), or a bare number of
/// seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let d = match s.parse::<f64>() {
        Ok(secs) if secs >= 0.0 => Duration::try_from_secs_f64(secs)
            .map_err(|_| format!("{s:?} is out of range for a duration"))?,
        Ok(_) => return Err(format!("{s:?}: a duration is not negative")),
        Err(_) => humantime::parse_duration(s).map_err(|e| match e {
            humantime::DurationError::NumberOverflow => {
                format!("{s:?} is out of range for a duration")
            }
            humantime::DurationError::UnknownUnit { unit, .. } => {
                format!("{s:?}: unknown unit {unit:?} (use ms, s, m, h or d)")
            }
            e => format!("{s:?} is not a duration (like 500ms, 30s, 10m, 1h, 7d): {e}"),
        })?,
    };
    // Every duration is added to a clock reading somewhere: beyond a century that could
    // overflow, and no setting of a pool means it.
    if d > LONGEST {
        return Err(format!("{s:?}: at most 36500d"));
    }
    Ok(d)
}

/// The longest duration any flag takes: a century.
const LONGEST: Duration = Duration::from_secs(100 * 365 * 86_400);

/// A duration that paces or bounds something: zero would spin a timer or end at once.
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err(format!("{s:?}: must be longer than zero"));
    }
    Ok(d)
}

/// A chain's cumulative work, as Bitcoin Core's `-minimumchainwork` takes it: up to 64 hex
/// digits, with or without `0x`.
pub fn parse_work(s: &str) -> Result<bitcoin::Work, String> {
    let t = s.trim().trim_start_matches("0x");
    if t.is_empty() || t.len() > 64 || !t.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("{s:?} is not a chain work (up to 64 hex digits)"));
    }
    let padded = format!("{t:0>64}");
    bitcoin::Work::from_unprefixed_hex(&padded).map_err(|e| format!("{s:?}: {e}"))
}

pub fn parse_u32_hex(s: &str) -> Result<u32, String> {
    let t = s.trim().trim_start_matches("0x");
    if t.is_empty() || t.len() > 8 {
        return Err(format!("{s:?} is not a 32-bit hex value"));
    }
    u32::from_str_radix(t, 16).map_err(|e| format!("{s:?}: {e}"))
}

pub fn parse_compact(s: &str) -> Result<CompactTarget, String> {
    let c = CompactTarget::from_consensus(parse_u32_hex(s)?);
    c.to_target().map_err(|e| e.to_string())?;
    Ok(c)
}

/// `HOST:PORT`, with a port that is a number (the host is resolved when the pool starts).
pub fn parse_peer(s: &str) -> Result<String, String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("{s:?} is not HOST:PORT"))?;
    if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(format!(
            "{s:?} is not HOST:PORT with a port from 1 to 65535"
        ));
    }
    Ok(s.to_owned())
}

pub fn parse_network_name(s: &str) -> Result<String, String> {
    crate::chain::genesis::check_network_name(s).map_err(|e| e.to_string())?;
    Ok(s.to_owned())
}

pub fn parse_mask(s: &str) -> Result<VersionMask, String> {
    parse_u32_hex(s).map(VersionMask)
}
