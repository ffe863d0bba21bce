//! Clients below hyper: raw TCP for malformed requests, TLS with a chosen SNI, ALPN and client
//! certificate, and throw-away certificates.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use portico_snapshot::client_tls::AcceptAny;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// How long a raw client waits for bytes before giving up (tests fail, they do not hang).
const PATIENCE: Duration = Duration::from_secs(10);

/// One response as read off the wire.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// The head, lower-cased.
    pub head: String,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A hand-driven HTTP/1.x client connection.
pub struct RawConn {
    pub stream: TcpStream,
}

impl RawConn {
    pub async fn open(addr: SocketAddr) -> RawConn {
        let stream = TcpStream::connect(addr).await.expect("connect");
        RawConn { stream }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("send");
    }

    /// Reads one response: head, then a `Content-Length` or chunked body.
    pub async fn response(&mut self) -> RawResponse {
        tokio::time::timeout(PATIENCE, self.read_response())
            .await
            .expect("a response in time")
    }

    async fn read_response(&mut self) -> RawResponse {
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let b = self.stream.read_u8().await.expect("response head");
            head.push(b);
        }
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status line");
        let header = |name: &str| {
            head.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_string))
        };
        let mut body = Vec::new();
        if let Some(len) = header("content-length").and_then(|l| l.parse::<usize>().ok()) {
            body.resize(len, 0);
            self.stream.read_exact(&mut body).await.expect("body");
        } else if header("transfer-encoding").as_deref() == Some("chunked") {
            loop {
                let mut line = Vec::new();
                while !line.ends_with(b"\r\n") {
                    line.push(self.stream.read_u8().await.expect("chunk size"));
                }
                let text = String::from_utf8_lossy(&line[..line.len() - 2]).into_owned();
                let size = usize::from_str_radix(text.trim(), 16).expect("chunk size");
                let mut chunk = vec![0; size + 2];
                self.stream.read_exact(&mut chunk).await.expect("chunk");
                if size == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..size]);
            }
        }
        RawResponse { status, head, body }
    }

    /// Whether the gateway closed the connection (reads to the end, dropping any bytes).
    pub async fn closed(&mut self) -> bool {
        let mut buf = [0u8; 4096];
        let read_to_end = async {
            loop {
                match self.stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return true,
                    Ok(_) => {}
                }
            }
        };
        tokio::time::timeout(PATIENCE, read_to_end)
            .await
            .unwrap_or(false)
    }
}

/// Sends `bytes` on a new connection and reads one response.
pub async fn raw(addr: SocketAddr, bytes: &[u8]) -> RawResponse {
    let mut conn = RawConn::open(addr).await;
    conn.send(bytes).await;
    conn.response().await
}

/// A TLS client setting: what to offer and whom to trust (anyone: tests look at the
/// certificate they got instead).
pub struct TlsClient {
    pub sni: String,
    pub alpn: Vec<Vec<u8>>,
    /// `(cert, key)` PEM of a client certificate.
    pub identity: Option<(String, String)>,
}

impl TlsClient {
    pub fn new(sni: &str) -> TlsClient {
        TlsClient {
            sni: sni.to_string(),
            alpn: vec![b"http/1.1".to_vec()],
            identity: None,
        }
    }

    /// Offers only `h2` by ALPN.
    pub fn h2(mut self) -> TlsClient {
        self.alpn = vec![b"h2".to_vec()];
        self
    }

    pub fn with_identity(mut self, cert: &str, key: &str) -> TlsClient {
        self.identity = Some((cert.to_string(), key.to_string()));
        self
    }

    /// Connects and completes the handshake.
    pub async fn connect(&self, addr: SocketAddr) -> std::io::Result<TlsStream<TcpStream>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny::new(provider)));
        let mut config = match &self.identity {
            Some((cert, key)) => {
                let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .expect("client cert PEM");
                let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("client key PEM");
                builder.with_client_auth_cert(chain, key).expect("identity")
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = self.alpn.clone();
        let name = ServerName::try_from(self.sni.clone()).expect("server name");
        let tcp = TcpStream::connect(addr).await?;
        tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
    }
}

/// The DER of the certificate the server presented.
pub fn served_cert(stream: &TlsStream<TcpStream>) -> Vec<u8> {
    stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.as_ref().to_vec())
        .expect("a server certificate")
}

/// The DER of the first certificate in `pem`.
pub fn der(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .expect("a PEM certificate")
        .as_ref()
        .to_vec()
}

/// A self-signed ECDSA certificate for `name`, PEM encoded.
pub struct Cert {
    pub cert: String,
    pub key: String,
}

impl Cert {
    /// Made with the `openssl` program in a temporary folder.
    pub fn self_signed(name: &str) -> Cert {
        let dir = tempfile::tempdir().expect("temporary folder");
        let out = Command::new("openssl")
            .current_dir(dir.path())
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
            .args(["-keyout", "k.pem", "-out", "c.pem", "-subj"])
            .arg(format!("/CN={name}"))
            .arg("-addext")
            .arg(format!("subjectAltName=DNS:{name}"))
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).expect("PEM file");
        Cert {
            cert: read("c.pem"),
            key: read("k.pem"),
        }
    }
}
