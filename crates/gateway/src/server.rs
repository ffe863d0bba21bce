//! Accepting clients: plain HTTP (HTTP/1.1 and h2c) and TLS (certificate by SNI, HTTP/2 by ALPN).
//! Every connection is read through [`ClientIo`], which judges request heads before hyper
//! parses them (`crate::head`).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{header, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::LazyConfigAcceptor;

use crate::body::GatewayBody;
use crate::error::{self, ProxyError};
use crate::guard::{ClientIo, Verdicts};
use crate::head::HeadLimits;
use crate::observe;
use crate::proxy::ConnInfo;
use crate::Gateway;

/// How long open connections may take to finish once shutdown begins.
const DRAIN: Duration = Duration::from_secs(10);

/// Serves clients on `listener` (TLS when `tls`) until `shutdown` resolves, then drains.
pub async fn serve(
    gateway: Arc<Gateway>,
    listener: TcpListener,
    tls: bool,
    shutdown: impl Future<Output = ()>,
) {
    let builder = Arc::new(builder(&gateway));
    let graceful = Arc::new(GracefulShutdown::new());
    let local_port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
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
                let (gateway, builder, graceful) = (gateway.clone(), builder.clone(), graceful.clone());
                tokio::spawn(async move {
                    let _open = OpenConnection::new(gateway.clone());
                    if tls {
                        serve_tls(gateway, &builder, &graceful, stream, remote, local_port).await;
                    } else {
                        let info = ConnInfo { remote, local_port, scheme: "http", tls: None };
                        serve_conn(gateway, &builder, &graceful, stream, info).await;
                    }
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    if let Ok(graceful) = Arc::try_unwrap(graceful) {
        let _ = tokio::time::timeout(DRAIN, graceful.shutdown()).await;
    } else {
        // Connections still being set up hold a reference; give them the drain time too.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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

fn builder(gateway: &Gateway) -> auto::Builder<TokioExecutor> {
    let limits = gateway.limits();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Heads are judged against the limits by `ClientIo` before hyper parses them; hyper's own
    // limits only need to let every accepted head through. hyper's header timer starts when a
    // connection waits for its next request, so it is the keep-alive timeout. A client that
    // shuts its sending side after a request still gets the answer (as from nginx); so does
    // one whose head was refused, after which `ClientIo` reads nothing more.
    builder
        .http1()
        .timer(TokioTimer::new())
        .half_close(true)
        .header_read_timeout(limits.keepalive_timeout)
        .max_buf_size(limits.max_header_bytes.saturating_add(8192).max(8192))
        .max_headers(limits.max_headers.max(4))
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(Duration::from_secs(30)));
    builder
}

async fn serve_tls(
    gateway: Arc<Gateway>,
    builder: &auto::Builder<TokioExecutor>,
    graceful: &GracefulShutdown,
    stream: TcpStream,
    remote: SocketAddr,
    local_port: u16,
) {
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
            let info = ConnInfo {
                remote,
                local_port,
                scheme: "https",
                tls: Some((cert, verified)),
            };
            serve_conn(gateway, builder, graceful, tls, info).await;
        }
        Ok(Err(e)) => tracing::debug!("TLS handshake with {remote} failed: {e}"),
        Err(_) => tracing::debug!("TLS handshake with {remote} timed out"),
    }
}

async fn serve_conn<I>(
    gateway: Arc<Gateway>,
    builder: &auto::Builder<TokioExecutor>,
    graceful: &GracefulShutdown,
    io: I,
    info: ConnInfo,
) where
    I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let limits = gateway.limits();
    let head_limits = HeadLimits {
        max_head: limits.max_header_bytes,
        max_headers: limits.max_headers,
    };
    let verdicts = Arc::new(Verdicts::default());
    let io = ClientIo::new(io, head_limits, limits.header_timeout, verdicts.clone());
    let info = Arc::new(info);
    let service = service_fn(move |req: Request<Incoming>| {
        let (gateway, info) = (gateway.clone(), info.clone());
        let refused = verdicts.next_request();
        // The request's future is large (every await point of the proxy keeps its room);
        // written straight into its own allocation it is never copied, where hyper would copy
        // it into its slot whole.
        let slot = Box::new_uninit();
        Box::into_pin(Box::write(slot, async move {
            let resp = observe::serve(gateway, req, &info, refused).await;
            Ok::<_, std::convert::Infallible>(resp)
        }))
    });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    if let Err(e) = graceful.watch(conn.into_owned()).await {
        tracing::debug!("client connection: {e}");
    }
}

/// The response to one request: a refusal, or the proxy's answer.
pub(crate) async fn answer(
    gateway: &Gateway,
    req: Request<Incoming>,
    info: &ConnInfo,
    refused: Option<StatusCode>,
) -> Response<GatewayBody> {
    let mut resp = match refused {
        Some(status) => refusal(status),
        None => match check_request(gateway, &req) {
            Ok(()) => gateway.handle(req, info).await,
            Err(e) => e.to_response(),
        },
    };
    resp.headers_mut()
        .insert(header::SERVER, gateway.server_header.clone());
    resp
}

/// The answer to a head refused before parsing; the connection closes after it.
fn refusal(status: StatusCode) -> Response<GatewayBody> {
    let mut resp = error::error_page(status);
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// Refusals that need no route: a declared body over `max_body_bytes` (413, before any of it is
/// read; a chunked body that grows past the limit is cut off while it streams, see
/// [`crate::body::RequestBody`]).
fn check_request(gateway: &Gateway, req: &Request<Incoming>) -> Result<(), ProxyError> {
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
