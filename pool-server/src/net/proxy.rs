//! The PROXY protocol (v1 and v2, as HAProxy sends it) in front of a listener.
//!
//! Why: behind a load balancer every connection comes from the balancer's address, so bans,
//! per-IP caps and logs would all see one address. A balancer that speaks the PROXY protocol
//! sends the miner's address first; we believe it only from the balancers the operator names
//! (`--proxy-protocol-from CIDR`), and from those a connection without a valid header is
//! closed (anything else would let a miner that reaches the pool directly past the balancer
//! choose its own address, or let a balancer's address slip through as the miner's).
//!
//! The header is read exactly (never a byte of Stratum with it): v1 is a text line of at
//! most 107 bytes, v2 a 16-byte head and its address block. A v2 `LOCAL` command (the
//! balancer's own health check) and v1 `UNKNOWN` keep the balancer's address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

/// The v2 signature.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 line, CRLF included (the specification's bound).
const V1_MAX: usize = 107;
/// The most address bytes a v2 header may carry that we read (TLVs included; HAProxy sends
/// a few dozen).
const V2_MAX_LEN: usize = 1024;
/// How long a trusted balancer has to send the header.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a connection's PROXY header was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProxyError {
    #[error("no PROXY header (the connection comes from a trusted balancer)")]
    Missing,
    #[error("malformed PROXY v1 header: {0}")]
    V1(String),
    #[error("malformed PROXY v2 header: {0}")]
    V2(String),
    #[error("no PROXY header within {0:?}")]
    Timeout(Duration),
    #[error("connection closed in the PROXY header")]
    Closed,
}

/// Networks whose connections carry a PROXY header: `ADDR/BITS`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.net, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            _ => ip,
        };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.bits)).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.bits))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.net, self.bits)
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, bits) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        let net: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not an address or ADDR/BITS"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            Some(b) => b
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|b| *b <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0 to {max}"))?,
            None => max,
        };
        Ok(Cidr { net, bits })
    }
}

/// Read the PROXY header from `stream` (within [`HEADER_TIMEOUT`]); the client's address it
/// names, or `None` when it names none (a health check: the balancer's own address stands).
pub async fn read_header<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<Option<SocketAddr>, ProxyError> {
    tokio::time::timeout(HEADER_TIMEOUT, read_header_now(stream))
        .await
        .map_err(|_| ProxyError::Timeout(HEADER_TIMEOUT))?
}

async fn read_exact<S: AsyncRead + Unpin>(s: &mut S, buf: &mut [u8]) -> Result<(), ProxyError> {
    s.read_exact(buf)
        .await
        .map(|_| ())
        .map_err(|_| ProxyError::Closed)
}

async fn read_header_now<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<Option<SocketAddr>, ProxyError> {
    // Both versions are at least 12 bytes long (v1's shortest, "PROXY UNKNOWN\r\n", is 15).
    let mut head = [0u8; 12];
    read_exact(stream, &mut head).await?;
    if head == V2_SIGNATURE {
        let mut rest = [0u8; 4];
        read_exact(stream, &mut rest).await?;
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        if len > V2_MAX_LEN {
            return Err(ProxyError::V2(format!("{len} address bytes")));
        }
        let mut body = vec![0u8; len];
        read_exact(stream, &mut body).await?;
        return parse_v2(rest[0], rest[1], &body);
    }
    if !head.starts_with(b"PROXY ") {
        return Err(ProxyError::Missing);
    }
    let mut line = head.to_vec();
    while !line.ends_with(b"\r\n") {
        if line.len() >= V1_MAX {
            return Err(ProxyError::V1(format!("longer than {V1_MAX} bytes")));
        }
        let mut b = [0u8; 1];
        read_exact(stream, &mut b).await?;
        line.push(b[0]);
    }
    parse_v1(&line)
}

/// A v1 line, CRLF included.
pub fn parse_v1(line: &[u8]) -> Result<Option<SocketAddr>, ProxyError> {
    let bad = |why: &str| ProxyError::V1(why.to_owned());
    let text = std::str::from_utf8(line).map_err(|_| bad("not text"))?;
    let text = text.strip_suffix("\r\n").ok_or_else(|| bad("no CRLF"))?;
    let words: Vec<&str> = text.split(' ').collect();
    match words.as_slice() {
        ["PROXY", "UNKNOWN", ..] => Ok(None),
        ["PROXY", family @ ("TCP4" | "TCP6"), src, _dst, sport, _dport] => {
            let ip: IpAddr = src.parse().map_err(|_| bad("bad source address"))?;
            if ip.is_ipv4() != (*family == "TCP4") {
                return Err(bad("the source address is not of the family named"));
            }
            let port: u16 = sport.parse().map_err(|_| bad("bad source port"))?;
            Ok(Some(SocketAddr::new(ip, port)))
        }
        _ => Err(bad("expected PROXY TCP4|TCP6 SRC DST SPORT DPORT")),
    }
}

