//! The pool as a child process, the way operators run it: its own CPU time, its own runtime,
//! stopped by a signal. Load and fault tests use it so that what they measure is the pool,
//! not the test harness sharing a runtime with it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A port that was free a moment ago (the pool binds it right after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct PoolProcess {
    child: Child,
    pub stratum: SocketAddr,
    pub http: String,
    pub args: Vec<String>,
    pub log: PathBuf,
}

impl PoolProcess {
    /// Start `pool-server` with its data in `dir`, on fresh ports, plus `extra` flags.
    pub fn spawn(dir: &Path, extra: &[&str]) -> PoolProcess {
        let stratum: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let d = dir.display();
        let mut args: Vec<String> = vec![
            "--stratum".into(),
            stratum.to_string(),
            "--http".into(),
            http.to_string(),
            "--database-url".into(),
            format!("sqlite://{d}/pool.sqlite"),
            "--spool-dir".into(),
            format!("{d}/spool"),
            "--genesis-bits".into(),
            "1d00ffff".into(),
            "--log".into(),
            "warn".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        Self::spawn_with(dir, args, stratum, format!("http://{http}"))
    }

    /// Stop it with SIGTERM, then start the same pool again (same ports, flags and data).
    pub fn restart(self, dir: &Path) -> (ExitStatus, PoolProcess) {
        let (args, stratum, http) = (self.args.clone(), self.stratum, self.http.clone());
        let status = self.terminate();
        (status, Self::spawn_with(dir, args, stratum, http))
    }

    /// Start `pool-server` with exactly `args` (the ports they name are `stratum` and `http`).
    pub fn spawn_with(dir: &Path, args: Vec<String>, stratum: SocketAddr, http: String) -> Self {
        let log = dir.join("pool.log");
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_pool-server"))
            .args(&args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start pool-server");
        let mut p = PoolProcess {
            child,
            stratum,
            http,
            args,
            log,
        };
        p.wait_ready();
        p
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn wait_ready(&mut self) {
        let t = Instant::now();
        while std::net::TcpStream::connect(self.stratum).is_err() {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "pool-server exited at start ({status}): {}",
                    self.log_text()
                );
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "pool-server did not listen in time: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, as an operator's `systemctl stop` or `docker stop`, and wait for the exit.
    pub fn terminate(mut self) -> ExitStatus {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let t = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if t.elapsed() > Duration::from_secs(30) {
                let _ = self.child.kill();
                panic!("pool-server ignored SIGTERM for 30 s: {}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL (a crash, an OOM kill, a power cut to the process) and wait for it to go; the
    /// arguments and ports to start it again with [`PoolProcess::spawn_with`].
    pub fn kill_hard(mut self) -> (Vec<String>, SocketAddr, String) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        (self.args.clone(), self.stratum, self.http.clone())
    }

    pub async fn metric(&self, name: &str) -> f64 {
        super::metric(&self.http, name).await
    }
}

impl Drop for PoolProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
