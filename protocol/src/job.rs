//! From a `mining.notify` job and a miner's choices to the 80-byte header.
//!
//! The coinbase is `coinb1 || extranonce1 || extranonce2 || coinb2`; its txid is folded with
//! the merkle branch (hashes in internal byte order, the coinbase always on the left) into the
//! merkle root; the header takes prevhash from Stratum's word-swapped order and the 32-bit
//! fields from their big-endian hex. Pool and worker both call [`Notify::header`], so they
//! cannot disagree about a share.

use bitcoin::block::{Header, Version as BlockVersion};
use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, TxMerkleNode, Txid};
use serde_json::{json, Value};

use crate::error::ParamsError;
use crate::fields::{
    decode_hex_exact, value_str, Extranonce1, Extranonce2, HexBytes, JobId, Nonce, Ntime, PrevHash,
    Version,
};
use crate::sha256d::{sha256d, sha256d_parts};
use crate::target::CompactTarget;

/// The parameters of `mining.notify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    pub job_id: JobId,
    pub prevhash: PrevHash,
    pub coinb1: HexBytes,
    pub coinb2: HexBytes,
    /// Merkle branch hashes in internal byte order, as they go on the wire.
    pub merkle_branch: Vec<TxMerkleNode>,
    pub version: Version,
    pub nbits: CompactTarget,
    pub ntime: Ntime,
    pub clean_jobs: bool,
}

/// `coinb1 || extranonce1 || extranonce2 || coinb2`.
pub fn assemble_coinbase(
    coinb1: &[u8],
    extranonce1: &Extranonce1,
    extranonce2: &Extranonce2,
    coinb2: &[u8],
) -> Vec<u8> {
    let mut tx =
        Vec::with_capacity(coinb1.len() + extranonce1.len() + extranonce2.len() + coinb2.len());
    tx.extend_from_slice(coinb1);
    tx.extend_from_slice(extranonce1.as_bytes());
    tx.extend_from_slice(extranonce2.as_bytes());
    tx.extend_from_slice(coinb2);
    tx
}

/// Fold the coinbase txid with a merkle branch into the merkle root.
pub fn merkle_root_from_branch(coinbase_txid: Txid, branch: &[TxMerkleNode]) -> TxMerkleNode {
    let mut acc = [0u8; 64];
    acc[..32].copy_from_slice(coinbase_txid.as_byte_array());
    for node in branch {
        acc[32..].copy_from_slice(node.as_byte_array());
        let h = sha256d(&acc);
        acc[..32].copy_from_slice(&h);
    }
    TxMerkleNode::from_byte_array(acc[..32].try_into().expect("32 bytes"))
}

/// The merkle branch for the coinbase (position 0) given the txids of the other
/// transactions in block order: what a pool sends in `mining.notify`.
pub fn merkle_branch_for_coinbase(other_txids: &[Txid]) -> Vec<TxMerkleNode> {
    let mut branch = Vec::new();
    // Level 0 holds a placeholder for the coinbase followed by the other transactions.
    let mut level: Vec<Option<[u8; 32]>> = std::iter::once(None)
        .chain(other_txids.iter().map(|t| Some(t.to_byte_array())))
        .collect();
    while level.len() > 1 {
        branch.push(TxMerkleNode::from_byte_array(
            level[1].expect("only the coinbase path is unknown"),
        ));
        if level.len() % 2 == 1 {
            let last = *level.last().expect("non-empty");
            level.push(last);
        }
        let mut next = vec![None];
        for pair in level[2..].chunks_exact(2) {
            let mut buf = [0u8; 64];
            buf[..32].copy_from_slice(&pair[0].expect("known"));
            buf[32..].copy_from_slice(&pair[1].expect("known"));
            next.push(Some(sha256d(&buf)));
        }
        level = next;
    }
    branch
}

impl Notify {
    /// The header for a miner's choice of extranonce2, ntime, nonce and (rolled) version.
    pub fn header(
        &self,
        extranonce1: &Extranonce1,
        extranonce2: &Extranonce2,
        ntime: Ntime,
        nonce: Nonce,
        version: Version,
    ) -> Header {
        let txid = Txid::from_byte_array(sha256d_parts(&[
            self.coinb1.as_bytes(),
            extranonce1.as_bytes(),
            extranonce2.as_bytes(),
            self.coinb2.as_bytes(),
        ]));
        Header {
            version: BlockVersion::from_consensus(version.0 as i32),
            prev_blockhash: self.prevhash.block_hash(),
            merkle_root: merkle_root_from_branch(txid, &self.merkle_branch),
            time: ntime.0,
            bits: self.nbits.into(),
            nonce: nonce.0,
        }
    }

    pub fn from_params(p: &[Value]) -> Result<Notify, ParamsError> {
        let get =
            |i: usize, name: &'static str| p.get(i).ok_or(ParamsError::Missing { index: i, name });
        let s = |i: usize, name: &'static str| get(i, name).and_then(|v| value_str(name, v));
        let branch = match get(4, "merkle_branch")? {
            Value::Array(a) => a
                .iter()
                .map(|v| {
                    decode_hex_exact::<32>("merkle_branch", value_str("merkle_branch", v)?)
                        .map(TxMerkleNode::from_byte_array)
                })
                .collect::<Result<Vec<_>, _>>()?,
            _ => {
                return Err(ParamsError::WrongType {
                    name: "merkle_branch",
                    expected: "an array of hex strings",
                })
            }
        };
        let job_id = match get(0, "job_id")? {
            Value::Number(n) => n.to_string(),
            v => value_str("job_id", v)?.to_owned(),
        };
        Ok(Notify {
            job_id: JobId::new(job_id),
            prevhash: PrevHash::from_hex(s(1, "prevhash")?)?,
            coinb1: HexBytes::from_hex(s(2, "coinb1")?)?,
            coinb2: HexBytes::from_hex(s(3, "coinb2")?)?,
            merkle_branch: branch,
            version: Version::from_hex(s(5, "version")?)?,
            nbits: CompactTarget::from_consensus(u32::from_be_bytes(decode_hex_exact::<4>(
                "nbits",
                s(6, "nbits")?,
            )?)),
            ntime: Ntime::from_hex(s(7, "ntime")?)?,
            clean_jobs: p.get(8).and_then(Value::as_bool).unwrap_or(false),
        })
    }

    pub fn to_params(&self) -> Vec<Value> {
        vec![
            json!(self.job_id.as_str()),
            json!(self.prevhash.to_hex()),
            json!(self.coinb1.to_hex()),
            json!(self.coinb2.to_hex()),
            Value::Array(
                self.merkle_branch
                    .iter()
                    .map(|n| json!(hex::encode(n.as_byte_array())))
                    .collect(),
            ),
            json!(self.version.to_hex()),
            json!(self.nbits.to_string()),
            json!(self.ntime.to_hex()),
            json!(self.clean_jobs),
        ]
    }
}

/// A header's 80 bytes, as hashed.
pub fn header_bytes(header: &Header) -> [u8; 80] {
    use bitcoin::consensus::Encodable;
    // Straight into the array: this runs for every share.
    let mut bytes = [0u8; 80];
    let written = header
        .consensus_encode(&mut &mut bytes[..])
        .expect("a block header fits its 80 bytes");
    debug_assert_eq!(written, 80);
    bytes
}

/// The block hash of a header (SHA-256d of its 80 bytes).
pub fn header_hash(header: &Header) -> BlockHash {
    BlockHash::from_byte_array(sha256d(&header_bytes(header)))
}
