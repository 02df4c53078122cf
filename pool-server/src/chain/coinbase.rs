//! The coinbase transaction around the extranonce slot.
//!
//! Stratum miners only ever see the coinbase as two byte strings, `coinb1` and `coinb2`, with
//! the extranonce (extranonce1 + extranonce2) between them. We build a real transaction with
//! the `bitcoin` crate (BIP 34 height first in the scriptSig, then the extranonce as one push,
//! then the job tag, then the pool tag) and cut it at the slot, so every coinbase a miner
//! completes is a valid transaction by construction.
//!
//! The job tag is the job's number, pushed as 8 bytes at the start of `coinb2`. It makes every
//! job id stand for work of its own: a job re-issued under a new id (after a difficulty change)
//! has another coinbase, so another merkle root, and no share found for one id is valid for
//! another.

use bitcoin::absolute::LockTime;
use bitcoin::script::{Builder, PushBytesBuf};
use bitcoin::transaction::Version as TxVersion;
use bitcoin::{Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness};

/// The two halves of a coinbase, as sent in `mining.notify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoinbaseParts {
    pub coinb1: Vec<u8>,
    pub coinb2: Vec<u8>,
}

impl CoinbaseParts {
    /// The whole transaction with `extranonce` in its slot.
    pub fn with_extranonce(&self, extranonce: &[u8]) -> Transaction {
        let mut raw = self.coinb1.clone();
        raw.extend_from_slice(extranonce);
        raw.extend_from_slice(&self.coinb2);
        bitcoin::consensus::deserialize(&raw).expect("the coinbase builder makes valid txs")
    }
}

/// Where the 8-byte job tag sits in `coinb2`: right after its push opcode.
const JOB_TAG: std::ops::Range<usize> = 1..9;

/// Write `tag` (a job's number, big-endian) into the job tag of a `coinb2` made by
/// [`CoinbaseBuilder::build`].
pub fn stamp_job_tag(coinb2: &mut [u8], tag: u64) {
    coinb2[JOB_TAG].copy_from_slice(&tag.to_be_bytes());
}

/// The job tag of a `coinb2` made by [`CoinbaseBuilder::build`].
pub fn job_tag(coinb2: &[u8]) -> u64 {
    u64::from_be_bytes(coinb2[JOB_TAG].try_into().expect("8 bytes"))
}

#[derive(Debug, Clone)]
pub struct CoinbaseBuilder {
    payout: ScriptBuf,
    tag: Vec<u8>,
    extranonce_len: usize,
}

impl CoinbaseBuilder {
    /// `extranonce_len` is extranonce1 + extranonce2 bytes.
    pub fn new(payout: ScriptBuf, tag: &str, extranonce_len: usize) -> Self {
        assert!(
            extranonce_len <= 75,
            "the extranonce must fit one direct push"
        );
        CoinbaseBuilder {
            payout,
            tag: tag.as_bytes().to_vec(),
            extranonce_len,
        }
    }

    pub fn payout_script(&self) -> &ScriptBuf {
        &self.payout
    }

    /// Build the coinbase for `height` paying `value`, plus the witness commitment output
    /// when given, with `job_tag` in its job tag, and split it at the extranonce slot.
    pub fn build(
        &self,
        height: u64,
        value: Amount,
        witness_commitment: Option<&ScriptBuf>,
        job_tag: u64,
    ) -> CoinbaseParts {
        let pay = TxOut {
            value,
            script_pubkey: self.payout.clone(),
        };
        self.build_paying(height, vec![pay], witness_commitment, job_tag)
    }

