//! TLS for `https://` etcd endpoints: rustls with the ring provider, the configured CA (or the
//! system bundle), and an optional client certificate for etcd's `--client-cert-auth`.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::RootCertStore;

use super::EtcdTls;
use crate::{Result, StoreError};

/// Where Debian and most distributions keep the system's trusted CA certificates.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
];

/// Builds the rustls client configuration for `tls` (or the defaults when `None`). The system's
/// CA bundle is only read when some endpoint uses TLS and no CA is configured.
pub(crate) fn client_config(tls: Option<&EtcdTls>, uses_tls: bool) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error("protocol versions", e))?;
    let mut roots = RootCertStore::empty();
    match tls.and_then(|t| t.ca_pem.as_deref()) {
        Some(pem) => {
            for cert in certs(pem, "tls.ca")? {
                roots.add(cert).map_err(|e| tls_error("tls.ca", e))?;
            }
        }
        None if uses_tls => {
            // Without a configured CA, trust the system bundle when there is one.
            if let Some(pem) = SYSTEM_BUNDLES
                .iter()
                .find_map(|p| std::fs::read_to_string(p).ok())
            {
                let mut reader = pem.as_bytes();
                roots.add_parsable_certificates(rustls_pemfile::certs(&mut reader).flatten());
            }
        }
        None => {}
    }
    let builder = builder.with_root_certificates(roots);
    let cert = tls.and_then(|t| t.cert_pem.as_deref());
    let key = tls.and_then(|t| t.key_pem.as_deref());
    match (cert, key) {
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(certs(cert, "tls.cert")?, private_key(key)?)
            .map_err(|e| tls_error("client certificate", e)),
        (None, None) => Ok(builder.with_no_client_auth()),
        _ => Err(StoreError::Internal(
            "etcd tls: a client certificate needs both cert and key".into(),
        )),
    }
}

fn certs(pem: &str, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| tls_error(what, e))?;
    if certs.is_empty() {
        return Err(StoreError::Internal(format!(
            "etcd {what}: no PEM certificate found"
        )));
    }
    Ok(certs)
}

fn private_key(pem: &str) -> Result<PrivateKeyDer<'static>> {
    rustls_pemfile::private_key(&mut pem.as_bytes())
        .map_err(|e| tls_error("tls.key", e))?
        .ok_or_else(|| StoreError::Internal("etcd tls.key: no PEM private key found".into()))
}

fn tls_error(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("etcd tls: {what}: {e}"))
}
