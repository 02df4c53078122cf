//! Headers rebuilt from their fields, and from Stratum jobs, hash to the real mainnet blocks.
//! Any wrong byte order (prevhash words, merkle root, 32-bit fields) breaks these.

use protocol::bitcoin::block::{Header, Version as BlockVersion};
use protocol::bitcoin::hashes::Hash;
use protocol::bitcoin::{BlockHash, TxMerkleNode, Txid};
use protocol::{
    header_bytes, header_hash, merkle_branch_for_coinbase, merkle_root_from_branch, ClientRequest,
    CompactTarget, Extranonce1, Message, Notify, ServerNotification, Target,
};

fn hash(s: &str) -> BlockHash {
    s.parse().unwrap()
}

fn header(prev: &str, merkle: &str, time: u32, bits: u32, nonce: u32) -> Header {
    Header {
        version: BlockVersion::from_consensus(1),
        prev_blockhash: hash(prev),
        merkle_root: merkle.parse().unwrap(),
        time,
        bits: CompactTarget::from_consensus(bits).into(),
        nonce,
    }
}

const GENESIS_HASH: &str = "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f";

#[test]
fn genesis_header_hashes_to_genesis() {
    let h = header(
        "0000000000000000000000000000000000000000000000000000000000000000",
        "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b",
        1231006505,
        0x1d00ffff,
        2083236893,
    );
    assert_eq!(header_hash(&h), hash(GENESIS_HASH));
    assert_eq!(header_bytes(&h).len(), 80);
}

#[test]
fn block_125552_header_hashes_to_block_125552() {
    let h = header(
        "00000000000008a3a41b85b8b29ad444def299fee21793cd8b9e567eab02cd81",
        "2b12fcf1b09288fcaff797d71e950e71ae42b91e8bdb2304758dfcffc2b620e3",
        1305998791,
        0x1a44b9f2,
        2504433986,
    );
    let got = header_hash(&h);
    assert_eq!(
        got,
        hash("00000000000000001e8d6829a8a21adc5d38d0a473b144b6765798e61f98bd1d")
    );
    // The block meets its own target and not a 2^16 times harder one.
    let target = CompactTarget::from_consensus(0x1a44b9f2)
        .to_target()
        .unwrap();
    assert!(target.is_met_by(&got));
    assert!(!CompactTarget::from_consensus(0x1744b9f2)
        .to_target()
        .unwrap()
        .is_met_by(&got));
}

#[test]
fn block_170_merkle_root_comes_from_coinbase_txid_and_branch() {
    // Block 170: the coinbase and the first bitcoin transaction ever sent.
    let coinbase: Txid = "b1fea52486ce0c62bb442b530a3f0132b826c74e473d1f2c220bfa78111c5082"
        .parse()
        .unwrap();
    let spend: Txid = "f4184fc596403b9d638783cf57adfe4c75c605f6356fbc91338530e9831e9e16"
        .parse()
        .unwrap();
    let branch = merkle_branch_for_coinbase(&[spend]);
    assert_eq!(
        branch,
        vec![TxMerkleNode::from_byte_array(spend.to_byte_array())]
    );
    let root = merkle_root_from_branch(coinbase, &branch);
    assert_eq!(
        root,
        "7dac2c5666815c17a3b36427de37bb9d2e2c5ccec3f8633eb91a4205cb4c10ff"
            .parse()
            .unwrap()
    );
    let h = Header {
        merkle_root: root,
        ..header(
            "000000002a22cfee1f2c846adbd12b3e183d4f97683f85dad08a79780a84bd55",
            "7dac2c5666815c17a3b36427de37bb9d2e2c5ccec3f8633eb91a4205cb4c10ff",
            1231731025,
            0x1d00ffff,
            1889418792,
        )
    };
    assert_eq!(
        header_hash(&h),
        hash("00000000d1145790a8694403d4063f323d499e655c83426834d4ce2f8dd4a2ee")
    );
}

