//! Accepting clients: plain HTTP (HTTP/1.x and h2c) and TLS (certificate by SNI, HTTP/2 by ALPN).
//!
//! HTTP/1.x connections are served by the gateway's own server connection
//! ([`crate::h1::server`]); HTTP/2 — a plain connection that starts with the HTTP/2 preface, or
//! a TLS connection that agreed on `h2` — by hyper's HTTP/2 server.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{header, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::LazyConfigAcceptor;

use crate::body::{GatewayBody, Inbound};
use crate::error::{self, ProxyError};
use crate::h1::server::{Drain, Io, Rewind, Watch};
use crate::head::H2_PREFACE;
use crate::observe;
use crate::proxy::ConnInfo;
use crate::Gateway;

/// How long open connections may take to finish once shutdown begins.
const DRAIN: Duration = Duration::from_secs(10);

/// Room for the first read of a plain connection (usually its whole first head).
const FIRST_READ: usize = 8 * 1024;

/// What the connections of one listener share.
struct Shared {
    gateway: Arc<Gateway>,
    h2: http2::Builder<PerPollExecutor>,
    /// hyper's HTTP/2 connections, drained on shutdown.
    graceful: GracefulShutdown,
    local_port: u16,
}

/// Serves clients on `listener` (TLS when `tls`) until `shutdown` resolves, then drains: idle
/// connections close at once, busy ones after their current request, within [`DRAIN`].
pub async fn serve(
    gateway: Arc<Gateway>,
    listener: TcpListener,
    tls: bool,
    shutdown: impl Future<Output = ()>,
) {
    let shared = Arc::new(Shared {
        h2: h2_builder(&gateway),
        gateway,
        graceful: GracefulShutdown::new(),
        local_port: listener.local_addr().map(|a| a.port()).unwrap_or_default(),
    });
    let draining = Drain::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, remote) = match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                let stop = draining.register();
                tokio::spawn(async move {
                    let task = std::pin::pin!(async move {
                        let _open = OpenConnection::new(shared.gateway.clone());
                        let since = portico_clock::now();
                        if tls {
                            serve_tls(&shared, stream, remote, since, stop).await;
                        } else {
                            serve_plain(&shared, stream, remote, since, stop).await;
                        }
                    });
                    // One clock reading per poll for everything a request does in it.
                    portico_clock::per_poll(task).await
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    let own = draining.drain(DRAIN);
    let hyper = async {
        match Arc::try_unwrap(shared) {
            Ok(shared) => shared.graceful.shutdown().await,
            // Connections still being set up hold a reference; give them the drain time too.
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let _ = tokio::time::timeout(DRAIN, async { tokio::join!(own, hyper) }).await;
}

/// A client connection counted as open (`apisix_nginx_http_current_connections`) while it lives.
struct OpenConnection(Arc<Gateway>);

impl OpenConnection {
    fn new(gateway: Arc<Gateway>) -> OpenConnection {
        gateway.metrics.connection_opened();
        OpenConnection(gateway)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.metrics.connection_closed();
    }
}

/// Spawns the tasks of HTTP/2 streams with one clock reading per poll, as connection tasks.
#[derive(Clone, Copy)]
struct PerPollExecutor;

impl<F> hyper::rt::Executor<F> for PerPollExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        tokio::spawn(async move {
            let fut = std::pin::pin!(fut);
            portico_clock::per_poll(fut).await
        });
    }
}

fn h2_builder(gateway: &Gateway) -> http2::Builder<PerPollExecutor> {
    let limits = gateway.limits();
    let mut builder = http2::Builder::new(PerPollExecutor);
    builder
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(Duration::from_secs(30)));
    builder
}

/// A plain connection: HTTP/2 when it starts with the preface (h2c prior knowledge), else
/// HTTP/1.x. What was read to tell goes to whichever serves it. A client that sends neither a
/// head nor the preface within `header_timeout` is disconnected.
async fn serve_plain(
    shared: &Shared,
    mut stream: TcpStream,
    remote: SocketAddr,
    since: Instant,
    stop: Arc<Watch>,
) {
    let info = ConnInfo {
        remote,
        local_port: shared.local_port,
        scheme: "http",
        tls: None,
        head_bytes: 0,
    };
    let deadline = tokio::time::Instant::from_std(since + shared.gateway.limits().header_timeout);
    let mut read = BytesMut::with_capacity(FIRST_READ);
    let h2 = loop {
        let n = read.len().min(H2_PREFACE.len());
        if read[..n] != H2_PREFACE[..n] {
            break false;
        }
        if n == H2_PREFACE.len() {
            break true;
        }
        match tokio::time::timeout_at(deadline, stream.read_buf(&mut read)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return,
        }
    };
    if h2 {
        serve_h2(shared, Rewind::new(read.freeze(), Io::Tcp(stream)), info).await;
    } else {
        let gateway = shared.gateway.clone();
        crate::h1::server::serve(gateway, Io::Tcp(stream), read, info, since, stop).await;
    }
}

