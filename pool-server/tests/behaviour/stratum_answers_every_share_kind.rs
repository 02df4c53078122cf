//! A cpuminer-style client (subscribe, authorize, submit) gets `true` for valid shares and the
//! right Stratum code for every kind of invalid one, and its connection survives bad lines.

use crate::common;

use common::*;
use protocol::{
    ClientRequest, Configure, ErrorCode, Extranonce2, Id, JobId, Message, Ntime, Submit, Target,
    Version, VersionMask, WorkerName,
};
use serde_json::Value;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_shares_are_accepted_and_each_invalid_kind_gets_its_code() {
    let pool = start_pool(&[]).await;
    let mut c = Client::login(pool.stratum()).await;
    let job = c.job.clone().unwrap();
    let en1 = c.extranonce1.clone().unwrap();
    let target = c.difficulty_of(&job).to_target();
    let en2 = Extranonce2::from_counter(1, c.extranonce2_size);

    // Valid.
    let found = mine(&job, &en1, &en2, target, 0);
    assert_eq!(c.submit(found.submit.clone()).await, Ok(Value::Bool(true)));
    // Duplicate (22).
    assert_eq!(
        code(&c.submit(found.submit.clone()).await),
        Some(ErrorCode::Duplicate)
    );
    // Low difficulty (23).
    let low = miss(&job, &en1, &en2, target);
    assert_eq!(code(&c.submit(low).await), Some(ErrorCode::LowDifficulty));
    // Unknown job (21).
    let mut s = found.submit.clone();
    s.job_id = JobId::new("no-such-job");
    assert_eq!(code(&c.submit(s).await), Some(ErrorCode::JobNotFound));
    // Unauthorized worker (24).
    let mut s = mine(&job, &en1, &en2, target, found.submit.nonce.0 + 1).submit;
    s.worker = WorkerName::new("mallory.rig");
    assert_eq!(code(&c.submit(s).await), Some(ErrorCode::Unauthorized));
    // Wrong extranonce2 length (20).
    let mut s = found.submit.clone();
    s.extranonce2 = Extranonce2(vec![0; 3]);
    let r = c.submit(s).await;
    assert_eq!(code(&r), Some(ErrorCode::Other));
    assert!(r.unwrap_err().message.contains("extranonce2"));
    // ntime before the job's, and more than two hours ahead (20).
    for ntime in [job.ntime.0 - 1, job.ntime.0 + 3 * 3600] {
        let mut s = found.submit.clone();
        s.ntime = Ntime(ntime);
        let r = c.submit(s).await;
        assert_eq!(r.as_ref().unwrap_err().message, "ntime out of range");
    }
    // Version bits without negotiation (20).
    let mut s = found.submit.clone();
    s.version_bits = Some(Version(0x0000_2000));
    assert_eq!(code(&c.submit(s).await), Some(ErrorCode::Other));
    // Malformed hex in a submit (20), then the connection still works.
    c.send_raw(r#"{"id":90,"method":"mining.submit","params":["alice.rig1","1","zz","5e148a8c","00000000"]}"#)
        .await;
    assert_eq!(
        code(&c.response(&protocol::Id::number(90)).await),
        Some(ErrorCode::Other)
    );
    // A line that is not JSON gets error 20 with a null id.
    c.send_raw("this is not json").await;
    assert_eq!(
        code(&c.response(&protocol::Id::Null).await),
        Some(ErrorCode::Other)
    );
    // Unknown method (20).
    c.send_raw(r#"{"id":91,"method":"mining.bogus_method","params":[]}"#)
        .await;
    let r = c.response(&protocol::Id::number(91)).await;
    let e = r.unwrap_err();
    assert_eq!(e.message, "Unknown method", "the name is not echoed");
    // A stock miner's extension we do not implement: answered, no strike.
    c.send_raw(r#"{"id":92,"method":"mining.get_transactions","params":[]}"#)
        .await;
    let r = c.response(&protocol::Id::number(92)).await;
    assert!(r.unwrap_err().message.contains("Not supported"));
    // Still alive: another valid share.
    let more = mine(
        &job,
        &en1,
        &Extranonce2::from_counter(2, c.extranonce2_size),
        target,
        0,
    );
    assert_eq!(c.submit(more.submit).await, Ok(Value::Bool(true)));

    let pool_api = pool.get("/api/pool").await;
    assert_eq!(pool_api["accepted"], 2);
    pool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_before_subscribe_is_not_subscribed() {
    let pool = start_pool(&[]).await;
    let mut c = Client::connect(pool.stratum()).await;
    let r = c
        .submit(Submit {
            worker: WorkerName::new(WORKER),
            job_id: JobId::new("1"),
            extranonce2: Extranonce2(vec![0; 8]),
            ntime: Ntime(0),
            nonce: protocol::Nonce(0),
            version_bits: None,
        })
        .await;
    assert_eq!(code(&r), Some(ErrorCode::NotSubscribed));
    // Authorizing an account that is neither an address nor allowed by the pattern (24).
    let mut c = Client::connect(pool.stratum()).await;
    c.subscribe().await;
    assert_eq!(
        code(&c.authorize("bad name with spaces").await),
        Some(ErrorCode::Unauthorized)
    );
    pool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_rolling_within_the_negotiated_mask_is_accepted() {
    let pool = start_pool(&[]).await;
    let mut c = Client::connect(pool.stratum()).await;
    let r = c
        .request(ClientRequest::Configure(Configure::version_rolling(
            VersionMask(0xffff_ffff),
            2,
        )))
        .await
        .unwrap();
    assert_eq!(r["version-rolling"], true);
    assert_eq!(r["version-rolling.mask"], "1fffe000");
    c.subscribe().await;
    c.authorize(WORKER).await.unwrap();
    let job = c.wait_job().await;
    let en1 = c.extranonce1.clone().unwrap();
    let en2 = Extranonce2::from_counter(7, c.extranonce2_size);
    let target = c.difficulty_of(&job).to_target();
    let bits = Version(0x0123_4000 & 0x1fffe000);
    let rolled = job.version.rolled(bits, VersionMask(0x1fffe000));
    let mut header = job.header(&en1, &en2, job.ntime, protocol::Nonce(0), rolled);
    let nonce = (0..u32::MAX)
        .find(|n| {
            header.nonce = *n;
            target.is_met_by(&protocol::header_hash(&header))
        })
        .unwrap();
    let share = Submit {
        worker: WorkerName::new(WORKER),
        job_id: job.job_id.clone(),
        extranonce2: en2.clone(),
        ntime: job.ntime,
        nonce: protocol::Nonce(nonce),
        version_bits: Some(bits),
    };
    assert_eq!(c.submit(share.clone()).await, Ok(Value::Bool(true)));
    // Bits outside the mask are refused.
    let mut bad = share;
    bad.version_bits = Some(Version(0x0000_0001));
    assert_eq!(code(&c.submit(bad).await), Some(ErrorCode::Other));
    let _ = Target::MAX;
    pool.stop().await;
}

/// A miner that pipelines (cgminer writes its queued shares back to back) gets every answer,
/// in order, even when its lines arrive in one read and are answered in one write; and one
/// that half-closes right after its last line still gets them all before the pool closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_submits_are_answered_in_order_even_after_a_half_close() {
    let pool = start_pool(&[]).await;
    let mut c = Client::login(pool.stratum()).await;
    let job = c.job.clone().unwrap();
    let en1 = c.extranonce1.clone().unwrap();
    let target = c.difficulty_of(&job).to_target();
    let mut burst = String::new();
    let mut want = Vec::new();
    let mut last = None;
    // More than one read buffer's worth (512 bytes) and a duplicate at the end.
    for i in 0..12u64 {
        let en2 = Extranonce2::from_counter(i + 1, c.extranonce2_size);
        let found = mine(&job, &en1, &en2, target, 0);
        last = Some(found.submit.clone());
        let call = ClientRequest::Submit(found.submit).to_call(Id::number(100 + i));
        burst.push_str(&Message::Call(call).to_json());
        burst.push('\n');
        want.push((100 + i, true));
    }
    let dup = ClientRequest::Submit(last.unwrap()).to_call(Id::number(200));
    burst.push_str(&Message::Call(dup).to_json());
    want.push((200, false));
    c.send_raw(&burst).await;
    c.close_write().await;
    let mut got = Vec::new();
    while let Some(m) = c.read(Duration::from_secs(10)).await {
        if let Message::Response(r) = m {
            got.push((r.id.as_u64().unwrap(), r.outcome == Ok(Value::Bool(true))));
        }
    }
    assert_eq!(got, want, "every answer, in order, before the pool closed");
}
