//! Configuration precedence: command line over environment over config file over default, and
//! a bad value in any of them is refused with the flag named. (Its own test binary, because it
//! sets process environment variables.)

use std::io::Write;

use pool_server::config::Config;

#[test]
fn file_then_env_then_flags() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(
        f,
        "block_time = \"45s\"\nretarget-interval = 7\nstratum = [\"127.0.0.1:4000\", \"127.0.0.1:4001=64\"]\nvardiff_target = \"20s\""
    )
    .unwrap();
    // SAFETY: this test binary has one test and sets env vars before any thread reads them.
    unsafe { std::env::set_var("POOL_RETARGET_INTERVAL", "9") };
    let path = f.path().to_str().unwrap().to_owned();
    let cfg =
        Config::load_from(["pool-server", "--config", &path, "--vardiff-target", "5s"]).unwrap();
    assert_eq!(cfg.chain.block_time.as_secs(), 45, "from the file");
    assert_eq!(cfg.chain.retarget_interval, 9, "env beats the file");
    assert_eq!(
        cfg.vardiff.vardiff_target.as_secs(),
        5,
        "the flag beats both"
    );
    assert_eq!(cfg.stratum.listeners.len(), 2);
    assert_eq!(
        cfg.stratum.listeners[1].start_difficulty.unwrap().as_f64(),
        64.0
    );

    let mut bad = tempfile::NamedTempFile::new().unwrap();
    writeln!(bad, "no_such_key = 1").unwrap();
    let err = Config::load_from(["pool-server", "--config", bad.path().to_str().unwrap()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("no_such_key"), "{err}");

    let err = Config::load_from(["pool-server", "--vardiff-min", "10", "--vardiff-max", "1"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("--vardiff-min"), "{err}");
}
