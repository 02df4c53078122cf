//! The systemd unit and environment file in `deploy/systemd/` work as shipped: systemd's own
//! checker accepts the unit (pointed at the built binary and the shipped env file) without a
//! warning, every variable the env file sets or shows commented out is one of the worker's,
//! and the binary started with exactly that environment (pool swapped for a local listener,
//! metrics for a free port) connects and logs in as `WALLET_ADDRESS.MINER_RIG`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use clap::CommandFactory;
use miner_worker::config::Config;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// `VAR=value` lines, and the names of `#VAR=value` lines (documented, off by default).
fn env_file() -> (BTreeMap<String, String>, Vec<String>) {
    let text = std::fs::read_to_string(repo("deploy/systemd/miner-worker.env")).unwrap();
    let (mut set, mut commented) = (BTreeMap::new(), Vec::new());
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix('#') {
            if let Some((k, _)) = rest.split_once('=') {
                if !k.contains(' ') && k.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
                    commented.push(k.to_owned());
                }
            }
        } else if let Some((k, v)) = line.split_once('=') {
            set.insert(k.to_owned(), v.to_owned());
        }
    }
    (set, commented)
}

#[test]
fn systemd_accepts_the_unit_without_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(repo("deploy/systemd/miner-worker.service")).unwrap();
    assert!(
        unit.contains("ExecStart=/usr/local/bin/miner-worker\n"),
        "{unit}"
    );
    assert!(
        unit.contains("EnvironmentFile=/etc/miner-worker.env\n"),
        "{unit}"
    );
    assert!(unit.contains("Restart=always\n"), "restarts: {unit}");
    let env = repo("deploy/systemd/miner-worker.env")
        .canonicalize()
        .unwrap();
    let local = unit
        .replace(
            "/usr/local/bin/miner-worker",
            env!("CARGO_BIN_EXE_miner-worker"),
        )
        .replace("/etc/miner-worker.env", &env.display().to_string());
    let path = dir.path().join("miner-worker.service");
    std::fs::write(&path, local).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (Debian's systemd package) runs");
    let err = String::from_utf8_lossy(&out.stderr);
    // It reports bad lines as warnings and still exits 0: any line naming the unit fails.
    let about_unit: Vec<&str> = err.lines().filter(|l| l.contains("miner-worker")).collect();
    assert!(
        out.status.success() && about_unit.is_empty(),
        "systemd-analyze verify: {}\n{err}",
        out.status
    );
}

#[test]
fn every_variable_of_the_env_file_is_one_of_the_workers() {
    let names: Vec<String> = Config::command()
        .get_arguments()
        .filter_map(|a| a.get_env().map(|e| e.to_string_lossy().into_owned()))
        .collect();
    let (set, commented) = env_file();
    assert!(set.contains_key("MINER_POOL") && set.contains_key("WALLET_ADDRESS"));
    for k in set.keys().chain(commented.iter()) {
        assert!(names.contains(k), "{k} is not an env var of miner-worker");
    }
    assert!(
        commented.contains(&"MINER_CPU_AFFINITY".to_owned()),
        "affinity documented"
    );
}

#[test]
fn the_binary_started_with_the_env_file_logs_in_as_its_rig() {
    let (mut set, _) = env_file();
    let pool = TcpListener::bind("127.0.0.1:0").unwrap();
    set.insert(
        "MINER_POOL".into(),
        format!("stratum+tcp://{}", pool.local_addr().unwrap()),
    );
    set.insert("MINER_METRICS".into(), "127.0.0.1:0".into());
    set.insert("MINER_KERNEL".into(), "scalar".into());
    set.insert("CPU_THREADS".into(), "1".into());
    let mut child = Command::new(env!("CARGO_BIN_EXE_miner-worker"))
        .env_clear()
        .envs(&set)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (s, _) = pool.accept().unwrap();
        for line in BufReader::new(s).lines() {
            let Ok(line) = line else { break };
            if line.contains("mining.authorize") {
                let _ = tx.send(line);
                break;
            }
        }
    });
    let got = rx.recv_timeout(Duration::from_secs(30));
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let line = got.unwrap_or_else(|_| {
        panic!(
            "no mining.authorize within 30 s; the worker said:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let login = format!("{}.{}", set["WALLET_ADDRESS"], set["MINER_RIG"]);
    assert!(line.contains(&format!("\"{login}\"")), "{line}");
}
