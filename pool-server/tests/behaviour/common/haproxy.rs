//! A real HAProxy (Debian's, `scripts/prepare/haproxy`) run from a config the test writes;
//! killed when dropped.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Haproxy {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Haproxy {
    /// Run HAProxy with `config` (sections after `global` and `defaults`, which are set for
    /// TCP with generous timeouts) and wait until `ready` accepts connections.
    pub fn start(config: &str, ready: SocketAddr) -> Haproxy {
        let dir = tempfile::tempdir().unwrap();
        let cfg = format!(
            "global\n  maxconn 2000\n\
             defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 60s\n  timeout server 60s\n\
             {config}"
        );
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, cfg).unwrap();
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("haproxy (scripts/prepare/haproxy installs it)");
        for _ in 0..100 {
            if std::net::TcpStream::connect(ready).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Haproxy { child, _dir: dir }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
