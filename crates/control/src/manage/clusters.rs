//! Clusters (bound at creation to an etcd resource and a key prefix) and their workspaces (which
//! claim hostnames).

use std::future::Future;
use std::pin::Pin;

use http::StatusCode;
use portico_store::SharedStore;
use serde_json::{json, Value};

use super::auth::Principal;
use super::records::{self, body_or_merge, check_name, now, strip};
use super::{schemas, ManageApi, Reply, HEALTH_TIMEOUT, SYSTEM_PREFIX, SYSTEM_RESOURCE};
use crate::admin::request::Call;
use crate::admin::{AdminError, AdminResult, HostPolicy};

fn cluster_key(id: &str) -> String {
    format!("{SYSTEM_PREFIX}/clusters/{id}")
}

fn workspace_key(cluster: &str, name: &str) -> String {
    format!("{SYSTEM_PREFIX}/workspaces/{cluster}/{name}")
}

fn text<'a>(v: &'a Value, field: &str) -> &'a str {
    v.get(field).and_then(Value::as_str).unwrap_or_default()
}

impl ManageApi {
    pub(super) async fn cluster_record(&self, id: &str) -> AdminResult<Value> {
        self.record(&cluster_key(id))
            .await?
            .map(|r| r.value)
            .ok_or_else(|| AdminError::NotFound(format!("cluster {id} not found")))
    }

    pub(super) async fn workspace_record(
        &self,
        cluster: &str,
        name: &str,
    ) -> AdminResult<Option<Value>> {
        Ok(self
            .record(&workspace_key(cluster, name))
            .await?
            .map(|r| r.value))
    }

    /// The store holding a cluster's objects.
    pub(super) async fn cluster_store(&self, record: &Value) -> AdminResult<SharedStore> {
        self.resource_store(text(record, "etcd_resource")).await
    }

    /// Creates the `default` cluster on the control plane's own store, with its `default`
    /// workspace, unless it exists.
    pub async fn ensure_default_cluster(&self, prefix: &str) -> AdminResult<()> {
        if self.record(&cluster_key("default")).await?.is_none() {
            let value = json!({
                "id": "default", "name": "default", "etcd_resource": SYSTEM_RESOURCE,
                "prefix": prefix, "create_time": now(), "update_time": now()
            });
            match self
                .write_record(&cluster_key("default"), &value, Some(0))
                .await
            {
                Ok(_) | Err(AdminError::Invalid(_)) => {}
                Err(e) => return Err(e),
            }
        }
        self.ensure_workspace("default", "default").await
    }

