//! The binary at the command line: `--help` and `--version` print and exit 0; a bad value
//! (a zero interval, an empty API token, from a flag or the environment) is refused at start
//! with the flag named, before anything listens.

use std::process::{Command, Output};

/// The pool binary on loopback, its files in `dir`, listening on Stratum `port` (0: any).
fn pool_command(dir: &tempfile::TempDir, port: u16) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pool-server"));
    c.args([
        "--stratum",
        &format!("127.0.0.1:{port}"),
        "--http",
        "127.0.0.1:0",
        "--database-url",
        &format!("sqlite://{}/p.sqlite", dir.path().display()),
        "--spool-dir",
        &format!("{}/spool", dir.path().display()),
    ]);
    c
}

fn pool(args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let mut c = pool_command(&dir, 0);
    c.args(args).env("RUST_BACKTRACE", "0");
    for (k, v) in env {
        c.env(k, v);
    }
    let child = c
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    drop(dir);
    out
}

#[test]
fn help_and_version_exit_zero() {
    let help = pool(&["--help"], &[]);
    assert_eq!(help.status.code(), Some(0), "{help:?}");
    assert!(String::from_utf8_lossy(&help.stdout).contains("Usage:"));
    assert!(
        help.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&help.stderr)
    );
    let version = pool(&["--version"], &[]);
    assert_eq!(version.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("pool-server "));
}

#[test]
fn zero_intervals_are_refused_before_start() {
    for flag in ["--vardiff-retarget", "--job-refresh"] {
        let out = pool(&[flag, "0"], &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag}: {err}");
        assert!(
            err.contains(flag) && err.contains("longer than zero"),
            "{err}"
        );
    }
}

#[test]
fn an_empty_api_token_is_refused_from_flag_or_environment() {
    for (args, env) in [
        (&["--api-token", ""][..], &[][..]),
        (&[][..], &[("POOL_API_TOKEN", "")][..]),
    ] {
        let out = pool(args, env);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "started with an empty token");
        assert!(err.contains("api-token"), "{err}");
        assert!(!err.contains("listening"), "{err}");
    }
}

/// A refused worker name carrying a newline, an escape sequence and a bidi control cannot
/// write a line of its own into the text log.
#[test]
fn a_worker_name_cannot_forge_a_log_line() {
    use std::io::{BufRead, BufReader, Write};
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = pool_command(&dir, port)
        .args(["--log", "info"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        if line.unwrap().contains("Stratum listening") {
            break;
        }
    }
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let forged = "x\\n2026-11-30T00:00:00.000000Z  INFO share meets the network target block=00\\u001b[0m\\u202e";
    writeln!(
        s,
        r#"{{"id":1,"method":"mining.authorize","params":["{forged}","x"]}}"#
    )
    .unwrap();
    let mut answer = String::new();
    BufReader::new(s.try_clone().unwrap())
        .read_line(&mut answer)
        .unwrap();
    assert!(answer.contains("\"error\""), "{answer}");
    let refused = lines
        .by_ref()
        .map(|l| l.unwrap())
        .find(|l| l.contains("authorization refused"))
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(refused.contains("\\u{a}2026"), "{refused}");
    assert!(
        !refused.contains('\u{1b}') && !refused.contains('\u{202e}'),
        "{refused}"
    );
    // The next line the pool writes is its own, not the forged one.
    assert!(lines
        .next()
        .is_none_or(|l| !l.unwrap().contains("share meets")));
}
