//! The per-route request counters the prometheus plugin records into: one registry per node,
//! kept in [`PluginState`](crate::PluginState) so that it outlives snapshot swaps.
//!
//! One *series* per label combination (workspace, route, matched URI, matched host, consumer,
//! node, status code, response source, disabled labels) holds that combination's latency
//! histograms and byte counts; the request count is the count of its request-latency
//! histogram. Series are found through 16 shards, each an immutable sorted list swapped whole
//! when a series is added (rare: new combinations only), so the per-request lookup takes no
//! lock and allocates nothing. A series' counters are striped by thread, each stripe on its own
//! cache lines, so that threads serving the same route do not fight over one line.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;

use super::render;
use super::series::{self, stripe_index, Series, SeriesKey};

/// `http_latency` bucket boundaries in milliseconds (APISIX's `DEFAULT_BUCKETS`).
pub const LATENCY_BUCKETS_MS: [u64; 15] = [
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000, 60000,
];

const SHARDS: usize = 16;

/// Who produced the response (`response_source`, APISIX `core.response.get_response_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// The gateway or a plugin answered (no route, a plugin's rejection, ...).
    Apisix,
    /// The proxy failed to get an answer from the upstream (502, 504).
    Nginx,
    /// The upstream answered.
    Upstream,
}

impl Source {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Apisix => "apisix",
            Source::Nginx => "nginx",
            Source::Upstream => "upstream",
        }
    }
}

/// A label that `plugin_metadata/prometheus` `disabled_labels` may blank.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    Route,
    MatchedUri,
    MatchedHost,
    Service,
    Consumer,
    Node,
    RequestType,
    RequestLlmModel,
    LlmModel,
    ResponseSource,
}

impl Label {
    /// The label of an APISIX label name, for the labels Portico's metrics carry.
    pub fn from_name(name: &str) -> Option<Label> {
        Some(match name {
            "route" => Label::Route,
            "matched_uri" => Label::MatchedUri,
            "matched_host" => Label::MatchedHost,
            "service" => Label::Service,
            "consumer" => Label::Consumer,
            "node" => Label::Node,
            "request_type" => Label::RequestType,
            "request_llm_model" => Label::RequestLlmModel,
            "llm_model" => Label::LlmModel,
            "response_source" => Label::ResponseSource,
            _ => return None,
        })
    }

    fn bit(self) -> u16 {
        1 << self as u16
    }
}

/// Disabled labels of `http_status`, `http_latency` and `bandwidth`, as bit sets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Masks(pub [u16; 3]);

/// Which metric a mask belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    HttpStatus = 0,
    HttpLatency = 1,
    Bandwidth = 2,
}

impl Masks {
    /// Disables `label` on `metric`.
    pub fn disable(&mut self, metric: Metric, label: Label) {
        self.0[metric as usize] |= label.bit();
    }

    /// Whether `label` is disabled on `metric`.
    pub fn disabled(&self, metric: Metric, label: Label) -> bool {
        self.0[metric as usize] & label.bit() != 0
    }
}

/// One finished request, as the counters see it.
#[derive(Debug, Clone)]
pub struct Observation<'a> {
    pub workspace: &'a str,
    /// Route id (or name, with `prefer_name`).
    pub route: &'a str,
    pub matched_uri: &'a str,
    pub matched_host: &'a str,
    /// Consumer name, `""` without one.
    pub consumer: &'a str,
    /// The upstream node's IP (`balancer_ip`).
    pub node: Option<IpAddr>,
    pub status: u16,
    pub source: Source,
    pub masks: Masks,
    /// From the request head to the end of the response body.
    pub total: Duration,
    /// Time spent waiting for the upstream, when the request was proxied.
    pub upstream: Option<Duration>,
    /// Bytes received (`request_length`) and sent (`bytes_sent`).
    pub ingress: u64,
    pub egress: u64,
}

/// The counters of every route whose plugins include prometheus. Cheap to update from any
/// thread.
pub struct Registry {
    shards: [Shard; SHARDS],
    stripes: usize,
}

#[derive(Default)]
struct Shard {
    /// Series sorted by key hash.
    list: ArcSwap<Vec<(u64, Arc<Series>)>>,
    /// Held while a series is added.
    adding: Mutex<()>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new()
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("series", &self.series().len())
            .finish()
    }
}

impl Registry {
    /// Empty counters, striped for this machine's parallelism.
    pub fn new() -> Registry {
        let stripes = std::thread::available_parallelism()
            .map_or(4, |n| n.get())
            .next_power_of_two()
            .clamp(1, 16);
        Registry::with_stripes(stripes)
    }

    pub(super) fn with_stripes(stripes: usize) -> Registry {
        Registry {
            shards: Default::default(),
            stripes,
        }
    }

    /// Counts one request.
    pub fn observe(&self, o: &Observation<'_>) {
        let hash = series::hash(o);
        let shard = &self.shards[(hash >> 60) as usize % SHARDS];
        {
            let list = shard.list.load();
            if let Some(series) = find(&list, hash, o) {
                self.record(series, o);
                return;
            }
        }
        self.record(&self.add(shard, hash, o), o);
    }

    /// The series `o` belongs to, added if it is new.
    pub(super) fn series_for(&self, o: &Observation<'_>) -> Arc<Series> {
        let hash = series::hash(o);
        let shard = &self.shards[(hash >> 60) as usize % SHARDS];
        if let Some(series) = find(&shard.list.load(), hash, o) {
            return series.clone();
        }
        self.add(shard, hash, o)
    }

    /// Counts `o` into `series` (one of this registry's), in this thread's stripe.
    pub(super) fn record(&self, series: &Series, o: &Observation<'_>) {
        series.record(stripe_index() & (self.stripes - 1), o);
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
    pub(super) fn series(&self) -> Vec<Arc<Series>> {
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

    /// Requests counted so far.
    pub fn requests(&self) -> u64 {
        self.series().iter().map(|s| s.count()).sum()
    }

    /// The text exposition of `bandwidth`, `http_latency` and `http_status` with metric name
    /// prefix `prefix` (APISIX's `apisix_`).
    pub fn render(&self, prefix: &str) -> Families {
        render::render(&self.series(), prefix)
    }
}

/// The rendered metric families (each with its `# HELP` and `# TYPE` lines), to be laid out
/// among the node's other metrics.
#[derive(Debug, Default)]
pub struct Families {
    pub bandwidth: String,
    pub http_latency: String,
    pub http_status: String,
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
