//! Every value the numeric flags take is either refused at start, with the flag named, or
//! runs: a property test draws values at and past the edges of the flags that feed clocks,
//! timers, vardiff and the line codec, and for each value the pool either refuses to start or
//! serves one whole session (subscribe, authorize, a job, an accepted share) without a panic.

use std::sync::Arc;

use clap::Parser;
use pool_server::config::Config;
use proptest::prelude::*;
use proptest::test_runner::{Config as Cases, TestRunner};

use crate::common::*;

/// Flags, each with values at and past its edges.
const FLAGS: &[(&str, &[&str])] = &[
    (
        "--vardiff-target",
        &["1ms", "49ms", "50ms", "100ms", "3s", "1d", "36500d"],
    ),
    (
        "--vardiff-retarget",
        &["1ms", "10ms", "49ms", "99ms", "100ms", "30s", "36500d"],
    ),
    (
        "--vardiff-variance",
        &["0", "0.99", "1", "-1", "NaN", "inf"],
    ),
    ("--vardiff-min", &["1e-300", "0.000001", "0", "-1"]),
    ("--vardiff-max", &["1e-12", "0.001", "1e300", "inf"]),
    ("--start-difficulty", &["1e-300", "0.00001", "-1"]),
    (
        "--job-refresh",
        &[
            "1ms",
            "99ms",
            "100ms",
            "1s",
            "36500d",
            "36501d",
            "99999999999d",
        ],
    ),
    ("--idle-timeout", &["1s", "36500d", "1e30s"]),
    ("--auth-timeout", &["2s", "36500d", "1e30s"]),
    ("--reissue-grace", &["0", "1ms", "36500d"]),
    ("--resume-window", &["0", "1ms", "36500d"]),
    ("--ban-duration", &["1ms", "36500d"]),
    ("--ban-threshold", &["0", "1", "4294967295"]),
    (
        "--max-line",
        &["0", "1", "1023", "1024", "65536", "18446744073709551615"],
    ),
    ("--max-connections", &["0", "1", "18446744073709551615"]),
    (
        "--max-connections-per-ip",
        &["0", "1", "18446744073709551615"],
    ),
];

/// Start with `flags` (or be refused), then one whole session. `Err` is a refusal's text.
async fn one_session(flags: &[(&str, &str)]) -> Result<(), String> {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut args = base_args(&dir);
    for (f, v) in flags {
        // `--flag=value`, so a negative value is a value, not a flag.
        args.push(format!("{f}={v}"));
    }
    let cfg = Config::try_parse_from(&args).map_err(|e| e.to_string())?;
    cfg.check().map_err(|e| e.to_string())?;
    let running = pool_server::app::start(cfg)
        .await
        .map_err(|e| format!("{e:#}"))?;
    let pool = TestPool { running, dir, args };
    let mut c = Client::login(pool.stratum()).await;
    let (r, _) = c.share(1).await;
    assert!(
        r.is_ok() || code(&r) == Some(protocol::ErrorCode::LowDifficulty),
        "a share under {flags:?}: {r:?}"
    );
    pool.stop().await;
    Ok(())
}

#[test]
fn numeric_flags_are_refused_at_start_or_run_a_whole_session() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let pick = proptest::collection::vec((0..FLAGS.len(), any::<prop::sample::Index>()), 1..4);
    let mut runner = TestRunner::new(Cases {
        cases: 40,
        failure_persistence: None,
        ..Cases::default()
    });
    let (refused, ran) = (std::cell::Cell::new(0), std::cell::Cell::new(0));
    runner
        .run(&pick, |choice| {
            let flags: Vec<(&str, &str)> = choice
                .iter()
                .map(|(f, i)| (FLAGS[*f].0, *i.get(FLAGS[*f].1)))
                .collect();
            match rt.block_on(one_session(&flags)) {
                Ok(()) => ran.set(ran.get() + 1),
                Err(why) => {
                    refused.set(refused.get() + 1);
                    prop_assert!(
                        flags
                            .iter()
                            .any(|(f, _)| why.contains(f.trim_start_matches('-')))
                            || why.contains("invalid value"),
                        "refused without naming the flag: {why}"
                    );
                }
            }
            Ok(())
        })
        .unwrap();
    eprintln!(
        "{} ran a session, {} refused at start",
        ran.get(),
        refused.get()
    );
    assert!(ran.get() > 0 && refused.get() > 0, "both kinds drawn");
    // The edges that once broke a running pool are refused, not run.
    for (flag, value) in [
        ("--vardiff-retarget", "10ms"),
        ("--job-refresh", "99999999999d"),
        ("--job-refresh", "1ms"),
        ("--max-line", "0"),
        ("--max-connections-per-ip", "0"),
    ] {
        let err = rt
            .block_on(one_session(&[(flag, value)]))
            .expect_err("refused");
        assert!(
            err.contains(flag.trim_start_matches('-')),
            "{flag} {value}: {err}"
        );
    }
}
