//! Every Stratum V1 message type survives JSON both ways, and the lines real miners send
//! (cpuminer, cgminer, bmminer/ASIC firmware, NiceHash-style clients) parse as intended.

use protocol::bitcoin::hashes::Hash;
use protocol::bitcoin::{BlockHash, TxMerkleNode};
use protocol::{
    Call, ClientRequest, CompactTarget, ConfigureResult, Difficulty, ErrorCode, Extranonce1,
    Extranonce2, Id, JobId, Message, Nonce, Notify, Ntime, ParamsError, PrevHash,
    ServerNotification, StratumError, Submit, SubscribeResult, SubscriptionId, Version,
    VersionMask, WorkerName,
};
use serde_json::json;

fn call(line: &str) -> Call {
    match Message::from_json(line).unwrap() {
        Message::Call(c) => c,
        other => panic!("not a call: {other:?}"),
    }
}

fn client(line: &str) -> ClientRequest {
    ClientRequest::from_call(&call(line)).unwrap()
}

/// Through JSON text and back: the typed value and the call are both unchanged.
fn round_trip_client(req: ClientRequest) {
    let c = req.to_call(Id::number(9));
    let line = Message::Call(c.clone()).to_json();
    let back = call(&line);
    assert_eq!(back, c);
    assert_eq!(ClientRequest::from_call(&back).unwrap(), req);
}

fn round_trip_server(n: ServerNotification) {
    let line = Message::Call(n.to_call()).to_json();
    let back = call(&line);
    assert!(back.id.is_null());
    assert_eq!(ServerNotification::from_call(&back).unwrap(), n);
}

