//! An account named by a Bitcoin address proves it owns the address by signing a message with
//! it: Bitcoin Core's `signmessage` for legacy (P2PKH) addresses, BIP-322's "simple" format
//! (a witness stack, base64) for segwit v0 (P2WPKH) and taproot key-path (P2TR) addresses.
//! The message is a challenge the pool made for that account (see `http/subscriptions.rs`),
//! so a signature seen once cannot be used again.

use std::str::FromStr;

use bitcoin::address::{Address, AddressType, NetworkUnchecked};
use bitcoin::base64::prelude::{Engine as _, BASE64_STANDARD};
use bitcoin::consensus::encode;
use bitcoin::hashes::{sha256, sha256t_hash_newtype, Hash, HashEngine};
use bitcoin::key::{PublicKey, XOnlyPublicKey};
use bitcoin::secp256k1::{Message, Secp256k1};
use bitcoin::sighash::{Prevouts, SighashCache};
use bitcoin::sign_message::{signed_msg_hash, MessageSignature};
use bitcoin::{
    absolute, transaction, Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid,
    Witness,
};

sha256t_hash_newtype! {
    /// BIP-322's tag for the message.
    pub struct Bip322Tag = hash_str("BIP0322-signed-message");
    /// The tagged hash of a message, as BIP-322 signs it.
    #[hash_newtype(forward)]
    pub struct MessageHash(_);
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProofError {
    #[error("not a Bitcoin address")]
    NotAnAddress,
    #[error("this kind of address cannot sign here (legacy P2PKH, P2WPKH and P2TR can)")]
    Unsupported,
    #[error("the signature is not base64 of a signature of this kind")]
    Malformed,
    #[error("the signature does not sign this message with this address")]
    Wrong,
}

/// The BIP-322 hash of `message`.
pub fn message_hash(message: &str) -> MessageHash {
    let mut engine = MessageHash::engine();
    engine.input(message.as_bytes());
    MessageHash::from_engine(engine)
}

/// Whether `signature` signs `message` with `address` (any network's).
pub fn verify(address: &str, message: &str, signature: &str) -> Result<(), ProofError> {
    let address = Address::<NetworkUnchecked>::from_str(address)
        .map_err(|_| ProofError::NotAnAddress)?
        .assume_checked();
    let secp = Secp256k1::verification_only();
    match address.address_type() {
        Some(AddressType::P2pkh) => {
            let sig =
                MessageSignature::from_base64(signature).map_err(|_| ProofError::Malformed)?;
            match sig.is_signed_by_address(&secp, &address, signed_msg_hash(message)) {
                Ok(true) => Ok(()),
                _ => Err(ProofError::Wrong),
            }
        }
        Some(AddressType::P2wpkh) | Some(AddressType::P2tr) => {
            bip322_simple(&address, message, signature)
        }
        _ => Err(ProofError::Unsupported),
    }
}

/// The two virtual transactions of BIP-322: `to_spend` commits to the message and the
/// address's script; `to_sign` spends it with the signature's witness.
fn virtual_transactions(
    script: &ScriptBuf,
    message: &str,
    witness: Witness,
) -> (TxOut, Transaction) {
    let hash = message_hash(message);
    let script_sig = bitcoin::script::Builder::new()
        .push_opcode(bitcoin::opcodes::OP_0)
        .push_slice(hash.to_byte_array())
        .into_script();
    let to_spend = Transaction {
        version: transaction::Version(0),
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint {
                txid: Txid::all_zeros(),
                vout: 0xFFFF_FFFF,
            },
            script_sig,
            sequence: Sequence::ZERO,
            witness: Witness::new(),
        }],
        output: vec![TxOut {
            value: Amount::ZERO,
            script_pubkey: script.clone(),
        }],
    };
    let to_sign = Transaction {
        version: transaction::Version(0),
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint {
                txid: to_spend.compute_txid(),
                vout: 0,
            },
            script_sig: ScriptBuf::new(),
            sequence: Sequence::ZERO,
            witness,
        }],
        output: vec![TxOut {
            value: Amount::ZERO,
            // OP_RETURN alone (new_op_return would push an empty slice after it).
            script_pubkey: bitcoin::script::Builder::new()
                .push_opcode(bitcoin::opcodes::all::OP_RETURN)
                .into_script(),
        }],
    };
    (to_spend.output[0].clone(), to_sign)
}

