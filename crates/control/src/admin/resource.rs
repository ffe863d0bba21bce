//! Gateway objects through the Admin API: GET, PUT, POST, PATCH and DELETE, following APISIX's
//! write pipeline (`apisix/admin/resource.lua`): ids, forbidden properties, full validation on a
//! copy, reference checks, encryption of secrets, timestamps, then one compare-and-swap write.

use std::time::{SystemTime, UNIX_EPOCH};

use http::{Method, StatusCode};
use portico_model::Kind;
use portico_store::{KeyValue, PutOptions, StoreError};
use serde_json::{json, Value};

use super::error::{AdminError, AdminResult};
use super::request::Call;
use super::{merge, AdminApi};

/// How often a write retries when another writer (another control plane) changed the object
/// between read and write. Each retry waits a little longer, with jitter, so that competing
/// writers stop colliding.
const CAS_ATTEMPTS: u32 = 32;

async fn backoff(attempt: u32) {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let jitter = u64::from(nanos % 1000);
    let micros = 200 * u64::from(attempt.min(10)) + jitter;
    tokio::time::sleep(std::time::Duration::from_micros(micros)).await;
}

/// The address of one object.
#[derive(Clone, Debug)]
pub(super) struct Addr {
    pub kind: Kind,
    /// The owning consumer, for credentials.
    pub username: Option<String>,
    pub id: String,
}

impl Addr {
    /// The path below the workspace prefix (also what APISIX shows after `/apisix`).
    fn rel(&self) -> String {
        match &self.username {
            Some(user) => format!("consumers/{user}/credentials/{}", self.id),
            None => format!("{}/{}", self.kind.segment(), self.id),
        }
    }

    /// The key as APISIX clients see it.
    pub fn api_key(&self) -> String {
        format!("/apisix/{}", self.rel())
    }
}

/// What a path names: a collection or one object (with an optional PATCH sub-path).
struct Target {
    kind: Kind,
    username: Option<String>,
    id: Option<String>,
    sub_path: Vec<String>,
}

type Reply = AdminResult<(StatusCode, Option<Value>)>;

impl AdminApi {
    pub(super) fn store_key(&self, addr: &Addr) -> String {
        format!("{}/{}", self.scope.objects_prefix(), addr.rel())
    }

    /// The store prefix holding every object of `kind` (credentials: of one consumer).
    pub(super) fn collection_prefix(&self, kind: Kind, username: Option<&str>) -> String {
        match username {
            Some(user) => format!(
                "{}/consumers/{user}/credentials/",
                self.scope.objects_prefix()
            ),
            None => format!("{}/{}/", self.scope.objects_prefix(), kind.segment()),
        }
    }

    pub(super) async fn resource(&self, call: &Call) -> Reply {
        let target = parse_target(&call.segments)?;
        check_method(target.kind, &call.method)?;
        let id = target.id.clone();
        match (&call.method, id) {
            (&Method::GET, None) => {
                self.list(target.kind, target.username.as_deref(), call)
                    .await
            }
            (&Method::GET, Some(id)) => self.get_one(&addr(&target, id)).await,
            (&Method::PUT, id) => self.put(&target, id, call).await,
            (&Method::POST, id) => self.post(target.kind, id, call).await,
            (&Method::PATCH, Some(id)) => {
                self.patch(&addr(&target, id), &target.sub_path, call).await
            }
            (&Method::PATCH, None) => Err(missing_id(target.kind)),
            (&Method::DELETE, Some(id)) => {
                let force = call.query.get("force").map(String::as_str) == Some("true");
                self.delete(&addr(&target, id), force).await
            }
            (&Method::DELETE, None) => Err(missing_id(target.kind)),
            _ => Err(AdminError::NotFound("not found".into())),
        }
    }

    async fn get_one(&self, addr: &Addr) -> Reply {
        let kv = self
            .store
            .get(&self.store_key(addr))
            .await?
            .ok_or(AdminError::KeyNotFound)?;
        Ok((
            StatusCode::OK,
            Some(self.envelope(addr.kind, &kv, addr.api_key())?),
        ))
    }

