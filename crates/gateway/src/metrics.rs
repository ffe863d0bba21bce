//! Request counters for the Prometheus plugin: what APISIX's exporter counts (`reference/apisix.md`
//! §5.4 `prometheus`), kept with atomics in the gateway so that they outlive snapshot swaps, and
//! printed by [`Metrics::render_prometheus`].
//!
//! One *series* per (workspace, route, matched URI, matched host, consumer, node, status code)
//! holds that combination's latency histograms and byte counts; the request count is the count
//! of its request-latency histogram. Series are found through 16 shards, each an immutable
//! sorted list swapped whole when a series is added (rare: new combinations only), so that the
//! per-request lookup takes no lock. A series' counters are striped by thread, each stripe on
//! its own cache lines, so that threads serving the same route do not fight over one line.

mod render;
mod series;

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;

use series::{stripe_index, Series, SeriesKey};

/// `http_latency` bucket boundaries in milliseconds (APISIX's `DEFAULT_BUCKETS`).
pub const LATENCY_BUCKETS_MS: [u64; 15] = [
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000, 60000,
];

const SHARDS: usize = 16;

/// The gateway's request counters. Cheap to update from any thread; survives snapshot swaps
/// (it lives in the gateway, and series are keyed by names, not by compiled objects).
pub struct Metrics {
    shards: [Shard; SHARDS],
    stripes: usize,
    /// Requests begun (`http_requests_total`, nginx's `requests`).
    requests: Striped,
    /// Requests whose response has ended.
    finished: Striped,
    accepted: Striped,
    closed: Striped,
}

#[derive(Default)]
struct Shard {
    /// Series sorted by key hash.
    list: ArcSwap<Vec<(u64, Arc<Series>)>>,
    /// Held while a series is added.
    adding: Mutex<()>,
}

/// One finished request, as the counters see it.
pub(crate) struct Observation<'a> {
    pub workspace: &'a str,
    pub route: &'a str,
    pub matched_uri: &'a str,
    pub matched_host: &'a str,
    pub consumer: &'a str,
    pub node: Option<IpAddr>,
    pub status: u16,
    /// From the request head to the end of the response body.
    pub total: Duration,
    /// Time spent in upstream tries, when there were any.
    pub upstream: Option<Duration>,
    /// Bytes received (`request_length`) and sent (`bytes_sent`).
    pub ingress: u64,
    pub egress: u64,
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
        Metrics::with_stripes(stripes)
    }

    fn with_stripes(stripes: usize) -> Metrics {
        Metrics {
            shards: Default::default(),
            stripes,
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

    /// Counts a client connection accepted.
    pub(crate) fn connection_opened(&self) {
        self.accepted.add(1);
    }

    /// Counts a client connection closed.
    pub(crate) fn connection_closed(&self) {
        self.closed.add(1);
    }

    /// Counts a request whose response has ended (or was abandoned).
    pub(crate) fn observe(&self, o: &Observation<'_>) {
        self.finished.add(1);
        let hash = series::hash(o);
        let shard = &self.shards[(hash >> 60) as usize % SHARDS];
        let stripe = stripe_index() & (self.stripes - 1);
        {
            let list = shard.list.load();
            if let Some(series) = find(&list, hash, o) {
                series.record(stripe, o);
                return;
            }
        }
        self.add(shard, hash, o).record(stripe, o);
    }

    /// Adds the series for `o` (or finds the one another thread just added).
    #[cold]
    fn add(&self, shard: &Shard, hash: u64, o: &Observation<'_>) -> Arc<Series> {
        let _adding = shard.adding.lock().unwrap_or_else(|e| e.into_inner());
        let list = shard.list.load_full();
        if let Some(series) = find(&list, hash, o) {
            return series.clone();
        }
        let series = Arc::new(Series::new(SeriesKey::from(o), self.stripes));
        let mut next = Vec::with_capacity(list.len() + 1);
        next.extend(list.iter().cloned());
        let at = next.partition_point(|(h, _)| *h <= hash);
        next.insert(at, (hash, series.clone()));
        shard.list.store(Arc::new(next));
        series
    }

    /// Every series, in no particular order.
    fn series(&self) -> Vec<Arc<Series>> {
        self.shards
            .iter()
            .flat_map(|s| {
                s.list
                    .load()
                    .iter()
                    .map(|(_, s)| s.clone())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Client connections accepted, open, and requests in progress.
    pub(crate) fn connections(&self) -> Connections {
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

    /// Prometheus text exposition of every counter, with APISIX's metric names (`apisix_`
    /// prefix) and labels, plus a `workspace` label on the per-route metrics.
    pub fn render_prometheus(&self) -> String {
        self.render_prometheus_with_prefix("apisix_")
    }

    /// The same with another metric name prefix (APISIX's `metric_prefix`).
    pub fn render_prometheus_with_prefix(&self, prefix: &str) -> String {
        render::render(self, prefix)
    }
}

fn find<'l>(
    list: &'l [(u64, Arc<Series>)],
    hash: u64,
    o: &Observation<'_>,
) -> Option<&'l Arc<Series>> {
    let start = list.partition_point(|(h, _)| *h < hash);
    list[start..]
        .iter()
        .take_while(|(h, _)| *h == hash)
        .map(|(_, s)| s)
        .find(|s| s.key.matches(o))
}

/// A counter split across cache lines by thread; summed when read.
struct Striped {
    cells: Box<[series::Padded]>,
}

impl Striped {
    fn new(stripes: usize) -> Striped {
        Striped {
            cells: (0..stripes).map(|_| series::Padded::default()).collect(),
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

/// Connection gauges as nginx's stub_status reports them.
pub(crate) struct Connections {
    pub active: u64,
    pub accepted: u64,
    /// Requests begun whose response has not ended.
    pub writing: u64,
}

#[cfg(test)]
mod tests;
