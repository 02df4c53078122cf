//! Self-signed certificates for the TLS tests, as an operator makes one for a pool of its
//! own (`openssl req -x509 ...`): PEM files in a directory, and a client that pins one.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use protocol::tls::{client_config, server_name, ServerTrust};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// A certificate for `localhost` and 127.0.0.1, written as `NAME.crt` and `NAME.key`.
pub fn self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("a certificate");
    let (crt, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&crt, cert.cert.pem()).unwrap();
    std::fs::write(&key, cert.key_pair.serialize_pem()).unwrap();
    (crt, key)
}

/// Connect to `addr` over TLS, trusting exactly the certificate in `pinned`.
pub async fn connect_pinned(
    addr: SocketAddr,
    pinned: &Path,
) -> std::io::Result<TlsStream<TcpStream>> {
    let trust = ServerTrust::pinned_from(pinned).unwrap();
    let connector = tokio_rustls::TlsConnector::from(client_config(&trust).unwrap());
    let tcp = TcpStream::connect(addr).await?;
    connector
        .connect(server_name("127.0.0.1").unwrap(), tcp)
        .await
}
