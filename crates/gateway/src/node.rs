//! Keeping a node's snapshot in step with the store: load the cluster's objects, watch for
//! changes, compile each new snapshot off the request path and swap it in. The node writes a
//! last-known-good copy of its config to disk and starts from it when the store is unreachable.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use portico_model::{Keyring, Registry};
use portico_snapshot::{Config, Item, Snapshot};
use portico_store::{Event, EventKind, KeyValue, SharedStore, WatchMessage};
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::Gateway;

/// Where a node reads its config and keeps its copy.
#[derive(Clone, Debug)]
pub struct NodeSettings {
    /// The cluster's key prefix, e.g. `/portico/clusters/default`.
    pub cluster_prefix: String,
    /// The last-known-good file; `None` keeps no copy.
    pub last_known_good: Option<PathBuf>,
    /// Changes arriving within this window are applied together.
    pub debounce: Duration,
}

/// Loads and follows the store for ever, swapping snapshots into `gateway`. `applied` receives
/// the store revision of every snapshot swapped in.
pub async fn follow(
    gateway: Arc<Gateway>,
    store: SharedStore,
    settings: NodeSettings,
    plugins: Arc<Registry>,
    keyring: Arc<Keyring>,
    applied: watch::Sender<i64>,
) {
    let prefix = format!("{}/", settings.cluster_prefix.trim_end_matches('/'));
    let compiler = Compiler {
        gateway: gateway.clone(),
        plugins,
        keyring,
        applied,
        lkg: settings.last_known_good.clone(),
    };
    let mut config = Config::new();
    let mut revision = 0;
    let mut loaded_from_store = false;
    // Start from the local copy when the store cannot be read right away.
    match store.range(&prefix).await {
        Ok(range) => {
            config = to_config(&prefix, &range.kvs);
            revision = range.revision;
            loaded_from_store = true;
        }
        Err(e) => {
            tracing::warn!(
                "config store unavailable at start ({e}); using the last known good copy"
            );
            if let Some((lkg_revision, lkg)) = settings.last_known_good.as_ref().and_then(read_lkg)
            {
                config = lkg;
                revision = lkg_revision;
            }
        }
    }
    compiler.apply(&config, revision, loaded_from_store).await;

    let mut backoff = Duration::from_millis(100);
    loop {
        if !loaded_from_store {
            match store.range(&prefix).await {
                Ok(range) => {
                    config = to_config(&prefix, &range.kvs);
                    revision = range.revision;
                    loaded_from_store = true;
                    compiler.apply(&config, revision, true).await;
                    backoff = Duration::from_millis(100);
                }
                Err(e) => {
                    tracing::debug!("config store still unavailable: {e}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            }
        }
        let mut watch = match store.watch(&prefix, revision + 1).await {
            Ok(w) => w,
            Err(e) => {
                tracing::debug!("watch failed: {e}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        while let Some(msg) = watch.next().await {
            let mut changed = false;
            let mut pending = Some(msg);
            // Take everything that arrives within the debounce window as one change.
            while let Some(msg) = pending.take() {
                match msg {
                    Ok(WatchMessage::Changes {
                        revision: rev,
                        events,
                    }) => {
                        apply_events(&prefix, &mut config, &events);
                        revision = revision.max(rev);
                        changed = true;
                    }
                    Ok(WatchMessage::Resync { revision: rev, kvs }) => {
                        config = to_config(&prefix, &kvs);
                        revision = rev;
                        changed = true;
                    }
                    Err(e) => tracing::debug!("watch: {e}"),
                }
                if let Ok(Some(next)) = tokio::time::timeout(settings.debounce, watch.next()).await
                {
                    pending = Some(next);
                }
            }
            if changed {
                compiler.apply(&config, revision, true).await;
            }
        }
        // The watch ended (store closed or gone): read everything again.
        loaded_from_store = false;
    }
}

struct Compiler {
    gateway: Arc<Gateway>,
    plugins: Arc<Registry>,
    keyring: Arc<Keyring>,
    applied: watch::Sender<i64>,
    lkg: Option<PathBuf>,
}

impl Compiler {
    /// Compiles `config` on a blocking thread, swaps it in and (when it came from the store)
    /// writes the last-known-good copy.
    async fn apply(&self, config: &Config, revision: i64, save: bool) {
        let previous = self.gateway.snapshot();
        let (plugins, keyring) = (self.plugins.clone(), self.keyring.clone());
        let cfg = config.clone();
        let compiled = tokio::task::spawn_blocking(move || {
            portico_snapshot::compile(&cfg, revision, Some(&previous), &plugins, &keyring)
        })
        .await;
        let snapshot: Snapshot = match compiled {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("snapshot compile failed: {e}");
                return;
            }
        };
        self.gateway.swap(Arc::new(snapshot));
        self.applied.send_replace(revision);
        if save {
            if let Some(path) = &self.lkg {
                let (path, config) = (path.clone(), config.clone());
                tokio::task::spawn_blocking(move || write_lkg(&path, revision, &config));
            }
        }
    }
}

fn to_config(prefix: &str, kvs: &[KeyValue]) -> Config {
    kvs.iter().filter_map(|kv| item(prefix, kv)).collect()
}

fn item(prefix: &str, kv: &KeyValue) -> Option<(String, Item)> {
    let rel = kv.key.strip_prefix(prefix)?;
    let value: Value = serde_json::from_slice(&kv.value).ok()?;
    Some((
        rel.to_string(),
        Item {
            mod_revision: kv.mod_revision,
            value,
        },
    ))
}

fn apply_events(prefix: &str, config: &mut Config, events: &[Event]) {
    for event in events {
        let Some(rel) = event.kv.key.strip_prefix(prefix) else {
            continue;
        };
        match event.kind {
            EventKind::Put => match item(prefix, &event.kv) {
                Some((key, item)) => {
                    config.insert(key, item);
                }
                None => {
                    config.remove(rel);
                }
            },
            EventKind::Delete => {
                config.remove(rel);
            }
        }
    }
}

fn write_lkg(path: &std::path::Path, revision: i64, config: &Config) {
    let items: serde_json::Map<String, Value> = config
        .iter()
        .map(|(k, item)| {
            (
                k.clone(),
                json!({"mod_revision": item.mod_revision, "value": item.value}),
            )
        })
        .collect();
    let doc = json!({"revision": revision, "items": items});
    let tmp = path.with_extension("tmp");
    let result = (|| -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut f = std::fs::File::create(&tmp)?;
        serde_json::to_writer(&mut f, &doc)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        tracing::warn!(
            "cannot write the last-known-good config {}: {e}",
            path.display()
        );
    }
}

fn read_lkg(path: &PathBuf) -> Option<(i64, Config)> {
    let text = std::fs::read(path).ok()?;
    let doc: Value = serde_json::from_slice(&text).ok()?;
    let revision = doc.get("revision")?.as_i64()?;
    let items = doc.get("items")?.as_object()?;
    let config = items
        .iter()
        .filter_map(|(k, v)| {
            Some((
                k.clone(),
                Item {
                    mod_revision: v.get("mod_revision")?.as_i64()?,
                    value: v.get("value")?.clone(),
                },
            ))
        })
        .collect();
    Some((revision, config))
}
