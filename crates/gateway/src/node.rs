//! Keeping a node's snapshot in step with the store: load the cluster's objects, watch for
//! changes, compile each new snapshot off the request path and swap it in, then let the active
//! health checkers ([`crate::health`]) follow the new upstreams. The node writes a
//! last-known-good copy of its config to disk and starts from it when the store is unreachable.
//!
//! Failure handling, in short: the node never stops serving its current snapshot because of the
//! store. A store that cannot be read at start means the last-known-good copy (or nothing) until
//! it can; a watch that reports errors keeps being read (the back end reconnects by itself and
//! resumes, or resyncs after a compaction); a watch that ends, or cannot be created, makes the
//! node read the whole prefix again, with backoff.

mod lkg;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use portico_model::{Keyring, Registry};
use portico_snapshot::{Config, Item, Snapshot};
use portico_store::{Event, EventKind, KeyValue, SharedStore, Watch, WatchMessage};
use serde_json::Value;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::health::Checker;
use crate::Gateway;
use lkg::LkgWriter;

/// The first pause after a failed read or watch of the store; it doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// The longest pause between two attempts to reach the store.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Below the cluster prefix, the objects a snapshot is compiled from live under this
/// (`ws/<workspace>/<kind>/<id>`). Other keys there (node records, drain switches, ...) change
/// often and compile into nothing: they advance the applied revision without a recompile, and
/// stay out of the last-known-good copy.
const OBJECTS: &str = "ws/";

/// Where a node reads its config and keeps its copy.
#[derive(Clone, Debug)]
pub struct NodeSettings {
    /// The cluster's key prefix, e.g. `/portico/clusters/default`.
    pub cluster_prefix: String,
    /// The last-known-good file; `None` keeps no copy.
    pub last_known_good: Option<PathBuf>,
    /// Changes are applied together when they arrive within this window of the first one; a
    /// steady stream of changes still gets a new snapshot every window.
    pub debounce: Duration,
}

/// Loads and follows the store for ever, swapping snapshots into `gateway` and running the
/// active health checks of their upstreams. `applied` receives the store revision of every
/// snapshot swapped in. Dropping the future (aborting its task) stops the health checks; the
/// newest last-known-good copy is still written.
pub async fn follow(
    gateway: Arc<Gateway>,
    store: SharedStore,
    settings: NodeSettings,
    plugins: Arc<Registry>,
    keyring: Arc<Keyring>,
    applied: watch::Sender<i64>,
) {
    let prefix = format!("{}/", settings.cluster_prefix.trim_end_matches('/'));
    let mut node = Node {
        gateway,
        plugins,
        keyring,
        applied,
        lkg: settings.last_known_good.clone().map(LkgWriter::spawn),
        checker: Checker::new(),
        config: Arc::new(Config::new()),
        revision: 0,
        prefix,
        frozen: false,
        last_compile: Duration::ZERO,
    };
    let mut synced = match store.range(&node.prefix).await {
        Ok(range) => {
            node.replace(&range.kvs, range.revision);
            node.apply(true).await;
            true
        }
        Err(e) => {
            tracing::warn!("config store unavailable at start ({e})");
            node.start_from_copy(settings.last_known_good).await;
            false
        }
    };
    let mut backoff = MIN_BACKOFF;
    loop {
        if !synced {
            match store.range(&node.prefix).await {
                Ok(range) => {
                    node.replace(&range.kvs, range.revision);
                    node.apply(true).await;
                }
                Err(e) => {
                    tracing::debug!("config store still unavailable: {e}");
                    pause(&mut backoff).await;
                    continue;
                }
            }
        }
        // Whatever ends the watch below, a full read catches up on what it missed.
        synced = false;
        let watch = match store.watch(&node.prefix, node.revision + 1).await {
            Ok(watch) => watch,
            Err(e) => {
                tracing::debug!("cannot watch the config store: {e}");
                pause(&mut backoff).await;
                continue;
            }
        };
        let delivered = node.follow_watch(watch, settings.debounce).await;
        if node.frozen {
            return;
        }
        tracing::debug!("config watch ended; reading the store again");
        // Pause only if the watch gave nothing, so a store that ends every watch at once is
        // not hammered.
        if delivered {
            backoff = MIN_BACKOFF;
        } else {
            pause(&mut backoff).await;
        }
    }
}

async fn pause(backoff: &mut Duration) {
    tokio::time::sleep(*backoff).await;
    *backoff = (*backoff * 2).min(MAX_BACKOFF);
}

