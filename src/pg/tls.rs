//! `pg::tls`: what the client asks of TLS (`sslmode`, `sslrootcert`,
//! `channel_binding`), and the rustls configuration that enforces it.
//!
//! PostgreSQL speaks TLS *inside* its own port: the client sends an
//! SSLRequest (8 bytes, no tag), the server answers one byte, `S` (go
//! ahead) or `N` (no TLS here), and after `S` a TLS handshake starts on the
//! same socket; the StartupMessage then travels encrypted. The socket work
//! lives in `connection/transport.rs`; this file holds no sockets.
//!
//! | `sslmode` | SSLRequest? | on `N` | server certificate |
//! |---|---|---|---|
//! | `disable` | no | — | — |
//! | `allow` | no (see [`SslMode::Allow`]) | — | — |
//! | `prefer` (default) | yes | plaintext | not checked |
//! | `require` | yes | refuse | not checked (checked as `verify-ca` if `sslrootcert` is given) |
//! | `verify-ca` | yes | refuse | signed by a CA in `sslrootcert` |
//! | `verify-full` | yes | refuse | that, and issued for the host name we dialled |
//!
//! `prefer` and `require` encrypt without checking *who* answers, exactly
//! like libpq: they stop a passive eavesdropper, not an active one. Only
//! `verify-full` stops a machine in the middle.
//!
//! Over a Unix socket no SSLRequest is sent whatever the mode, as libpq
//! does: the kernel already is the only party between the two ends.
//!
//! Spec: the libpq chapter, "SSL Support" and the `sslmode` table
//! (<https://www.postgresql.org/docs/current/libpq-ssl.html>); protocol
//! §55.2.10 "SSL Session Encryption".

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// Whether, and how strictly, to use TLS (`sslmode`, `PGSSLMODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Never: no SSLRequest.
    Disable,
    /// Plaintext. libpq tries plaintext first and retries with TLS if the
    /// server refuses it; connlab only does the first half, which is what
    /// `allow` means against any server that accepts plaintext.
    /// Simplification: no second attempt.
    Allow,
    /// TLS if the server offers it, plaintext if it answers `N`. libpq's
    /// default, and ours.
    #[default]
    Prefer,
    /// TLS or nothing; the certificate is not checked.
    Require,
    /// TLS, with a certificate chain that ends at a CA in `sslrootcert`.
    VerifyCa,
    /// `VerifyCa`, and the certificate names the host we connected to.
    VerifyFull,
}

impl SslMode {
    /// Parse libpq's spelling.
    pub fn parse(text: &str) -> Result<SslMode, String> {
        Ok(match text {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(format!(
                    "sslmode {other:?} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                ))
            }
        })
    }

    /// Whether to send an SSLRequest at all.
    pub fn asks(self) -> bool {
        !matches!(self, SslMode::Disable | SslMode::Allow)
    }

    /// Whether a server that answers `N` must be refused.
    pub fn insists(self) -> bool {
        matches!(self, SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull)
    }

    /// libpq's name.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether SCRAM binds itself to the TLS session (`channel_binding`,
/// `PGCHANNELBINDING`), with libpq's three values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChannelBinding {
    /// Never use `SCRAM-SHA-256-PLUS`.
    Disable,
    /// Use it when the connection is TLS and the server offers it (default).
    #[default]
    Prefer,
    /// Insist on it: refuse plaintext, a server that does not offer it,
    /// and any authentication method other than SCRAM (a server that says
    /// "trust" would otherwise skip the binding altogether).
    Require,
}

impl ChannelBinding {
    /// Parse libpq's spelling.
    pub fn parse(text: &str) -> Result<ChannelBinding, String> {
        match text {
            "disable" => Ok(ChannelBinding::Disable),
            "prefer" => Ok(ChannelBinding::Prefer),
            "require" => Ok(ChannelBinding::Require),
            other => Err(format!(
                "channel_binding {other:?} is not one of disable, prefer, require"
            )),
        }
    }
}

/// The TLS part of a [`Config`](crate::pg::Config).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsConfig {
    /// `sslmode`.
    pub mode: SslMode,
    /// `sslrootcert`: a PEM file of CA certificates. Without it, `verify-*`
    /// look in `~/.postgresql/root.crt`, like libpq.
    pub root_cert: Option<PathBuf>,
    /// `channel_binding`.
    pub channel_binding: ChannelBinding,
}

impl TlsConfig {
    /// The mode in force: libpq treats `require` as `verify-ca` when a root
    /// certificate file is given ("for backwards compatibility", its manual
    /// says), so naming a CA is never silently ignored.
    pub fn effective_mode(&self) -> SslMode {
        match self.mode {
            SslMode::Require if self.root_cert.is_some() => SslMode::VerifyCa,
            mode => mode,
        }
    }

