//! The access log, off the request path: a request's end hands a small [`AccessRecord`] (no
//! formatting, no I/O) to a bounded channel; one writer thread formats records in nginx's
//! `main` format of APISIX (`reference/apisix.md` §6.6) or as JSON lines, and writes them in
//! batches. A full channel drops the record and counts the drop; a request never waits for
//! the log.
//!
//! A file destination is opened for appending and reopened when [`AccessLog::reopen`] is called
//! (SIGUSR1 in the binary, see [`AccessLog::reopen_on_sigusr1`]) or when the file at the path
//! is no longer the one open (moved or deleted by log rotation; checked once a second).

mod format;
mod writer;

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, TrySendError};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{HeaderValue, Method, Uri, Version};

use crate::trace::Try;

/// Where records go.
pub enum Destination {
    /// Nowhere; requests build no record at all.
    Off,
    /// The process's standard output.
    Stdout,
    /// A file, appended to (created when missing).
    File(PathBuf),
    /// Any writer (tests use one that blocks to show that the log never holds up a request).
    Writer(Box<dyn Write + Send>),
}

/// How a record is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Format {
    /// APISIX's default `access_log_format`, nginx style.
    #[default]
    Default,
    /// One JSON object per line, with the same fields named as the variables.
    Json,
}

/// How to run the access log.
pub struct AccessLogConfig {
    pub destination: Destination,
    pub format: Format,
    /// Records waiting for the writer beyond which new ones are dropped.
    pub capacity: usize,
}

impl AccessLogConfig {
    /// A log to `destination` in `format`, with room for 16384 waiting records.
    pub fn new(destination: Destination, format: Format) -> AccessLogConfig {
        AccessLogConfig {
            destination,
            format,
            capacity: 16384,
        }
    }
}

/// One request as the access log will write it. Built when the response ends, from values the
/// gateway already holds (header values are reference-counted, not copied).
#[derive(Debug)]
pub(crate) struct AccessRecord {
    /// `$remote_addr` (after real-IP processing).
    pub remote_addr: IpAddr,
    /// The `Authorization` header, for `$remote_user` (HTTP Basic only).
    pub authorization: Option<HeaderValue>,
    /// When the response ended (`$time_local`).
    pub time: SystemTime,
    pub http_host: Option<HeaderValue>,
    /// `$request`: method, target and protocol; `None` for a head refused before parsing.
    pub request: Option<(Method, Uri, Version)>,
    pub status: u16,
    pub body_bytes_sent: u64,
    pub request_time: Duration,
    pub http_referer: Option<HeaderValue>,
    pub http_user_agent: Option<HeaderValue>,
    /// Every upstream try, in order.
    pub tries: Vec<Try>,
    pub upstream_scheme: &'static str,
    /// `None`: the client's `Host`.
    pub upstream_host: Option<String>,
    /// `None`: no upstream request (an empty `$upstream_uri`).
    pub upstream_uri: Option<String>,
    /// The client's `X-Request-Id`; without it the writer makes a random id (nginx's
    /// `$request_id`) for `$apisix_request_id`.
    pub request_id: Option<HeaderValue>,
}

/// What the writer receives. Records travel unboxed, written into the channel's slots (one
/// array, allocated once), so sending costs no allocation per request.
#[allow(clippy::large_enum_variant)]
enum Msg {
    Record(AccessRecord),
    Reopen,
    /// Write everything queued before this, then answer.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// A handle on the access log; clones share the writer. Dropping the last one lets the writer
/// finish what is queued and stop.
#[derive(Clone, Default)]
pub struct AccessLog {
    tx: Option<mpsc::SyncSender<Msg>>,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    dropped: AtomicU64,
    reopen: std::sync::atomic::AtomicBool,
}

impl AccessLog {
    /// No access log.
    pub fn off() -> AccessLog {
        AccessLog::default()
    }

    /// Opens the destination (so that a bad path is an error now, not later) and starts the
    /// writer thread.
    pub fn start(config: AccessLogConfig) -> std::io::Result<AccessLog> {
        let sink = match config.destination {
            Destination::Off => return Ok(AccessLog::off()),
            Destination::Stdout => writer::Sink::Stdout,
            Destination::Writer(w) => writer::Sink::Custom(w),
            Destination::File(path) => writer::Sink::file(path)?,
        };
        let (tx, rx) = mpsc::sync_channel(config.capacity.max(1));
        let shared = Arc::new(Shared::default());
        let writer = writer::Writer::new(sink, config.format, rx, shared.clone());
        std::thread::Builder::new()
            .name("portico-access-log".into())
            .spawn(move || writer.run())?;
        Ok(AccessLog {
            tx: Some(tx),
            shared,
        })
    }

    /// Whether records are written anywhere.
    pub fn is_on(&self) -> bool {
        self.tx.is_some()
    }

    /// Queues a record; drops it (and counts the drop) when the writer is behind.
    pub(crate) fn send(&self, record: AccessRecord) {
        if let Some(tx) = &self.tx {
            if tx.try_send(Msg::Record(record)).is_err() {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Records dropped because the writer was behind.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Closes and reopens the file (after log rotation moved it).
    pub fn reopen(&self) {
        self.shared.reopen.store(true, Ordering::Release);
        if let Some(tx) = &self.tx {
            // Wakes an idle writer; a busy one sees the flag before its next batch.
            let _ = tx.try_send(Msg::Reopen);
        }
    }

    /// Waits until every record queued so far is written (at shutdown, after the listeners
    /// drained).
    pub async fn flush(&self) {
        let Some(tx) = &self.tx else { return };
        let (done, written) = tokio::sync::oneshot::channel();
        let queued = match tx.try_send(Msg::Flush(done)) {
            Ok(()) => true,
            // The writer is behind: wait for room on a thread that may block.
            Err(TrySendError::Full(msg)) => {
                let tx = tx.clone();
                tokio::task::spawn_blocking(move || tx.send(msg).is_ok())
                    .await
                    .unwrap_or(false)
            }
            Err(TrySendError::Disconnected(_)) => false,
        };
        if queued {
            let _ = written.await;
        }
    }

    /// Reopens the file on every SIGUSR1 (nginx's `kill -USR1` for log rotation), from a task
    /// on the current runtime. `None` when there is nothing to reopen or no signal support.
    pub fn reopen_on_sigusr1(&self) -> Option<tokio::task::JoinHandle<()>> {
        self.tx.as_ref()?;
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let mut usr1 = signal(SignalKind::user_defined1()).ok()?;
            let log = self.clone();
            Some(tokio::spawn(async move {
                while usr1.recv().await.is_some() {
                    log.reopen();
                }
            }))
        }
        #[cfg(not(unix))]
        None
    }
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog")
            .field("on", &self.is_on())
            .field("dropped", &self.dropped())
            .finish()
    }
}
