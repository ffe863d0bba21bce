//! Upstream servers for data-plane tests: real HTTP servers on `127.0.0.1:0`, stopped (with
//! every connection they hold) when the [`Upstream`] handle is dropped.
//!
//! ```ignore
//! let a = Upstream::start("a", handlers::echo()).await;
//! // ... route to a.node() through the gateway ...
//! assert_eq!(a.hits(), 1);
//! ```
//!
//! One server type serves HTTP/1.1 and h2c ([`Proto::Auto`]), HTTP/1.1 only or HTTP/2 only, in
//! clear text or TLS (optionally requiring a client certificate). What it answers is a
//! [`Handler`]; the usual ones are in [`handlers`]: an echo that reports what it received as JSON,
//! fixed statuses, delays, held requests, generated downloads, WebSocket echo ([`ws`]) and unary
//! gRPC ([`grpc`]). [`Upstream::raw`] serves plain TCP for misbehaving peers.

mod body;
pub mod grpc;
pub mod handlers;
pub mod ws;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

pub use body::{pattern, pattern_byte, pattern_crc, TestBody, PERIOD};
pub use handlers::Gate;

/// A boxed future, as handlers return them.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// What an upstream answers to each request.
pub type Handler = Arc<dyn Fn(Request<Incoming>) -> BoxFuture<Response<TestBody>> + Send + Sync>;

/// What a raw TCP upstream does with each accepted connection.
pub type RawHandler = Arc<dyn Fn(TcpStream) -> BoxFuture<()> + Send + Sync>;

/// Protocols an upstream speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// HTTP/1.1, and HTTP/2 for clients that open with its preface (h2c prior knowledge).
    Auto,
    /// HTTP/1.1 only (upgrades allowed).
    H1,
    /// HTTP/2 only.
    H2,
}

/// TLS material of an HTTPS upstream, PEM encoded.
#[derive(Clone, Debug)]
pub struct TlsSettings {
    pub cert: String,
    pub key: String,
    /// When set, clients must present a certificate signed by this CA.
    pub client_ca: Option<String>,
}

/// Counters of one upstream, shared with its handlers through [`Conn`].
#[derive(Debug, Default)]
pub struct Stats {
    /// Requests whose head arrived.
    pub hits: AtomicUsize,
    /// Request bodies that ended in an error instead of their end (the sender aborted).
    pub aborted_bodies: AtomicUsize,
}

/// Facts about the connection a request came on, in the request's extensions.
#[derive(Clone, Debug)]
pub struct Conn {
    pub name: Arc<str>,
    pub peer: SocketAddr,
    /// Whether the TLS client presented a certificate (always false without TLS).
    pub client_cert: bool,
    pub stats: Arc<Stats>,
}

/// A running upstream server.
pub struct Upstream {
    addr: SocketAddr,
    name: Arc<str>,
    stats: Arc<Stats>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    /// An HTTP/1.1 + h2c server answering with `handler`.
    pub async fn start(name: &str, handler: Handler) -> Upstream {
        Upstream::with(name, Proto::Auto, None, handler).await
    }

    /// An HTTP/2-only (h2c, prior knowledge) server.
    pub async fn h2c(name: &str, handler: Handler) -> Upstream {
        Upstream::with(name, Proto::H2, None, handler).await
    }

    /// An HTTPS server (ALPN `h2` and `http/1.1`).
    pub async fn https(name: &str, tls: TlsSettings, handler: Handler) -> Upstream {
        Upstream::with(name, Proto::Auto, Some(tls), handler).await
    }

