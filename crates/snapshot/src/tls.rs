//! Certificates by SNI (`ssls` objects, §2.7 and §8): exact names first, then `*.` wildcards that
//! cover exactly one label, then `*`. Each certificate object becomes one rustls server
//! configuration, with client-certificate verification when it has `client.ca`.

use std::collections::HashMap;
use std::sync::Arc;

use regex::Regex;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;

/// One usable `ssl` object.
#[derive(Debug)]
pub struct ServerCert {
    /// The ssl object's id.
    pub id: String,
    /// The TLS configuration for handshakes that picked this certificate.
    pub config: Arc<rustls::ServerConfig>,
    /// Whether clients must present a certificate signed by `client.ca`.
    pub mtls: bool,
    /// URIs exempt from the client-certificate requirement (`client.skip_mtls_uri_regex`).
    pub skip_mtls: Vec<Regex>,
}

/// Certificates indexed by server name.
#[derive(Debug, Default)]
pub struct SniTable {
    exact: HashMap<String, Arc<ServerCert>>,
    /// `*.example.com` stored as `example.com`.
    wildcard: HashMap<String, Arc<ServerCert>>,
    any: Option<Arc<ServerCert>>,
}

impl SniTable {
    /// The certificate for a server name (case-insensitive).
    pub fn find(&self, sni: &str) -> Option<&Arc<ServerCert>> {
        let sni = sni.to_ascii_lowercase();
        if let Some(c) = self.exact.get(&sni) {
            return Some(c);
        }
        if let Some((_, parent)) = sni.split_once('.') {
            if let Some(c) = self.wildcard.get(parent) {
                return Some(c);
            }
        }
        self.any.as_ref()
    }

    /// Adds a certificate under each of its names; the first object to claim a name keeps it.
    pub fn insert(&mut self, snis: &[String], cert: Arc<ServerCert>) {
        for sni in snis {
            let sni = sni.to_ascii_lowercase();
            if sni == "*" {
                self.any.get_or_insert_with(|| cert.clone());
            } else if let Some(parent) = sni.strip_prefix("*.") {
                self.wildcard
                    .entry(parent.to_string())
                    .or_insert_with(|| cert.clone());
            } else {
                self.exact.entry(sni).or_insert_with(|| cert.clone());
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.wildcard.is_empty() && self.any.is_none()
    }
}

/// What an `ssl` object's PEM material failed on.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("failed to parse cert: {0}")]
    Cert(String),
    #[error("failed to parse key: {0}")]
    Key(String),
    #[error("failed to parse client.ca: {0}")]
    ClientCa(String),
    #[error("invalid skip_mtls_uri_regex {0:?}: {1}")]
    Regex(String, String),
    #[error("{0}")]
    Config(String),
}

/// Parses a PEM certificate chain.
pub fn certs_from_pem(pem: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Cert(e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::Cert("no certificate in PEM".into()));
    }
    Ok(certs)
}

/// Parses a PEM private key (PKCS#8, PKCS#1 or SEC1).
pub fn key_from_pem(pem: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    rustls_pemfile::private_key(&mut pem.as_bytes())
        .map_err(|e| TlsError::Key(e.to_string()))?
        .ok_or_else(|| TlsError::Key("no private key in PEM".into()))
}

/// A signing key for `cert`/`key`, checked to belong together.
pub fn certified_key(cert: &str, key: &str) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = certs_from_pem(cert)?;
    let key = key_from_pem(key)?;
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::Key(e.to_string()))?;
    let ck = CertifiedKey::new(chain, signing);
    ck.keys_match()
        .map_err(|e| TlsError::Config(format!("certificate and key do not match: {e}")))?;
    Ok(Arc::new(ck))
}

/// Picks among the pairs of one ssl object (e.g. RSA and ECDSA) by what the client supports.
#[derive(Debug)]
struct PairResolver(Vec<Arc<CertifiedKey>>);

impl rustls::server::ResolvesServerCert for PairResolver {
    fn resolve(&self, hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let schemes = hello.signature_schemes();
        self.0
            .iter()
            .find(|ck| ck.key.choose_scheme(schemes).is_some())
            .or_else(|| self.0.first())
            .cloned()
    }
}

/// Settings of one ssl object that shape its TLS configuration.
pub struct ServerCertSpec<'a> {
    pub id: &'a str,
    /// `(cert, key)` pairs: `cert`/`key` first, then `certs[i]`/`keys[i]`; keys in clear.
    pub pairs: Vec<(&'a str, &'a str)>,
    pub client_ca: Option<&'a str>,
    pub skip_mtls_uri_regex: &'a [String],
    /// `ssl_protocols`; empty = TLS 1.2 and 1.3.
    pub protocols: &'a [String],
}

/// Builds the TLS configuration of one ssl object.
pub fn server_cert(spec: &ServerCertSpec<'_>) -> Result<ServerCert, TlsError> {
    let keys = spec
        .pairs
        .iter()
        .map(|(c, k)| certified_key(c, k))
        .collect::<Result<Vec<_>, _>>()?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = if spec.protocols.is_empty() {
        vec![&rustls::version::TLS13, &rustls::version::TLS12]
    } else {
        let mut v = Vec::new();
        if spec.protocols.iter().any(|p| p == "TLSv1.3") {
            v.push(&rustls::version::TLS13);
        }
        if spec.protocols.iter().any(|p| p == "TLSv1.2") {
            v.push(&rustls::version::TLS12);
        }
        if v.is_empty() {
            return Err(TlsError::Config(
                "ssl_protocols: Portico supports TLSv1.2 and TLSv1.3 only".into(),
            ));
        }
        v
    };
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match spec.client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in certs_from_pem(ca).map_err(|e| TlsError::ClientCa(e.to_string()))? {
                roots
                    .add(cert)
                    .map_err(|e| TlsError::ClientCa(e.to_string()))?;
            }
            // Verified when presented; whether it is required is decided per request, so that
            // `skip_mtls_uri_regex` can exempt URIs (as APISIX does).
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| TlsError::ClientCa(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(Arc::new(PairResolver(keys)));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let skip_mtls = spec
        .skip_mtls_uri_regex
        .iter()
        .map(|re| Regex::new(re).map_err(|e| TlsError::Regex(re.clone(), e.to_string())))
        .collect::<Result<_, _>>()?;
    Ok(ServerCert {
        id: spec.id.to_string(),
        config: Arc::new(config),
        mtls: spec.client_ca.is_some(),
        skip_mtls,
    })
}