/// What watch messages did to a node's view, in increasing order of work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Effect {
    /// Nothing (a transient error).
    Nothing,
    /// The revision moved, no object changed: publish it, keep the snapshot.
    Revision,
    /// Objects changed: compile and swap.
    Config,
}

/// The follow loop's state: the objects as last seen and everything needed to serve them.
struct Node {
    gateway: Arc<Gateway>,
    plugins: Arc<Registry>,
    keyring: Arc<Keyring>,
    applied: watch::Sender<i64>,
    lkg: Option<LkgWriter>,
    checker: Checker,
    /// Shared with the compiler thread and the copy writer; copied on write.
    config: Arc<Config>,
    revision: i64,
    prefix: String,
    /// Set when the cluster was deleted: the node stops following and keeps its snapshot.
    frozen: bool,
    /// How long the last compile took (bounded by [`MAX_GATHER`]).
    last_compile: Duration,
}

/// The longest a change waits for others to be applied with it.
const MAX_GATHER: Duration = Duration::from_millis(500);

impl Node {
    /// Serves the last-known-good copy, if there is one (it is not written back).
    async fn start_from_copy(&mut self, path: Option<PathBuf>) {
        let Some(path) = path else {
            return;
        };
        let copy = tokio::task::spawn_blocking(move || lkg::read(&path)).await;
        if let Ok(Some((revision, config))) = copy {
            tracing::warn!("serving the last known good config (revision {revision})");
            self.config = Arc::new(config);
            self.revision = revision;
            self.apply(false).await;
        }
    }

    /// Reads `watch` until it ends, applying changes in debounce windows. Returns whether it
    /// delivered anything.
    async fn follow_watch(&mut self, mut watch: Watch, debounce: Duration) -> bool {
        let mut delivered = false;
        while let Some(first) = watch.next().await {
            delivered = true;
            let mut effect = self.absorb(first);
            // A big config takes a while to compile: gather changes for at least as long as the
            // last compile took, so a stream of writes costs at most half a core.
            let window_end = Instant::now() + debounce.max(self.last_compile);
            let mut ended = false;
            loop {
                match tokio::time::timeout_at(window_end, watch.next()).await {
                    Ok(Some(next)) => effect = effect.max(self.absorb(next)),
                    Ok(None) => {
                        ended = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
            match effect {
                Effect::Config => self.apply(true).await,
                Effect::Revision => {
                    self.applied.send_replace(self.revision);
                }
                Effect::Nothing => {}
            }
            if ended || self.frozen {
                break;
            }
        }
        delivered
    }

    /// Takes one watch message into the config.
    fn absorb(&mut self, message: portico_store::Result<WatchMessage>) -> Effect {
        if self.frozen {
            return Effect::Nothing;
        }
        match message {
            Ok(WatchMessage::Changes {
                revision,
                mut events,
            }) => {
                // The cluster is being deleted: keep what is served, ignore the wipe that follows.
                let marker = format!("{}{}", self.prefix, portico_model::node::CLUSTER_DELETED);
                if let Some(at) = events
                    .iter()
                    .position(|e| e.kind == EventKind::Put && e.kv.key == marker)
                {
                    tracing::warn!(
                        "the cluster was deleted on the control plane; serving the last config until this node is stopped"
                    );
                    self.frozen = true;
                    events.truncate(at);
                }
                self.revision = self.revision.max(revision);
                if !events.iter().any(|e| is_object(&self.prefix, &e.kv.key)) {
                    return Effect::Revision;
                }
                apply_events(&self.prefix, Arc::make_mut(&mut self.config), &events);
                Effect::Config
            }
            Ok(WatchMessage::Resync { revision, kvs }) => {
                tracing::info!("config watch resynced at revision {revision}");
                self.replace(&kvs, revision);
                Effect::Config
            }
            Err(e) => {
                // The back end keeps retrying; the node keeps serving what it has.
                tracing::warn!("config watch interrupted: {e}");
                Effect::Nothing
            }
        }
    }

    fn replace(&mut self, kvs: &[KeyValue], revision: i64) {
        self.config = Arc::new(to_config(&self.prefix, kvs));
        self.revision = revision;
    }

    /// Compiles the config on a blocking thread, swaps it in, publishes the revision, lets the
    /// health checkers follow and (when `save`) hands the config to the copy writer.
    async fn apply(&mut self, save: bool) {
        let previous = self.gateway.snapshot();
        let (plugins, keyring) = (self.plugins.clone(), self.keyring.clone());
        let (config, revision) = (self.config.clone(), self.revision);
        let started = Instant::now();
        let compiled = tokio::task::spawn_blocking(move || {
            portico_snapshot::compile(&config, revision, Some(&previous), &plugins, &keyring)
        })
        .await;
        self.last_compile = started.elapsed().min(MAX_GATHER);
        let snapshot: Arc<Snapshot> = match compiled {
            Ok(snapshot) => Arc::new(snapshot),
            Err(e) => {
                tracing::error!("compiling the snapshot of revision {revision} failed: {e}");
                return;
            }
        };
        let old = self.gateway.replace(snapshot.clone());
        retire(old);
        self.applied.send_replace(revision);
        self.checker.sync(&snapshot);
        if let (true, Some(lkg)) = (save, &self.lkg) {
            lkg.save(revision, self.config.clone());
        }
    }
}

/// Longest a replaced snapshot waits for its last request before it is freed anyway.
const RETIRE_WAIT: Duration = Duration::from_secs(300);

/// Frees a replaced snapshot on a blocking thread once the requests still running on it are
/// done, so that freeing a big route table never lands on a request thread.
fn retire(old: Arc<Snapshot>) {
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let mut pause = Duration::from_millis(1);
        while Arc::strong_count(&old) > 1 && started.elapsed() < RETIRE_WAIT {
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(100));
        }
        drop(old);
    });
}