/// The genesis block as a pool would have sent it: its real coinbase split around an 8-byte
/// extranonce slot inside the scriptSig, then the submit a miner would have sent back.
#[test]
fn genesis_rebuilt_from_notify_and_submit() {
    let notify_line = r#"{"id":null,"method":"mining.notify","params":["1","0000000000000000000000000000000000000000000000000000000000000000","01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff4d04ffff001d0104","65732030332f4a616e2f32303039204368616e63656c6c6f72206f6e206272696e6b206f66207365636f6e64206261696c6f757420666f722062616e6b73ffffffff0100f2052a01000000434104678afdb0fe5548271967f1a67130b7105cd6a828e03909a67962e0ea1f61deb649f6bc3f4cef38c4f35504e51ec112de5c384df7ba0b8d578a4c702b6bf11d5fac00000000",[],"00000001","1d00ffff","495fab29",true]}"#;
    let submit_line = r#"{"id":4,"method":"mining.submit","params":["satoshi.rig1","1","2054696D","495fab29","7C2BAC1D"]}"#;

    let Message::Call(call) = Message::from_json(notify_line).unwrap() else {
        panic!("notify is a call")
    };
    let ServerNotification::Notify(job) = ServerNotification::from_call(&call).unwrap() else {
        panic!("not a notify")
    };
    let Message::Call(call) = Message::from_json(submit_line).unwrap() else {
        panic!("submit is a call")
    };
    let ClientRequest::Submit(submit) = ClientRequest::from_call(&call).unwrap() else {
        panic!("not a submit")
    };
    let extranonce1 = Extranonce1::from_hex("45546865").unwrap();

    let h = job.header(
        &extranonce1,
        &submit.extranonce2,
        submit.ntime,
        submit.nonce,
        job.version,
    );
    let got = header_hash(&h);
    assert_eq!(got, hash(GENESIS_HASH));
    assert_eq!(
        h.merkle_root,
        "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b"
            .parse()
            .unwrap()
    );
    // 0xffff * 2^208 / genesis hash, computed independently: 2536.4262984453103
    let achieved = Target::achieved_difficulty(&got).as_f64();
    assert!((achieved - 2_536.426_298_445_31).abs() < 1e-6, "{achieved}");
    // Wrong extranonce1 -> different coinbase -> different hash.
    let other = Extranonce1::from_hex("45546866").unwrap();
    assert_ne!(
        header_hash(&job.header(
            &other,
            &submit.extranonce2,
            submit.ntime,
            submit.nonce,
            job.version
        )),
        got
    );
}

#[test]
fn notify_params_round_trip_and_prevhash_is_word_swapped() {
    // A real notify seen from a public testnet pool.
    let line = r#"{"id":null,"method":"mining.notify","params":["4ca","4128bf630f57387b00e25b419d1bb77e667e4036a7d8fee80000015600000000","01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff2503a77614048c8a145e08","122f626974636f696e636c6f75642e6e65742f0000000002062c9c04000000001976a91423e020eacd64acfe093150331d44fdbcc0c7ce0688acc2eb0b00000000001976a91400bf6d61c2a34df5a9ea338fcad188c31bb4a52388ac00000000",[],"20000000","1a02b098","5e148a8c",true]}"#;
    let Message::Call(call) = Message::from_json(line).unwrap() else {
        panic!()
    };
    let ServerNotification::Notify(job) = ServerNotification::from_call(&call).unwrap() else {
        panic!()
    };
    // The wire order swaps each 4-byte word of the header bytes; the block hash as people
    // print it is the full byte reversal of the header bytes.
    assert_eq!(
        job.prevhash.block_hash().to_string(),
        "0000000000000156a7d8fee8667e40369d1bb77e00e25b410f57387b4128bf63"
    );
    assert_eq!(job.nbits, CompactTarget::from_consensus(0x1a02b098));
    assert!(job.clean_jobs);
    assert_eq!(ServerNotification::Notify(job.clone()).to_call(), call);
    let again = Notify::from_params(&job.to_params()).unwrap();
    assert_eq!(again, job);
}
