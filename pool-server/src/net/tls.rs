//! TLS on the Stratum ports (`stratum+ssl://`): a connection whose first byte opens a TLS
//! handshake is served over TLS, any other as plain Stratum, on the same port.
//!
//! Why detection rather than a port of its own: a Stratum client always speaks first, with a
//! JSON line (`{`), and a TLS client with a handshake record (0x16), so one byte tells them
//! apart; operators keep one port (and one load balancer rule) for both. The certificate and
//! key are read from PEM files and read again on SIGHUP (a renewed certificate), without a
//! restart; a reload that fails keeps the certificate in use and says why.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use parking_lot::RwLock;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// The first byte of a TLS record carrying a handshake (a ClientHello opens with it).
const TLS_HANDSHAKE: u8 = 0x16;
/// How long a client may take to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The pool's TLS side: its certificate (reloadable) and the acceptor that serves it.
pub struct TlsTerminator {
    cert: PathBuf,
    key: PathBuf,
    current: Arc<Current>,
    acceptor: TlsAcceptor,
}

#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().clone())
    }
}

impl TlsTerminator {
    /// Read the certificate chain and key from PEM files `cert` and `key`.
    pub fn load(cert: &Path, key: &Path) -> anyhow::Result<Arc<TlsTerminator>> {
        let current = Arc::new(Current(RwLock::new(Arc::new(certified_key(cert, key)?))));
        let provider = protocol::tls::provider();
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        Ok(Arc::new(TlsTerminator {
            cert: cert.to_owned(),
            key: key.to_owned(),
            current,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        }))
    }

    /// Read the files again; on failure the certificate in use stays.
    pub fn reload(&self) -> anyhow::Result<()> {
        let fresh = certified_key(&self.cert, &self.key)?;
        *self.current.0.write() = Arc::new(fresh);
        Ok(())
    }

    /// Reload on every SIGHUP until the process ends.
    pub fn reload_on_sighup(self: &Arc<Self>) -> anyhow::Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
        let me = self.clone();
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                match me.reload() {
                    Ok(()) => tracing::info!(cert = %me.cert.display(), "TLS certificate reloaded"),
                    Err(e) => tracing::error!(
                        error = %format!("{e:#}"),
                        "TLS certificate not reloaded; the one in use stays"
                    ),
                }
            }
        });
        Ok(())
    }

    /// The TLS handshake with a client, within 10 s.
    pub async fn accept(&self, stream: TcpStream) -> std::io::Result<TlsStream<TcpStream>> {
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(stream)).await {
            Ok(r) => r,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "TLS handshake timed out",
            )),
        }
    }
}

/// Whether the client's first byte opens a TLS handshake (it is not consumed). `None` when
/// the client closed or sent nothing within `wait`.
pub async fn opens_tls(stream: &TcpStream, wait: Duration) -> Option<bool> {
    let mut first = [0u8; 1];
    match tokio::time::timeout(wait, stream.peek(&mut first)).await {
        Ok(Ok(1)) => Some(first[0] == TLS_HANDSHAKE),
        _ => None,
    }
}

fn certified_key(cert: &Path, key: &Path) -> anyhow::Result<CertifiedKey> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("--tls-cert {}: not a PEM certificate chain", cert.display()))?;
    anyhow::ensure!(
        !chain.is_empty(),
        "--tls-cert {}: the file holds no certificate",
        cert.display()
    );
    let key_der = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("--tls-key {}: not a PEM private key", key.display()))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key_der)
        .with_context(|| format!("--tls-key {}: an unsupported key", key.display()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .with_context(|| "--tls-key does not belong to --tls-cert".to_string())?;
    Ok(certified)
}
