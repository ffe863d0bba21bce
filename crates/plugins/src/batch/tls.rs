//! TLS towards log servers (http-logger `https://`, tcp-logger `tls`): with `verify`, the
//! server's certificate must chain to the system's CA bundle and name the host; without it
//! (APISIX's default `ssl_verify: false`) any certificate is accepted, handshake signatures
//! still checked.

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The client configuration (built once per kind); `None` if rustls refuses the defaults.
pub fn client_config(verify: bool) -> Option<Arc<rustls::ClientConfig>> {
    static VERIFYING: OnceLock<Option<Arc<rustls::ClientConfig>>> = OnceLock::new();
    static ANY: OnceLock<Option<Arc<rustls::ClientConfig>>> = OnceLock::new();
    let cell = if verify { &VERIFYING } else { &ANY };
    cell.get_or_init(|| {
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .ok()?;
        let config = if verify {
            let mut roots = rustls::RootCertStore::empty();
            if let Ok(certs) = CertificateDer::pem_file_iter(CA_BUNDLE) {
                roots.add_parsable_certificates(certs.flatten());
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAny(provider())))
                .with_no_client_auth()
        };
        Some(Arc::new(config))
    })
    .clone()
}

/// Accepts any server certificate; checks handshake signatures.
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
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