fn bip322_simple(address: &Address, message: &str, signature: &str) -> Result<(), ProofError> {
    let bytes = BASE64_STANDARD
        .decode(signature.trim())
        .map_err(|_| ProofError::Malformed)?;
    let witness: Witness = encode::deserialize(&bytes).map_err(|_| ProofError::Malformed)?;
    let script = address.script_pubkey();
    let (spent, to_sign) = virtual_transactions(&script, message, witness.clone());
    let secp = Secp256k1::verification_only();
    let mut cache = SighashCache::new(&to_sign);
    if script.is_p2wpkh() {
        let [sig, key] = [witness.nth(0), witness.nth(1)];
        let (Some(sig), Some(key), 2) = (sig, key, witness.len()) else {
            return Err(ProofError::Malformed);
        };
        let sig = bitcoin::ecdsa::Signature::from_slice(sig).map_err(|_| ProofError::Malformed)?;
        let key = PublicKey::from_slice(key).map_err(|_| ProofError::Malformed)?;
        if ScriptBuf::new_p2wpkh(&key.wpubkey_hash().map_err(|_| ProofError::Wrong)?) != script {
            return Err(ProofError::Wrong);
        }
        let sighash = cache
            .p2wpkh_signature_hash(0, &script, Amount::ZERO, sig.sighash_type)
            .map_err(|_| ProofError::Malformed)?;
        let msg = Message::from_digest(sighash.to_byte_array());
        secp.verify_ecdsa(&msg, &sig.signature, &key.inner)
            .map_err(|_| ProofError::Wrong)
    } else {
        let (Some(sig), 1) = (witness.nth(0), witness.len()) else {
            return Err(ProofError::Malformed);
        };
        let sig =
            bitcoin::taproot::Signature::from_slice(sig).map_err(|_| ProofError::Malformed)?;
        let program = &script.as_bytes()[2..];
        let key = XOnlyPublicKey::from_slice(program).map_err(|_| ProofError::Malformed)?;
        let sighash = cache
            .taproot_key_spend_signature_hash(0, &Prevouts::All(&[spent]), sig.sighash_type)
            .map_err(|_| ProofError::Malformed)?;
        let msg = Message::from_digest(sighash.to_byte_array());
        secp.verify_schnorr(&sig.signature, &msg, &key)
            .map_err(|_| ProofError::Wrong)
    }
}

/// How long a challenge may be signed and sent back.
pub const CHALLENGE_SECONDS: i64 = 15 * 60;

