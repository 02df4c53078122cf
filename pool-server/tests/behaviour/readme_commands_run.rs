//! Every `cargo run` command in the README runs as written: each is run with `--help` in
//! place of its own arguments, so a package that gains a second binary (and with it "could
//! not determine which binary to run") fails here, not on a new user's first command.
//!
//! The commands keep their words (`--release`, `-p`, `--bin`); only the release profile is
//! made cheap through cargo's environment (no optimisation, no LTO, in a target directory of
//! its own), which changes how long the build takes, not what runs.

use std::path::Path;
use std::process::Command;

/// The `cargo run ...` part of each README line that runs one, without its own arguments.
fn readme_cargo_runs(readme: &str) -> Vec<Vec<String>> {
    readme
        .lines()
        .filter_map(|l| l.trim().strip_prefix("cargo run"))
        .map(|rest| {
            let before_args = rest.split(" -- ").next().unwrap_or(rest);
            before_args
                .split_whitespace()
                .take_while(|w| *w != "\\")
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

#[test]
fn the_readme_parser_finds_the_commands() {
    let runs = readme_cargo_runs(
        "text\ncargo run --release -p pool-server\n  cargo run -p miner-worker -- -o x \\\n",
    );
    assert_eq!(
        runs,
        vec![
            vec!["--release", "-p", "pool-server"],
            vec!["-p", "miner-worker"]
        ]
    );
}

#[test]
fn every_cargo_run_in_the_readme_starts_its_binary() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let mut runs = readme_cargo_runs(&readme);
    runs.sort();
    runs.dedup();
    assert!(runs.len() >= 2, "the README runs both binaries: {runs:?}");
    for words in runs {
        let out = Command::new(env!("CARGO"))
            .arg("run")
            .args(&words)
            .args(["--", "--help"])
            .current_dir(root)
            .env("CARGO_TARGET_DIR", root.join("target/readme-commands"))
            .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "0")
            .env("CARGO_PROFILE_RELEASE_LTO", "false")
            .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "256")
            .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
            .env("CARGO_PROFILE_RELEASE_INCREMENTAL", "true")
            .env("CARGO_TERM_COLOR", "never")
            .output()
            .expect("cargo runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stdout.contains("Usage:"),
            "`cargo run {} -- --help` failed ({}):\n{stdout}\n{}",
            words.join(" "),
            out.status,
            stderr.lines().rev().take(15).collect::<Vec<_>>().join("\n")
        );
    }
}
