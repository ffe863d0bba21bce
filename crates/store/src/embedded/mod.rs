//! The embedded back end: the whole store in one file of the data folder.
//!
//! The state lives in memory (a sorted map); durability comes from an append-only log in the same
//! file (see `log.rs`): each write is appended and synced before it is acknowledged, so every
//! acknowledged write survives a crash or `kill -9`. When the log has grown to several times the
//! size of the live data, it is rewritten as one snapshot record.
//!
//! One process must own the file: open it once and share the [`EmbeddedStore`] (it is cheap to
//! clone). Writes go through one writer thread; reads and watches never wait for disk I/O.

mod codec;
mod log;
mod state;
mod watch;
mod writer;

use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use tokio::sync::oneshot;

use self::codec::Record;
use self::state::State;
use self::writer::{Request, Shared, Writer};
use crate::{
    DeleteResult, KeyValue, LeaseId, PutOptions, PutResult, RangeResult, Result, Store, StoreError,
    Watch,
};

/// Tuning of an [`EmbeddedStore`]; the defaults suit a config store.
#[derive(Clone, Debug)]
pub struct EmbeddedConfig {
    /// How many recent revisions of changes are kept for watches (default 10 000). A watch from
    /// an older revision, or one that falls further behind, gets a resync instead.
    pub history_limit: usize,
    /// Messages buffered per watch before it stops reading history (default 64).
    pub watch_buffer: usize,
    /// The file is compacted only once it is larger than this (default 1 MiB)...
    pub compact_min_bytes: u64,
    /// ...and larger than this many times the live data (default 4).
    pub compact_ratio: u64,
    /// Shorter lease TTLs are raised to this many seconds (default 1).
    pub min_lease_ttl: i64,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        EmbeddedConfig {
            history_limit: 10_000,
            watch_buffer: 64,
            compact_min_bytes: 1 << 20,
            compact_ratio: 4,
            min_lease_ttl: 1,
        }
    }
}

/// The single-file store. Clones share the same open file.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    requests: Mutex<Option<mpsc::Sender<Request>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    watch_buffer: usize,
    path: String,
}

impl EmbeddedStore {
    /// Opens the store file at `path` (e.g. `<data>/store.db`), creating it and its folder when
    /// missing, with the default [`EmbeddedConfig`].
    pub fn open(path: &Path) -> Result<EmbeddedStore> {
        EmbeddedStore::open_with(path, EmbeddedConfig::default())
    }

    /// Opens the store file at `path` with `config`. Replays the file; a torn record at its end
    /// (from a crash during a write that was never acknowledged) is cut off. Leases restart with
    /// their full TTL.
    pub fn open_with(path: &Path, config: EmbeddedConfig) -> Result<EmbeddedStore> {
        let (log, records) = log::LogFile::open(path)?;
        let now = Instant::now();
        let mut state = State::new(config.history_limit);
        for (i, record) in records.into_iter().enumerate() {
            match record {
                Record::Snapshot(snap) => state.load_snapshot(snap, now),
                Record::Txn(txn) => {
                    state.apply(&txn, now).map_err(|e| {
                        StoreError::Internal(format!("{}: record {i}: {e}", path.display()))
                    })?;
                }
            }
        }
        let shared = Arc::new(Shared::new(state));
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            shared: shared.clone(),
            log,
            compact_floor: config.compact_min_bytes,
            config: config.clone(),
            failed: None,
        };
        let handle = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| StoreError::Internal(format!("cannot start the writer thread: {e}")))?;
        Ok(EmbeddedStore {
            inner: Arc::new(Inner {
                shared,
                requests: Mutex::new(Some(tx)),
                writer: Mutex::new(Some(handle)),
                watch_buffer: config.watch_buffer.max(1),
                path: path.display().to_string(),
            }),
        })
    }

    /// Sends a request to the writer thread and waits for its outcome.
    async fn request<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T>>) -> Request,
    ) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        let sent = {
            let guard = self
                .inner
                .requests
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            guard.as_ref().is_some_and(|s| s.send(make(tx)).is_ok())
        };
        if !sent {
            return Err(closed());
        }
        rx.await.unwrap_or_else(|_| Err(closed()))
    }
}

fn closed() -> StoreError {
    StoreError::Internal("the store writer has stopped".into())
}

impl Drop for Inner {
    /// Stops the writer thread and waits for it, so the file can be reopened right away.
    fn drop(&mut self) {
        let requests = self.requests.get_mut().unwrap_or_else(|e| e.into_inner());
        drop(requests.take());
        let writer = self.writer.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(handle) = writer.take() {
            let _ = handle.join();
        }
    }
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        Ok(self.inner.shared.read().get(key))
    }

    async fn range(&self, prefix: &str) -> Result<RangeResult> {
        let st = self.inner.shared.read();
        Ok(RangeResult {
            kvs: st.range(prefix),
            revision: st.revision,
        })
    }

    async fn put(&self, key: &str, value: Vec<u8>, opts: PutOptions) -> Result<PutResult> {
        let key = key.to_string();
        self.request(|reply| Request::Put(key, value, opts, reply))
            .await
    }

    async fn delete(&self, key: &str, expect_mod_revision: Option<i64>) -> Result<DeleteResult> {
        let key = key.to_string();
        self.request(|reply| Request::Delete(key, expect_mod_revision, reply))
            .await
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<(usize, i64)> {
        let prefix = prefix.to_string();
        self.request(|reply| Request::DeletePrefix(prefix, reply))
            .await
    }

    async fn watch(&self, prefix: &str, from_revision: i64) -> Result<Watch> {
        Ok(watch::start(
            &self.inner.shared,
            prefix,
            from_revision,
            self.inner.watch_buffer,
        ))
    }

    async fn lease_grant(&self, ttl_secs: i64) -> Result<LeaseId> {
        self.request(|reply| Request::LeaseGrant(ttl_secs, reply))
            .await
    }

    async fn lease_keep_alive(&self, lease: LeaseId) -> Result<i64> {
        self.request(|reply| Request::LeaseKeepAlive(lease, reply))
            .await
    }

    async fn lease_revoke(&self, lease: LeaseId) -> Result<()> {
        self.request(|reply| Request::LeaseRevoke(lease, reply))
            .await
    }

    async fn compact(&self, revision: i64) -> Result<()> {
        self.request(|reply| Request::Compact(revision, reply))
            .await
    }

    async fn revision(&self) -> Result<i64> {
        Ok(self.inner.shared.read().revision)
    }
}
