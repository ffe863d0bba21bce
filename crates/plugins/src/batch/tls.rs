//! TLS towards log servers (http-logger `https://`, tcp-logger `tls`): with `verify`, the
//! server's certificate must chain to the system's CA bundle and name the host; without it
//! (APISIX's default `ssl_verify: false`) any certificate is accepted, handshake signatures
//! still checked.

use std::sync::{Arc, OnceLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The client configuration (built once per kind); `None` if rustls refuses the defaults.
pub fn client_config(verify: bool) -> Option<Arc<rustls::ClientConfig>> {
    static VERIFYING: OnceLock<Option<Arc<rustls::ClientConfig>>> = OnceLock::new();
    static ANY: OnceLock<Option<Arc<rustls::ClientConfig>>> = OnceLock::new();
    let cell = if verify { &VERIFYING } else { &ANY };
    cell.get_or_init(|| {
        if verify {
            let mut roots = rustls::RootCertStore::empty();
            if let Ok(certs) = CertificateDer::pem_file_iter(CA_BUNDLE) {
                roots.add_parsable_certificates(certs.flatten());
            }
            crate::tls::verifying(roots).ok()
        } else {
            crate::tls::accepting_any().ok()
        }
    })
    .clone()
}
