//! The pool's own chain: Bitcoin-format blocks, Bitcoin's difficulty retargeting, and a small
//! mempool fed through the API, so a pool can run end to end with no node at all.
//!
//! Found blocks are checked as a node would check them (link, proof of work, expected bits,
//! time rules, merkle root, BIP 34 height, coinbase amount, weight, duplicates). What it does
//! not have is a UTXO set: fed transactions are checked for form, not for their inputs.
//! Blocks are persisted by the share store (the `blocks` table), and [`EmbeddedChain::open`]
//! resumes from the stored tip after a restart.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bitcoin::block::Header;
use bitcoin::{Amount, Block, BlockHash, Transaction, Txid};
use futures::future::BoxFuture;
use parking_lot::Mutex;
use protocol::{CompactTarget, Version};
use tokio::sync::watch;

use super::block_file::BlockFile;
use super::coinbase::subsidy;
use super::genesis::genesis_block;
use super::retarget::{median_time_past, RetargetParams};
use super::{BlockVerdict, Template, TemplateSource};

/// Version the embedded chain's templates carry (BIP 9 top bits).
const BLOCK_VERSION: u32 = 0x2000_0000;
/// Consensus maximum block weight.
const MAX_BLOCK_WEIGHT: u64 = 4_000_000;
/// Room left for the coinbase when filling a template from the mempool.
const COINBASE_WEIGHT_RESERVE: u64 = 4_000;
/// Blocks may be at most this far ahead of our clock.
const MAX_FUTURE_SECS: u32 = 2 * 60 * 60;

#[derive(Debug, Clone)]
pub struct ChainParams {
    /// The network's name: with the genesis bits, it makes the genesis ([`genesis_block`]).
    pub network: String,
    pub genesis_bits: CompactTarget,
    pub retarget: RetargetParams,
}

#[derive(Debug, Clone)]
struct ChainBlock {
    height: u64,
    hash: BlockHash,
    header: Header,
}

#[derive(Default)]
struct Mempool {
    txs: Vec<Transaction>,
    ids: HashSet<Txid>,
    weight: u64,
}

struct State {
    /// The last blocks, ascending by height; the back is the tip.
    recent: VecDeque<ChainBlock>,
    mempool: Mempool,
}

/// Why a fed transaction was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MempoolError {
    #[error("transaction does not decode: {0}")]
    Decode(String),
    #[error("coinbase transactions cannot be fed")]
    Coinbase,
    #[error("transaction {0} is already in the mempool")]
    Duplicate(Txid),
    #[error("mempool is full (a block's worth of weight)")]
    Full,
}

/// Why stored blocks could not be resumed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("stored block at height {height} does not link to the block before it")]
    Broken { height: u64 },
}

pub struct EmbeddedChain {
    params: ChainParams,
    keep: usize,
    state: Mutex<State>,
    tx: watch::Sender<Arc<Template>>,
    /// Where accepted blocks are also kept, so the chain resumes without the database.
    file: std::sync::OnceLock<BlockFile>,
}

fn now_secs() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

impl EmbeddedChain {
    /// Resume from `stored` blocks (ascending heights, ending at the tip), or start a new chain
    /// whose genesis is returned so the caller can persist it.
    pub fn open(
        params: ChainParams,
        stored: Vec<(u64, Block)>,
    ) -> Result<(Arc<EmbeddedChain>, Option<Block>), OpenError> {
        let keep = (params.retarget.interval as usize + 1).max(11) + 1;
        let mut recent: VecDeque<ChainBlock> = VecDeque::new();
        for (height, block) in stored {
            let hash = block.block_hash();
            if let Some(prev) = recent.back() {
                if block.header.prev_blockhash != prev.hash || height != prev.height + 1 {
                    return Err(OpenError::Broken { height });
                }
            }
            recent.push_back(ChainBlock {
                height,
                hash,
                header: block.header,
            });
            if recent.len() > keep {
                recent.pop_front();
            }
        }
        let genesis = if recent.is_empty() {
            // Height 0: the network's genesis, a pure function of its parameters, taken on
            // trust (no proof of work), as in Bitcoin.
            let g = genesis_block(&params.network, params.genesis_bits);
            recent.push_back(ChainBlock {
                height: 0,
                hash: g.block_hash(),
                header: g.header,
            });
            Some(g)
        } else {
            None
        };
        let mut state = State {
            recent,
            mempool: Mempool::default(),
        };
        let template = Arc::new(Self::build_template(&params, &mut state));
        let (tx, _) = watch::channel(template);
        Ok((
            Arc::new(EmbeddedChain {
                params,
                keep,
                state: Mutex::new(state),
                tx,
                file: std::sync::OnceLock::new(),
            }),
            genesis,
        ))
    }