async fn serve_tls(
    shared: &Shared,
    stream: TcpStream,
    remote: SocketAddr,
    since: Instant,
    stop: Arc<Watch>,
) {
    let gateway = &shared.gateway;
    let handshake = async {
        let start = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream).await?;
        let sni = start.client_hello().server_name().map(str::to_string);
        let snapshot = gateway.snapshot();
        let cert = sni
            .as_deref()
            .and_then(|name| snapshot.sni.find(name))
            .cloned();
        let Some(cert) = cert else {
            return Err(std::io::Error::other(format!(
                "no certificate for server name {sni:?}"
            )));
        };
        let tls = start.into_stream(cert.config.clone()).await?;
        let verified = tls
            .get_ref()
            .1
            .peer_certificates()
            .is_some_and(|c| !c.is_empty());
        Ok::<_, std::io::Error>((tls, cert, verified))
    };
    match tokio::time::timeout(gateway.limits().header_timeout, handshake).await {
        Ok(Ok((tls, cert, verified))) => {
            let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
            let info = ConnInfo {
                remote,
                local_port: shared.local_port,
                scheme: "https",
                tls: Some((cert, verified)),
                head_bytes: 0,
            };
            let io = Io::Tls(Box::new(tls));
            if h2 {
                serve_h2(shared, Rewind::new(Bytes::new(), io), info).await;
            } else {
                let gateway = gateway.clone();
                crate::h1::server::serve(gateway, io, BytesMut::new(), info, since, stop).await;
            }
        }
        Ok(Err(e)) => tracing::debug!("TLS handshake with {remote} failed: {e}"),
        Err(_) => tracing::debug!("TLS handshake with {remote} timed out"),
    }
}

/// An HTTP/2 connection, served by hyper.
async fn serve_h2(shared: &Shared, io: Rewind, info: ConnInfo) {
    let info = Arc::new(info);
    let gateway = shared.gateway.clone();
    let service = service_fn(move |req: Request<Incoming>| {
        let (gateway, info) = (gateway.clone(), info.clone());
        // Written straight into its own allocation, the large request future is never copied
        // (hyper would copy it into its slot whole).
        let slot = Box::new_uninit();
        Box::into_pin(Box::write(slot, async move {
            let resp = observe::serve(gateway, req.map(Inbound::Hyper), &info, None).await;
            Ok::<_, std::convert::Infallible>(resp)
        }))
    });
    let conn = shared.h2.serve_connection(TokioIo::new(io), service);
    if let Err(e) = shared.graceful.watch(conn).await {
        tracing::debug!("client connection: {e}");
    }
}

/// The response to one request: a refusal, or the proxy's answer.
pub(crate) async fn answer(
    gateway: &Gateway,
    req: Request<Inbound>,
    info: &ConnInfo,
    refused: Option<StatusCode>,
) -> Response<GatewayBody> {
    let mut resp = match refused {
        Some(status) => refusal(status),
        None => match check_request(gateway, &req) {
            // The proxy's answers carry the `Server` header already.
            Ok(()) => return gateway.handle(req, info).await,
            Err(e) => e.to_response(),
        },
    };
    resp.headers_mut()
        .insert(header::SERVER, gateway.server_header.clone());
    resp
}

/// The answer to a refused request head; the connection closes after it.
pub(crate) fn refusal(status: StatusCode) -> Response<GatewayBody> {
    let mut resp = error::error_page(status);
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// Refusals that need no route: a declared body over `max_body_bytes` (413, before any of it is
/// read; a chunked body that grows past the limit is cut off while it streams, see
/// [`crate::body::RequestBody`]).
fn check_request(gateway: &Gateway, req: &Request<Inbound>) -> Result<(), ProxyError> {
    if let Some(max) = gateway.limits().max_body_bytes {
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > max) {
            return Err(ProxyError::Client(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body too large".into(),
            ));
        }
    }
    Ok(())
}
