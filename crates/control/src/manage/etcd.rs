//! etcd resources: registered etcd clusters that hold clusters' configuration. Passwords and
//! client keys are encrypted at rest and never returned; each answer carries a live health check.

use std::sync::Arc;

use http::StatusCode;
use portico_store::etcd::{EtcdConfig, EtcdStore, EtcdTls};
use portico_store::{SharedStore, Store};
use serde_json::{json, Value};

use super::auth::Principal;
use super::records::{self, body_or_merge, check_name, now, strip};
use super::{schemas, ManageApi, Reply, HEALTH_TIMEOUT, SYSTEM_PREFIX, SYSTEM_RESOURCE};
use crate::admin::request::Call;
use crate::admin::{AdminError, AdminResult};

fn key(id: &str) -> String {
    format!("{SYSTEM_PREFIX}/etcd_resources/{id}")
}

impl ManageApi {
    pub(super) async fn list_etcd(&self, who: &Principal) -> Reply {
        who.check_system()?;
        let mut list = vec![self.system_resource().await];
        for record in self
            .records(&format!("{SYSTEM_PREFIX}/etcd_resources/"))
            .await?
        {
            list.push(self.etcd_answer(record).await?);
        }
        let total = list.len();
        Ok((StatusCode::OK, Some(json!({"list": list, "total": total}))))
    }

    pub(super) async fn get_etcd(&self, who: &Principal, id: &str) -> Reply {
        who.check_system()?;
        if id == SYSTEM_RESOURCE {
            return Ok((StatusCode::OK, Some(self.system_resource().await)));
        }
        let record = self
            .record(&key(id))
            .await?
            .ok_or(AdminError::KeyNotFound)?;
        Ok((StatusCode::OK, Some(self.etcd_answer(record.value).await?)))
    }

    pub(super) async fn put_etcd(
        &self,
        who: &Principal,
        id: &str,
        call: &Call,
        patch: bool,
    ) -> Reply {
        who.check_system()?;
        check_name("etcd resource", id)?;
        if id == SYSTEM_RESOURCE {
            return Err(AdminError::invalid(
                "the system etcd resource is the control plane's own store and cannot be changed here",
            ));
        }
        let stored = self.record(&key(id)).await?;
        let mut stored_plain = stored.as_ref().map(|r| r.value.clone());
        if let Some(v) = stored_plain.as_mut() {
            self.decrypt_etcd(v);
            strip(v, &["id", "create_time", "update_time"]);
        }
        let mut body = body_or_merge(call, stored_plain.as_ref(), patch)?;
        records::validate(&schemas::etcd_body(), &body)?;
        // Write-only secrets that an edit does not repeat are kept (an empty password clears it).
        if let Some(old) = stored_plain.as_ref() {
            if body.get("password").is_none() {
                if let Some(p) = old.get("password") {
                    body["password"] = p.clone();
                }
            }
            if body.get("tls").is_some() && body.pointer("/tls/key").is_none() {
                if let Some(k) = old.pointer("/tls/key") {
                    set_pointer(&mut body, "/tls/key", k.clone());
                }
            }
        }
        if body.get("password").and_then(Value::as_str) == Some("") {
            strip(&mut body, &["password"]);
        }
        etcd_config(&body)?;
        let created = stored
            .as_ref()
            .and_then(|r| r.value.get("create_time").cloned())
            .unwrap_or_else(|| json!(now()));
        let mut value = body;
        value["id"] = json!(id);
        value["create_time"] = created;
        value["update_time"] = json!(now());
        self.encrypt_etcd(&mut value)?;
        let expect = Some(stored.as_ref().map_or(0, |r| r.mod_revision));
        self.write_record(&key(id), &value, expect).await?;
        let status = if stored.is_some() {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        };
        Ok((status, Some(self.etcd_answer(value).await?)))
    }

    pub(super) async fn delete_etcd(&self, who: &Principal, id: &str) -> Reply {
        who.check_system()?;
        if id == SYSTEM_RESOURCE {
            return Err(AdminError::invalid(
                "the system etcd resource cannot be deleted",
            ));
        }
        let record = self
            .record(&key(id))
            .await?
            .ok_or(AdminError::KeyNotFound)?;
        let users = self.clusters_on(id).await?;
        if let Some(cluster) = users.first() {
            return Err(AdminError::invalid(format!(
                "can not delete this etcd resource, cluster [{cluster}] is still using it now"
            )));
        }
        match self
            .system
            .delete(&key(id), Some(record.mod_revision))
            .await
        {
            Ok(_) => {}
            Err(portico_store::StoreError::Conflict) => {
                return Err(AdminError::invalid(
                    "the etcd resource changed meanwhile; retry",
                ))
            }
            Err(e) => return Err(e.into()),
        }
        self.stores.lock().await.remove(id);
        Ok((StatusCode::OK, Some(json!({"deleted": "1", "id": id}))))
    }

    /// Ids of the clusters bound to an etcd resource.
    pub(super) async fn clusters_on(&self, resource: &str) -> AdminResult<Vec<String>> {
        Ok(self
            .records(&format!("{SYSTEM_PREFIX}/clusters/"))
            .await?
            .iter()
            .filter(|c| c.get("etcd_resource").and_then(Value::as_str) == Some(resource))
            .filter_map(|c| c.get("id").and_then(Value::as_str).map(str::to_string))
            .collect())
    }

