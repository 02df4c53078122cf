//! Bitcoin Core's `getblocktemplate` shape, from a fixture in Core's format (Core itself is not
//! in the registries here): a segwit transaction and `default_witness_commitment`. The pool's
//! template, coinbase and block must carry the commitment output and the witness reserved
//! value, so the assembled block's witness commitment verifies.

use std::sync::Arc;

use pool_server::chain::block_template::BlockTemplate;
use pool_server::chain::coinbase::CoinbaseBuilder;
use pool_server::jobs::{JobBuilder, JobIds};
use protocol::{Extranonce1, Extranonce2, Nonce};

#[test]
fn core_segwit_template_becomes_a_block_with_a_valid_witness_commitment() {
    let raw = include_str!("../fixtures/core_segwit_template.json");
    let gbt: BlockTemplate = serde_json::from_str(raw).unwrap();
    let t = Arc::new(gbt.to_template().unwrap());
    assert_eq!(t.height, 871_234);
    assert_eq!(t.transactions.len(), 1);
    assert!(t.witness_commitment.is_some());
    assert_eq!(t.coinbase_value.to_sat(), 312_502_500);

    let coinbase = CoinbaseBuilder::new(
        protocol::bitcoin::ScriptBuf::from_bytes(vec![0x51]),
        "/t/",
        12,
    );
    let job = JobBuilder::new(coinbase, JobIds::default()).build(&t);
    assert_eq!(
        job.notify.merkle_branch.len(),
        1,
        "the branch covers the template's transaction"
    );
    let en1 = Extranonce1(vec![1, 2, 3, 4]);
    let en2 = Extranonce2(vec![0; 8]);
    let header = job
        .notify
        .header(&en1, &en2, job.notify.ntime, Nonce(0), job.notify.version);
    let block = job.assemble_block(&en1, &en2, header);

    let cb = &block.txdata[0];
    assert_eq!(cb.output.len(), 2, "payout and witness commitment");
    assert_eq!(
        &cb.output[1].script_pubkey,
        t.witness_commitment.as_ref().unwrap()
    );
    assert_eq!(cb.output[1].value.to_sat(), 0);
    assert_eq!(cb.input[0].witness.len(), 1, "witness reserved value");
    assert!(
        block.check_merkle_root(),
        "header merkle root from the Stratum branch"
    );
    assert!(
        block.check_witness_commitment(),
        "the node's commitment matches our block"
    );
    // A wrong commitment would not verify.
    let mut broken = block.clone();
    broken.txdata[1].input[0].witness = protocol::bitcoin::Witness::from_slice(&[[9u8; 3]]);
    assert!(!broken.check_witness_commitment());
}

#[test]
fn templates_from_nodes_without_segwit_carry_no_commitment() {
    let raw = include_str!("../fixtures/core_segwit_template.json")
        .replace("\"default_witness_commitment\"", "\"unused\"");
    let gbt: BlockTemplate = serde_json::from_str(&raw).unwrap();
    assert!(gbt.to_template().unwrap().witness_commitment.is_none());
    // A transaction whose data does not hash to its txid is refused.
    let mut v: serde_json::Value =
        serde_json::from_str(include_str!("../fixtures/core_segwit_template.json")).unwrap();
    v["transactions"][0]["txid"] = serde_json::json!("11".repeat(32));
    let gbt: BlockTemplate = serde_json::from_value(v).unwrap();
    assert!(gbt
        .to_template()
        .unwrap_err()
        .to_string()
        .contains("hashes to"));
}
