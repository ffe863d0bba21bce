//! A data-plane node's registration in its cluster's store: a record at
//! `<cluster prefix>/nodes/<id>` bound to a lease and rewritten at every heartbeat (hostname,
//! addresses, version, start time, last heartbeat, applied revision), and the drain switch the
//! control plane sets at `<cluster prefix>/node_control/<id>`.
//!
//! The lease lasts as long as a silent node is remembered (seven days by default), so a node that
//! dies shows up as lost, then offline, and finally disappears by itself.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use portico_model::node::{NodeControl, NodeRecord, NODE_CONTROL_DIR, NODE_DIR};
use portico_store::{PutOptions, SharedStore, WatchMessage};
use tokio::sync::watch;

/// How a node registers.
#[derive(Clone, Debug)]
pub struct RegistrationSettings {
    pub cluster_prefix: String,
    pub id: String,
    pub hostname: String,
    pub addresses: Vec<String>,
    /// How often the record is rewritten.
    pub heartbeat: Duration,
    /// How long the record outlives a silent node.
    pub lease_ttl: Duration,
}

/// Whether the node is drained, as the control plane last said.
#[derive(Clone, Debug, Default)]
pub struct Drain(Arc<AtomicBool>);

impl Drain {
    pub fn is_drained(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn set(&self, drained: bool) {
        if self.0.swap(drained, Ordering::Relaxed) != drained {
            tracing::info!(drained, "drain state changed");
        }
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// Registers the node and keeps its record and drain state current until the task is aborted.
/// Store outages are waited out; the node keeps serving meanwhile.
pub fn spawn(
    store: SharedStore,
    settings: RegistrationSettings,
    applied: watch::Receiver<i64>,
    drain: Drain,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let control_key = format!(
            "{}/{NODE_CONTROL_DIR}/{}",
            settings.cluster_prefix, settings.id
        );
        tokio::spawn(follow_drain(store.clone(), control_key, drain.clone()));
        heartbeat(store, settings, applied, drain).await;
    })
}

async fn heartbeat(
    store: SharedStore,
    settings: RegistrationSettings,
    mut applied: watch::Receiver<i64>,
    drain: Drain,
) {
    let key = format!("{}/{NODE_DIR}/{}", settings.cluster_prefix, settings.id);
    let start_time = now();
    let ttl = settings.lease_ttl.as_secs().max(2) as i64;
    let mut lease = None;
    loop {
        if lease.is_none() {
            lease = store.lease_grant(ttl).await.ok();
        }
        let record = NodeRecord {
            id: settings.id.clone(),
            hostname: settings.hostname.clone(),
            addresses: settings.addresses.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            start_time,
            last_heartbeat: now(),
            applied_revision: *applied.borrow(),
            drained: drain.is_drained(),
        };
        if let (Some(l), Ok(value)) = (lease, serde_json::to_vec(&record)) {
            let opts = PutOptions {
                expect_mod_revision: None,
                lease: Some(l),
            };
            if let Err(e) = store.put(&key, value, opts).await {
                tracing::debug!("node registration: {e}");
                lease = None;
            } else if store.lease_keep_alive(l).await.is_err() {
                lease = None;
            }
        }
        // Beat on time, and at once when a new config was applied.
        tokio::select! {
            _ = tokio::time::sleep(settings.heartbeat) => {}
            changed = applied.changed() => {
                if changed.is_err() {
                    tokio::time::sleep(settings.heartbeat).await;
                }
            }
        }
    }
}

/// Follows the drain switch: a watch for prompt changes, re-established after outages.
async fn follow_drain(store: SharedStore, key: String, drain: Drain) {
    loop {
        let revision = match store.get(&key).await {
            Ok(kv) => {
                drain.set(kv.as_ref().is_some_and(|kv| drained(&kv.value)));
                store.revision().await.unwrap_or_default()
            }
            Err(_) => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let Ok(mut watch) = store.watch(&key, revision + 1).await else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        while let Some(msg) = watch.next().await {
            match msg {
                Ok(WatchMessage::Changes { events, .. }) => {
                    for e in events.iter().filter(|e| e.kv.key == key) {
                        drain.set(e.kind == portico_store::EventKind::Put && drained(&e.kv.value));
                    }
                }
                Ok(WatchMessage::Resync { kvs, .. }) => {
                    drain.set(kvs.iter().any(|kv| kv.key == key && drained(&kv.value)));
                }
                Err(_) => {}
            }
        }
    }
}

fn drained(value: &[u8]) -> bool {
    serde_json::from_slice::<NodeControl>(value).is_ok_and(|c| c.drained)
}
