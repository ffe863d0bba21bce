//! APISIX's batch processor (`apisix/utils/batch-processor.lua` and
//! `batch-processor-manager.lua`) for the loggers that send entries elsewhere (http-logger,
//! tcp-logger): entries are buffered by a background task and handed to a [`Sink`] in batches.
//!
//! * a batch is sent when it holds `batch_max_size` entries, when no entry came for
//!   `inactive_timeout` seconds, or when its first entry is `buffer_duration` seconds old;
//!   `batch_max_size: 1` sends every entry at once;
//! * a failed batch is tried again after `retry_delay` seconds, up to `max_retry_count` times,
//!   then dropped (logged as an error);
//! * batches are sent concurrently, off the request path; the request's `log` phase only pushes
//!   the entry onto a channel;
//! * `max_pending_entries` (plugin metadata, default 8192) bounds the entries of one plugin
//!   waiting to be sent, over all its configurations: past it new entries are discarded (one
//!   error line a second at most says how many).
//!
//! The task starts with the first entry (so building a plugin instance needs no runtime) and
//! ends, after sending what it holds, once the plugin instance is gone.

mod tls;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;

pub use tls::client_config;

/// `max_pending_entries` default.
pub const DEFAULT_MAX_PENDING_ENTRIES: usize = 8192;

/// The batch-processor fields every batch logger's schema has, with `name` defaulting to
/// `name` (APISIX `batch_processor_manager:wrap_schema`).
pub fn schema_properties(name: &str) -> Map<String, Value> {
    let v = json!({
        "name": {"type": "string", "default": name},
        "max_retry_count": {"type": "integer", "minimum": 0, "default": 0},
        "retry_delay": {"type": "integer", "minimum": 0, "default": 1},
        "buffer_duration": {"type": "integer", "minimum": 1, "default": 60},
        "inactive_timeout": {"type": "integer", "minimum": 1, "default": 5},
        "batch_max_size": {"type": "integer", "minimum": 1, "default": 1000}
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Adds `max_pending_entries` to a metadata schema's properties (`wrap_metadata_schema`).
pub fn wrap_metadata_schema(mut schema: Value) -> Value {
    if let Some(p) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        p.insert(
            "max_pending_entries".into(),
            json!({"type": "integer", "minimum": 1, "default": DEFAULT_MAX_PENDING_ENTRIES,
                   "description": "maximum number of entries waiting to be processed; new entries are discarded while the backlog exceeds it"}),
        );
    }
    schema
}

fn default_name() -> String {
    "log buffer".into()
}
fn one() -> u64 {
    1
}
fn sixty() -> u64 {
    60
}
fn five() -> u64 {
    5
}
fn thousand() -> usize {
    1000
}

/// The batch-processor options of a logger's configuration (schema defaults applied).
#[derive(Debug, Clone, Deserialize)]
pub struct BatchConfig {
    #[serde(default = "default_name")]
    pub name: String,
    #[serde(default)]
    pub max_retry_count: u32,
    #[serde(default = "one")]
    pub retry_delay: u64,
    #[serde(default = "sixty")]
    pub buffer_duration: u64,
    #[serde(default = "five")]
    pub inactive_timeout: u64,
    #[serde(default = "thousand")]
    pub batch_max_size: usize,
}

impl BatchConfig {
    /// The options of `conf` (other fields ignored).
    pub fn from_conf(conf: &Value) -> Result<BatchConfig, String> {
        let mut only = Map::new();
        for key in schema_properties("").keys() {
            if let Some(v) = conf.get(key) {
                only.insert(key.clone(), v.clone());
            }
        }
        crate::typed(&Value::Object(only))
    }
}

/// Where batches go.
pub trait Sink: Send + Sync + 'static {
    /// Sends one batch; `batch_max_size` is the configured size (a sink may encode a batch of a
    /// one-entry configuration as a single object, as APISIX does). The error says why.
    fn send(self: Arc<Self>, entries: Arc<[Value]>, batch_max_size: usize) -> SendFuture;
}

/// What [`Sink::send`] returns.
pub type SendFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// Pending-entry counters per plugin name, shared by every instance of a node (in
/// [`PluginState`](crate::PluginState)).
#[derive(Debug, Default)]
pub struct Backlogs(Mutex<HashMap<&'static str, Arc<AtomicUsize>>>);

impl Backlogs {
    /// The counter of `plugin`.
    pub fn of(&self, plugin: &'static str) -> Arc<AtomicUsize> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(plugin).or_default().clone()
    }
}

/// One logger instance's batch processor.
pub struct Batcher {
    config: BatchConfig,
    sink: Arc<dyn Sink>,
    /// Entries waiting, over every instance of the plugin.
    pending: Arc<AtomicUsize>,
    max_pending: usize,
    tx: OnceLock<mpsc::UnboundedSender<Value>>,
    /// Entries discarded since the last report, and when that was (ms since the epoch).
    discarded: AtomicU64,
    last_report: AtomicU64,
}

impl fmt::Debug for Batcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batcher")
            .field("config", &self.config)
            .field("max_pending", &self.max_pending)
            .finish()
    }
}