    pub fn tip(&self) -> (u64, BlockHash) {
        let s = self.state.lock();
        let t = s.recent.back().expect("chain has a tip");
        (t.height, t.hash)
    }

    fn next_bits(params: &ChainParams, recent: &VecDeque<ChainBlock>) -> CompactTarget {
        let tip = recent.back().expect("tip");
        let height = tip.height + 1;
        let bits = CompactTarget::from(tip.header.bits);
        if !params.retarget.is_retarget_height(height) {
            return bits;
        }
        let mut first_height = height - params.retarget.interval as u64;
        let mut retarget = params.retarget;
        if first_height == 0 {
            // The genesis time is fixed, not mined: the first period is timed from block 1,
            // against one block interval fewer.
            if retarget.interval < 2 {
                return bits;
            }
            first_height = 1;
            retarget.interval -= 1;
        }
        let first = recent
            .iter()
            .find(|b| b.height == first_height)
            .expect("keep covers a retarget interval");
        retarget.next_bits(bits, first.header.time, tip.header.time)
    }

    fn median_time_past(recent: &VecDeque<ChainBlock>) -> u32 {
        let times: Vec<u32> = recent
            .iter()
            .rev()
            .take(11)
            .map(|b| b.header.time)
            .collect();
        median_time_past(&times)
    }

    fn build_template(params: &ChainParams, state: &mut State) -> Template {
        let tip = state.recent.back().expect("tip").clone();
        let bits = Self::next_bits(params, &state.recent);
        let min_time = Self::median_time_past(&state.recent) + 1;
        let txs = state.mempool.txs.clone();
        let txids = txs.iter().map(Transaction::compute_txid).collect();
        Template {
            height: tip.height + 1,
            prev_hash: tip.hash,
            version: Version(BLOCK_VERSION),
            bits,
            target: bits.to_target().expect("chain bits are valid"),
            min_time,
            cur_time: now_secs().max(min_time),
            coinbase_value: subsidy(tip.height + 1),
            transactions: Arc::new(txs),
            txids: Arc::new(txids),
            witness_commitment: None,
            created: Instant::now(),
        }
    }

    fn publish(&self, state: &mut State) {
        let t = Self::build_template(&self.params, state);
        self.tx.send_replace(Arc::new(t));
    }

    /// Feed a transaction for the next blocks' templates.
    pub fn add_transaction(&self, tx: Transaction) -> Result<Txid, MempoolError> {
        if tx.is_coinbase() {
            return Err(MempoolError::Coinbase);
        }
        let txid = tx.compute_txid();
        let weight = tx.weight().to_wu();
        let mut s = self.state.lock();
        if s.mempool.ids.contains(&txid) {
            return Err(MempoolError::Duplicate(txid));
        }
        if s.mempool.weight + weight > MAX_BLOCK_WEIGHT - COINBASE_WEIGHT_RESERVE {
            return Err(MempoolError::Full);
        }
        s.mempool.ids.insert(txid);
        s.mempool.weight += weight;
        s.mempool.txs.push(tx);
        self.publish(&mut s);
        Ok(txid)
    }

    pub fn mempool_len(&self) -> usize {
        self.state.lock().mempool.txs.len()
    }

    /// Keep every block accepted from now on in `file` too.
    pub fn keep_blocks_in(&self, file: BlockFile) {
        let _ = self.file.set(file);
    }

    /// Check a block as a node would and make it the tip.
    pub fn validate_and_append(&self, block: &Block) -> BlockVerdict {
        let mut s = self.state.lock();
        match self.check(&s, block) {
            Ok(()) => {}
            Err(reason) => return reason,
        }
        let tip = s.recent.back().expect("tip").clone();
        if let Some(f) = self.file.get() {
            if let Err(e) = f.append(tip.height + 1, block) {
                // The database still gets the block; only a resume without it would miss it.
                tracing::error!(error = %e, file = %f.path().display(), "cannot keep the block in the chain file");
            }
        }
        s.recent.push_back(ChainBlock {
            height: tip.height + 1,
            hash: block.block_hash(),
            header: block.header,
        });
        while s.recent.len() > self.keep {
            s.recent.pop_front();
        }
        let included: HashSet<Txid> = block.txdata.iter().map(Transaction::compute_txid).collect();
        let pool = std::mem::take(&mut s.mempool);
        for tx in pool.txs {
            if !included.contains(&tx.compute_txid()) {
                let w = tx.weight().to_wu();
                s.mempool.ids.insert(tx.compute_txid());
                s.mempool.weight += w;
                s.mempool.txs.push(tx);
            }
        }
        self.publish(&mut s);
        BlockVerdict::Accepted
    }

