//! TLS for the HTTP listener (`--tls-cert`/`--tls-key`, or `--tls-self`), as `s2 lite`
//! serves it: with TLS configured the port speaks only TLS, and ALPN picks HTTP/2 (`h2`)
//! or HTTP/1.1 (`http/1.1`); a client that offers no ALPN gets HTTP/1.1 or HTTP/2 by
//! what it sends first. The handshake counts against `--header-read-timeout`, so a peer
//! that connects and never finishes it holds its connection slot no longer than one that
//! never sends a request head.

use std::{fmt, path::Path, sync::Arc};

use rustls::{
    ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
};
use tokio_rustls::TlsAcceptor;

/// The names a `--tls-self` certificate is valid for: the loopback names a local client
/// uses, as `s2 lite`'s.
pub const SELF_SIGNED_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// A TLS server configuration, ready to accept connections; cheap to clone.
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
    /// The certificate chain served, as PEM (for a self-signed one, what clients trust).
    cert_pem: String,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls").finish_non_exhaustive()
    }
}

impl Tls {
    /// The certificate chain and private key in PEM files (`--tls-cert`, `--tls-key`).
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, String> {
        let cert_pem = std::fs::read_to_string(cert)
            .map_err(|e| format!("cannot read --tls-cert {}: {e}", cert.display()))?;
        let key_pem = std::fs::read_to_string(key)
            .map_err(|e| format!("cannot read --tls-key {}: {e}", key.display()))?;
        Self::from_pem(&cert_pem, &key_pem).map_err(|e| {
            format!(
                "--tls-cert {} / --tls-key {}: {e}",
                cert.display(),
                key.display()
            )
        })
    }

    /// A fresh self-signed certificate for [`SELF_SIGNED_NAMES`] (`--tls-self`).
    pub fn self_signed() -> Result<Self, String> {
        let rcgen::CertifiedKey { cert, signing_key } =
            rcgen::generate_simple_self_signed(SELF_SIGNED_NAMES.map(str::to_owned).to_vec())
                .map_err(|e| format!("cannot make a self-signed certificate: {e}"))?;
        Self::from_pem(&cert.pem(), &signing_key.serialize_pem())
    }

    /// A certificate chain (leaf first) and its private key, both PEM.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, String> {
        let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("the certificate file is not PEM: {e}"))?;
        if chain.is_empty() {
            return Err("the certificate file holds no CERTIFICATE".into());
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| format!("the key file holds no private key: {e}"))?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| format!("the certificate and key do not go together: {e}"))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            cert_pem: cert_pem.to_owned(),
        })
    }

    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// The certificate chain served, as PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_certificate_loads() {
        let tls = Tls::self_signed().unwrap();
        assert!(tls.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    }

    #[test]
    fn files_that_are_not_a_certificate_and_key_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let err = Tls::from_pem_files(&missing, &missing).unwrap_err();
        assert!(err.contains("cannot read --tls-cert"), "{err}");

        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not pem").unwrap();
        let err = Tls::from_pem_files(&garbage, &garbage).unwrap_err();
        assert!(err.contains("no CERTIFICATE"), "{err}");

        // A certificate with another certificate's key.
        let a = rcgen::generate_simple_self_signed(vec!["a".into()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["b".into()]).unwrap();
        let err = Tls::from_pem(&a.cert.pem(), &b.signing_key.serialize_pem()).unwrap_err();
        assert!(err.contains("do not go together"), "{err}");
    }
}
