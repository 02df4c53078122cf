//! An edge's id: several pool-servers behind one name (DNS or a load balancer), on one
//! database, are the edges of one pool ([`crate::edge`] keeps them in step).
//!
//! Why an id: a miner moved from one edge to another must never search the same coinbase as a miner
//! of the other edge, so each edge has an id (`--edge-id`) and the first byte of every
//! extranonce1 it hands out is that id: the edges split the extranonce1 space between them and
//! no two ever hand out the same value, whatever their sessions do.

use std::fmt;
use std::str::FromStr;

/// One edge of the pool, 1 to 255 (the first byte of its extranonce1 values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EdgeId(u8);

impl EdgeId {
    pub fn new(id: u8) -> Option<EdgeId> {
        (id != 0).then_some(EdgeId(id))
    }

    /// The byte that begins every extranonce1 of this edge.
    pub fn prefix(self) -> u8 {
        self.0
    }
}

impl fmt::Display for EdgeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for EdgeId {
    type Err = String;

    fn from_str(s: &str) -> Result<EdgeId, String> {
        s.trim()
            .parse::<u8>()
            .ok()
            .and_then(EdgeId::new)
            .ok_or_else(|| format!("{s:?}: an edge id is a number from 1 to 255"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edge_id_is_one_to_255() {
        assert_eq!("7".parse::<EdgeId>().map(EdgeId::prefix), Ok(7));
        assert!("0".parse::<EdgeId>().is_err());
        assert!("256".parse::<EdgeId>().is_err());
        assert!("edge".parse::<EdgeId>().is_err());
    }
}
