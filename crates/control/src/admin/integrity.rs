//! Checks that need other objects of the workspace: references exist, auth keys are unique,
//! a plugin sits in one global rule only, and nothing in use is deleted.

use portico_model::Kind;
use serde_json::Value;

use super::error::{AdminError, AdminResult};
use super::resource::{decode, Addr};
use super::AdminApi;

impl AdminApi {
    /// Full validation of an object about to be written at `addr`: the object on its own
    /// (schema and semantic checks of the model), then everything it relates to.
    pub(super) async fn validate(&self, addr: &Addr, conf: &Value) -> AdminResult<()> {
        portico_model::check(addr.kind, conf, &self.plugins).map_err(AdminError::Invalid)?;
        for (kind, id) in portico_model::references(addr.kind, conf) {
            self.check_reference(kind, &id).await?;
        }
        if let (Kind::Route, Some(policy)) = (addr.kind, &self.hosts) {
            let mut hosts: Vec<String> = conf
                .get("hosts")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            if let Some(h) = conf.get("host").and_then(Value::as_str) {
                hosts.push(h.to_string());
            }
            if !hosts.is_empty() {
                policy
                    .check(&self.scope.workspace, &hosts)
                    .await
                    .map_err(AdminError::Invalid)?;
            }
        }
        match addr.kind {
            Kind::Consumer | Kind::Credential => self.check_unique_auth_keys(addr, conf).await,
            Kind::GlobalRule => self.check_global_rule_plugins(addr, conf).await,
            _ => Ok(()),
        }
    }

    async fn check_reference(&self, kind: Kind, id: &str) -> AdminResult<()> {
        let target = Addr {
            kind,
            username: None,
            id: id.to_string(),
        };
        let word = kind.word();
        let Some(kv) = self.store.get(&self.store_key(&target)).await? else {
            return Err(AdminError::invalid(format!(
                "failed to fetch {word} info by {word} id [{id}], response code: 404"
            )));
        };
        if kind == Kind::Ssl && decode(&kv)?.get("type").and_then(Value::as_str) != Some("client") {
            return Err(AdminError::invalid(format!(
                "failed to fetch ssl info by ssl id [{id}], wrong ssl type"
            )));
        }
        Ok(())
    }