    /// A server with every option spelled out.
    pub async fn with(
        name: &str,
        proto: Proto,
        tls: Option<TlsSettings>,
        handler: Handler,
    ) -> Upstream {
        let listener = bind().await;
        let addr = listener.local_addr().expect("local address");
        let name: Arc<str> = Arc::from(name);
        let stats = Arc::new(Stats::default());
        let acceptor = tls.map(|t| tls_acceptor(&t));
        let (n, s) = (name.clone(), stats.clone());
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            while let Ok((stream, peer)) = listener.accept().await {
                while conns.try_join_next().is_some() {}
                let _ = stream.set_nodelay(true);
                let conn = Conn {
                    name: n.clone(),
                    peer,
                    client_cert: false,
                    stats: s.clone(),
                };
                let (acceptor, handler) = (acceptor.clone(), handler.clone());
                conns.spawn(async move {
                    match acceptor {
                        None => serve(TokioIo::new(stream), proto, conn, handler).await,
                        Some(acceptor) => {
                            let Ok(tls) = acceptor.accept(stream).await else {
                                return;
                            };
                            let client_cert = tls.get_ref().1.peer_certificates().is_some();
                            let conn = Conn {
                                client_cert,
                                ..conn
                            };
                            serve(TokioIo::new(tls), proto, conn, handler).await;
                        }
                    }
                });
            }
        });
        Upstream {
            addr,
            name,
            stats,
            task,
        }
    }

    /// A plain TCP server that hands each connection to `handler` (for peers that close, hang
    /// or answer with hand-written bytes).
    pub async fn raw(name: &str, handler: RawHandler) -> Upstream {
        let listener = bind().await;
        let addr = listener.local_addr().expect("local address");
        let stats = Arc::new(Stats::default());
        let s = stats.clone();
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                while conns.try_join_next().is_some() {}
                s.hits.fetch_add(1, Ordering::SeqCst);
                conns.spawn(handler(stream));
            }
        });
        Upstream {
            addr,
            name: Arc::from(name),
            stats,
            task,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `127.0.0.1:<port>`, as an upstream node key.
    pub fn node(&self) -> String {
        self.addr.to_string()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Requests (or, for raw servers, connections) received so far.
    pub fn hits(&self) -> usize {
        self.stats.hits.load(Ordering::SeqCst)
    }

    /// Request bodies that were cut off before their end.
    pub fn aborted_bodies(&self) -> usize {
        self.stats.aborted_bodies.load(Ordering::SeqCst)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `127.0.0.1:<port>` where nothing listens: the port is held by a bound socket that never
/// listens, so connecting is refused and no other test can take the port meanwhile.
pub struct ClosedPort {
    addr: SocketAddr,
    _socket: tokio::net::TcpSocket,
}

impl ClosedPort {
    pub fn new() -> ClosedPort {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("bind 127.0.0.1:0");
        let addr = socket.local_addr().expect("local address");
        ClosedPort {
            addr,
            _socket: socket,
        }
    }

    pub fn node(&self) -> String {
        self.addr.to_string()
    }
}

impl Default for ClosedPort {
    fn default() -> Self {
        ClosedPort::new()
    }
}

async fn bind() -> TcpListener {
    TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0")
}

async fn serve<I>(io: TokioIo<I>, proto: Proto, conn: Conn, handler: Handler)
where
    I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let service = service_fn(move |mut req: Request<Incoming>| {
        conn.stats.hits.fetch_add(1, Ordering::SeqCst);
        req.extensions_mut().insert(conn.clone());
        let reply = handler(req);
        async move { Ok::<_, Infallible>(reply.await) }
    });
    let _ = match proto {
        Proto::Auto => {
            hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(io, service)
                .await
        }
        Proto::H1 => hyper::server::conn::http1::Builder::new()
            .serve_connection(io, service)
            .with_upgrades()
            .await
            .map_err(Into::into),
        Proto::H2 => hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(io, service)
            .await
            .map_err(Into::into),
    };
}

fn tls_acceptor(t: &TlsSettings) -> tokio_rustls::TlsAcceptor {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs: Vec<_> = rustls_pemfile::certs(&mut t.cert.as_bytes())
        .collect::<Result<_, _>>()
        .expect("upstream certificate PEM");
    let key = rustls_pemfile::private_key(&mut t.key.as_bytes())
        .expect("upstream key PEM")
        .expect("a private key");
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("protocol versions");
    let builder = match &t.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_pemfile::certs(&mut ca.as_bytes()) {
                roots.add(cert.expect("CA PEM")).expect("CA certificate");
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .expect("client verifier");
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .expect("upstream certificate and key");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}