    /// The store of an etcd resource (the control plane's own store for `system`).
    pub(super) async fn resource_store(&self, id: &str) -> AdminResult<SharedStore> {
        if id == SYSTEM_RESOURCE {
            return Ok(self.system.clone());
        }
        let record = self.record(&key(id)).await?.ok_or_else(|| {
            AdminError::Unavailable(format!("etcd resource {id} is not registered"))
        })?;
        let version = record
            .value
            .get("update_time")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let mut stores = self.stores.lock().await;
        if let Some((v, store)) = stores.get(id) {
            if *v == version {
                return Ok(store.clone());
            }
        }
        let mut plain = record.value;
        self.decrypt_etcd(&mut plain);
        let config = etcd_config(&plain)?;
        let store: SharedStore = Arc::new(EtcdStore::connect(config).await.map_err(|e| {
            AdminError::Unavailable(format!("etcd resource {id} is unreachable: {e}"))
        })?);
        stores.insert(id.to_string(), (version, store.clone()));
        Ok(store)
    }

    async fn etcd_answer(&self, mut value: Value) -> AdminResult<Value> {
        let id = value
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let has_password = value.get("password").is_some();
        let has_key = value.pointer("/tls/key").is_some();
        strip(&mut value, &["password"]);
        if let Some(tls) = value.get_mut("tls").and_then(Value::as_object_mut) {
            tls.remove("key");
            tls.insert("has_key".into(), json!(has_key));
        }
        value["has_password"] = json!(has_password);
        let mut plain = value.clone();
        if has_password || has_key {
            if let Some(r) = self.record(&key(&id)).await? {
                plain = r.value;
                self.decrypt_etcd(&mut plain);
            }
        }
        value["health"] = match etcd_config(&plain) {
            Ok(config) => health_of(config).await,
            Err(e) => json!({"reachable": false, "error": e.to_string()}),
        };
        value["clusters"] = json!(self.clusters_on(&id).await?);
        Ok(value)
    }

    async fn system_resource(&self) -> Value {
        let health = match tokio::time::timeout(HEALTH_TIMEOUT, self.system.revision()).await {
            Ok(Ok(rev)) => json!({"reachable": true, "revision": rev}),
            Ok(Err(e)) => json!({"reachable": false, "error": e.to_string()}),
            Err(_) => json!({"reachable": false, "error": "timed out"}),
        };
        json!({
            "id": SYSTEM_RESOURCE,
            "name": "control plane store",
            "endpoints": self.info.etcd_endpoints,
            "embedded": self.info.etcd_endpoints.is_empty(),
            "health": health,
            "clusters": self.clusters_on(SYSTEM_RESOURCE).await.unwrap_or_default(),
        })
    }

    fn encrypt_etcd(&self, value: &mut Value) -> AdminResult<()> {
        for path in ["/password", "/tls/key"] {
            if let Some(Value::String(s)) = value.pointer_mut(path) {
                *s = self.keyring.encrypt(s).map_err(AdminError::Invalid)?;
            }
        }
        Ok(())
    }

    fn decrypt_etcd(&self, value: &mut Value) {
        for path in ["/password", "/tls/key"] {
            if let Some(Value::String(s)) = value.pointer_mut(path) {
                if let Some(plain) = self.keyring.decrypt(s) {
                    *s = plain;
                }
            }
        }
    }
}

fn set_pointer(value: &mut Value, path: &str, v: Value) {
    let mut node = value;
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            if let Value::Object(map) = node {
                map.insert((*part).to_string(), v);
            }
            return;
        }
        let Value::Object(map) = node else { return };
        node = map.entry((*part).to_string()).or_insert_with(|| json!({}));
    }
}

/// The client configuration of a (decrypted) etcd resource record.
fn etcd_config(value: &Value) -> AdminResult<EtcdConfig> {
    let endpoints: Vec<String> = value
        .get("endpoints")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let mut config = EtcdConfig::new(endpoints);
    config.user = value
        .get("user")
        .and_then(Value::as_str)
        .map(str::to_string);
    config.password = value
        .get("password")
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(tls) = value.get("tls") {
        let text = |f: &str| tls.get(f).and_then(Value::as_str).map(str::to_string);
        config.tls = Some(EtcdTls {
            ca_pem: text("ca"),
            cert_pem: text("cert"),
            key_pem: text("key"),
        });
    }
    config.timeout = HEALTH_TIMEOUT;
    Ok(config)
}

/// Reachability, version and revision of an etcd resource, or the error.
async fn health_of(config: EtcdConfig) -> Value {
    let probe = async {
        let store = EtcdStore::connect(config).await?;
        let version = store.server_version().await.unwrap_or_default();
        let revision = store.revision().await?;
        Ok::<_, portico_store::StoreError>((version, revision))
    };
    match tokio::time::timeout(HEALTH_TIMEOUT * 2, probe).await {
        Ok(Ok((version, revision))) => {
            json!({"reachable": true, "version": version, "revision": revision})
        }
        Ok(Err(e)) => json!({"reachable": false, "error": e.to_string()}),
        Err(_) => json!({"reachable": false, "error": "timed out"}),
    }
}
