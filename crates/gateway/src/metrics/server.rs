//! The metrics listener (APISIX's export server, `127.0.0.1:9091`): `GET
//! /apisix/prometheus/metrics` answers the node's exposition; anything else 404.
//!
//! Each scrape asks the config store for its revision (at most [`STORE_PROBE`]) to report
//! `apisix_etcd_reachable` and `etcd_modify_indexes{key="x_etcd_index"}`, as APISIX's exporter
//! asks etcd.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use portico_store::SharedStore;
use tokio::net::TcpListener;

use super::StoreStatus;
use crate::Gateway;

/// Where the exposition is served (APISIX's `export_uri`).
pub const EXPORT_URI: &str = "/apisix/prometheus/metrics";

/// The longest a scrape waits for the config store.
pub const STORE_PROBE: Duration = Duration::from_secs(2);

/// What the exporter reports besides the gateway's counters.
#[derive(Clone)]
pub struct Exporter {
    pub gateway: Arc<Gateway>,
    /// The config store to probe; `None` leaves the store metrics out.
    pub store: Option<SharedStore>,
    /// `apisix_node_info{hostname}`.
    pub hostname: String,
}

impl Exporter {
    /// The answer to one request.
    pub async fn answer<B>(&self, req: &Request<B>) -> Response<Full<Bytes>> {
        if req.uri().path() != EXPORT_URI {
            return reply(
                StatusCode::NOT_FOUND,
                "application/json",
                r#"{"error_msg":"not found"}"#.into(),
            );
        }
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return reply(
                StatusCode::METHOD_NOT_ALLOWED,
                "application/json",
                r#"{"error_msg":"method not allowed"}"#.into(),
            );
        }
        let status = self.store_status().await;
        let text = self.gateway.render_metrics(&status, &self.hostname);
        reply(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            text,
        )
    }

    async fn store_status(&self) -> StoreStatus {
        let Some(store) = &self.store else {
            return StoreStatus::default();
        };
        match tokio::time::timeout(STORE_PROBE, store.revision()).await {
            Ok(Ok(revision)) => StoreStatus {
                reachable: Some(true),
                revision: Some(revision),
            },
            Ok(Err(e)) => {
                tracing::error!("prometheus: failed to reach config server while processing metrics endpoint: {e}");
                StoreStatus {
                    reachable: Some(false),
                    revision: None,
                }
            }
            Err(_) => {
                tracing::error!(
                    "prometheus: the config server did not answer within {STORE_PROBE:?}"
                );
                StoreStatus {
                    reachable: Some(false),
                    revision: None,
                }
            }
        }
    }
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// Serves the exposition on `listener` until `shutdown` resolves.
pub async fn serve(listener: TcpListener, exporter: Exporter, shutdown: impl Future<Output = ()>) {
    let exporter = Arc::new(exporter);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let exporter = exporter.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let exporter = exporter.clone();
                        async move { Ok::<_, Infallible>(exporter.answer(&req).await) }
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
