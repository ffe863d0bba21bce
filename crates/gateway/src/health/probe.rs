//! One active probe of one node, the way lua-resty-healthcheck's `run_single_check` does it:
//! connect (TCP, then TLS for `https`), and for HTTP(S) send one `HTTP/1.0` request and read the
//! status line only. The whole probe shares one deadline, `checks.active.timeout`.
//!
//! Outcomes: connect or TLS handshake refused or failed → `TcpFailure`; past the deadline →
//! `Timeout`; a status line → `Status(code)`; an unreadable status line → `Status(0)` (an HTTP
//! failure, as the library counts it); a `tcp` probe that connected → `Success`.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use portico_balancer::health::Outcome;
use portico_model::types::{ActiveCheck, CheckType};
use portico_snapshot::client_tls::AcceptAny;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// The longest status line read; a longer one is unreadable.
const MAX_STATUS_LINE: usize = 4096;
/// Where Debian keeps the system's CA bundle, used when `https_verify_certificate` is on.
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Where and how to probe one node.
#[derive(Clone, Debug)]
pub(super) struct Target {
    /// Node address (IP literal) or domain to resolve.
    pub host: String,
    /// The node's address when `host` is an IP literal.
    pub addr: Option<SocketAddr>,
    /// `checks.active.port`, else the node's port.
    pub port: u16,
    /// `Host` header and TLS server name.
    pub host_header: String,
}

/// Probes `target` with `check`; never fails, every problem is an [`Outcome`].
pub(super) async fn probe(check: &ActiveCheck, target: &Target) -> Outcome {
    let secs = check.timeout;
    let secs = if secs.is_finite() && secs > 0.0 {
        secs.min(3600.0)
    } else {
        1.0
    };
    let timeout = Duration::from_secs_f64(secs);
    match tokio::time::timeout(timeout, run(check, target)).await {
        Ok(outcome) => outcome,
        Err(_) => Outcome::Timeout,
    }
}

async fn run(check: &ActiveCheck, target: &Target) -> Outcome {
    let addr = match target.addr {
        Some(addr) => SocketAddr::new(addr.ip(), target.port),
        None => match tokio::net::lookup_host((target.host.as_str(), target.port)).await {
            Ok(mut addrs) => match addrs.next() {
                Some(addr) => addr,
                None => return Outcome::TcpFailure,
            },
            Err(_) => return Outcome::TcpFailure,
        },
    };
    let Ok(stream) = TcpStream::connect(addr).await else {
        return Outcome::TcpFailure;
    };
    match check.kind {
        CheckType::Tcp => Outcome::Success,
        CheckType::Http => exchange(stream, check, target).await,
        CheckType::Https => {
            let config = if check.https_verify_certificate {
                verifying()
            } else {
                accepting_any()
            };
            let name = server_name(&target.host_header);
            let connector = tokio_rustls::TlsConnector::from(config);
            match connector.connect(name, stream).await {
                Ok(tls) => exchange(tls, check, target).await,
                Err(_) => Outcome::TcpFailure,
            }
        }
    }
}

/// Sends the probe request and reads the status line.
async fn exchange<S>(stream: S, check: &ActiveCheck, target: &Target) -> Outcome
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut stream = BufReader::new(stream);
    if stream
        .get_mut()
        .write_all(&request(check, &target.host_header))
        .await
        .is_err()
    {
        return Outcome::TcpFailure;
    }
    let mut line = Vec::new();
    let mut limited = (&mut stream).take(MAX_STATUS_LINE as u64);
    match limited.read_until(b'\n', &mut line).await {
        Ok(0) | Err(_) => Outcome::TcpFailure,
        Ok(_) => Outcome::Status(status_code(&line).unwrap_or(0)),
    }
}

/// `METHOD path HTTP/1.0`, `Host`, the configured headers and the body. Header lines with a
/// line break are dropped rather than sent (they would split the request).
pub(super) fn request(check: &ActiveCheck, host: &str) -> Vec<u8> {
    let clean = |s: &str| !s.contains(['\r', '\n']);
    let method = if check.http_method.is_empty() || !clean(&check.http_method) {
        "GET"
    } else {
        check.http_method.as_str()
    };
    let path = if check.http_path.is_empty() || !clean(&check.http_path) {
        "/"
    } else {
        check.http_path.as_str()
    };
    let mut head = format!("{method} {path} HTTP/1.0\r\n");
    if clean(host) {
        head.push_str(&format!("Host: {host}\r\n"));
    }
    for header in check.req_headers.iter().filter(|h| clean(h)) {
        head.push_str(header);
        head.push_str("\r\n");
    }
    if !check.http_req_body.is_empty() {
        head.push_str(&format!(
            "Content-Length: {}\r\n",
            check.http_req_body.len()
        ));
    }
    head.push_str("Connection: close\r\n\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(check.http_req_body.as_bytes());
    bytes
}

/// The code of a status line `HTTP/x.y NNN ...`.
pub(super) fn status_code(line: &[u8]) -> Option<u16> {
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split_ascii_whitespace();
    let version = parts.next()?;
    if !version.starts_with("HTTP/") {
        return None;
    }
    let code = parts.next()?;
    (code.len() == 3).then(|| code.parse().ok()).flatten()
}

fn server_name(host: &str) -> ServerName<'static> {
    let bare = crate::forward::host_without_port(host);
    let bare = bare.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(bare.to_string())
        .unwrap_or_else(|_| ServerName::try_from("localhost").expect("a valid static name"))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Verifies node certificates against the system's CA bundle (built once).
fn verifying() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            if let Ok(certs) = CertificateDer::pem_file_iter(CA_BUNDLE) {
                roots.add_parsable_certificates(certs.flatten());
            }
            let config = rustls::ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map(|b| b.with_root_certificates(roots).with_no_client_auth());
            Arc::new(config.unwrap_or_else(|_| insecure_config()))
        })
        .clone()
}

/// Accepts any node certificate (`https_verify_certificate: false`).
fn accepting_any() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG.get_or_init(|| Arc::new(insecure_config())).clone()
}

fn insecure_config() -> rustls::ClientConfig {
    let provider = provider();
    rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny::new(provider)))
        .with_no_client_auth()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_are_read_strictly() {
        assert_eq!(
            status_code(b"HTTP/1.1 503 Service Unavailable\r\n"),
            Some(503)
        );
        assert_eq!(status_code(b"HTTP/1.0 200\r\n"), Some(200));
        assert_eq!(status_code(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(status_code(b"HTTP/1.1 20\r\n"), None);
    }

    #[test]
    fn the_request_carries_host_headers_and_body() {
        let check = ActiveCheck {
            http_path: "/status".into(),
            http_method: "POST".into(),
            http_req_body: "ping".into(),
            req_headers: vec!["X-Probe: 1".into(), "Bad: a\r\nInjected: b".into()],
            ..ActiveCheck::default()
        };
        let text = String::from_utf8(request(&check, "example.com")).expect("ascii");
        assert_eq!(
            text,
            "POST /status HTTP/1.0\r\nHost: example.com\r\nX-Probe: 1\r\n\
             Content-Length: 4\r\nConnection: close\r\n\r\nping"
        );
    }
}