    /// `{"key","value","createdIndex","modifiedIndex"}` with secrets as an Admin GET shows them.
    pub(super) fn envelope(
        &self,
        kind: Kind,
        kv: &KeyValue,
        api_key: String,
    ) -> AdminResult<Value> {
        let mut value = decode(kv)?;
        portico_model::decrypt_secrets(kind, &mut value, &self.plugins, &self.keyring, true);
        Ok(json!({
            "key": api_key,
            "value": value,
            "createdIndex": kv.create_revision,
            "modifiedIndex": kv.mod_revision,
        }))
    }

    async fn put(&self, target: &Target, path_id: Option<String>, call: &Call) -> Reply {
        let kind = target.kind;
        let mut conf = call
            .json_body()?
            .ok_or_else(|| AdminError::invalid("missing configurations"))?;
        let ttl = ttl(call)?;
        let id = match kind {
            Kind::Consumer => consumer_username(path_id, &mut conf)?,
            Kind::PluginMetadata => self.metadata_id(path_id, &mut conf)?,
            _ => put_id(kind, path_id, &mut conf)?,
        };
        let addr = Addr {
            kind,
            username: target.username.clone(),
            id,
        };
        if let Some(prop) = portico_model::forbidden_property(&conf) {
            return Err(AdminError::invalid(format!(
                "the property is forbidden:  {prop}"
            )));
        }
        let _guard = self.write_lock.lock().await;
        if let Some(user) = &addr.username {
            let consumer = Addr {
                kind: Kind::Consumer,
                username: None,
                id: user.clone(),
            };
            if self.store.get(&self.store_key(&consumer)).await?.is_none() {
                return Err(AdminError::NotFound("consumer not found".into()));
            }
        }
        self.validate(&addr, &conf).await?;
        let key = self.store_key(&addr);
        for attempt in 0..CAS_ATTEMPTS {
            if attempt > 0 {
                backoff(attempt).await;
            }
            let prev = self.store.get(&key).await?;
            let mut stored = conf.clone();
            if kind != Kind::PluginMetadata {
                let created = prev
                    .as_ref()
                    .and_then(|kv| decode(kv).ok())
                    .and_then(|v| v.get("create_time").cloned());
                set_times(&mut stored, created, None);
            }
            self.encrypt(kind, &mut stored)?;
            let expect = Some(prev.as_ref().map_or(0, |kv| kv.mod_revision));
            match self.write(&key, &stored, expect, ttl).await {
                Ok(()) => {
                    let status = if prev.is_some() {
                        StatusCode::OK
                    } else {
                        StatusCode::CREATED
                    };
                    return Ok((status, Some(self.write_reply(&addr, stored))));
                }
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(conflict())
    }

    async fn post(&self, kind: Kind, path_id: Option<String>, call: &Call) -> Reply {
        let mut conf = call
            .json_body()?
            .ok_or_else(|| AdminError::invalid("missing configurations"))?;
        let ttl = ttl(call)?;
        if path_id.is_some() || conf.get("id").is_some() {
            return Err(AdminError::invalid(format!(
                "wrong {} id, do not need it",
                kind.word()
            )));
        }
        if let Some(prop) = portico_model::forbidden_property(&conf) {
            return Err(AdminError::invalid(format!(
                "the property is forbidden:  {prop}"
            )));
        }
        let _guard = self.write_lock.lock().await;
        // Validate with a placeholder id first, so a refused object costs no id.
        let mut probe = conf.clone();
        set_id(&mut probe, json!("1"));
        let probe_addr = Addr {
            kind,
            username: None,
            id: "1".into(),
        };
        self.validate(&probe_addr, &probe).await?;
        let id = self.generate_id().await?;
        set_id(&mut conf, json!(id));
        set_times(&mut conf, None, None);
        self.encrypt(kind, &mut conf)?;
        let addr = Addr {
            kind,
            username: None,
            id,
        };
        match self
            .write(&self.store_key(&addr), &conf, Some(0), ttl)
            .await
        {
            Ok(()) => Ok((StatusCode::CREATED, Some(self.write_reply(&addr, conf)))),
            Err(StoreError::Conflict) => Err(conflict()),
            Err(e) => Err(e.into()),
        }
    }

    async fn patch(&self, addr: &Addr, sub_path: &[String], call: &Call) -> Reply {
        let patch = call
            .json_body()?
            .ok_or_else(|| AdminError::invalid("missing new configuration"))?;
        if sub_path.is_empty() && !patch.is_object() {
            return Err(AdminError::invalid("invalid configuration"));
        }
        let key = self.store_key(addr);
        let _guard = self.write_lock.lock().await;
        for attempt in 0..CAS_ATTEMPTS {
            if attempt > 0 {
                backoff(attempt).await;
            }
            let kv = self.store.get(&key).await?.ok_or(AdminError::KeyNotFound)?;
            let mut conf = decode(&kv)?;
            portico_model::decrypt_secrets(
                addr.kind,
                &mut conf,
                &self.plugins,
                &self.keyring,
                false,
            );
            let explicit_update = if sub_path.is_empty() {
                let given = patch.get("update_time").cloned();
                merge::merge(&mut conf, patch.clone());
                given
            } else {
                merge::set_sub_path(&mut conf, sub_path, patch.clone())
                    .map_err(AdminError::Invalid)?;
                None
            };
            if addr.kind != Kind::PluginMetadata {
                let created = conf.get("create_time").cloned();
                set_times(&mut conf, created, explicit_update);
            }
            self.validate(addr, &conf).await?;
            self.encrypt(addr.kind, &mut conf)?;
            match self.write(&key, &conf, Some(kv.mod_revision), None).await {
                Ok(()) => return Ok((StatusCode::OK, Some(self.write_reply(addr, conf)))),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(conflict())
    }

    async fn delete(&self, addr: &Addr, force: bool) -> Reply {
        let key = self.store_key(addr);
        let _guard = self.write_lock.lock().await;
        let kv = self.store.get(&key).await?.ok_or(AdminError::KeyNotFound)?;
        if !force {
            self.check_unused(addr).await?;
        }
        match self.store.delete(&key, Some(kv.mod_revision)).await {
            Ok(_) => {}
            Err(StoreError::Conflict) => return Err(conflict()),
            Err(e) => return Err(e.into()),
        }
        if addr.kind == Kind::Consumer {
            self.store
                .delete_prefix(&self.collection_prefix(Kind::Credential, Some(&addr.id)))
                .await?;
        }
        Ok((
            StatusCode::OK,
            Some(json!({"deleted": "1", "key": addr.api_key()})),
        ))
    }

    /// Writes one object, bound to a fresh lease when `ttl` is given.
    async fn write(
        &self,
        key: &str,
        value: &Value,
        expect_mod_revision: Option<i64>,
        ttl: Option<i64>,
    ) -> Result<(), StoreError> {
        let lease = match ttl {
            Some(ttl) => Some(self.store.lease_grant(ttl).await?),
            None => None,
        };
        let opts = PutOptions {
            expect_mod_revision,
            lease,
        };
        self.store
            .put(key, value.to_string().into_bytes(), opts)
            .await
            .map(|_| ())
    }

    /// `{"key","value"}` as PUT/POST/PATCH answer, certificate keys removed.
    fn write_reply(&self, addr: &Addr, mut stored: Value) -> Value {
        if addr.kind == Kind::Ssl {
            portico_model::strip_ssl_keys(&mut stored);
        }
        json!({"key": addr.api_key(), "value": stored})
    }

    fn encrypt(&self, kind: Kind, conf: &mut Value) -> AdminResult<()> {
        portico_model::encrypt_secrets(kind, conf, &self.plugins, &self.keyring)
            .map_err(AdminError::Invalid)
    }

    /// POST ids: the revision of a write to the cluster's id counter, zero-padded to 20 digits.
    async fn generate_id(&self) -> AdminResult<String> {
        let key = format!("{}/gen_id", self.scope.cluster_prefix);
        let put = self
            .store
            .put(&key, b"1".to_vec(), PutOptions::default())
            .await?;
        Ok(format!("{:020}", put.revision))
    }

    /// `plugin_metadata/<name>`: the id is the plugin's name and the plugin must exist.
    fn metadata_id(&self, path_id: Option<String>, conf: &mut Value) -> AdminResult<String> {
        let name = path_id.ok_or_else(|| AdminError::invalid("missing plugin name"))?;
        if self.plugins.get(&name).is_none() {
            return Err(AdminError::invalid("invalid plugin name"));
        }
        set_id(conf, json!(name));
        Ok(name)
    }
}

fn parse_target(segments: &[String]) -> AdminResult<Target> {
    let resource = segments.first().map(String::as_str).unwrap_or_default();
    let kind = match Kind::from_segment(resource) {
        Some(Kind::Credential) | None => {
            return Err(AdminError::NotFound(format!(
                "Unsupported resource type: {resource}"
            )))
        }
        Some(kind) => kind,
    };
    if kind == Kind::Consumer && segments.get(2).map(String::as_str) == Some("credentials") {
        if segments.len() > 4 {
            return Err(AdminError::NotFound("not found".into()));
        }
        return Ok(Target {
            kind: Kind::Credential,
            username: segments.get(1).cloned(),
            id: segments.get(3).cloned(),
            sub_path: Vec::new(),
        });
    }
    Ok(Target {
        kind,
        username: None,
        id: segments.get(1).cloned(),
        sub_path: segments.iter().skip(2).cloned().collect(),
    })
}

/// APISIX's `unsupported_methods` per resource (§1.2).
fn check_method(kind: Kind, method: &Method) -> AdminResult<()> {
    let refused = match kind {
        Kind::Consumer | Kind::Credential | Kind::PluginMetadata => {
            *method == Method::POST || *method == Method::PATCH
        }
        Kind::ConsumerGroup | Kind::PluginConfig | Kind::GlobalRule => *method == Method::POST,
        _ => false,
    };
    if refused {
        return Err(AdminError::MethodNotSupported {
            method: method.to_string(),
            kind: kind.word(),
        });
    }
    Ok(())
}

fn addr(target: &Target, id: String) -> Addr {
    Addr {
        kind: target.kind,
        username: target.username.clone(),
        id,
    }
}

fn missing_id(kind: Kind) -> AdminError {
    AdminError::invalid(format!("missing {} id", kind.word()))
}

fn conflict() -> AdminError {
    AdminError::Unavailable(StoreError::Conflict.to_string())
}

/// PUT ids: the path id, else the body id; both given and different is an error. A path id is
/// stored as a string; a body-only numeric id stays a number (as in APISIX).
fn put_id(kind: Kind, path_id: Option<String>, conf: &mut Value) -> AdminResult<String> {
    let body_id = conf.get("id").map(|v| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    });
    match (path_id, body_id) {
        (Some(path), Some(body)) if path != body => {
            Err(AdminError::invalid(format!("wrong {} id", kind.word())))
        }
        (Some(path), _) => {
            set_id(conf, json!(path));
            Ok(path)
        }
        (None, Some(body)) => Ok(body),
        (None, None) => Err(missing_id(kind)),
    }
}

/// Consumers are keyed by `username` (path or body; both given must agree).
fn consumer_username(path_id: Option<String>, conf: &mut Value) -> AdminResult<String> {
    let body_name = conf
        .get("username")
        .and_then(Value::as_str)
        .map(str::to_string);
    match (path_id, body_name) {
        (Some(path), Some(body)) if path != body => Err(AdminError::invalid("wrong username")),
        (Some(path), None) => {
            if let Value::Object(map) = conf {
                map.insert("username".into(), json!(path));
            }
            Ok(path)
        }
        (_, Some(body)) => Ok(body),
        // No username at all: the schema check reports it.
        (None, None) => Ok(String::new()),
    }
}

fn set_id(conf: &mut Value, id: Value) {
    if let Value::Object(map) = conf {
        map.insert("id".into(), id);
    }
}

/// Sets `create_time` (kept from the previous version when there is one) and `update_time`
/// (now, unless a PATCH body supplied one).
fn set_times(conf: &mut Value, created: Option<Value>, explicit_update: Option<Value>) {
    let now = json!(now());
    if let Value::Object(map) = conf {
        map.insert("create_time".into(), created.unwrap_or_else(|| now.clone()));
        map.insert("update_time".into(), explicit_update.unwrap_or(now));
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// `?ttl=N`: the object lives N seconds (bound to a lease).
fn ttl(call: &Call) -> AdminResult<Option<i64>> {
    match call.query.get("ttl") {
        None => Ok(None),
        Some(raw) => raw
            .parse::<f64>()
            .ok()
            .filter(|t| t.is_finite() && *t >= 1.0)
            .map(|t| Some(t.ceil() as i64))
            .ok_or_else(|| AdminError::invalid("invalid argument ttl: should be a number")),
    }
}

/// Parses a stored value; a value that is not JSON is a store fault, not the caller's.
pub(super) fn decode(kv: &KeyValue) -> AdminResult<Value> {
    serde_json::from_slice(&kv.value).map_err(|e| {
        AdminError::Unavailable(format!("stored value at {} is not valid JSON: {e}", kv.key))
    })
}
