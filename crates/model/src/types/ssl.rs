//! Typed SSL object (certificate).

use super::{de, Id, Labels};
use serde::Deserialize;

fn enabled() -> u8 {
    1
}

fn depth() -> u32 {
    1
}

/// What a certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SslType {
    /// Served to clients by SNI (default).
    #[default]
    Server,
    /// Presented to upstreams (`tls.client_cert_id`).
    Client,
}

/// `client`: mutual TLS towards clients.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SslClient {
    /// CA certificate(s) clients must chain to (PEM).
    pub ca: String,
    /// Verification depth.
    #[serde(default = "depth")]
    pub depth: u32,
    /// URI regexes exempt from the client-certificate check.
    #[serde(default, deserialize_with = "de::list")]
    pub skip_mtls_uri_regex: Vec<String>,
}

/// A certificate with its key (decrypted) and SNIs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ssl {
    /// Id.
    pub id: Option<Id>,
    /// Description.
    pub desc: Option<String>,
    /// Labels.
    #[serde(default, deserialize_with = "de::map")]
    pub labels: Labels,
    /// Creation time (unix seconds).
    pub create_time: Option<i64>,
    /// Update time (unix seconds).
    pub update_time: Option<i64>,
    /// Server or client certificate.
    #[serde(rename = "type", default)]
    pub kind: SslType,
    /// Certificate chain (PEM).
    pub cert: String,
    /// Private key (PEM).
    pub key: String,
    /// One SNI (`*.example.com` matches exactly one extra label).
    pub sni: Option<String>,
    /// Several SNIs.
    #[serde(default, deserialize_with = "de::list")]
    pub snis: Vec<String>,
    /// Extra certificates (e.g. ECC next to RSA), paired with `keys`.
    #[serde(default, deserialize_with = "de::list")]
    pub certs: Vec<String>,
    /// Keys of `certs`.
    #[serde(default, deserialize_with = "de::list")]
    pub keys: Vec<String>,
    /// Client certificate verification.
    pub client: Option<SslClient>,
    /// 1 enabled, 0 disabled.
    #[serde(default = "enabled")]
    pub status: u8,
    /// Allowed protocol versions (empty: the global default, TLSv1.2 and TLSv1.3).
    #[serde(default, deserialize_with = "de::list")]
    pub ssl_protocols: Vec<String>,
}

impl Ssl {
    /// The SNIs this certificate serves: `sni`, or `snis`.
    pub fn sni_list(&self) -> Vec<&str> {
        match &self.sni {
            Some(sni) => vec![sni.as_str()],
            None => self.snis.iter().map(String::as_str).collect(),
        }
    }

    /// Whether the certificate is in use.
    pub fn is_enabled(&self) -> bool {
        self.status != 0
    }
}