impl Batcher {
    /// A batch processor sending to `sink`; `pending` is the plugin's backlog counter and
    /// `max_pending` its limit.
    pub fn new(
        config: BatchConfig,
        sink: Arc<dyn Sink>,
        pending: Arc<AtomicUsize>,
        max_pending: usize,
    ) -> Batcher {
        Batcher {
            config,
            sink,
            pending,
            max_pending,
            tx: OnceLock::new(),
            discarded: AtomicU64::new(0),
            last_report: AtomicU64::new(0),
        }
    }

    /// Queues one entry (called from a `log` phase; never waits).
    pub fn push(&self, entry: Value) {
        if self.pending.load(Ordering::Relaxed) >= self.max_pending {
            self.discard();
            return;
        }
        let tx = match self.tx.get() {
            Some(tx) => tx,
            None => {
                let Ok(handle) = tokio::runtime::Handle::try_current() else {
                    tracing::error!(
                        "Batch Processor[{}]: no runtime to send from; entry dropped",
                        self.config.name
                    );
                    return;
                };
                self.tx.get_or_init(|| {
                    let (tx, rx) = mpsc::unbounded_channel();
                    let worker = Worker {
                        config: self.config.clone(),
                        sink: self.sink.clone(),
                        pending: self.pending.clone(),
                    };
                    handle.spawn(worker.run(rx));
                    tx
                })
            }
        };
        self.pending.fetch_add(1, Ordering::Relaxed);
        if tx.send(entry).is_err() {
            self.pending.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn discard(&self) {
        let n = self.discarded.fetch_add(1, Ordering::Relaxed) + 1;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let last = self.last_report.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= 1000
            && self
                .last_report
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.discarded.fetch_sub(n, Ordering::Relaxed);
            tracing::error!(
                "max pending entries limit exceeded. discarding entry. max_pending_entries: {} discarded_entries: {n}",
                self.max_pending
            );
        }
    }
}

/// The background task of one [`Batcher`].
struct Worker {
    config: BatchConfig,
    sink: Arc<dyn Sink>,
    pending: Arc<AtomicUsize>,
}

impl Worker {
    async fn run(self, mut rx: mpsc::UnboundedReceiver<Value>) {
        let inactive = Duration::from_secs(self.config.inactive_timeout);
        let longest = Duration::from_secs(self.config.buffer_duration);
        let max = self.config.batch_max_size.max(1);
        let mut buffer: Vec<Value> = Vec::new();
        let mut first = Instant::now();
        let mut last = first;
        loop {
            let deadline = (last + inactive).min(first + longest);
            tokio::select! {
                entry = rx.recv() => match entry {
                    Some(entry) => {
                        let now = Instant::now();
                        if buffer.is_empty() {
                            first = now;
                        }
                        last = now;
                        buffer.push(entry);
                        if buffer.len() >= max {
                            self.flush(&mut buffer);
                        }
                    }
                    None => {
                        self.flush(&mut buffer);
                        return;
                    }
                },
                _ = tokio::time::sleep_until(deadline), if !buffer.is_empty() => {
                    self.flush(&mut buffer);
                }
            }
        }
    }

    /// Sends what the buffer holds in a task of its own (with its retries).
    fn flush(&self, buffer: &mut Vec<Value>) {
        if buffer.is_empty() {
            return;
        }
        let entries: Arc<[Value]> = std::mem::take(buffer).into();
        let sink = self.sink.clone();
        let pending = self.pending.clone();
        let config = self.config.clone();
        tokio::spawn(async move {
            let mut tries = 0u32;
            loop {
                match sink
                    .clone()
                    .send(entries.clone(), config.batch_max_size)
                    .await
                {
                    Ok(()) => {
                        tracing::debug!(
                            "Batch Processor[{}] successfully processed the entries",
                            config.name
                        );
                        break;
                    }
                    Err(e) => {
                        tracing::error!(
                            "Batch Processor[{}] failed to process entries: {e}",
                            config.name
                        );
                        tries += 1;
                        if tries > config.max_retry_count {
                            tracing::error!(
                                "Batch Processor[{}] exceeded the max_retry_count[{tries}] dropping the entries",
                                config.name
                            );
                            break;
                        }
                        tokio::time::sleep(Duration::from_secs(config.retry_delay)).await;
                    }
                }
            }
            pending.fetch_sub(entries.len(), Ordering::Relaxed);
        });
    }
}

#[cfg(test)]
mod tests;
