//! The node's Prometheus metrics, with APISIX's names (`reference/apisix.md` §5.4
//! `prometheus`), and the exporter that serves them ([`server`], APISIX's
//! `127.0.0.1:9091/apisix/prometheus/metrics`).
//!
//! Two sources make up the exposition:
//!
//! * node-wide counters kept here for every request and connection, plugin or not:
//!   `apisix_http_requests_total` and `apisix_nginx_http_current_connections` (what nginx's
//!   stub_status reports), plus, per scrape, `apisix_etcd_reachable`,
//!   `apisix_etcd_modify_indexes` and `apisix_node_info`;
//! * the per-route counters of the prometheus plugin (`apisix_http_status`,
//!   `apisix_http_latency`, `apisix_bandwidth`), which count only the requests of routes whose
//!   plugins include it — recorded by the plugin's `log` phase into the registry in the
//!   snapshot's [`PluginState`](portico_snapshot::runtime::PluginState).
//!
//! Each request is counted once on each side; nothing here is per route.

mod render;
pub mod server;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// The node-wide request and connection counters. Cheap to update from any thread.
pub struct Metrics {
    /// Requests begun (`http_requests_total`, nginx's `requests`).
    requests: Striped,
    /// Requests whose response has ended.
    finished: Striped,
    accepted: Striped,
    closed: Striped,
}

/// What a scrape learns about the config store (etcd, or the embedded store of `portico up`).
#[derive(Debug, Clone, Default)]
pub struct StoreStatus {
    /// Whether the store answered (`apisix_etcd_reachable`); `None` leaves the metric out.
    pub reachable: Option<bool>,
    /// The store's current revision (`etcd_modify_indexes{key="x_etcd_index"}`).
    pub revision: Option<i64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Empty counters, striped for this machine's parallelism.
    pub fn new() -> Metrics {
        let stripes = std::thread::available_parallelism()
            .map_or(4, |n| n.get())
            .next_power_of_two()
            .clamp(1, 16);
        Metrics {
            requests: Striped::new(stripes),
            finished: Striped::new(stripes),
            accepted: Striped::new(stripes),
            closed: Striped::new(stripes),
        }
    }

    /// Counts a request whose head has arrived.
    pub(crate) fn request_begun(&self) {
        self.requests.add(1);
    }

    /// Counts a request whose response has ended (or was abandoned).
    pub(crate) fn request_finished(&self) {
        self.finished.add(1);
    }

    /// Counts a client connection accepted.
    pub(crate) fn connection_opened(&self) {
        self.accepted.add(1);
    }

    /// Counts a client connection closed.
    pub(crate) fn connection_closed(&self) {
        self.closed.add(1);
    }

    /// Client connections accepted, open, and requests in progress.
    pub fn connections(&self) -> Connections {
        let accepted = self.accepted.sum();
        Connections {
            active: accepted.saturating_sub(self.closed.sum()),
            accepted,
            writing: self.requests.sum().saturating_sub(self.finished.sum()),
        }
    }

    /// Requests begun since start (`apisix_http_requests_total`).
    pub fn requests_total(&self) -> u64 {
        self.requests.sum()
    }
}

impl crate::Gateway {
    /// The whole Prometheus text exposition of this node: its own counters, the prometheus
    /// plugin's per-route counters, the config store's status and the node's facts.
    pub fn render_metrics(&self, store: &StoreStatus, hostname: &str) -> String {
        render::render(self, store, hostname, "apisix_")
    }
}

/// A counter split across cache lines by thread; summed when read.
struct Striped {
    cells: Box<[Padded]>,
}

/// A lone atomic on its own cache lines.
#[derive(Default)]
#[repr(align(128))]
struct Padded(AtomicU64);

impl Striped {
    fn new(stripes: usize) -> Striped {
        Striped {
            cells: (0..stripes).map(|_| Padded::default()).collect(),
        }
    }

    fn add(&self, n: u64) {
        let i = stripe_index() & (self.cells.len() - 1);
        if let Some(cell) = self.cells.get(i) {
            cell.0.fetch_add(n, Ordering::Relaxed);
        }
    }

    fn sum(&self) -> u64 {
        self.cells
            .iter()
            .map(|c| c.0.load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }
}

/// This thread's stripe number (threads are numbered as they first count something).
fn stripe_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
    }
    INDEX.with(|i| {
        let mut v = i.get();
        if v == usize::MAX {
            v = NEXT.fetch_add(1, Ordering::Relaxed);
            i.set(v);
        }
        v
    })
}

/// Connection gauges as nginx's stub_status reports them.
#[derive(Debug, Clone, Copy)]
pub struct Connections {
    pub active: u64,
    pub accepted: u64,
    /// Requests begun whose response has not ended.
    pub writing: u64,
}

#[cfg(test)]
mod tests;