    /// Build the rustls client configuration for this mode.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, String> {
        let provider = Arc::new(provider());
        let verifier: Arc<dyn ServerCertVerifier> = match self.effective_mode() {
            SslMode::VerifyFull => self.webpki(&provider)?,
            SslMode::VerifyCa => Arc::new(Libpq {
                chain: Some(self.webpki(&provider)?),
                provider: provider.clone(),
            }),
            _ => Arc::new(Libpq {
                chain: None,
                provider: provider.clone(),
            }),
        };
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS configuration: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(Arc::new(config))
    }

    /// rustls's standard verifier (chain to a root, validity dates, host
    /// name), over the roots in `sslrootcert`.
    fn webpki(&self, provider: &Arc<CryptoProvider>) -> Result<Arc<WebPkiServerVerifier>, String> {
        let path = match &self.root_cert {
            Some(path) => path.clone(),
            None => default_root_cert()?,
        };
        let roots = load_roots(&path)?;
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| format!("sslrootcert {}: {e}", path.display()))
    }
}

// ANCHOR: provider
/// rustls's `ring` provider, with one change: P-256 first among the key
/// exchange groups. A TLS 1.3 ClientHello carries a key share for one group
/// only (rustls: X25519), and PostgreSQL up to 17 accepts only
/// `ssl_ecdh_curve = prime256v1` by default, so it answers an X25519 share
/// with a HelloRetryRequest: one more round trip on every connection
/// (`CONNLAB_TRACE=1` shows two ServerHellos). PostgreSQL 18 accepts both
/// (`ssl_groups = 'X25519:prime256v1'`), so P-256 first costs it nothing.
/// The alternative, a share for both groups, makes every ClientHello bigger
/// and the client compute a key pair it throws away.
pub fn provider() -> CryptoProvider {
    let mut provider = rustls::crypto::ring::default_provider();
    provider
        .kx_groups
        .sort_by_key(|group| group.name() != rustls::NamedGroup::secp256r1);
    provider
}
// ANCHOR_END: provider

/// libpq's default root file, `~/.postgresql/root.crt`.
fn default_root_cert() -> Result<PathBuf, String> {
    let home =
        std::env::var_os("HOME").ok_or("sslmode verify-ca/verify-full needs sslrootcert (and HOME is not set)")?;
    Ok(Path::new(&home).join(".postgresql/root.crt"))
}

/// Every certificate in a PEM file, as trust anchors. An empty file, or
/// one rustls cannot use, is an error: verifying against no root would
/// refuse every server with a less helpful message.
pub fn load_roots(path: &Path) -> Result<RootCertStore, String> {
    let what = |e: &dyn fmt::Display| format!("sslrootcert {}: {e}", path.display());
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| what(&e))? {
        roots.add(cert.map_err(|e| what(&e))?).map_err(|e| what(&e))?;
    }
    if roots.is_empty() {
        return Err(what(&"no CERTIFICATE in the file"));
    }
    Ok(roots)
}

/// The verifier for `sslmode=require` and `verify-ca`, the two modes that
/// check less than rustls would.
///
/// - `require` (`chain: None`): any certificate is accepted, as libpq does
///   without a root file. The rustls API puts this under `dangerous()`,
///   and it is: it stops eavesdropping, not impersonation.
/// - `verify-ca`: rustls's full check, less the host name. rustls checks
///   the chain before the name, so a "not valid for this name" error means
///   the chain itself was good; every other error stands.
///
/// Either way the handshake signature is checked, which proves the server
/// holds the key of the certificate it sent (so the `tls-server-end-point`
/// channel binding, which hashes that certificate, still means something).
#[derive(Debug)]
struct Libpq {
    chain: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Libpq {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_libpq_sslmode_parses_and_prints_back() {
        for name in ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] {
            assert_eq!(SslMode::parse(name).unwrap().as_str(), name);
        }
        assert!(SslMode::parse("on").unwrap_err().contains("verify-full"));
    }

    #[test]
    fn require_with_a_root_file_verifies_the_chain_like_libpq() {
        let mut tls = TlsConfig {
            mode: SslMode::Require,
            ..TlsConfig::default()
        };
        assert_eq!(tls.effective_mode(), SslMode::Require);
        tls.root_cert = Some("/ca.pem".into());
        assert_eq!(tls.effective_mode(), SslMode::VerifyCa);
    }

    #[test]
    fn a_missing_or_empty_root_file_is_a_clear_error() {
        let missing = load_roots(Path::new("/nonexistent/root.crt")).unwrap_err();
        assert!(missing.contains("/nonexistent/root.crt"), "{missing}");
        let empty = std::env::temp_dir().join(format!("connlab-empty-{}.pem", std::process::id()));
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = load_roots(&empty).unwrap_err();
        std::fs::remove_file(&empty).unwrap();
        assert!(e.contains("no CERTIFICATE"), "{e}");
    }
}
