//! Which fields of which objects are secret, and applying the [`Keyring`] to them.
//!
//! * plugin `encrypt_fields` in the `plugins` maps of consumer groups, plugin templates and global
//!   rules; consumers and credentials use the consumer schema's fields; plugin metadata the
//!   metadata schema's;
//! * SSL `key` and every `keys[]` entry (encrypted only when PEM, i.e. starting with `---`);
//! * upstream `tls.client_key`, also in a route's inline upstream.
//!
//! Paths are dotted; an array met on the way is walked element by element; a leaf that is an
//! array or object has each of its string members processed (APISIX's `process_encrypt_field`).

use crate::keyring::Keyring;
use crate::plugin::{Registry, SchemaType};
use crate::Kind;
use serde_json::Value;

fn apply(v: &mut Value, path: &str, op: &mut dyn FnMut(&str) -> Option<String>) {
    match path.split_once('.') {
        None => match v.get_mut(path) {
            Some(Value::String(s)) => {
                if let Some(new) = op(s) {
                    *s = new;
                }
            }
            Some(Value::Array(items)) => items.iter_mut().for_each(|item| leaf(item, op)),
            Some(Value::Object(map)) => map.values_mut().for_each(|item| leaf(item, op)),
            _ => {}
        },
        Some((head, rest)) => match v.get_mut(head) {
            Some(Value::Array(items)) => items.iter_mut().for_each(|item| apply(item, rest, op)),
            Some(inner @ Value::Object(_)) => apply(inner, rest, op),
            _ => {}
        },
    }
}

fn leaf(v: &mut Value, op: &mut dyn FnMut(&str) -> Option<String>) {
    if let Value::String(s) = v {
        if let Some(new) = op(s) {
            *s = new;
        }
    }
}

fn schema_type(kind: Kind) -> SchemaType {
    match kind {
        Kind::Consumer | Kind::Credential => SchemaType::Consumer,
        Kind::PluginMetadata => SchemaType::Metadata,
        _ => SchemaType::Route,
    }
}

fn plugin_fields(
    kind: Kind,
    conf: &mut Value,
    plugins: &Registry,
    op: &mut dyn FnMut(&str) -> Option<String>,
) {
    let ty = schema_type(kind);
    if kind == Kind::PluginMetadata {
        let Some(name) = conf.get("id").and_then(Value::as_str).map(str::to_string) else {
            return;
        };
        for path in plugins.encrypt_fields(&name, ty) {
            apply(conf, path, op);
        }
        return;
    }
    if !kind.carries_plugins() {
        return;
    }
    let Some(Value::Object(map)) = conf.get_mut("plugins") else {
        return;
    };
    for (name, plugin_conf) in map.iter_mut() {
        for path in plugins.encrypt_fields(name, ty) {
            apply(plugin_conf, path, op);
        }
    }
}

fn upstream_key(kind: Kind, conf: &mut Value) -> Option<&mut Value> {
    let up = match kind {
        Kind::Upstream => conf,
        Kind::Route => conf.get_mut("upstream")?,
        _ => return None,
    };
    up.get_mut("tls")?.get_mut("client_key")
}

fn is_pem(s: &str) -> bool {
    s.starts_with("---")
}

fn ssl_keys(conf: &mut Value, op: &mut dyn FnMut(&str) -> Option<String>) {
    leaf_opt(conf.get_mut("key"), op);
    if let Some(Value::Array(keys)) = conf.get_mut("keys") {
        keys.iter_mut().for_each(|k| leaf(k, op));
    }
}

fn leaf_opt(v: Option<&mut Value>, op: &mut dyn FnMut(&str) -> Option<String>) {
    if let Some(v) = v {
        leaf(v, op);
    }
}

/// Encrypts the secret fields of a validated object before it is stored (and echoed by
/// PUT/POST/PATCH responses).
pub fn encrypt_secrets(
    kind: Kind,
    conf: &mut Value,
    plugins: &Registry,
    keyring: &Keyring,
) -> Result<(), String> {
    if !keyring.enabled() {
        return Ok(());
    }
    let mut failure = None;
    let mut op = |s: &str| match keyring.encrypt(s) {
        Ok(sealed) => Some(sealed),
        Err(e) => {
            failure.get_or_insert(e);
            None
        }
    };
    plugin_fields(kind, conf, plugins, &mut op);
    let mut pem_only = |s: &str| if is_pem(s) { op(s) } else { None };
    if kind == Kind::Ssl {
        ssl_keys(conf, &mut pem_only);
    }
    leaf_opt(upstream_key(kind, conf), &mut pem_only);
    failure.map_or(Ok(()), Err)
}

/// Decrypts the secret fields of a stored object. For the data plane (`for_admin_get = false`)
/// everything is decrypted. For an Admin GET (`for_admin_get = true`), as APISIX: plugin fields
/// are decrypted, SSL `key`/`keys` are removed and upstream `tls.client_key` stays ciphertext.
/// A value that does not decrypt is left as it is.
pub fn decrypt_secrets(
    kind: Kind,
    conf: &mut Value,
    plugins: &Registry,
    keyring: &Keyring,
    for_admin_get: bool,
) {
    let mut op = |s: &str| keyring.decrypt(s);
    plugin_fields(kind, conf, plugins, &mut op);
    if for_admin_get {
        if kind == Kind::Ssl {
            strip_ssl_keys(conf);
        }
        return;
    }
    let mut sealed_only = |s: &str| if is_pem(s) { None } else { keyring.decrypt(s) };
    if kind == Kind::Ssl {
        ssl_keys(conf, &mut sealed_only);
    }
    leaf_opt(upstream_key(kind, conf), &mut sealed_only);
}