    async fn ensure_workspace(&self, cluster: &str, name: &str) -> AdminResult<()> {
        if self.record(&workspace_key(cluster, name)).await?.is_none() {
            let value = json!({"name": name, "cluster": cluster, "hosts": [],
                "create_time": now(), "update_time": now()});
            match self
                .write_record(&workspace_key(cluster, name), &value, Some(0))
                .await
            {
                Ok(_) | Err(AdminError::Invalid(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    pub(super) async fn list_clusters(&self, who: &Principal) -> Reply {
        let mut list = Vec::new();
        for record in self.records(&format!("{SYSTEM_PREFIX}/clusters/")).await? {
            if who.reaches_cluster(text(&record, "id")) {
                list.push(self.cluster_answer(record).await);
            }
        }
        let total = list.len();
        Ok((StatusCode::OK, Some(json!({"list": list, "total": total}))))
    }

    pub(super) async fn get_cluster(&self, who: &Principal, id: &str) -> Reply {
        if !who.reaches_cluster(id) {
            return Err(AdminError::Forbidden(format!(
                "this token does not reach cluster {id}"
            )));
        }
        let record = self.cluster_record(id).await?;
        Ok((StatusCode::OK, Some(self.cluster_answer(record).await)))
    }

    pub(super) async fn put_cluster(
        &self,
        who: &Principal,
        id: &str,
        call: &Call,
        patch: bool,
    ) -> Reply {
        check_name("cluster", id)?;
        let stored = self.record(&cluster_key(id)).await?;
        match &stored {
            None => who.check_system()?,
            Some(_) => who.check_cluster(id)?,
        }
        let mut old = stored.as_ref().map(|r| r.value.clone());
        if let Some(v) = old.as_mut() {
            strip(v, &["id", "create_time", "update_time"]);
        }
        let mut body = body_or_merge(call, old.as_ref(), patch)?;
        if let Some(old) = &old {
            // Fixed at creation: a body may repeat them, not change them.
            for field in ["etcd_resource", "prefix"] {
                match body.get(field) {
                    None => body[field] = old[field].clone(),
                    Some(v) if *v == old[field] => {}
                    Some(_) => {
                        return Err(AdminError::invalid(format!(
                            "the {field} of a cluster is fixed when it is created and cannot change"
                        )))
                    }
                }
            }
        }
        records::validate(&schemas::cluster_body(), &body)?;
        let resource = text(&body, "etcd_resource").to_string();
        if stored.is_none() {
            if resource != SYSTEM_RESOURCE
                && self
                    .record(&format!("{SYSTEM_PREFIX}/etcd_resources/{resource}"))
                    .await?
                    .is_none()
            {
                return Err(AdminError::invalid(format!(
                    "failed to fetch etcd resource info by etcd resource id [{resource}], response code: 404"
                )));
            }
            if body.get("prefix").is_none() {
                body["prefix"] = json!(format!("/portico/clusters/{id}"));
            }
            self.check_prefix_free(id, &resource, text(&body, "prefix"))
                .await?;
        }
        let created = stored
            .as_ref()
            .and_then(|r| r.value.get("create_time").cloned())
            .unwrap_or_else(|| json!(now()));
        let mut value = body;
        value["id"] = json!(id);
        value["create_time"] = created;
        value["update_time"] = json!(now());
        let expect = Some(stored.as_ref().map_or(0, |r| r.mod_revision));
        self.write_record(&cluster_key(id), &value, expect).await?;
        self.ensure_workspace(id, "default").await?;
        let status = if stored.is_some() {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        };
        Ok((status, Some(self.cluster_answer(value).await)))
    }

    /// Two clusters on one etcd resource never share keys: neither prefix may contain the other.
    async fn check_prefix_free(&self, id: &str, resource: &str, prefix: &str) -> AdminResult<()> {
        if prefix == SYSTEM_PREFIX || prefix.starts_with(&format!("{SYSTEM_PREFIX}/")) {
            return Err(AdminError::invalid(format!(
                "prefix {prefix} is reserved for system data"
            )));
        }
        for other in self.records(&format!("{SYSTEM_PREFIX}/clusters/")).await? {
            if text(&other, "id") == id || text(&other, "etcd_resource") != resource {
                continue;
            }
            let theirs = text(&other, "prefix");
            let nested = |a: &str, b: &str| a == b || a.starts_with(&format!("{b}/"));
            if nested(prefix, theirs) || nested(theirs, prefix) {
                return Err(AdminError::invalid(format!(
                    "prefix {prefix} overlaps the prefix {theirs} of cluster {} on the same etcd resource",
                    text(&other, "id")
                )));
            }
        }
        Ok(())
    }

    pub(super) async fn delete_cluster(&self, who: &Principal, id: &str, call: &Call) -> Reply {
        who.check_system()?;
        let stored = self
            .record(&cluster_key(id))
            .await?
            .ok_or(AdminError::KeyNotFound)?;
        if call.query.get("confirm").map(String::as_str) != Some(id) {
            return Err(AdminError::invalid(format!(
                "deleting a cluster wipes its configuration; repeat with ?confirm={id}"
            )));
        }
        let prefix = text(&stored.value, "prefix").to_string();
        // Tell the nodes first (they stop following and keep serving their last config), then
        // wipe the cluster's keys.
        if let Ok(store) = self.cluster_store(&stored.value).await {
            let marker = format!("{prefix}/{}", portico_model::node::CLUSTER_DELETED);
            store
                .put(&marker, br#"{"deleted":true}"#.to_vec(), Default::default())
                .await?;
            store.delete_prefix(&format!("{prefix}/")).await?;
        }
        self.system
            .delete_prefix(&format!("{SYSTEM_PREFIX}/workspaces/{id}/"))
            .await?;
        self.system.delete(&cluster_key(id), None).await?;
        self.forget_cluster(id);
        Ok((StatusCode::OK, Some(json!({"deleted": "1", "id": id}))))
    }

    async fn cluster_answer(&self, mut record: Value) -> Value {
        let resource = text(&record, "etcd_resource").to_string();
        let prefix = text(&record, "prefix").to_string();
        record["add_node_command"] = json!(self.add_node_command(&resource, &prefix).await);
        let status =
            match tokio::time::timeout(HEALTH_TIMEOUT * 2, self.cluster_status(&record)).await {
                Ok(s) => s,
                Err(_) => json!({"etcd_reachable": false, "error": "timed out"}),
            };
        record["status"] = status;
        record
    }

    async fn cluster_status(&self, record: &Value) -> Value {
        let store = match self.cluster_store(record).await {
            Ok(s) => s,
            Err(e) => return json!({"etcd_reachable": false, "error": e.to_string()}),
        };
        let prefix = text(record, "prefix");
        match self.node_summary(&store, prefix).await {
            Ok((latest, counts)) => {
                json!({"etcd_reachable": true, "latest_revision": latest, "nodes": counts})
            }
            Err(e) => json!({"etcd_reachable": false, "error": e.to_string()}),
        }
    }

    /// The command that starts one more data-plane node of this cluster.
    pub(super) async fn add_node_command(&self, resource: &str, prefix: &str) -> String {
        let endpoints = if resource == SYSTEM_RESOURCE {
            self.info.etcd_endpoints.clone()
        } else {
            self.record(&format!("{SYSTEM_PREFIX}/etcd_resources/{resource}"))
                .await
                .ok()
                .flatten()
                .and_then(|r| r.value.get("endpoints").cloned())
                .and_then(|e| serde_json::from_value(e).ok())
                .unwrap_or_default()
        };
        if endpoints.is_empty() {
            return "this cluster lives in the embedded store of `portico up`; its node runs inside that process".into();
        }
        format!(
            "portico dp --etcd-endpoints {} --cluster-prefix {prefix} --keyring <the control plane's keyring>",
            endpoints.join(",")
        )
    }

    pub(super) async fn list_workspaces(&self, who: &Principal, cluster: &str) -> Reply {
        if !who.reaches_cluster(cluster) {
            return Err(AdminError::Forbidden(format!(
                "this token does not reach cluster {cluster}"
            )));
        }
        self.cluster_record(cluster).await?;
        let list: Vec<Value> = self
            .records(&format!("{SYSTEM_PREFIX}/workspaces/{cluster}/"))
            .await?
            .into_iter()
            .filter(|w| who.reaches_workspace(cluster, text(w, "name")))
            .collect();
        let total = list.len();
        Ok((StatusCode::OK, Some(json!({"list": list, "total": total}))))
    }

    pub(super) async fn get_workspace(&self, who: &Principal, cluster: &str, name: &str) -> Reply {
        who.check_workspace(cluster, name)?;
        let record = self
            .workspace_record(cluster, name)
            .await?
            .ok_or(AdminError::KeyNotFound)?;
        Ok((StatusCode::OK, Some(record)))
    }

    pub(super) async fn put_workspace(
        &self,
        who: &Principal,
        cluster: &str,
        name: &str,
        call: &Call,
        patch: bool,
    ) -> Reply {
        who.check_cluster(cluster)?;
        check_name("workspace", name)?;
        let record = self.cluster_record(cluster).await?;
        let stored = self.record(&workspace_key(cluster, name)).await?;
        let mut old = stored.as_ref().map(|r| r.value.clone());
        if let Some(v) = old.as_mut() {
            strip(v, &["name", "cluster", "create_time", "update_time"]);
        }
        let body = body_or_merge(call, old.as_ref(), patch)?;
        records::validate(&schemas::workspace_body(), &body)?;
        let hosts: Vec<String> = hosts_of(&body);
        self.check_claims(&record, cluster, name, &hosts).await?;
        let created = stored
            .as_ref()
            .and_then(|r| r.value.get("create_time").cloned())
            .unwrap_or_else(|| json!(now()));
        let mut value = body;
        value["name"] = json!(name);
        value["cluster"] = json!(cluster);
        value["hosts"] = json!(hosts);
        value["create_time"] = created;
        value["update_time"] = json!(now());
        let expect = Some(stored.as_ref().map_or(0, |r| r.mod_revision));
        self.write_record(&workspace_key(cluster, name), &value, expect)
            .await?;
        let status = if stored.is_some() {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        };
        Ok((status, Some(value)))
    }

    /// A host may be claimed by one workspace only, and not while another workspace's routes
    /// use it.
    async fn check_claims(
        &self,
        record: &Value,
        cluster: &str,
        name: &str,
        hosts: &[String],
    ) -> AdminResult<()> {
        for other in self
            .records(&format!("{SYSTEM_PREFIX}/workspaces/{cluster}/"))
            .await?
        {
            if text(&other, "name") == name {
                continue;
            }
            for theirs in hosts_of(&other) {
                if let Some(h) = hosts.iter().find(|h| overlaps(h, &theirs)) {
                    return Err(AdminError::invalid(format!(
                        "host {h} is already claimed by workspace {}",
                        text(&other, "name")
                    )));
                }
            }
        }
        let store = self.cluster_store(record).await?;
        let prefix = format!("{}/ws/", text(record, "prefix"));
        for kv in store.range(&prefix).await?.kvs {
            let rel = &kv.key[prefix.len()..];
            let mut parts = rel.splitn(3, '/');
            let (Some(ws), Some("routes")) = (parts.next(), parts.next()) else {
                continue;
            };
            if ws == name {
                continue;
            }
            let Ok(route) = serde_json::from_slice::<Value>(&kv.value) else {
                continue;
            };
            for used in route_hosts(&route) {
                if let Some(h) = hosts.iter().find(|h| overlaps(h, &used)) {
                    return Err(AdminError::invalid(format!(
                        "host {h} is used by routes of workspace {ws}"
                    )));
                }
            }
        }
        Ok(())
    }

    pub(super) async fn delete_workspace(
        &self,
        who: &Principal,
        cluster: &str,
        name: &str,
    ) -> Reply {
        who.check_cluster(cluster)?;
        if name == "default" {
            return Err(AdminError::invalid(
                "the default workspace cannot be deleted",
            ));
        }
        let record = self.cluster_record(cluster).await?;
        self.record(&workspace_key(cluster, name))
            .await?
            .ok_or(AdminError::KeyNotFound)?;
        let store = self.cluster_store(&record).await?;
        let held = store
            .range(&format!("{}/ws/{name}/", text(&record, "prefix")))
            .await?
            .kvs
            .len();
        if held > 0 {
            return Err(AdminError::invalid(format!(
                "workspace {name} still holds {held} objects; delete them first"
            )));
        }
        self.system
            .delete(&workspace_key(cluster, name), None)
            .await?;
        if let Ok(mut m) = self.admins.lock() {
            m.remove(&(cluster.to_string(), name.to_string()));
        }
        Ok((StatusCode::OK, Some(json!({"deleted": "1", "id": name}))))
    }
}

fn hosts_of(v: &Value) -> Vec<String> {
    v.get("hosts")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_ascii_lowercase)
                .collect()
        })
        .unwrap_or_default()
}

fn route_hosts(route: &Value) -> Vec<String> {
    let mut hosts = hosts_of(route);
    if let Some(h) = route.get("host").and_then(Value::as_str) {
        hosts.push(h.to_ascii_lowercase());
    }
    hosts
}

/// Whether two host patterns can match a common host (`*.a.com` covers `x.a.com` and
/// `*.x.a.com`).
fn overlaps(a: &str, b: &str) -> bool {
    let covers = |wild: &str, other: &str| {
        wild.strip_prefix('*')
            .is_some_and(|suffix| other.ends_with(suffix) && other.len() > suffix.len())
    };
    a == b || covers(a, b) || covers(b, a)
}

/// The Admin API's check that a route's hosts belong to its workspace.
pub(super) struct HostClaims {
    pub system: SharedStore,
    pub cluster: String,
}

impl HostPolicy for HostClaims {
    fn check<'a>(
        &'a self,
        workspace: &'a str,
        hosts: &'a [String],
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            let prefix = format!("{SYSTEM_PREFIX}/workspaces/{}/", self.cluster);
            let range = self
                .system
                .range(&prefix)
                .await
                .map_err(|e| e.to_string())?;
            for kv in range.kvs {
                let Ok(other) = serde_json::from_slice::<Value>(&kv.value) else {
                    continue;
                };
                let owner = text(&other, "name");
                if owner == workspace {
                    continue;
                }
                for claim in hosts_of(&other) {
                    if let Some(h) = hosts
                        .iter()
                        .find(|h| overlaps(&h.to_ascii_lowercase(), &claim))
                    {
                        return Err(format!("host {h} is claimed by workspace {owner}"));
                    }
                }
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::overlaps;

    #[test]
    fn host_patterns_overlap_as_routes_would_match() {
        assert!(overlaps("a.com", "a.com"));
        assert!(overlaps("*.a.com", "x.a.com"));
        assert!(overlaps("x.y.a.com", "*.a.com"));
        assert!(!overlaps("*.a.com", "a.com"));
        assert!(!overlaps("b.com", "a.com"));
    }
}
