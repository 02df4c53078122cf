//! Compact nBits decoding and encoding match Bitcoin Core, including its refusal of negative,
//! overflowing and zero targets; difficulty and work conversions are exact where they must be.

use std::time::Duration;

use protocol::{CompactTarget, CompactTargetError, Difficulty, Hashrate, Target};

fn target_hex(bits: u32) -> String {
    hex::encode(
        CompactTarget::from_consensus(bits)
            .to_target()
            .unwrap()
            .to_be_bytes(),
    )
}

#[test]
fn mainnet_pow_limit_0x1d00ffff_is_difficulty_one() {
    assert_eq!(
        target_hex(0x1d00ffff),
        "00000000ffff0000000000000000000000000000000000000000000000000000"
    );
    let t = CompactTarget::from_consensus(0x1d00ffff)
        .to_target()
        .unwrap();
    assert_eq!(t, Target::DIFFICULTY_1);
    assert_eq!(t.difficulty().as_f64(), 1.0);
    assert_eq!(t.to_compact(), CompactTarget::from_consensus(0x1d00ffff));
}

#[test]
fn regtest_pow_limit_0x207fffff() {
    assert_eq!(
        target_hex(0x207fffff),
        "7fffff0000000000000000000000000000000000000000000000000000000000"
    );
    let t = CompactTarget::from_consensus(0x207fffff)
        .to_target()
        .unwrap();
    assert_eq!(t.to_compact().to_consensus(), 0x207fffff);
}

#[test]
fn negative_compact_is_refused() {
    assert_eq!(
        CompactTarget::from_consensus(0x04923456).to_target(),
        Err(CompactTargetError::Negative(0x04923456))
    );
    assert_eq!(
        CompactTarget::from_consensus(0x01fedcba).to_target(),
        Err(CompactTargetError::Negative(0x01fedcba))
    );
}

#[test]
fn overflowing_compact_is_refused() {
    assert_eq!(
        CompactTarget::from_consensus(0xff123456).to_target(),
        Err(CompactTargetError::Overflow(0xff123456))
    );
    // Core's boundary cases: size 33 with a 2-byte word, size 34 with a 1-byte word.
    assert!(matches!(
        CompactTarget::from_consensus(0x21010000).to_target(),
        Err(CompactTargetError::Overflow(_))
    ));
    assert!(CompactTarget::from_consensus(0x2100ff00)
        .to_target()
        .is_ok());
    assert!(matches!(
        CompactTarget::from_consensus(0x22000100).to_target(),
        Err(CompactTargetError::Overflow(_))
    ));
}

#[test]
fn zero_compact_is_refused() {
    for bits in [
        0x00000000, 0x01003456, 0x02000056, 0x03000000, 0x04000000, 0x00923456,
    ] {
        assert_eq!(
            CompactTarget::from_consensus(bits).to_target(),
            Err(CompactTargetError::Zero(bits)),
            "{bits:#x}"
        );
    }
}

#[test]
fn core_set_compact_vectors_round_trip() {
    // (nBits, GetCompact after SetCompact) from Bitcoin Core's arith_uint256 tests.
    for (bits, back) in [
        (0x01123456u32, 0x01120000u32),
        (0x02123456, 0x02123400),
        (0x03123456, 0x03123456),
        (0x04123456, 0x04123456),
        (0x05009234, 0x05009234),
        (0x20123456, 0x20123456),
    ] {
        let t = CompactTarget::from_consensus(bits).to_target().unwrap();
        assert_eq!(t.to_compact().to_consensus(), back, "{bits:#x}");
    }
    assert_eq!(target_hex(0x01123456).trim_start_matches('0'), "12");
    assert_eq!(target_hex(0x05009234).trim_start_matches('0'), "92340000");
}

#[test]
fn difficulty_to_share_target_is_exact() {
    let t = Difficulty::new(2.0).unwrap().to_target();
    assert_eq!(
        hex::encode(t.to_be_bytes()),
        "000000007fff8000000000000000000000000000000000000000000000000000"
    );
    let t = Difficulty::new(0.5).unwrap().to_target();
    assert_eq!(
        hex::encode(t.to_be_bytes()),
        "00000001fffe0000000000000000000000000000000000000000000000000000"
    );
    // Tiny difficulties saturate rather than wrap.
    assert_eq!(Difficulty::new(1e-80).unwrap().to_target(), Target::MAX);
    for d in [0.001, 1.0, 3.0, 1024.0, 65536.5, 1e12] {
        let back = Difficulty::new(d)
            .unwrap()
            .to_target()
            .difficulty()
            .as_f64();
        assert!((back - d).abs() / d < 1e-9, "{d} -> {back}");
    }
}

#[test]
fn invalid_difficulties_are_refused() {
    for d in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(Difficulty::new(d).is_err(), "{d}");
    }
    assert!("abc".parse::<Difficulty>().is_err());
    assert_eq!("16".parse::<Difficulty>().unwrap().as_f64(), 16.0);
}

#[test]
fn work_of_difficulty_one_is_about_two_to_the_32() {
    // GetBlockProof(0x1d00ffff) = 0x100010001
    let w = Target::DIFFICULTY_1.to_work();
    assert_eq!(w.to_f64(), 4295032833.0);
    assert_eq!(Target::MAX.to_work().to_f64(), 1.0);
    assert_eq!((w + w).to_f64(), 2.0 * 4295032833.0);
}

#[test]
fn hashrate_from_share_difficulty_sum() {
    // 600 difficulty-1 shares in 600 s = 2^32 H/s.
    let h = Hashrate::from_shares(600.0, Duration::from_secs(600));
    assert_eq!(h.0, 4_294_967_296.0);
    assert_eq!(h.to_string(), "4.29 GH/s");
    assert_eq!(Hashrate::from_shares(1.0, Duration::ZERO).0, 0.0);
}

#[test]
fn retarget_scaling_matches_core_arithmetic() {
    // Block 32256's retarget: 0x1d00ffff (Core pow_tests get_next_work: times 1261130161..1262152739) -> 0x1d00d86a.
    let old = CompactTarget::from_consensus(0x1d00ffff)
        .to_target()
        .unwrap();
    let new = old.scaled(1_262_152_739 - 1_261_130_161, 1_209_600);
    assert_eq!(new.to_compact().to_consensus(), 0x1d00d86a);
    assert_eq!(Target::MAX.scaled(4, 1), Target::MAX);
    assert_eq!(old.scaled(1, 1), old);
}
