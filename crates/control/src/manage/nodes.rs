//! Data-plane nodes as the control plane sees them: registrations the nodes write into their
//! cluster's store, their state by heartbeat age and applied revision, and the drain switch.
//! Control-plane nodes register in the system store.

use std::time::Duration;

use http::StatusCode;
use portico_model::node::{NodeControl, NodeRecord};
use portico_store::{PutOptions, SharedStore};
use serde_json::{json, Value};

use super::auth::Principal;
use super::records::now;
use super::{ManageApi, Reply, SYSTEM_PREFIX};
use crate::admin::{AdminError, AdminResult};

pub use portico_model::node::{NODE_CONTROL_DIR, NODE_DIR};

/// When a node counts as lost, offline, and forgotten (API7's 30 s / 2 h / 7 days by default).
#[derive(Clone, Copy, Debug)]
pub struct NodeThresholds {
    pub lost_after: Duration,
    pub offline_after: Duration,
    pub remove_after: Duration,
}

impl Default for NodeThresholds {
    fn default() -> Self {
        NodeThresholds {
            lost_after: Duration::from_secs(30),
            offline_after: Duration::from_secs(2 * 3600),
            remove_after: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

impl NodeThresholds {
    /// `healthy`, `lagging`, `lost` or `offline`; `None` when the node is to be forgotten.
    pub fn state(&self, node: &NodeRecord, latest: i64, now: i64) -> Option<&'static str> {
        let age = u64::try_from(now - node.last_heartbeat).unwrap_or(0);
        if age > self.remove_after.as_secs() {
            None
        } else if age > self.offline_after.as_secs() {
            Some("offline")
        } else if age > self.lost_after.as_secs() {
            Some("lost")
        } else if node.applied_revision < latest {
            Some("lagging")
        } else {
            Some("healthy")
        }
    }
}

impl ManageApi {
    /// The latest config revision of a cluster and its nodes' states, counted.
    pub(super) async fn node_summary(
        &self,
        store: &SharedStore,
        prefix: &str,
    ) -> AdminResult<(i64, Value)> {
        let (latest, nodes) = self.nodes_of(store, prefix).await?;
        let mut counts = json!({"healthy": 0, "lagging": 0, "lost": 0, "offline": 0});
        for n in &nodes {
            if let Some(state) = n.get("state").and_then(Value::as_str) {
                counts[state] = json!(counts[state].as_i64().unwrap_or(0) + 1);
            }
        }
        Ok((latest, counts))
    }

    /// Every node of a cluster with its state; forgets nodes silent for longer than the limit.
    async fn nodes_of(&self, store: &SharedStore, prefix: &str) -> AdminResult<(i64, Vec<Value>)> {
        let latest = store
            .range(&format!("{prefix}/ws/"))
            .await?
            .kvs
            .iter()
            .map(|kv| kv.mod_revision)
            .max()
            .unwrap_or(0);
        let node_prefix = format!("{prefix}/{NODE_DIR}/");
        let control_prefix = format!("{prefix}/{NODE_CONTROL_DIR}/");
        let controls = store.range(&control_prefix).await?;
        let now = now();
        let mut list = Vec::new();
        for kv in store.range(&node_prefix).await?.kvs {
            let Ok(node) = serde_json::from_slice::<NodeRecord>(&kv.value) else {
                continue;
            };
            let Some(state) = self.thresholds.state(&node, latest, now) else {
                let _ = store.delete(&kv.key, Some(kv.mod_revision)).await;
                continue;
            };
            let drained = controls
                .kvs
                .iter()
                .find(|c| c.key[control_prefix.len()..] == node.id)
                .and_then(|c| serde_json::from_slice::<NodeControl>(&c.value).ok())
                .is_some_and(|c| c.drained);
            let mut v = serde_json::to_value(&node).unwrap_or_default();
            v["state"] = json!(state);
            v["drained"] = json!(drained);
            v["latest_revision"] = json!(latest);
            list.push(v);
        }
        Ok((latest, list))
    }

    pub(super) async fn list_nodes(&self, who: &Principal, cluster: &str) -> Reply {
        if !who.reaches_cluster(cluster) {
            return Err(AdminError::Forbidden(format!(
                "this token does not reach cluster {cluster}"
            )));
        }
        let record = self.cluster_record(cluster).await?;
        let store = self.cluster_store(&record).await?;
        let prefix = record
            .get("prefix")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let (latest, list) = self.nodes_of(&store, prefix).await?;
        let total = list.len();
        let resource = record
            .get("etcd_resource")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let add = self.add_node_command(resource, prefix).await;
        Ok((
            StatusCode::OK,
            Some(
                json!({"list": list, "total": total, "latest_revision": latest, "add_node_command": add}),
            ),
        ))
    }

    pub(super) async fn set_drained(
        &self,
        who: &Principal,
        cluster: &str,
        node: &str,
        drained: bool,
    ) -> Reply {
        who.check_cluster(cluster)?;
        let record = self.cluster_record(cluster).await?;
        let store = self.cluster_store(&record).await?;
        let prefix = record
            .get("prefix")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let node_key = format!("{prefix}/{NODE_DIR}/{node}");
        let Some(kv) = store.get(&node_key).await? else {
            return Err(AdminError::NotFound(format!(
                "node {node} not found in cluster {cluster}"
            )));
        };
        let control = serde_json::to_vec(&NodeControl { drained }).unwrap_or_default();
        store
            .put(
                &format!("{prefix}/{NODE_CONTROL_DIR}/{node}"),
                control,
                PutOptions::default(),
            )
            .await?;
        let mut v: Value = serde_json::from_slice(&kv.value).unwrap_or_default();
        v["drained"] = json!(drained);
        Ok((StatusCode::OK, Some(v)))
    }

    pub(super) async fn list_control_planes(&self, _who: &Principal) -> Reply {
        let list = self
            .records(&format!("{SYSTEM_PREFIX}/control_planes/"))
            .await?;
        let total = list.len();
        Ok((StatusCode::OK, Some(json!({"list": list, "total": total}))))
    }
}

/// Keeps this control plane's registration in the system store alive (a lease of 30 s renewed
/// every 10 s) until the returned task is aborted.
pub fn register_control_plane(
    store: SharedStore,
    id: String,
    record: Value,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let key = format!("{SYSTEM_PREFIX}/control_planes/{id}");
        loop {
            let lease = match store.lease_grant(30).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::debug!("control-plane registration: {e}");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    continue;
                }
            };
            loop {
                let mut value = record.clone();
                value["last_heartbeat"] = json!(now());
                let opts = PutOptions {
                    expect_mod_revision: None,
                    lease: Some(lease),
                };
                if store
                    .put(&key, value.to_string().into_bytes(), opts)
                    .await
                    .is_err()
                {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(10)).await;
                if store.lease_keep_alive(lease).await.is_err() {
                    break;
                }
            }
        }
    })
}