    /// An auth key (key-auth `key`, basic-auth `username`, ...) may be used by one consumer or
    /// credential of the workspace only.
    async fn check_unique_auth_keys(&self, addr: &Addr, conf: &Value) -> AdminResult<()> {
        let Some(plugins) = conf.get("plugins").and_then(Value::as_object) else {
            return Ok(());
        };
        let wanted: Vec<(&str, &'static str, &Value)> = plugins
            .iter()
            .filter_map(|(name, plugin_conf)| {
                let field = self.plugins.get(name)?.consumer_key_field?;
                Some((name.as_str(), field, plugin_conf.get(field)?))
            })
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let own_key = self.store_key(addr);
        let all = self
            .store
            .range(&self.collection_prefix(Kind::Consumer, None))
            .await?;
        for kv in all.kvs.iter().filter(|kv| kv.key != own_key) {
            let is_credential = kv.key.contains("/credentials/");
            let kind = if is_credential {
                Kind::Credential
            } else {
                Kind::Consumer
            };
            let mut other = decode(kv)?;
            portico_model::decrypt_secrets(kind, &mut other, &self.plugins, &self.keyring, false);
            for (name, field, value) in &wanted {
                if other.pointer(&format!("/plugins/{name}/{field}")) != Some(*value) {
                    continue;
                }
                let holder = if is_credential {
                    let (user, cred) = credential_names(&kv.key);
                    format!("credential: {cred} of consumer: {user}")
                } else {
                    let user = other.get("username").and_then(Value::as_str).unwrap_or("");
                    format!("consumer: {user}")
                };
                return Err(AdminError::invalid(format!(
                    "duplicate key of plugin {name} found with {holder}"
                )));
            }
        }
        Ok(())
    }

    /// A plugin may be configured in one global rule only.
    async fn check_global_rule_plugins(&self, addr: &Addr, conf: &Value) -> AdminResult<()> {
        let Some(plugins) = conf.get("plugins").and_then(Value::as_object) else {
            return Ok(());
        };
        let own_key = self.store_key(addr);
        let rules = self
            .store
            .range(&self.collection_prefix(Kind::GlobalRule, None))
            .await?;
        for kv in rules.kvs.iter().filter(|kv| kv.key != own_key) {
            let other = decode(kv)?;
            let Some(theirs) = other.get("plugins").and_then(Value::as_object) else {
                continue;
            };
            if let Some(name) = plugins.keys().find(|name| theirs.contains_key(*name)) {
                return Err(AdminError::invalid(format!(
                    "plugin '{name}' already exists in global rule with id '{}'",
                    id_string(other.get("id"))
                )));
            }
        }
        Ok(())
    }

    /// Refuses to delete an object that another object still uses (APISIX's delete checkers).
    pub(super) async fn check_unused(&self, addr: &Addr) -> AdminResult<()> {
        let id = addr.id.as_str();
        match addr.kind {
            Kind::Upstream => {
                let routes = self.objects(Kind::Route).await?;
                if let Some(route) = routes.iter().find(|r| field_is(r, "upstream_id", id)) {
                    return Err(in_use("upstream", "route", route));
                }
                for kind in [
                    Kind::Route,
                    Kind::PluginConfig,
                    Kind::Consumer,
                    Kind::ConsumerGroup,
                    Kind::GlobalRule,
                ] {
                    let objects = if kind == Kind::Route {
                        routes.clone()
                    } else {
                        self.objects(kind).await?
                    };
                    let user = objects.iter().find(|o| {
                        portico_model::references(kind, o)
                            .iter()
                            .any(|(k, rid)| *k == Kind::Upstream && rid == id)
                    });
                    if let Some(user) = user {
                        return Err(AdminError::invalid(format!(
                            "can not delete this upstream, plugin in {} [{}] is still using it now",
                            kind.word(),
                            object_id(kind, user)
                        )));
                    }
                }
                Ok(())
            }
            Kind::PluginConfig => {
                let routes = self.objects(Kind::Route).await?;
                match routes.iter().find(|r| field_is(r, "plugin_config_id", id)) {
                    Some(route) => Err(in_use("plugin config", "route", route)),
                    None => Ok(()),
                }
            }
            Kind::ConsumerGroup => {
                let consumers = self.objects(Kind::Consumer).await?;
                match consumers.iter().find(|c| field_is(c, "group_id", id)) {
                    Some(c) => Err(AdminError::invalid(format!(
                        "can not delete this consumer group, consumer [{}] is still using it now",
                        object_id(Kind::Consumer, c)
                    ))),
                    None => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }

    /// Every object of `kind` in the workspace (consumers without their credentials).
    async fn objects(&self, kind: Kind) -> AdminResult<Vec<Value>> {
        let range = self
            .store
            .range(&self.collection_prefix(kind, None))
            .await?;
        range
            .kvs
            .iter()
            .filter(|kv| kind != Kind::Consumer || !kv.key.contains("/credentials/"))
            .map(decode)
            .collect()
    }
}

fn in_use(what: &str, user_kind: &str, user: &Value) -> AdminError {
    AdminError::invalid(format!(
        "can not delete this {what}, {user_kind} [{}] is still using it now",
        id_string(user.get("id"))
    ))
}

fn field_is(object: &Value, field: &str, id: &str) -> bool {
    object.get(field).is_some_and(|v| id_string(Some(v)) == id)
}

fn object_id(kind: Kind, object: &Value) -> String {
    let field = if kind == Kind::Consumer {
        "username"
    } else {
        "id"
    };
    id_string(object.get(field))
}

/// An id as text, whether it was stored as a string or a number.
fn id_string(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

/// `(username, credential id)` from `.../consumers/<u>/credentials/<id>`.
fn credential_names(key: &str) -> (&str, &str) {
    let (head, cred) = key.rsplit_once("/credentials/").unwrap_or((key, ""));
    let user = head.rsplit('/').next().unwrap_or("");
    (user, cred)
}