/// A v2 header after its signature: version and command, family and protocol, addresses.
pub fn parse_v2(ver_cmd: u8, family: u8, body: &[u8]) -> Result<Option<SocketAddr>, ProxyError> {
    let bad = |why: String| ProxyError::V2(why);
    if ver_cmd >> 4 != 2 {
        return Err(bad(format!("version {}", ver_cmd >> 4)));
    }
    match ver_cmd & 0x0f {
        0 => return Ok(None), // LOCAL: the balancer's own connection
        1 => {}
        c => return Err(bad(format!("command {c}"))),
    }
    match family >> 4 {
        1 if body.len() >= 12 => {
            let ip = Ipv4Addr::new(body[0], body[1], body[2], body[3]);
            let port = u16::from_be_bytes([body[8], body[9]]);
            Ok(Some(SocketAddr::new(IpAddr::V4(ip), port)))
        }
        2 if body.len() >= 36 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(&body[..16]);
            let port = u16::from_be_bytes([body[32], body[33]]);
            Ok(Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(a)), port)))
        }
        // UNSPEC (or a unix socket): no address we can use; the balancer's stands.
        0 | 3 => Ok(None),
        f => Err(bad(format!("family {f} with {} address bytes", body.len()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(bytes: &[u8]) -> (Result<Option<SocketAddr>, ProxyError>, Vec<u8>) {
        let mut r = bytes;
        let got = read_header(&mut r).await;
        (got, r.to_vec())
    }

    #[tokio::test]
    async fn a_v1_line_names_the_client_and_leaves_the_stratum_bytes() {
        let (got, rest) = read(b"PROXY TCP4 192.0.2.7 127.0.0.1 51000 3333\r\n{\"id\":1}\n").await;
        assert_eq!(got, Ok(Some("192.0.2.7:51000".parse().unwrap())));
        assert_eq!(rest, b"{\"id\":1}\n");
        let (got, _) = read(b"PROXY TCP6 2001:db8::1 ::1 4000 3333\r\n").await;
        assert_eq!(got, Ok(Some("[2001:db8::1]:4000".parse().unwrap())));
        assert_eq!(read(b"PROXY UNKNOWN\r\n").await.0, Ok(None));
    }

    #[tokio::test]
    async fn a_v2_header_names_the_client_and_local_keeps_the_balancer() {
        let mut h = V2_SIGNATURE.to_vec();
        h.extend([
            0x21, 0x11, 0, 12, 198, 51, 100, 9, 127, 0, 0, 1, 0xc3, 0x50, 0x0d, 0x05,
        ]);
        h.extend(b"next");
        let (got, rest) = read(&h).await;
        assert_eq!(got, Ok(Some("198.51.100.9:50000".parse().unwrap())));
        assert_eq!(rest, b"next");
        let mut local = V2_SIGNATURE.to_vec();
        local.extend([0x20, 0x00, 0, 0]);
        assert_eq!(read(&local).await.0, Ok(None));
    }

    #[tokio::test]
    async fn anything_else_from_a_trusted_balancer_is_refused() {
        assert_eq!(
            read(b"{\"id\":1,\"method\":\"mining.subscribe\"}\n")
                .await
                .0,
            Err(ProxyError::Missing)
        );
        assert!(matches!(
            read(b"PROXY TCP4 999.0.0.1 127.0.0.1 1 2\r\n").await.0,
            Err(ProxyError::V1(_))
        ));
        assert!(matches!(
            read(b"PROXY TCP4 192.0.2.1 127.0.0.1 1 2 and more and more and more and more and more and more and more and more and more\r\n").await.0,
            Err(ProxyError::V1(_))
        ));
        let mut wrong = V2_SIGNATURE.to_vec();
        wrong.extend([0x31, 0x11, 0, 12]);
        wrong.extend([0; 12]);
        assert!(matches!(read(&wrong).await.0, Err(ProxyError::V2(_))));
        assert_eq!(read(b"PROXY TCP4").await.0, Err(ProxyError::Closed));
    }

    #[test]
    fn networks_match_their_addresses_only() {
        let n: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(n.contains("10.1.200.3".parse().unwrap()));
        assert!(!n.contains("10.2.0.1".parse().unwrap()));
        assert!(n.contains("::ffff:10.1.0.9".parse().unwrap()), "v4-mapped");
        let one: Cidr = "127.0.0.1".parse().unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("203.0.113.5".parse().unwrap()));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:1::5".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("pool".parse::<Cidr>().is_err());
    }
}