/// Removes `key` and `keys` from an SSL object (GET never returns certificate keys).
pub fn strip_ssl_keys(conf: &mut Value) {
    if let Some(o) = conf.as_object_mut() {
        o.shift_remove("key");
        o.shift_remove("keys");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::PluginSpec;
    use serde_json::json;

    fn registry() -> Registry {
        Registry::new(vec![
            PluginSpec {
                auth: true,
                consumer_schema: Some(json!({"type": "object"})),
                consumer_encrypt_fields: &["key"],
                ..PluginSpec::new("key-auth", 2500, json!({"type": "object"}))
            },
            PluginSpec {
                encrypt_fields: &["redis_password", "nested.list.secret"],
                metadata_encrypt_fields: &["token"],
                metadata_schema: Some(json!({"type": "object"})),
                ..PluginSpec::new("limit-count", 1002, json!({"type": "object"}))
            },
        ])
    }

    fn ring() -> Keyring {
        Keyring::new(vec!["k1".into()]).expect("keyring")
    }

    #[test]
    fn consumer_plugin_fields_round_trip() {
        let (reg, ring) = (registry(), ring());
        let mut c = json!({"username": "jack", "plugins": {"key-auth": {"key": "auth-one"}, "limit-count": {"redis_password": "p"}}});
        encrypt_secrets(Kind::Consumer, &mut c, &reg, &ring).expect("encrypt");
        assert_ne!(c["plugins"]["key-auth"]["key"], "auth-one");
        assert_ne!(c["plugins"]["limit-count"]["redis_password"], "p");
        decrypt_secrets(Kind::Consumer, &mut c, &reg, &ring, true);
        assert_eq!(c["plugins"]["key-auth"]["key"], "auth-one");
        assert_eq!(c["plugins"]["limit-count"]["redis_password"], "p");
    }

    #[test]
    fn dotted_paths_walk_arrays() {
        let (reg, ring) = (registry(), ring());
        let mut t = json!({"id": "1", "plugins": {"limit-count": {"nested": {"list": [{"secret": "a"}, {"secret": ["b", "c"]}]}}}});
        encrypt_secrets(Kind::PluginConfig, &mut t, &reg, &ring).expect("encrypt");
        let list = &t["plugins"]["limit-count"]["nested"]["list"];
        assert_ne!(list[0]["secret"], "a");
        assert_ne!(list[1]["secret"][1], "c");
        decrypt_secrets(Kind::PluginConfig, &mut t, &reg, &ring, false);
        assert_eq!(
            t["plugins"]["limit-count"]["nested"]["list"][1]["secret"],
            json!(["b", "c"])
        );
    }

    #[test]
    fn ssl_keys_are_encrypted_and_never_returned() {
        let (reg, ring) = (registry(), ring());
        let mut s = json!({"cert": "c", "key": "-----BEGIN PRIVATE KEY-----x", "keys": ["-----BEGIN EC PRIVATE KEY-----y"]});
        encrypt_secrets(Kind::Ssl, &mut s, &reg, &ring).expect("encrypt");
        assert!(!s["key"].as_str().unwrap_or_default().starts_with("---"));
        let mut for_dp = s.clone();
        decrypt_secrets(Kind::Ssl, &mut for_dp, &reg, &ring, false);
        assert_eq!(for_dp["keys"][0], "-----BEGIN EC PRIVATE KEY-----y");
        decrypt_secrets(Kind::Ssl, &mut s, &reg, &ring, true);
        assert!(s.get("key").is_none() && s.get("keys").is_none());
    }

    #[test]
    fn upstream_client_key_stays_sealed_for_admin() {
        let (reg, ring) = (registry(), ring());
        let mut r = json!({"uri": "/", "upstream": {"tls": {"client_cert": "c", "client_key": "-----BEGIN KEY"}}});
        encrypt_secrets(Kind::Route, &mut r, &reg, &ring).expect("encrypt");
        let sealed = r["upstream"]["tls"]["client_key"].clone();
        decrypt_secrets(Kind::Route, &mut r, &reg, &ring, true);
        assert_eq!(r["upstream"]["tls"]["client_key"], sealed);
        decrypt_secrets(Kind::Route, &mut r, &reg, &ring, false);
        assert_eq!(r["upstream"]["tls"]["client_key"], "-----BEGIN KEY");
    }

    #[test]
    fn plugin_metadata_fields() {
        let (reg, ring) = (registry(), ring());
        let mut m = json!({"id": "limit-count", "token": "t"});
        encrypt_secrets(Kind::PluginMetadata, &mut m, &reg, &ring).expect("encrypt");
        assert_ne!(m["token"], "t");
        decrypt_secrets(Kind::PluginMetadata, &mut m, &reg, &ring, true);
        assert_eq!(m["token"], "t");
    }
}
