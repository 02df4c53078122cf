//! A `getblocktemplate` answer, as far as the pool reads it, and how it becomes a
//! [`Template`]: what the node's RPC client returns and the node source serves.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use bitcoin::{Amount, BlockHash, ScriptBuf, Transaction, Txid};
use protocol::{CompactTarget, Version};
use serde::Deserialize;

use super::Template;

/// A template the pool cannot mine on, and why.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadTemplate(pub String);

/// The parts of a `getblocktemplate` answer the pool uses (Core and its forks agree on these).
#[derive(Debug, Clone, Deserialize)]
pub struct BlockTemplate {
    pub version: u32,
    pub previousblockhash: String,
    pub transactions: Vec<TemplateTx>,
    pub coinbasevalue: u64,
    pub longpollid: Option<String>,
    pub mintime: u32,
    pub curtime: u32,
    pub bits: String,
    pub height: u64,
    pub default_witness_commitment: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TemplateTx {
    pub data: String,
    pub txid: Option<String>,
}

impl BlockTemplate {
    /// Into the pool's template, checking what the node sent.
    pub fn to_template(&self) -> Result<Template, BadTemplate> {
        let bad = |what: &str, e: &dyn std::fmt::Display| BadTemplate(format!("{what}: {e}"));
        let prev = BlockHash::from_str(&self.previousblockhash)
            .map_err(|e| bad("previousblockhash", &e))?;
        let bits = u32::from_str_radix(&self.bits, 16).map_err(|e| bad("bits", &e))?;
        let bits = CompactTarget::from_consensus(bits);
        let target = bits.to_target().map_err(|e| bad("bits", &e))?;
        let mut txs = Vec::with_capacity(self.transactions.len());
        let mut txids = Vec::with_capacity(self.transactions.len());
        for t in &self.transactions {
            let raw = hex::decode(&t.data).map_err(|e| bad("transaction data", &e))?;
            let tx: Transaction =
                bitcoin::consensus::deserialize(&raw).map_err(|e| bad("transaction", &e))?;
            let txid = tx.compute_txid();
            if let Some(given) = &t.txid {
                if Txid::from_str(given).ok() != Some(txid) {
                    return Err(BadTemplate(format!("transaction {given} hashes to {txid}")));
                }
            }
            txids.push(txid);
            txs.push(tx);
        }
        let witness_commitment = match &self.default_witness_commitment {
            Some(h) => Some(ScriptBuf::from_bytes(
                hex::decode(h).map_err(|e| bad("default_witness_commitment", &e))?,
            )),
            None => None,
        };
        Ok(Template {
            height: self.height,
            prev_hash: prev,
            version: Version(self.version),
            bits,
            target,
            min_time: self.mintime,
            cur_time: self.curtime.max(self.mintime),
            coinbase_value: Amount::from_sat(self.coinbasevalue),
            transactions: Arc::new(txs),
            txids: Arc::new(txids),
            witness_commitment,
            created: Instant::now(),
        })
    }
}
