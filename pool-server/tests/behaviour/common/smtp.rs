//! A real SMTP server for the alert mails: Debian's `python3-aiosmtpd`, speaking STARTTLS
//! (and refusing mail before it) with a certificate from a CA made for the test, storing
//! each mail it accepts in a maildir.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::process::free_port;

pub struct SmtpServer {
    pub port: u16,
    /// The PEM of the CA the server's certificate chains to.
    pub ca: PathBuf,
    dir: tempfile::TempDir,
    child: Child,
}

fn openssl(dir: &Path, args: &[&str]) {
    let ok = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl runs")
        .success();
    assert!(ok, "openssl {args:?}");
}

/// The Python that has aiosmtpd: Debian's, which `scripts/prepare/mail-server` installs it in.
fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

impl SmtpServer {
    pub async fn start() -> SmtpServer {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_owned();
        let d = d.as_path();
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=test mail CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
            ],
        );
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
            ],
        );
        std::fs::write(
            d.join("ext.cnf"),
            "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\n",
        )
        .unwrap();
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "ext.cnf",
                "-out",
                "server.pem",
            ],
        );
        // A port picked free may be taken by another test before the server binds it: then
        // the server exits, or something else answers. Try again until the server itself
        // greets on its port.
        for _ in 0..5 {
            let port = free_port();
            let child = Command::new(python())
                .args(["-m", "aiosmtpd", "-n", "-l"])
                .arg(format!("127.0.0.1:{port}"))
                .args(["--tlscert", "server.pem", "--tlskey", "server.key"])
                .args(["-c", "aiosmtpd.handlers.Mailbox", "maildir"])
                .current_dir(d)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("python3 -m aiosmtpd (scripts/prepare/mail-server installs it)");
            let mut child = Reaped(Some(child));
            for _ in 0..100 {
                if child.exited() {
                    break;
                }
                if greets(port).await {
                    return SmtpServer {
                        port,
                        ca: d.join("ca.pem"),
                        dir,
                        child: child.take(),
                    };
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        panic!("aiosmtpd never greeted on a port of its own");
    }

    /// The URL the pool is given: STARTTLS required.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}?tls=required", self.port)
    }

    /// Every mail accepted so far, as received.
    pub fn mails(&self) -> Vec<String> {
        let new = self.dir.path().join("maildir/new");
        let mut mails: Vec<(std::time::SystemTime, String)> = std::fs::read_dir(new)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| {
                        let t = e.metadata().unwrap().modified().unwrap();
                        (t, std::fs::read_to_string(e.path()).unwrap())
                    })
                    .collect()
            })
            .unwrap_or_default();
        mails.sort();
        mails.into_iter().map(|(_, m)| m).collect()
    }

    /// Waits until `n` mails have come (20 s at most).
    pub async fn until(&self, n: usize) -> Vec<String> {
        for _ in 0..200 {
            let m = self.mails();
            if m.len() >= n {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{n} mails never came: {:?}", self.mails());
    }
}

/// A child killed and reaped when dropped, unless taken.
struct Reaped(Option<Child>);

impl Reaped {
    fn exited(&mut self) -> bool {
        self.0
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_some())
    }

    fn take(&mut self) -> Child {
        self.0.take().expect("not taken yet")
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Whether an SMTP server greets on `port` ("220 ...").
async fn greets(port: u16) -> bool {
    use tokio::io::AsyncReadExt;
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let mut greeting = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(2), s.read(&mut greeting)).await;
    matches!(read, Ok(Ok(n)) if greeting[..n].starts_with(b"220 "))
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