/// The message an address account signs to set its key: it names the account, the key (by
/// its digest), when the offer ends, and a tag only this pool-server can make (an HMAC with
/// its `secret`), so the pool keeps no state per challenge and a signature cannot set any
/// other key, nor be used after `expires` (unix seconds).
pub fn challenge(secret: &[u8; 32], account: &str, key_digest: &str, expires: i64) -> String {
    use bitcoin::hashes::hmac::{Hmac, HmacEngine};
    let mut e = HmacEngine::<sha256::Hash>::new(secret);
    e.input(account.as_bytes());
    e.input(&[0]);
    e.input(key_digest.as_bytes());
    e.input(&[0]);
    e.input(&expires.to_be_bytes());
    let tag = Hmac::<sha256::Hash>::from_engine(e);
    let short = &key_digest[..key_digest.len().min(16)];
    format!(
        "Set the alert key of {account} on this pool to the key {short}, until {expires}. {}",
        &tag.to_string()[..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // BIP-322's own test vectors (private key L3VFeEujGtevx9w18HD1fhRbCH67Az2dpCymeRE1SoPK6XQtaN2k).
    const P2WPKH: &str = "bc1q9vza2e8x573nczrlzms0wvx3gsqjx7vavgkx0l";
    const P2TR: &str = "bc1ppv609nr0vr25u07u95waq5lucwfm6tde4nydujnu8npg4q75mr5sxq8lt3";
    const P2PKH: &str = "14vV3aCHBeStb5bkenkNHbe2YAFinYdXgc";

    #[test]
    fn the_message_hash_is_bip322s() {
        assert_eq!(
            message_hash("").to_string(),
            "c90c269c4f8fcbe6880f72a721ddfbf1914268a794cbb21cfafee13770ae19f1"
        );
        assert_eq!(
            message_hash("Hello World").to_string(),
            "f0eb03b1a75ac6d9847f55c624a99169b5dccba2a31f5b23bea77ba270de0a7a"
        );
    }

    #[test]
    fn bip322s_segwit_and_taproot_vectors_verify_and_others_do_not() {
        // The signature Bitcoin Core's util_tests verify for this address and message.
        let hello = "AkgwRQIhAOzyynlqt93lOKJr+wmmxIens//zPzl9tqIOua93wO6MAiBi5n5EyAcPScOjf1lAqIUIQtr3zKNeavYabHyR8eGhowEhAsfxIAMZZEKUPYWI4BruhAQjzFT8FSFSajuFwrDL1Yhy";
        assert_eq!(verify(P2WPKH, "Hello World", hello), Ok(()));
        assert_eq!(verify(P2WPKH, "Hello world", hello), Err(ProofError::Wrong));
        assert_eq!(verify(P2WPKH, "", hello), Err(ProofError::Wrong));
        let taproot = "AUHd69PrJQEv+oKTfZ8l+WROBHuy9HKrbFCJu7U1iK2iiEy1vMU5EfMtjc+VSHM7aU0SDbak5IUZRVno2P5mjSafAQ==";
        assert_eq!(verify(P2TR, "Hello World", taproot), Ok(()));
        assert_eq!(verify(P2TR, "Hello", taproot), Err(ProofError::Wrong));
        assert_eq!(
            verify(P2TR, "Hello World", "AAAA"),
            Err(ProofError::Malformed)
        );
    }

    #[test]
    fn a_challenge_binds_the_account_the_key_and_the_end() {
        let secret = [7u8; 32];
        let m = challenge(&secret, "acct", "00112233445566778899", 100);
        assert!(m.starts_with(
            "Set the alert key of acct on this pool to the key 0011223344556677, until 100. "
        ));
        assert_eq!(m, challenge(&secret, "acct", "00112233445566778899", 100));
        assert_ne!(m, challenge(&secret, "acct", "00112233445566778800", 100));
        assert_ne!(m, challenge(&secret, "acct", "00112233445566778899", 101));
        assert_ne!(
            m,
            challenge(&[8u8; 32], "acct", "00112233445566778899", 100)
        );
    }

    #[test]
    fn legacy_signmessage_verifies_for_its_address_only() {
        let sig = "IOW2xi+ebJLeBtr674l4QH76dqDoVjLV80R9EFKFQX5rBrlCXPIZaYs8Yuayg0ZqjyiCbLy9pzZIS7JWT65/nsU=";
        assert_eq!(verify(P2PKH, "Hello World", sig), Ok(()));
        assert_eq!(verify(P2PKH, "Hello World!", sig), Err(ProofError::Wrong));
        assert_eq!(
            verify("1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2", "Hello World", sig),
            Err(ProofError::Wrong)
        );
        assert_eq!(verify("alice", "x", sig), Err(ProofError::NotAnAddress));
        assert_eq!(
            verify(P2PKH, "x", "not base64!"),
            Err(ProofError::Malformed)
        );
    }
}
