//! rustls client configurations for `redis_ssl` with `redis_ssl_verify`: the trusted CA
//! certificates. Without verification (APISIX's default) `crate::tls::accepting_any` is used.

use std::path::Path;
use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};

/// Where Debian and most distributions keep the system's trusted CA certificates.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
];

/// Verifies against the system bundle plus the PEM file named by `SSL_CERT_FILE` (how an
/// operator adds the CA of a private Redis).
pub(super) fn verifying_system() -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    if let Some(pem) = SYSTEM_BUNDLES.iter().find_map(|p| std::fs::read(p).ok()) {
        roots.add_parsable_certificates(rustls_pemfile::certs(&mut pem.as_slice()).flatten());
    }
    if let Some(path) = std::env::var_os("SSL_CERT_FILE") {
        add_file(&mut roots, Path::new(&path))?;
    }
    crate::tls::verifying(roots)
}

/// Verifies against the CA certificates of one PEM file only.
pub(super) fn verifying_with(ca: &Path) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    add_file(&mut roots, ca)?;
    crate::tls::verifying(roots)
}

fn add_file(roots: &mut RootCertStore, path: &Path) -> Result<(), String> {
    let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}
