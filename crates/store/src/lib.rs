//! The config store: one behaviour, two back ends.
//!
//! [`Store`] is what every other crate sees. [`embedded::EmbeddedStore`] keeps everything in one
//! file of the data folder (the default of `portico up`); [`etcd::EtcdStore`] talks to a real etcd v3
//! cluster through its JSON gateway. Both pass the same conformance suite (`tests/conformance.rs`).
//!
//! Revisions follow etcd: one store-wide counter, bumped once per successful write; every key
//! carries the revision that created it and the one that last modified it.

pub mod embedded;
pub mod etcd;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

/// A lease id, as etcd numbers them. `0` means "no lease".
pub type LeaseId = i64;

/// One stored key with its metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    /// The full key, e.g. `/portico/clusters/default/ws/default/routes/1`.
    pub key: String,
    /// The stored bytes (JSON for Portico's own keys).
    pub value: Vec<u8>,
    /// Revision of the write that created this key (since its last deletion).
    pub create_revision: i64,
    /// Revision of the last write to this key.
    pub mod_revision: i64,
    /// Number of writes since creation (1 after the first put).
    pub version: i64,
    /// Lease the key is bound to, `0` when none.
    pub lease: LeaseId,
}

/// Options of a put.
#[derive(Clone, Debug, Default)]
pub struct PutOptions {
    /// Compare-and-swap: write only if the key's current `mod_revision` equals this value.
    /// `Some(0)` means "only if the key does not exist".
    pub expect_mod_revision: Option<i64>,
    /// Bind the key to this lease; it vanishes when the lease expires or is revoked.
    pub lease: Option<LeaseId>,
}

/// The result of a successful put.
#[derive(Clone, Debug)]
pub struct PutResult {
    /// The store revision after the write (= the key's new `mod_revision`).
    pub revision: i64,
    /// The previous value, when the key existed.
    pub prev: Option<KeyValue>,
}

/// The result of a delete.
#[derive(Clone, Debug)]
pub struct DeleteResult {
    /// The store revision after the delete (unchanged when nothing was deleted).
    pub revision: i64,
    /// The deleted value, `None` when the key did not exist.
    pub prev: Option<KeyValue>,
}

/// Keys under a prefix at one revision.
#[derive(Clone, Debug)]
pub struct RangeResult {
    /// Sorted by key, byte-wise.
    pub kvs: Vec<KeyValue>,
    /// The store revision the range was read at.
    pub revision: i64,
}

/// What happened to a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The key was created or overwritten.
    Put,
    /// The key was deleted (explicitly, by a prefix delete, or with its lease).
    Delete,
}

/// One change seen by a watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// For a put: the new key-value. For a delete: the key, an empty value, and
    /// `mod_revision` = the revision of the delete.
    pub kv: KeyValue,
}

/// What a watch delivers, in revision order.
#[derive(Clone, Debug)]
pub enum WatchMessage {
    /// Changes of one or more revisions, in order; `revision` is the highest revision covered.
    Changes { revision: i64, events: Vec<Event> },
    /// The requested start revision was compacted away (or the watch fell too far behind): here is
    /// the full current content of the prefix at `revision`. The consumer replaces its view with it;
    /// changes after `revision` follow as usual.
    Resync { revision: i64, kvs: Vec<KeyValue> },
}

/// A running watch. Dropping it cancels the watch.
pub struct Watch {
    rx: tokio::sync::mpsc::Receiver<std::result::Result<WatchMessage, StoreError>>,
    _cancel: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Watch {
    /// Builds a watch from a channel fed by a back end; `cancel` is dropped with the watch, which
    /// tells the back end to stop.
    pub fn new(
        rx: tokio::sync::mpsc::Receiver<std::result::Result<WatchMessage, StoreError>>,
        cancel: Option<tokio::sync::oneshot::Sender<()>>,
    ) -> Self {
        Watch {
            rx,
            _cancel: cancel,
        }
    }

    /// Waits for the next message. `None` means the watch ended (store closed); an `Err` is a
    /// transient failure that the back end reports while it keeps retrying.
    pub async fn next(&mut self) -> Option<std::result::Result<WatchMessage, StoreError>> {
        self.rx.recv().await
    }
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// A compare-and-swap did not hold: the key changed since it was read.
    #[error("value changed before overwritten")]
    Conflict,
    /// The revision asked for is older than the oldest one kept.
    #[error("required revision {requested} has been compacted (compact revision {compacted})")]
    Compacted { requested: i64, compacted: i64 },
    /// The lease does not exist (never granted, expired or revoked).
    #[error("lease {0} not found")]
    LeaseNotFound(LeaseId),
    /// The store cannot be reached or did not answer in time.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Credentials were refused.
    #[error("store authentication failed: {0}")]
    Auth(String),
    /// Disk or protocol failure that is not a matter of availability.
    #[error("store error: {0}")]
    Internal(String),
}

/// The result of a store operation.
pub type Result<T> = std::result::Result<T, StoreError>;

/// The config store. All methods are safe to call concurrently.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    /// Reads one key at the current revision.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;

    /// Reads every key that starts with `prefix`, sorted by key, at one revision.
    async fn range(&self, prefix: &str) -> Result<RangeResult>;

    /// Writes one key. Fails with [`StoreError::Conflict`] when `expect_mod_revision` does not hold,
    /// and with [`StoreError::LeaseNotFound`] when the lease is unknown; nothing is written then.
    async fn put(&self, key: &str, value: Vec<u8>, opts: PutOptions) -> Result<PutResult>;

    /// Deletes one key; when `expect_mod_revision` is given, only if it still holds (else
    /// [`StoreError::Conflict`]). Deleting a missing key is not an error (`prev` is `None`).
    async fn delete(&self, key: &str, expect_mod_revision: Option<i64>) -> Result<DeleteResult>;

    /// Deletes every key under `prefix` in one revision; returns how many were deleted and the
    /// revision after the delete.
    async fn delete_prefix(&self, prefix: &str) -> Result<(usize, i64)>;

    /// Watches `prefix` for changes with revision >= `from_revision`; `from_revision <= 0`
    /// means "from the next revision on" (like etcd's `start_revision = 0`). The usual pattern is
    /// `range(prefix)` at revision R, then `watch(prefix, R + 1)`. When `from_revision` was
    /// compacted the first message is a [`WatchMessage::Resync`]. The watch survives transient
    /// outages of the back end: it reconnects and continues from the last revision delivered.
    async fn watch(&self, prefix: &str, from_revision: i64) -> Result<Watch>;

    /// Grants a lease of `ttl_secs` seconds.
    async fn lease_grant(&self, ttl_secs: i64) -> Result<LeaseId>;

    /// Refreshes a lease to its full TTL; returns the TTL. Unknown or expired → `LeaseNotFound`.
    async fn lease_keep_alive(&self, lease: LeaseId) -> Result<i64>;

    /// Revokes a lease: every key bound to it is deleted (one revision).
    async fn lease_revoke(&self, lease: LeaseId) -> Result<()>;

    /// Discards history before `revision`; watches from older revisions then resync. Compacting
    /// at or below an earlier compaction is a no-op; a revision in the future is an error.
    async fn compact(&self, revision: i64) -> Result<()>;

    /// The current store revision.
    async fn revision(&self) -> Result<i64>;
}

/// A shared handle to a store.
pub type SharedStore = Arc<dyn Store>;
