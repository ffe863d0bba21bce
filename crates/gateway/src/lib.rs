//! Portico's data plane: listeners (HTTP/1.1, h2c, TLS with SNI and mTLS), routing, proxying with
//! pooled upstream connections, retries and timeouts, on one atomically swapped [`Snapshot`].
//!
//! A request loads the current snapshot once and keeps it to the end, whatever swaps happen
//! meanwhile; a new snapshot is compiled off the request path ([`node`]) and swapped in whole.

pub mod access_log;
pub mod body;
mod call;
pub mod error;
mod filtered;
pub mod forward;
mod h1;
mod head;
pub mod health;
pub mod metrics;
pub mod node;
mod observe;
pub mod pool;
mod proxy;
pub mod registration;
pub mod server;
pub mod status;
mod trace;
pub mod uri;
pub mod vars;
mod websocket;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::HeaderValue;
use portico_snapshot::Snapshot;

use crate::access_log::AccessLog;
use crate::metrics::Metrics;

pub use proxy::ConnInfo;

/// Limits that protect the gateway from clients (nginx's `client_*` settings).
#[derive(Clone, Debug)]
pub struct ClientLimits {
    /// Bytes for the request line and headers together; over it the client gets 431 (or 414
    /// for a request line alone).
    pub max_header_bytes: usize,
    /// Headers per request.
    pub max_headers: usize,
    /// Largest request body; `None` = unlimited (APISIX's `client_max_body_size 0`).
    pub max_body_bytes: Option<u64>,
    /// Time a client has to send its request headers, from their first byte (from the
    /// connection's start for its first request, and for the TLS handshake); past it the
    /// connection is closed without an answer, as nginx does.
    pub header_timeout: Duration,
    /// Time an idle keep-alive connection is kept open waiting for its next request.
    pub keepalive_timeout: Duration,
}

impl Default for ClientLimits {
    fn default() -> Self {
        ClientLimits {
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            max_body_bytes: None,
            header_timeout: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(60),
        }
    }
}

/// One data-plane node's request handling state.
pub struct Gateway {
    snapshot: ArcSwap<Snapshot>,
    pool: pool::Pool,
    server_header: HeaderValue,
    limits: ClientLimits,
    metrics: Metrics,
    access_log: AccessLog,
    /// The gateway itself, for work that outlives a request (mirrored requests).
    me: std::sync::Weak<Gateway>,
}

impl Gateway {
    /// A gateway serving `snapshot` (use [`Snapshot::empty`] before the first config load),
    /// without access log.
    pub fn new(snapshot: Snapshot, limits: ClientLimits) -> Arc<Gateway> {
        Gateway::with_access_log(snapshot, limits, AccessLog::off())
    }

    /// A gateway that writes every request to `access_log`.
    pub fn with_access_log(
        snapshot: Snapshot,
        limits: ClientLimits,
        access_log: AccessLog,
    ) -> Arc<Gateway> {
        Arc::new_cyclic(|me| Gateway {
            me: me.clone(),
            snapshot: ArcSwap::from_pointee(snapshot),
            pool: pool::Pool::default(),
            server_header: HeaderValue::from_static(concat!("Portico/", env!("CARGO_PKG_VERSION"))),
            limits,
            metrics: Metrics::new(),
            access_log,
        })
    }

    /// The snapshot new requests use.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Makes `snapshot` the one new requests use; requests in flight finish on theirs.
    pub fn swap(&self, snapshot: Arc<Snapshot>) {
        self.snapshot.store(snapshot);
    }

    /// Like [`Gateway::swap`], and hands back the snapshot that was replaced.
    pub fn replace(&self, snapshot: Arc<Snapshot>) -> Arc<Snapshot> {
        self.snapshot.swap(snapshot)
    }

    /// The limits this gateway holds its clients to.
    pub fn limits(&self) -> &ClientLimits {
        &self.limits
    }

    /// The request counters (what the Prometheus plugin exports).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The access log requests are written to.
    pub fn access_log(&self) -> &AccessLog {
        &self.access_log
    }
}
