//! The in-memory state of the embedded store: keys, leases, the revision and recent history.
//!
//! The state only changes by applying a [`Txn`] that is already durable in the log, both when the
//! log is replayed at open and after each write, so memory and file never disagree.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::Bound;
use std::time::{Duration, Instant};

use super::codec::{Op, Snapshot, Txn};
use crate::{Event, EventKind, KeyValue, LeaseId};

/// Rough per-key overhead in the file, for the "is the log much bigger than the data" check.
const ENTRY_OVERHEAD: u64 = 48;

#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub value: Vec<u8>,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
    pub lease: LeaseId,
}

#[derive(Debug)]
pub(crate) struct Lease {
    pub ttl: i64,
    pub deadline: Instant,
    pub keys: BTreeSet<String>,
}

#[derive(Debug)]
pub(crate) struct State {
    pub kvs: BTreeMap<String, Entry>,
    pub leases: HashMap<LeaseId, Lease>,
    pub revision: i64,
    pub compact_revision: i64,
    pub next_lease_id: LeaseId,
    /// Approximate size of the live data in the file, in bytes.
    pub live_bytes: u64,
    /// The events of recent revisions, oldest first; only revisions that changed keys.
    history: VecDeque<(i64, Vec<Event>)>,
    /// Every change with a revision >= this one is in `history`.
    history_start: i64,
    history_limit: usize,
}

impl State {
    /// An empty store at revision 1, like a fresh etcd.
    pub(crate) fn new(history_limit: usize) -> State {
        State {
            kvs: BTreeMap::new(),
            leases: HashMap::new(),
            revision: 1,
            compact_revision: 0,
            next_lease_id: 1,
            live_bytes: 0,
            history: VecDeque::new(),
            history_start: 1,
            history_limit: history_limit.max(1),
        }
    }

    /// Replaces everything with `snap`; leases start a fresh full TTL.
    pub(crate) fn load_snapshot(&mut self, snap: Snapshot, now: Instant) {
        self.kvs.clear();
        self.leases.clear();
        self.history.clear();
        self.live_bytes = 0;
        self.revision = snap.revision;
        self.compact_revision = snap.compact_revision;
        self.next_lease_id = snap.next_lease_id;
        self.history_start = snap.revision + 1;
        for (id, ttl) in snap.leases {
            self.leases.insert(id, new_lease(ttl, now));
        }
        for kv in snap.kvs {
            if let Some(lease) = self.leases.get_mut(&kv.lease) {
                lease.keys.insert(kv.key.clone());
            }
            self.live_bytes += entry_size(&kv.key, &kv.value);
            let entry = Entry {
                value: kv.value,
                create_revision: kv.create_revision,
                mod_revision: kv.mod_revision,
                version: kv.version,
                lease: kv.lease,
            };
            self.kvs.insert(kv.key, entry);
        }
    }

    /// The whole state as a snapshot record.
    pub(crate) fn snapshot(&self) -> Snapshot {
        Snapshot {
            revision: self.revision,
            compact_revision: self.compact_revision,
            next_lease_id: self.next_lease_id,
            kvs: self.kvs.iter().map(|(k, e)| key_value(k, e)).collect(),
            leases: self.leases.iter().map(|(id, l)| (*id, l.ttl)).collect(),
        }
    }

