//! The shared HTTP client and its TLS: every client (probes, reports, peers, ctl,
//! drills, the Route 53 health feed) starts from [`http_client_builder`] or
//! [`client_config`]; certificates are validated by default (system roots plus an
//! optional CA file), with an explicit per-check opt-out, and failures are named.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

/// Errors building a TLS configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) enum TlsError {
    /// The CA file could not be read or holds no certificate.
    #[error("CA file {path}: {reason}")]
    CaFile {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// rustls rejected the settings.
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The system's root certificates, loaded once.
fn system_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut store = RootCertStore::empty();
        let loaded = rustls_native_certs::load_native_certs();
        for error in &loaded.errors {
            tracing::warn!(%error, "some system CA certificates could not be loaded");
        }
        let (added, _) = store.add_parsable_certificates(loaded.certs);
        tracing::debug!(added, "system CA certificates loaded");
        store
    })
}

/// A client configuration: validating against system roots and `ca_file`, or (when
/// `verify` is false) accepting any certificate.
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) fn client_config(
    verify: bool,
    ca_file: Option<&Path>,
) -> Result<ClientConfig, TlsError> {
    let builder =
        ClientConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let config = if verify {
        let mut roots = system_roots().clone();
        if let Some(path) = ca_file {
            let describe = |reason: String| TlsError::CaFile {
                path: path.display().to_string(),
                reason,
            };
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| describe(e.to_string()))?
                .collect::<Result<_, _>>()
                .map_err(|e| describe(e.to_string()))?;
            if certs.is_empty() {
                return Err(describe("no certificate in the file".into()));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| describe(e.to_string()))?;
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider())))
            .with_no_client_auth()
    };
    Ok(config)
}

/// A reqwest client builder whose TLS (for `https://` URLs) validates against the
/// system roots with the ring provider. Every client must start here: the crate is
/// built without a process-wide default TLS provider.
pub(crate) fn http_client_builder() -> reqwest::ClientBuilder {
    let builder = reqwest::Client::builder();
    match client_config(true, None) {
        Ok(config) => builder.tls_backend_preconfigured(config),
        Err(error) => {
            tracing::error!(%error, "TLS client configuration failed");
            builder
        }
    }
}

/// A short reason for a TLS failure.
pub(crate) fn describe(error: &rustls::Error) -> String {
    match error {
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "certificate expired".into()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "certificate not yet valid".into()
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "certificate not valid for the host name".into()
            }
            CertificateError::UnknownIssuer => "certificate issuer unknown".into(),
            CertificateError::Revoked => "certificate revoked".into(),
            CertificateError::BadSignature => "certificate signature invalid".into(),
            other => format!("invalid certificate: {other:?}"),
        },
        other => format!("TLS: {other}"),
    }
}

/// Accepts any server certificate (checks with `tls_verify = false`), still checking
/// that the handshake is signed by the presented key.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