    fn check(&self, s: &State, block: &Block) -> Result<(), BlockVerdict> {
        let reject = |r: &str| Err(BlockVerdict::Rejected(r.to_owned()));
        let tip = s.recent.back().expect("tip");
        let hash = block.block_hash();
        if s.recent.iter().any(|b| b.hash == hash) {
            return Err(BlockVerdict::Duplicate);
        }
        if block.header.prev_blockhash != tip.hash {
            return reject("prev-blk-not-tip");
        }
        let expected_bits = Self::next_bits(&self.params, &s.recent);
        if CompactTarget::from(block.header.bits) != expected_bits {
            return reject("bad-diffbits");
        }
        let target = expected_bits.to_target().expect("valid bits");
        if !target.is_met_by(&hash) {
            return reject("high-hash");
        }
        if block.header.time <= Self::median_time_past(&s.recent) {
            return reject("time-too-old");
        }
        if block.header.time > now_secs() + MAX_FUTURE_SECS {
            return reject("time-too-new");
        }
        let Some(coinbase) = block.txdata.first() else {
            return reject("bad-blk-length");
        };
        if !coinbase.is_coinbase() {
            return reject("bad-cb-missing");
        }
        if block.txdata[1..].iter().any(Transaction::is_coinbase) {
            return reject("bad-cb-multiple");
        }
        if !block.check_merkle_root() {
            return reject("bad-txnmrklroot");
        }
        let mut seen = HashSet::new();
        if !block.txdata.iter().all(|t| seen.insert(t.compute_txid())) {
            return reject("bad-txns-duplicate");
        }
        let height = tip.height + 1;
        if height > 16 && block.bip34_block_height().ok() != Some(height) {
            return reject("bad-cb-height");
        }
        let paid: Amount = coinbase.output.iter().map(|o| o.value).sum();
        if paid > subsidy(height) {
            return reject("bad-cb-amount");
        }
        if block.weight().to_wu() > MAX_BLOCK_WEIGHT {
            return reject("bad-blk-weight");
        }
        Ok(())
    }
}

impl TemplateSource for EmbeddedChain {
    fn templates(&self) -> watch::Receiver<Arc<Template>> {
        self.tx.subscribe()
    }

