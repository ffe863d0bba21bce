//! TLS towards upstream nodes. As in APISIX, the node's certificate is not verified (nginx's
//! `proxy_ssl_verify off`); a client certificate is sent when the upstream has one.

use std::sync::Arc;

pub use portico_plugins::tls::AcceptAny;

use crate::tls::{certs_from_pem, key_from_pem};

/// A client configuration for an upstream: with a client certificate (`(cert, key)` PEM) for
/// mTLS, and ALPN `h2` for gRPC.
pub fn config(client: Option<(&str, &str)>, h2: bool) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny::new(provider)));
    let mut config = match client {
        Some((cert, key)) => {
            let chain = certs_from_pem(cert).map_err(|e| format!("upstream tls: {e}"))?;
            let key = key_from_pem(key).map_err(|e| format!("upstream tls: {e}"))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("upstream tls: {e}"))?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = if h2 {
        vec![b"h2".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(Arc::new(config))
}
