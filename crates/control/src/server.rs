//! The admin listener: HTTP/1.1 and h2c on one TCP port, with graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::{AdminApi, ManageApi};

/// Something that answers admin-listener requests.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request.
    fn call(
        &self,
        req: http::Request<hyper::body::Incoming>,
    ) -> std::pin::Pin<
        Box<dyn Future<Output = http::Response<http_body_util::Full<bytes::Bytes>>> + Send + '_>,
    >;
}

impl Handler for AdminApi {
    fn call(
        &self,
        req: http::Request<hyper::body::Incoming>,
    ) -> std::pin::Pin<
        Box<dyn Future<Output = http::Response<http_body_util::Full<bytes::Bytes>>> + Send + '_>,
    > {
        Box::pin(self.handle(req))
    }
}

impl Handler for ManageApi {
    fn call(
        &self,
        req: http::Request<hyper::body::Incoming>,
    ) -> std::pin::Pin<
        Box<dyn Future<Output = http::Response<http_body_util::Full<bytes::Bytes>>> + Send + '_>,
    > {
        Box::pin(self.handle(req))
    }
}

/// How long in-flight requests may take to finish once shutdown begins.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `api` on `listener` until `shutdown` resolves, then lets open connections finish their
/// current request (up to ten seconds) and returns.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    api: Arc<H>,
    shutdown: impl Future<Output = ()>,
) {
    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        tracing::warn!("admin listener: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let api = api.clone();
                let service = service_fn(move |req| {
                    let api = api.clone();
                    async move { Ok::<_, std::convert::Infallible>(api.call(req).await) }
                });
                let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!("admin connection from {peer}: {e}");
                    }
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("admin listener: connections still open after {DRAIN_TIMEOUT:?}; closing");
    }
}