    /// The same, paying `outputs` (coinbase payouts: one output per account and the pool's)
    /// instead of the payout script.
    pub fn build_paying(
        &self,
        height: u64,
        outputs: Vec<TxOut>,
        witness_commitment: Option<&ScriptBuf>,
        job_tag: u64,
    ) -> CoinbaseParts {
        let height_push = Builder::new().push_int(height as i64).into_script();
        let slot = PushBytesBuf::try_from(vec![0u8; self.extranonce_len]).expect("<= 75 bytes");
        let job = PushBytesBuf::from(job_tag.to_be_bytes());
        let tag = PushBytesBuf::try_from(self.tag.clone()).expect("tag fits a push");
        let mut script_sig = height_push.to_bytes();
        script_sig.extend(Builder::new().push_slice(&slot).into_script().to_bytes());
        script_sig.extend(Builder::new().push_slice(&job).into_script().to_bytes());
        if !self.tag.is_empty() {
            script_sig.extend(Builder::new().push_slice(&tag).into_script().to_bytes());
        }
        let mut output = outputs;
        if let Some(c) = witness_commitment {
            output.push(TxOut {
                value: Amount::ZERO,
                script_pubkey: c.clone(),
            });
        }
        let tx = Transaction {
            version: TxVersion::ONE,
            lock_time: LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::null(),
                script_sig: ScriptBuf::from_bytes(script_sig),
                sequence: Sequence::MAX,
                witness: Witness::new(),
            }],
            output,
        };
        // Non-witness serialization: what the txid (and so the merkle root) commits to.
        let bytes = bitcoin::consensus::serialize(&tx);
        let script_len = tx.input[0].script_sig.len();
        let varint_len = bitcoin::VarInt(script_len as u64).size();
        // version(4) + input count(1) + outpoint(36) + script length varint
        let script_start = 4 + 1 + 36 + varint_len;
        // the extranonce bytes follow the height push and the slot's push opcode
        let slot_start = script_start + height_push.len() + 1;
        CoinbaseParts {
            coinb1: bytes[..slot_start].to_vec(),
            coinb2: bytes[slot_start + self.extranonce_len..].to_vec(),
        }
    }
}

/// The block subsidy at `height` (50 BTC halving every 210,000 blocks).
pub fn subsidy(height: u64) -> Amount {
    let halvings = height / 210_000;
    if halvings >= 64 {
        return Amount::ZERO;
    }
    Amount::from_sat((50 * 100_000_000) >> halvings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;
    use bitcoin::Block;
    use protocol::{assemble_coinbase, Extranonce1, Extranonce2};

    #[test]
    fn completed_coinbase_is_a_valid_bip34_transaction() {
        let b = CoinbaseBuilder::new(ScriptBuf::from_bytes(vec![0x51]), "/test/", 12);
        for height in [0u64, 1, 16, 17, 500, 70_000, 16_777_216] {
            let parts = b.build(height, subsidy(height), None, 0xd33e);
            assert_eq!(job_tag(&parts.coinb2), 0xd33e);
            let raw = assemble_coinbase(
                &parts.coinb1,
                &Extranonce1(vec![1, 2, 3, 4]),
                &Extranonce2(vec![9; 8]),
                &parts.coinb2,
            );
            let tx: Transaction = bitcoin::consensus::deserialize(&raw).unwrap();
            assert!(tx.is_coinbase());
            assert_eq!(tx.output[0].value, subsidy(height));
            // The extranonce sits inside the scriptSig as one push.
            let sig = tx.input[0].script_sig.to_bytes();
            assert!(sig
                .windows(12)
                .any(|w| w == [1, 2, 3, 4, 9, 9, 9, 9, 9, 9, 9, 9]));
            // BIP 34 as rust-bitcoin reads it (heights >= 1 use a pushed number).
            let block = Block {
                header: bitcoin::block::Header {
                    version: bitcoin::block::Version::TWO,
                    prev_blockhash: bitcoin::BlockHash::all_zeros(),
                    merkle_root: bitcoin::TxMerkleNode::all_zeros(),
                    time: 0,
                    bits: bitcoin::CompactTarget::from_consensus(0x207fffff),
                    nonce: 0,
                },
                txdata: vec![tx],
            };
            if height > 16 {
                assert_eq!(block.bip34_block_height().unwrap(), height);
            }
        }
    }

    #[test]
    fn the_job_tag_changes_the_txid_and_nothing_else() {
        let b = CoinbaseBuilder::new(ScriptBuf::from_bytes(vec![0x51]), "/test/", 12);
        let parts = b.build(500, subsidy(500), None, 1);
        let mut other = parts.clone();
        stamp_job_tag(&mut other.coinb2, u64::MAX);
        assert_eq!(other, b.build(500, subsidy(500), None, u64::MAX));
        let tx = |p: &CoinbaseParts| -> Transaction {
            let raw = assemble_coinbase(
                &p.coinb1,
                &Extranonce1(vec![1, 2, 3, 4]),
                &Extranonce2(vec![9; 8]),
                &p.coinb2,
            );
            bitcoin::consensus::deserialize(&raw).unwrap()
        };
        let (a, z) = (tx(&parts), tx(&other));
        assert_ne!(a.compute_txid(), z.compute_txid());
        assert_eq!(a.output, z.output);
        assert_eq!(job_tag(&other.coinb2), u64::MAX);
    }

    #[test]
    fn subsidy_halves() {
        assert_eq!(subsidy(0), Amount::from_sat(5_000_000_000));
        assert_eq!(subsidy(210_000), Amount::from_sat(2_500_000_000));
        assert_eq!(subsidy(64 * 210_000), Amount::ZERO);
    }
}