    /// Applies one durable transaction and returns its events. Fails when the transaction does
    /// not follow the current revision (a log that was tampered with or mixed up).
    pub(crate) fn apply(&mut self, txn: &Txn, now: Instant) -> Result<Vec<Event>, String> {
        let writes_keys = txn
            .ops
            .iter()
            .any(|op| matches!(op, Op::Put { .. } | Op::Delete { .. }));
        let expected = self.revision + i64::from(writes_keys);
        if txn.revision != expected {
            return Err(format!(
                "record has revision {} where {expected} was expected",
                txn.revision
            ));
        }
        let rev = txn.revision;
        let mut events = Vec::new();
        for op in &txn.ops {
            match op {
                Op::Put { key, value, lease } => {
                    let old = (self.kvs.get(key))
                        .map(|o| (o.create_revision, o.version, o.lease, o.value.len()));
                    let (create_revision, version) = match old {
                        Some((create, version, old_lease, old_len)) => {
                            if old_lease != *lease {
                                self.unbind(key, old_lease);
                            }
                            self.live_bytes = (self.live_bytes)
                                .saturating_sub((key.len() + old_len) as u64 + ENTRY_OVERHEAD);
                            (create, version + 1)
                        }
                        None => (rev, 1),
                    };
                    if *lease != 0 {
                        let l = self.leases.get_mut(lease);
                        let l = l.ok_or_else(|| format!("key {key} bound to unknown lease"))?;
                        l.keys.insert(key.clone());
                    }
                    let entry = Entry {
                        value: value.clone(),
                        create_revision,
                        mod_revision: rev,
                        version,
                        lease: *lease,
                    };
                    self.live_bytes += entry_size(key, value);
                    events.push(Event {
                        kind: EventKind::Put,
                        kv: key_value(key, &entry),
                    });
                    self.kvs.insert(key.clone(), entry);
                }
                Op::Delete { key } => {
                    if let Some(old) = self.kvs.remove(key) {
                        self.unbind(key, old.lease);
                        self.live_bytes =
                            self.live_bytes.saturating_sub(entry_size(key, &old.value));
                        events.push(deleted(key, rev));
                    }
                }
                Op::LeaseGrant { id, ttl } => {
                    self.leases.insert(*id, new_lease(*ttl, now));
                    self.next_lease_id = self.next_lease_id.max(id.saturating_add(1));
                }
                Op::LeaseRevoke { id } => {
                    self.leases.remove(id);
                }
                Op::Compact { revision } => self.compact(*revision),
            }
        }
        self.revision = rev;
        if !events.is_empty() {
            self.history.push_back((rev, events.clone()));
            while self.history.len() > self.history_limit {
                if let Some((old, _)) = self.history.pop_front() {
                    self.history_start = old + 1;
                }
            }
        }
        Ok(events)
    }

    fn compact(&mut self, revision: i64) {
        self.compact_revision = self.compact_revision.max(revision);
        self.history_start = self.history_start.max(revision);
        let keep_from = self.history.partition_point(|(r, _)| *r < revision);
        self.history.drain(..keep_from);
    }

    fn unbind(&mut self, key: &str, lease: LeaseId) {
        if let Some(l) = self.leases.get_mut(&lease) {
            l.keys.remove(key);
        }
    }

    /// One key at the current revision.
    pub(crate) fn get(&self, key: &str) -> Option<KeyValue> {
        self.kvs.get(key).map(|e| key_value(key, e))
    }

    /// Every key under `prefix`, sorted.
    pub(crate) fn range(&self, prefix: &str) -> Vec<KeyValue> {
        self.kvs
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, e)| key_value(k, e))
            .collect()
    }

    /// The keys under `prefix`, sorted.
    pub(crate) fn keys(&self, prefix: &str) -> Vec<String> {
        self.kvs
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// The changes under `prefix` with revision >= `from`, or `None` when some of them are no
    /// longer kept (compacted or beyond the history limit).
    pub(crate) fn events_since(&self, from: i64, prefix: &str) -> Option<Vec<Event>> {
        if from < self.history_start {
            return None;
        }
        let start = self.history.partition_point(|(r, _)| *r < from);
        let events = self
            .history
            .range(start..)
            .flat_map(|(_, events)| events.iter())
            .filter(|e| e.kv.key.starts_with(prefix))
            .cloned()
            .collect();
        Some(events)
    }

    /// The leases whose deadline has passed.
    pub(crate) fn expired_leases(&self, now: Instant) -> Vec<LeaseId> {
        let mut ids: Vec<LeaseId> = (self.leases.iter())
            .filter(|(_, l)| l.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// When the next lease expires.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.leases.values().map(|l| l.deadline).min()
    }
}

fn new_lease(ttl: i64, now: Instant) -> Lease {
    Lease {
        ttl,
        deadline: lease_deadline(now, ttl),
        keys: BTreeSet::new(),
    }
}

/// `now + ttl` seconds, saturating far in the future instead of overflowing.
pub(crate) fn lease_deadline(now: Instant, ttl: i64) -> Instant {
    let ttl = Duration::from_secs(ttl.max(1) as u64);
    now.checked_add(ttl)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(now)
}

fn key_value(key: &str, e: &Entry) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: e.value.clone(),
        create_revision: e.create_revision,
        mod_revision: e.mod_revision,
        version: e.version,
        lease: e.lease,
    }
}

/// A delete event as etcd reports it: the key and the revision of the delete.
fn deleted(key: &str, rev: i64) -> Event {
    Event {
        kind: EventKind::Delete,
        kv: KeyValue {
            key: key.to_string(),
            value: Vec::new(),
            create_revision: 0,
            mod_revision: rev,
            version: 0,
            lease: 0,
        },
    }
}

fn entry_size(key: &str, value: &[u8]) -> u64 {
    (key.len() + value.len()) as u64 + ENTRY_OVERHEAD
}
