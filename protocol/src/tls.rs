//! Stratum over TLS (`stratum+ssl://`): how a client decides to trust the pool.
//!
//! Why here: the worker and the pool's load generator both connect with TLS and must check
//! the pool the same way. Two ways are offered, as miners use them: the system's root
//! certificates (a pool with a certificate from a public authority), or one pinned
//! certificate (a pool with its own self-signed certificate, which the miner was given): the
//! pool must present exactly that certificate, whatever its name or dates say, and prove it
//! holds the key. No runtime here: the transport wraps its socket with the returned config.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// Why a TLS client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("{path}: no PEM certificate could be read: {why}")]
    Certificate { path: String, why: String },
    #[error("no system root certificate could be loaded")]
    NoRoots,
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Whom the client trusts.
#[derive(Debug, Clone)]
pub enum ServerTrust {
    /// Certificates signed by the system's root authorities, for the host name dialled.
    SystemRoots,
    /// Exactly this certificate (the first of a PEM file), whatever its name and dates.
    Pinned(CertificateDer<'static>),
}

impl ServerTrust {
    /// Pin the first certificate of the PEM file at `path`.
    pub fn pinned_from(path: &Path) -> Result<ServerTrust, TlsSetupError> {
        let bad = |why: String| TlsSetupError::Certificate {
            path: path.display().to_string(),
            why,
        };
        let first = CertificateDer::pem_file_iter(path)
            .map_err(|e| bad(e.to_string()))?
            .next()
            .ok_or_else(|| bad("the file holds no certificate".into()))?
            .map_err(|e| bad(e.to_string()))?;
        Ok(ServerTrust::Pinned(first))
    }
}

/// The crypto provider of both sides: ring, the one the project already builds (for its
/// web and mail clients). rustls marks it deprecated for lacking post-quantum key exchange;
/// Stratum carries jobs and shares whose worth ends with the block, so a recording broken
/// decades later reveals nothing of value, and aws-lc's C build is not worth it here.
#[allow(deprecated)]
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The client config for `trust` (TLS 1.2 and 1.3, ring's algorithms).
pub fn client_config(trust: &ServerTrust) -> Result<Arc<ClientConfig>, TlsSetupError> {
    let builder =
        ClientConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let config = match trust {
        ServerTrust::SystemRoots => {
            let mut roots = RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(TlsSetupError::NoRoots);
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        ServerTrust::Pinned(cert) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned {
                cert: cert.clone(),
                provider: provider(),
            }))
            .with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The server name to ask for: a DNS name, or an IP address as such.
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsSetupError> {
    ServerName::try_from(host.to_owned())
        .map_err(|e| TlsSetupError::Rustls(rustls::Error::General(format!("{host:?}: {e}"))))
}

/// Accepts the one pinned certificate; the handshake signature is still checked against it,
/// so only the holder of its key passes.
#[derive(Debug)]
struct Pinned {
    cert: CertificateDer<'static>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.cert.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