    fn submit_block(&self, block: Block) -> BoxFuture<'_, BlockVerdict> {
        Box::pin(async move { self.validate_and_append(&block) })
    }

    fn kind(&self) -> &'static str {
        "embedded"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::coinbase::CoinbaseBuilder;
    use bitcoin::block::Version as BlockVersion;
    use bitcoin::hashes::Hash;
    use bitcoin::{ScriptBuf, TxMerkleNode};

    fn params(interval: u32) -> ChainParams {
        ChainParams {
            network: "test".into(),
            genesis_bits: CompactTarget::from_consensus(0x207fffff),
            retarget: RetargetParams {
                interval,
                block_time_secs: 30,
                pow_limit: CompactTarget::from_consensus(0x207fffff)
                    .to_target()
                    .unwrap(),
            },
        }
    }

    /// Mine the current template with a plain loop (the target is trivial).
    fn mine(chain: &EmbeddedChain, time: u32) -> Block {
        let t = chain.templates().borrow().clone();
        let parts = CoinbaseBuilder::new(ScriptBuf::from_bytes(vec![0x51]), "/t/", 8).build(
            t.height,
            t.coinbase_value,
            None,
            1,
        );
        let mut raw = parts.coinb1;
        raw.extend([0u8; 8]);
        raw.extend(parts.coinb2);
        let coinbase: Transaction = bitcoin::consensus::deserialize(&raw).unwrap();
        let mut txdata = vec![coinbase];
        txdata.extend(t.transactions.iter().cloned());
        let mut block = Block {
            header: Header {
                version: BlockVersion::from_consensus(t.version.0 as i32),
                prev_blockhash: t.prev_hash,
                merkle_root: TxMerkleNode::all_zeros(),
                time: time.max(t.min_time),
                bits: t.bits.into(),
                nonce: 0,
            },
            txdata,
        };
        block.header.merkle_root = block.compute_merkle_root().unwrap();
        while !t.target.is_met_by(&block.block_hash()) {
            block.header.nonce += 1;
        }
        block
    }

    #[test]
    fn found_blocks_extend_the_chain_and_bad_ones_are_refused() {
        let (chain, genesis) = EmbeddedChain::open(params(1000), vec![]).unwrap();
        assert!(genesis.is_some());
        let b1 = mine(&chain, now_secs());
        let mut bad = b1.clone();
        bad.header.merkle_root = TxMerkleNode::all_zeros();
        let target = chain.templates().borrow().target;
        while !target.is_met_by(&bad.block_hash()) {
            bad.header.nonce += 1;
        }
        assert_eq!(
            chain.validate_and_append(&bad),
            BlockVerdict::Rejected("bad-txnmrklroot".into())
        );
        assert_eq!(chain.validate_and_append(&b1), BlockVerdict::Accepted);
        assert_eq!(chain.tip(), (1, b1.block_hash()));
        assert_eq!(chain.validate_and_append(&b1), BlockVerdict::Duplicate);
    }

    #[test]
    fn fast_blocks_raise_difficulty_at_the_interval() {
        let (chain, _) = EmbeddedChain::open(params(3), vec![]).unwrap();
        let start = chain.templates().borrow().bits;
        let t0 = now_secs();
        for i in 1..=3 {
            let b = mine(&chain, t0 + i);
            assert_eq!(chain.validate_and_append(&b), BlockVerdict::Accepted);
        }
        // 3 blocks in ~3 s against 90 s expected: clamped to 4x harder.
        let after = chain.templates().borrow().bits;
        let ratio = start.to_target().unwrap().difficulty().as_f64();
        let ratio = after.to_target().unwrap().difficulty().as_f64() / ratio;
        assert!((ratio - 4.0).abs() < 0.01, "{ratio}");
    }

    #[test]
    fn mempool_transactions_go_into_templates_and_leave_with_the_block() {
        let (chain, _) = EmbeddedChain::open(params(1000), vec![]).unwrap();
        let tx: Transaction = bitcoin::consensus::deserialize(&hex::decode(
            "0100000001c997a5e56e104102fa209c6a852dd90660a20b2d9c352423edce25857fcd3704000000004847304402204e45e16932b8af514961a1d3a1a25fdf3f4f7732e9d624c6c61548ab5fb8cd410220181522ec8eca07de4860a4acdd12909d831cc56cbbac4622082221a8768d1d0901ffffffff0200ca9a3b00000000434104ae1a62fe09c5f51b13905f07f06b99a2f7159b2225f374cd378d71302fa28414e7aab37397f554a7df5f142c21c1b7303b8a0626f1baded5c72a704f7e6cd84cac00286bee0000000043410411db93e1dcdb8a016b49840f8c53bc1eb68a382e97b1482ecad7b148a6909a5cb2e0eaddfb84ccf9744464f82e160bfa9b8b64f9d4c03f999b8643f656b412a3ac00000000",
        ).unwrap()).unwrap();
        let txid = chain.add_transaction(tx.clone()).unwrap();
        assert_eq!(
            txid.to_string(),
            "f4184fc596403b9d638783cf57adfe4c75c605f6356fbc91338530e9831e9e16"
        );
        assert_eq!(
            chain.add_transaction(tx),
            Err(MempoolError::Duplicate(txid))
        );
        assert_eq!(chain.templates().borrow().txids.as_slice(), &[txid]);
        let b = mine(&chain, now_secs());
        assert_eq!(b.txdata.len(), 2);
        assert_eq!(chain.validate_and_append(&b), BlockVerdict::Accepted);
        assert_eq!(chain.mempool_len(), 0);
    }

    #[test]
    fn reopening_resumes_at_the_stored_tip() {
        let (chain, genesis) = EmbeddedChain::open(params(1000), vec![]).unwrap();
        let b1 = mine(&chain, now_secs());
        chain.validate_and_append(&b1);
        let stored = vec![(0, genesis.unwrap()), (1, b1.clone())];
        let (again, none) = EmbeddedChain::open(params(1000), stored).unwrap();
        assert!(none.is_none());
        assert_eq!(again.tip(), (1, b1.block_hash()));
        assert_eq!(again.templates().borrow().height, 2);
    }
}
