//! The single writer: one OS thread that validates each write, appends it to the log, syncs it,
//! applies it to memory and only then acknowledges it. It also expires leases.
//!
//! Running every write on one thread serialises them without an async lock, cannot be cancelled
//! half-way by a dropped future (a durable record is always applied), and keeps `fdatasync` off the
//! async runtime. Readers take the state lock only while the write is applied, never during I/O.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

/// The longest lease etcd grants (`MaxLeaseTTL`), in seconds.
const MAX_LEASE_TTL: i64 = 9_000_000_000;

use tokio::sync::{oneshot, watch};

use super::codec::{Op, Record, Txn};
use super::log::LogFile;
use super::state::{lease_deadline, State};
use super::EmbeddedConfig;
use crate::{DeleteResult, LeaseId, PutOptions, PutResult, Result, StoreError};

/// State shared by the writer, readers and watch tasks.
pub(crate) struct Shared {
    state: RwLock<State>,
    /// The latest applied revision; watch tasks wait on it.
    pub revision: watch::Sender<i64>,
}

impl Shared {
    pub(crate) fn new(state: State) -> Shared {
        let (revision, _) = watch::channel(state.revision);
        Shared {
            state: RwLock::new(state),
            revision,
        }
    }

    /// Reads the state. A panic while it was held cannot leave it half-applied (apply does not
    /// panic), so a poisoned lock is still usable.
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }
}

type Reply<T> = oneshot::Sender<Result<T>>;

/// A write for the writer thread, with where to send its outcome.
pub(crate) enum Request {
    Put(String, Vec<u8>, PutOptions, Reply<PutResult>),
    Delete(String, Option<i64>, Reply<DeleteResult>),
    DeletePrefix(String, Reply<(usize, i64)>),
    LeaseGrant(i64, Reply<LeaseId>),
    LeaseKeepAlive(LeaseId, Reply<i64>),
    LeaseRevoke(LeaseId, Reply<()>),
    Compact(i64, Reply<()>),
}

pub(crate) struct Writer {
    pub shared: Arc<Shared>,
    pub log: LogFile,
    pub config: EmbeddedConfig,
    /// Set after a disk error: the file may not match memory any more, so writes stop.
    pub failed: Option<String>,
    /// The log size below which no file compaction is tried.
    pub compact_floor: u64,
}

