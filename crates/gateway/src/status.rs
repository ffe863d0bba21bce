//! The status listener (APISIX's `127.0.0.1:7085`): `/status` answers while the process runs;
//! `/status/ready` answers 200 once a config is loaded and 503 while none is, or while the
//! control plane has the node drained, so an external load balancer takes it out of rotation.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::registration::Drain;

/// What readiness depends on.
#[derive(Clone)]
pub struct Readiness {
    /// The applied store revision; 0 until a config was loaded.
    pub applied: watch::Receiver<i64>,
    pub drain: Drain,
}

impl Readiness {
    fn answer(&self, path: &str) -> Response<Full<Bytes>> {
        let (status, body) = match path {
            "/status" => (StatusCode::OK, r#"{"status":"ok"}"#.to_string()),
            "/status/ready" => {
                if self.drain.is_drained() {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        r#"{"status":"error","error":"node is drained"}"#.to_string(),
                    )
                } else if *self.applied.borrow() == 0 {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        r#"{"status":"error","error":"no configuration loaded yet"}"#.to_string(),
                    )
                } else {
                    (StatusCode::OK, r#"{"status":"ok"}"#.to_string())
                }
            }
            _ => (
                StatusCode::NOT_FOUND,
                r#"{"error_msg":"not found"}"#.to_string(),
            ),
        };
        let mut resp = Response::new(Full::new(Bytes::from(body)));
        *resp.status_mut() = status;
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        resp
    }
}

/// Serves the status endpoints on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    readiness: Readiness,
    shutdown: impl Future<Output = ()>,
) {
    let readiness = Arc::new(readiness);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let readiness = readiness.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let resp = readiness.answer(req.uri().path());
                        async move { Ok::<_, std::convert::Infallible>(resp) }
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            _ = &mut shutdown => break,
        }
    }
}
