//! Consumer and credential checks (`apisix/admin/consumers.lua`, `credentials.lua`) and the
//! unique auth keys behind APISIX's duplicate-key check (`apisix/consumer.lua`).

use super::plugins::check_map;
use crate::plugin::{Registry, SchemaType};
use crate::schema::validate_in_place;
use crate::Kind;
use serde_json::Value;

fn schema(kind: Kind, conf: &mut Value) -> Result<(), String> {
    validate_in_place(kind.schema(), conf).map_err(|e| format!("invalid configuration: {e}"))
}

fn plugins(conf: &Value, registry: &Registry) -> Result<(), String> {
    match conf.get("plugins") {
        Some(p) => check_map(p, SchemaType::Consumer, registry)
            .map_err(|e| format!("invalid plugins configuration: {e}")),
        None => Ok(()),
    }
}

/// Validates a consumer in place (`wrong username`, duplicate keys and the group reference are
/// the caller's checks).
pub(crate) fn check_consumer(conf: &mut Value, registry: &Registry) -> Result<(), String> {
    schema(Kind::Consumer, conf)?;
    plugins(conf, registry)
}

/// Validates a credential in place: at most one plugin, and it must be an auth plugin.
pub(crate) fn check_credential(conf: &mut Value, registry: &Registry) -> Result<(), String> {
    schema(Kind::Credential, conf)?;
    plugins(conf, registry)?;
    if let Some(map) = conf.get("plugins").and_then(Value::as_object) {
        for name in map.keys() {
            match registry.get(name) {
                None => return Err(format!("unknown plugin {name}")),
                Some(spec) if !spec.auth => {
                    return Err("only supports auth type plugins in consumer credential".to_string())
                }
                Some(_) => {}
            }
        }
    }
    Ok(())
}

/// A value that identifies a consumer to an auth plugin (key-auth `key`, basic-auth `username`)
/// and so must be unique among the consumers and credentials of a workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthKey {
    /// The plugin, e.g. `key-auth`.
    pub plugin: &'static str,
    /// The field, e.g. `key`.
    pub field: &'static str,
    /// The (plaintext) value.
    pub value: String,
}

/// The unique auth keys of a consumer or credential's `plugins` (plaintext: call before
/// [`crate::encrypt_secrets`] or after [`crate::decrypt_secrets`]).
pub fn auth_keys(conf: &Value, registry: &Registry) -> Vec<AuthKey> {
    let Some(map) = conf.get("plugins").and_then(Value::as_object) else {
        return Vec::new();
    };
    map.iter()
        .filter_map(|(name, plugin_conf)| {
            let spec = registry.get(name)?;
            let field = spec.consumer_key_field?;
            let value = plugin_conf.get(field)?.as_str()?;
            Some(AuthKey {
                plugin: spec.name,
                field,
                value: value.to_string(),
            })
        })
        .collect()
}

/// Who already holds an auth key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOwner<'a> {
    /// A consumer, by username.
    Consumer(&'a str),
    /// A credential of a consumer.
    Credential {
        /// The credential id.
        id: &'a str,
        /// The consumer's username.
        consumer: &'a str,
    },
}

/// APISIX's duplicate-key message, e.g.
/// `duplicate key of plugin key-auth found with credential: cred-alex-a of consumer: alex`.
pub fn duplicate_key_message(key: &AuthKey, owner: KeyOwner<'_>) -> String {
    let owner = match owner {
        KeyOwner::Consumer(name) => format!("consumer: {name}"),
        KeyOwner::Credential { id, consumer } => {
            format!("credential: {id} of consumer: {consumer}")
        }
    };
    format!(
        "duplicate {} of plugin {} found with {owner}",
        key.field, key.plugin
    )
}