impl Writer {
    /// Serves requests until every sender is gone, expiring leases on time.
    pub(crate) fn run(mut self, requests: Receiver<Request>) {
        loop {
            let next = self.shared.read().next_deadline();
            let request = match next {
                Some(deadline) => {
                    let wait = deadline.saturating_duration_since(Instant::now());
                    match requests.recv_timeout(wait) {
                        Ok(r) => Some(r),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
                None => match requests.recv() {
                    Ok(r) => Some(r),
                    Err(_) => return,
                },
            };
            if let Some(request) = request {
                self.handle(request);
            }
            self.expire_leases();
        }
    }

    fn handle(&mut self, request: Request) {
        // A caller that went away does not care about the outcome; the write stands anyway.
        match request {
            Request::Put(key, value, opts, reply) => {
                let _ = reply.send(self.put(key, value, opts));
            }
            Request::Delete(key, expect, reply) => {
                let _ = reply.send(self.delete(key, expect));
            }
            Request::DeletePrefix(prefix, reply) => {
                let _ = reply.send(self.delete_prefix(&prefix));
            }
            Request::LeaseGrant(ttl, reply) => {
                let _ = reply.send(self.lease_grant(ttl));
            }
            Request::LeaseKeepAlive(id, reply) => {
                let _ = reply.send(self.lease_keep_alive(id));
            }
            Request::LeaseRevoke(id, reply) => {
                let _ = reply.send(self.lease_revoke(id).map(|_| ()));
            }
            Request::Compact(rev, reply) => {
                let _ = reply.send(self.compact(rev));
            }
        }
    }

    fn put(&mut self, key: String, value: Vec<u8>, opts: PutOptions) -> Result<PutResult> {
        if key.is_empty() {
            return Err(StoreError::Internal("key is empty".into()));
        }
        let (prev, revision, lease) = {
            let st = self.shared.read();
            let prev = st.get(&key);
            check_expected(
                prev.as_ref().map(|kv| kv.mod_revision),
                opts.expect_mod_revision,
            )?;
            let lease = opts.lease.unwrap_or(0);
            if lease != 0 && !st.leases.contains_key(&lease) {
                return Err(StoreError::LeaseNotFound(lease));
            }
            (prev, st.revision + 1, lease)
        };
        let ops = vec![Op::Put { key, value, lease }];
        self.commit(Txn { revision, ops })?;
        Ok(PutResult { revision, prev })
    }

    fn delete(&mut self, key: String, expect: Option<i64>) -> Result<DeleteResult> {
        let (prev, current) = {
            let st = self.shared.read();
            (st.get(&key), st.revision)
        };
        check_expected(prev.as_ref().map(|kv| kv.mod_revision), expect)?;
        if prev.is_none() {
            return Ok(DeleteResult {
                revision: current,
                prev,
            });
        }
        let revision = current + 1;
        self.commit(Txn {
            revision,
            ops: vec![Op::Delete { key }],
        })?;
        Ok(DeleteResult { revision, prev })
    }

    fn delete_prefix(&mut self, prefix: &str) -> Result<(usize, i64)> {
        let (keys, current) = {
            let st = self.shared.read();
            (st.keys(prefix), st.revision)
        };
        if keys.is_empty() {
            return Ok((0, current));
        }
        let count = keys.len();
        let ops = keys.into_iter().map(|key| Op::Delete { key }).collect();
        self.commit(Txn {
            revision: current + 1,
            ops,
        })?;
        Ok((count, current + 1))
    }

    fn lease_grant(&mut self, ttl: i64) -> Result<LeaseId> {
        let (id, revision) = {
            let st = self.shared.read();
            (st.next_lease_id, st.revision)
        };
        if ttl > MAX_LEASE_TTL {
            return Err(StoreError::Internal(format!(
                "lease TTL {ttl} s is longer than the maximum of {MAX_LEASE_TTL} s"
            )));
        }
        let ttl = ttl.max(self.config.min_lease_ttl);
        self.commit(Txn {
            revision,
            ops: vec![Op::LeaseGrant { id, ttl }],
        })?;
        Ok(id)
    }

    fn lease_keep_alive(&mut self, id: LeaseId) -> Result<i64> {
        let now = Instant::now();
        let mut st = self.shared.write();
        match st.leases.get_mut(&id) {
            // A lease past its deadline is expired even if the expiry has not run yet.
            Some(lease) if lease.deadline > now => {
                lease.deadline = lease_deadline(now, lease.ttl);
                Ok(lease.ttl)
            }
            _ => Err(StoreError::LeaseNotFound(id)),
        }
    }

    /// Deletes the lease and its keys in one revision; returns the revision after it.
    fn lease_revoke(&mut self, id: LeaseId) -> Result<i64> {
        let (keys, current) = {
            let st = self.shared.read();
            let lease = st.leases.get(&id).ok_or(StoreError::LeaseNotFound(id))?;
            (lease.keys.iter().cloned().collect::<Vec<_>>(), st.revision)
        };
        let revision = current + i64::from(!keys.is_empty());
        let mut ops: Vec<Op> = keys.into_iter().map(|key| Op::Delete { key }).collect();
        ops.push(Op::LeaseRevoke { id });
        self.commit(Txn { revision, ops })?;
        Ok(revision)
    }

    fn compact(&mut self, revision: i64) -> Result<()> {
        let (current, compacted) = {
            let st = self.shared.read();
            (st.revision, st.compact_revision)
        };
        if revision > current {
            return Err(StoreError::Internal(format!(
                "cannot compact at revision {revision}: it is in the future (current {current})"
            )));
        }
        if revision <= compacted {
            return Ok(());
        }
        self.commit(Txn {
            revision: current,
            ops: vec![Op::Compact { revision }],
        })
    }

    fn expire_leases(&mut self) {
        let expired = self.shared.read().expired_leases(Instant::now());
        for id in expired {
            if let Err(e) = self.lease_revoke(id) {
                tracing::warn!(lease = id, error = %e, "could not expire lease");
                return;
            }
        }
    }

    /// Makes `txn` durable, applies it and wakes the watchers.
    fn commit(&mut self, txn: Txn) -> Result<()> {
        if let Some(reason) = &self.failed {
            return Err(StoreError::Internal(format!(
                "store is read-only after an earlier disk error: {reason}"
            )));
        }
        if let Err(e) = self.log.append(&Record::Txn(txn.clone()).encode()) {
            self.failed = Some(e.to_string());
            return Err(e);
        }
        let applied = self.shared.write().apply(&txn, Instant::now());
        if let Err(e) = applied {
            // Cannot happen: the transaction was built from the same state.
            self.failed = Some(e.clone());
            return Err(StoreError::Internal(e));
        }
        self.shared.revision.send_replace(txn.revision);
        self.maybe_compact_file();
        Ok(())
    }

    /// Rewrites the file as one snapshot when the log has grown much bigger than the data.
    fn maybe_compact_file(&mut self) {
        let live = self.shared.read().live_bytes;
        let len = self.log.len();
        if len < self.compact_floor || len < live.saturating_mul(self.config.compact_ratio) {
            return;
        }
        let snapshot = Record::Snapshot(self.shared.read().snapshot()).encode();
        match self.log.rewrite(&snapshot) {
            Ok(()) => {
                self.compact_floor = self.config.compact_min_bytes;
                tracing::debug!(before = len, after = self.log.len(), "store file compacted");
            }
            Err((replaced, e)) if replaced => self.failed = Some(e.to_string()),
            Err((_, e)) => {
                // The old file is untouched: keep using it, and try again after more growth.
                tracing::warn!(error = %e, "store file compaction failed");
                self.compact_floor = len.saturating_add(self.config.compact_min_bytes);
            }
        }
    }
}

/// Checks a compare-and-swap: `current` is the key's mod revision, `None` when it is missing.
fn check_expected(current: Option<i64>, expected: Option<i64>) -> Result<()> {
    match expected {
        Some(want) if current.unwrap_or(0) != want => Err(StoreError::Conflict),
        _ => Ok(()),
    }
}