fn to_config(prefix: &str, kvs: &[KeyValue]) -> Config {
    kvs.iter().filter_map(|kv| item(prefix, kv)).collect()
}

/// The object of one stored key; `None` for keys that hold no object (outside the prefix or
/// [`OBJECTS`]) and values that are not JSON (the compiler reports bad objects, but cannot see
/// unreadable ones).
fn item(prefix: &str, kv: &KeyValue) -> Option<(String, Item)> {
    let rel = kv
        .key
        .strip_prefix(prefix)
        .filter(|r| r.starts_with(OBJECTS))?;
    let value: Value = match serde_json::from_slice(&kv.value) {
        Ok(value) => value,
        Err(e) => {
            tracing::warn!("config object {rel} left out: not JSON ({e})");
            return None;
        }
    };
    let item = Item {
        mod_revision: kv.mod_revision,
        value,
    };
    Some((rel.to_string(), item))
}

/// Whether `key` is an object a snapshot is compiled from.
fn is_object(prefix: &str, key: &str) -> bool {
    key.strip_prefix(prefix)
        .is_some_and(|r| r.starts_with(OBJECTS))
}

fn apply_events(prefix: &str, config: &mut Config, events: &[Event]) {
    for event in events {
        let Some(rel) = event
            .kv
            .key
            .strip_prefix(prefix)
            .filter(|r| r.starts_with(OBJECTS))
        else {
            continue;
        };
        let put = match event.kind {
            EventKind::Put => item(prefix, &event.kv),
            EventKind::Delete => None,
        };
        match put {
            Some((key, item)) => config.insert(key, item),
            None => config.remove(rel),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: &str, rev: i64) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: value.as_bytes().to_vec(),
            create_revision: rev,
            mod_revision: rev,
            version: 1,
            lease: 0,
        }
    }

    #[test]
    fn events_put_replace_and_delete_objects_below_the_prefix() {
        let prefix = "/c/";
        let mut config = to_config(prefix, &[kv("/c/ws/d/routes/1", r#"{"uri":"/a"}"#, 2)]);
        let put = |key: &str, value: &str, rev| Event {
            kind: EventKind::Put,
            kv: kv(key, value, rev),
        };
        let events = [
            put("/c/ws/d/routes/2", r#"{"uri":"/b"}"#, 3),
            put("/other/ws/d/routes/3", r#"{"uri":"/x"}"#, 4),
            put("/c/nodes/n1", r#"{"id":"n1"}"#, 4),
            put("/c/ws/d/routes/1", "not json", 5),
            Event {
                kind: EventKind::Delete,
                kv: kv("/c/ws/d/routes/9", "", 6),
            },
        ];
        apply_events(prefix, &mut config, &events);
        let keys: Vec<&str> = config.keys().map(String::as_str).collect();
        assert_eq!(keys, ["ws/d/routes/2"]);
        assert_eq!(config["ws/d/routes/2"].mod_revision, 3);
        assert!(is_object(prefix, "/c/ws/d/routes/2") && !is_object(prefix, "/c/nodes/n1"));
    }
}