#[test]
fn cpuminer_lines_parse() {
    assert_eq!(
        client(r#"{"id": 1, "method": "mining.subscribe", "params": ["cpuminer/2.5.1"]}"#),
        ClientRequest::Subscribe {
            user_agent: Some("cpuminer/2.5.1".into()),
            resume: None
        }
    );
    assert_eq!(
        client(r#"{"id": 2, "method": "mining.authorize", "params": ["alice.rig1", "x"]}"#),
        ClientRequest::Authorize {
            worker: WorkerName::new("alice.rig1"),
            password: Some("x".into())
        }
    );
    let ClientRequest::Submit(s) = client(
        r#"{"method": "mining.submit", "params": ["alice.rig1", "bf", "00000001", "504e86ed", "b2957c02"], "id":4}"#,
    ) else {
        panic!()
    };
    assert_eq!(s.job_id, JobId::new("bf"));
    assert_eq!(s.extranonce2, Extranonce2(vec![0, 0, 0, 1]));
    assert_eq!(s.ntime, Ntime(0x504e86ed));
    assert_eq!(s.nonce, Nonce(0xb2957c02));
    assert_eq!(s.version_bits, None);
}

#[test]
fn cgminer_and_asic_lines_parse() {
    // cgminer subscribes with id 0 and sometimes resumes a session id.
    assert_eq!(
        client(
            r#"{"id": 0, "method": "mining.subscribe", "params": ["cgminer/4.11.1", "08000002"]}"#
        ),
        ClientRequest::Subscribe {
            user_agent: Some("cgminer/4.11.1".into()),
            resume: SubscriptionId::parse("08000002")
        }
    );
    // bmminer/ASIC firmware: configure version rolling, then 6-parameter submits.
    let ClientRequest::Configure(c) = client(
        r#"{"id": 1, "method": "mining.configure", "params": [["version-rolling"], {"version-rolling.mask": "1FFFE000", "version-rolling.min-bit-count": 2}]}"#,
    ) else {
        panic!()
    };
    let vr = c.version_rolling_request().unwrap().unwrap();
    assert_eq!(vr.mask, VersionMask(0x1fffe000));
    assert_eq!(vr.min_bit_count, 2);
    let ClientRequest::Submit(s) = client(
        r#"{"params": ["w1", "6a1f", "0000000000000000", "5E148A8C", "A0B1C2D3", "00a4e000"], "id": 7, "method": "mining.submit"}"#,
    ) else {
        panic!()
    };
    assert_eq!(s.version_bits, Some(Version(0x00a4e000)));
    assert_eq!(s.ntime, Ntime(0x5e148a8c));
    // Some firmware sends job ids as numbers and extra trailing params.
    let ClientRequest::Submit(s) = client(
        r#"{"params": ["w1", 12, "00000000", "5e148a8c", "a0b1c2d3", null, "extra"], "id": "8", "method": "mining.submit"}"#,
    ) else {
        panic!()
    };
    assert_eq!(s.job_id, JobId::new("12"));
    assert_eq!(
        client(r#"{"id": 3, "method": "mining.suggest_difficulty", "params": [512]}"#),
        ClientRequest::SuggestDifficulty(Difficulty::new(512.0).unwrap())
    );
    assert_eq!(
        client(r#"{"id": 3, "method": "mining.suggest_difficulty", "params": ["0.5"]}"#),
        ClientRequest::SuggestDifficulty(Difficulty::new(0.5).unwrap())
    );
    assert_eq!(
        client(r#"{"id": 4, "method": "mining.extranonce.subscribe", "params": []}"#),
        ClientRequest::ExtranonceSubscribe
    );
}

#[test]
fn bad_params_are_typed_errors() {
    let err = |line: &str| ClientRequest::from_call(&call(line)).unwrap_err();
    assert_eq!(
        err(r#"{"id":1,"method":"mining.submit","params":["w","j","00","5e148a8c","a0b1c2"]}"#),
        ParamsError::HexLength {
            name: "nonce",
            expected: 8,
            got: 6
        }
    );
    assert_eq!(
        err(r#"{"id":1,"method":"mining.submit","params":["w","j"]}"#),
        ParamsError::Missing {
            index: 2,
            name: "extranonce2"
        }
    );
    assert!(matches!(
        err(r#"{"id":1,"method":"mining.get_transactions","params":[]}"#),
        ParamsError::UnknownMethod(m) if m == "mining.get_transactions"
    ));
    assert!(matches!(
        err(r#"{"id":1,"method":"mining.suggest_difficulty","params":[-4]}"#),
        ParamsError::Invalid { .. }
    ));
    assert_eq!(
        err(r#"{"id":1,"method":"mining.submit","params":["w","j","0g","5e148a8c","a0b1c2d3"]}"#)
            .to_stratum()
            .code,
        ErrorCode::Other
    );
}

#[test]
fn every_client_request_round_trips() {
    round_trip_client(ClientRequest::Subscribe {
        user_agent: Some("miner-worker/0.1".into()),
        resume: SubscriptionId::parse("00000000a1b2c3d4"),
    });
    round_trip_client(ClientRequest::Subscribe {
        user_agent: None,
        resume: None,
    });
    round_trip_client(ClientRequest::Authorize {
        worker: WorkerName::new("acct.rig"),
        password: Some("x".into()),
    });
    round_trip_client(ClientRequest::Submit(Submit {
        worker: WorkerName::new("acct.rig"),
        job_id: JobId::new("1f"),
        extranonce2: Extranonce2(vec![0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 1]),
        ntime: Ntime(0x6543_2100),
        nonce: Nonce(0xffff_ffff),
        version_bits: Some(Version(0x1fff_e000)),
    }));
    round_trip_client(ClientRequest::Configure(
        protocol::Configure::version_rolling(VersionMask::BIP320, 2),
    ));
    round_trip_client(ClientRequest::SuggestDifficulty(
        Difficulty::new(0.25).unwrap(),
    ));
    round_trip_client(ClientRequest::ExtranonceSubscribe);
}

#[test]
fn every_server_notification_round_trips() {
    round_trip_server(ServerNotification::Notify(Notify {
        job_id: JobId::new("a1"),
        prevhash: PrevHash::from_block_hash(BlockHash::from_byte_array([7; 32])),
        coinb1: protocol::HexBytes(vec![1, 2, 3]),
        coinb2: protocol::HexBytes(vec![4, 5]),
        merkle_branch: vec![TxMerkleNode::from_byte_array([9; 32])],
        version: Version(0x2000_0000),
        nbits: CompactTarget::from_consensus(0x1d00ffff),
        ntime: Ntime(0x5e14_8a8c),
        clean_jobs: true,
    }));
    round_trip_server(ServerNotification::SetDifficulty(
        Difficulty::new(32.0).unwrap(),
    ));
    round_trip_server(ServerNotification::SetExtranonce {
        extranonce1: Extranonce1(vec![0xab; 4]),
        extranonce2_size: 8,
    });
    round_trip_server(ServerNotification::SetVersionMask(VersionMask::BIP320));
    round_trip_server(ServerNotification::Reconnect {
        host: Some("127.0.0.1".into()),
        port: Some(3334),
        wait_secs: Some(5),
    });
    round_trip_server(ServerNotification::Reconnect {
        host: None,
        port: None,
        wait_secs: None,
    });
    round_trip_server(ServerNotification::ShowMessage(
        "maintenance at noon".into(),
    ));
}

#[test]
fn responses_round_trip_with_results_and_error_triples() {
    let sub = SubscribeResult {
        subscriptions: vec![
            ("mining.set_difficulty".into(), "1".into()),
            ("mining.notify".into(), "1".into()),
        ],
        extranonce1: Extranonce1(vec![0x08, 0, 0, 2]),
        extranonce2_size: 8,
    };
    let line = Message::ok(Id::number(1), sub.to_value()).to_json();
    let Message::Response(r) = Message::from_json(&line).unwrap() else {
        panic!()
    };
    assert_eq!(
        SubscribeResult::from_value(&r.outcome.unwrap()).unwrap(),
        sub
    );

    // The single-pair form some pools send.
    let v = json!([
        ["mining.notify", "ae6812eb4cd7735a302a8a9dd95cf71f"],
        "f800880e",
        4
    ]);
    let s = SubscribeResult::from_value(&v).unwrap();
    assert_eq!(s.extranonce2_size, 4);
    assert_eq!(s.subscriptions.len(), 1);

    let cfg = ConfigureResult {
        version_rolling: Some(VersionMask(0x1fffe000)),
        other: Default::default(),
    };
    assert_eq!(ConfigureResult::from_value(&cfg.to_value()).unwrap(), cfg);
    assert_eq!(
        cfg.to_value(),
        json!({"version-rolling": true, "version-rolling.mask": "1fffe000"})
    );

    let e = Message::err(
        Id::String("x".into()),
        StratumError::new(ErrorCode::Duplicate, "Duplicate share"),
    );
    assert_eq!(
        e.to_value(),
        json!({"id": "x", "result": null, "error": [22, "Duplicate share", null]})
    );
    assert_eq!(Message::from_json(&e.to_json()).unwrap(), e);
    let ok = Message::ok(Id::number(4), json!(true));
    assert_eq!(ok.to_json(), r#"{"error":null,"id":4,"result":true}"#);
}

/// Found by the messages fuzzer: a port written as a float was dropped, and a reconnect with a
/// host but no wait came back with a wait of 0.
#[test]
fn reconnect_with_a_float_port_and_no_wait_keeps_both() {
    let n = ServerNotification::from_call(&call(
        r#"{"id":null,"method":"client.reconnect","params":["127.0.0.1",3337.0]}"#,
    ))
    .unwrap();
    assert_eq!(
        n,
        ServerNotification::Reconnect {
            host: Some("127.0.0.1".into()),
            port: Some(3337),
            wait_secs: None,
        }
    );
    round_trip_server(n);
    round_trip_server(ServerNotification::Reconnect {
        host: Some("pool.example".into()),
        port: None,
        wait_secs: None,
    });
}

/// Found by the messages fuzzer: an authorize without a password came back with `Some("")`.
#[test]
fn authorize_without_a_password_round_trips() {
    let req = client(r#"{"id": 2, "method": "mining.authorize", "params": ["x"]}"#);
    assert_eq!(
        req,
        ClientRequest::Authorize {
            worker: WorkerName::new("x"),
            password: None,
        }
    );
    round_trip_client(req);
}

/// Found by the messages fuzzer: a number beyond u64 was read 1 ulp off, so the line we
/// wrote back was not the line we read (serde_json's exact float parsing is on now).
#[test]
fn numbers_are_read_exactly_and_written_back_unchanged() {
    let line =
        r#"{"id":7,"method":"mining.set_difficulty","params":[9060909090909090909090909090909]}"#;
    let m = Message::from_json(line).unwrap();
    assert_eq!(Message::from_json(&m.to_json()).unwrap(), m);
    let Message::Call(c) = m else { panic!() };
    assert_eq!(c.params[0].as_f64(), Some(9.060909090909091e30));
}

#[test]
fn a_resume_id_is_short_printable_text_or_nothing() {
    let sub = |p: &str| {
        client(&format!(
            r#"{{"id":1,"method":"mining.subscribe","params":{p}}}"#
        ))
    };
    // pooler cpuminer and cgminer send back the mining.notify subscription id.
    assert_eq!(
        sub(r#"["cpuminer/2.5.1", "00000000deadbeef"]"#),
        ClientRequest::Subscribe {
            user_agent: Some("cpuminer/2.5.1".into()),
            resume: SubscriptionId::parse("00000000deadbeef"),
        }
    );
    for junk in [r#""""#, r#""a\u0000b""#, r#""a b""#, "42", "null"] {
        let ClientRequest::Subscribe { resume, .. } = sub(&format!(r#"["m/1", {junk}]"#)) else {
            panic!()
        };
        assert_eq!(resume, None, "{junk}");
    }
    let long = "a".repeat(SubscriptionId::MAX_LEN + 1);
    let ClientRequest::Subscribe { resume, .. } = sub(&format!(r#"["m/1", "{long}"]"#)) else {
        panic!()
    };
    assert_eq!(resume, None);
}

/// Sizes a hostile pool could use to make a miner allocate without bound are refused at the
/// parse, with the field named, before any value reaches an allocation.
#[test]
fn extranonce_sizes_beyond_the_bounds_are_refused() {
    let subscribe = |en1: &str, size: serde_json::Value| {
        SubscribeResult::from_value(&json!([[["mining.notify", "1"]], en1, size]))
    };
    for size in [
        json!(17),
        json!(1u64 << 40),
        json!(u64::MAX),
        json!(-1),
        json!("4"),
    ] {
        assert!(
            subscribe("00000001", size.clone()).is_err(),
            "subscribe with extranonce2_size {size}"
        );
        let n = call(&format!(
            r#"{{"id":null,"method":"mining.set_extranonce","params":["00",{size}]}}"#
        ));
        assert!(
            ServerNotification::from_call(&n).is_err(),
            "set_extranonce with {size}"
        );
    }
    assert!(matches!(
        subscribe("00", json!(u64::MAX)).unwrap_err(),
        ParamsError::Invalid {
            name: "extranonce2_size",
            ..
        }
    ));
    for size in [0, 4, 8, protocol::MAX_EXTRANONCE2_SIZE] {
        assert_eq!(
            subscribe("0a0b", json!(size)).unwrap().extranonce2_size,
            size
        );
    }
    let long_en1 = "ab".repeat(protocol::MAX_EXTRANONCE1_LEN + 1);
    assert!(matches!(
        subscribe(&long_en1, json!(4)).unwrap_err(),
        ParamsError::Invalid {
            name: "extranonce1",
            ..
        }
    ));
}
