//! Full non-reference validation of one object as the Admin API receives it, with APISIX's
//! exact `error_msg` strings (reference §1.7). Existence of referenced objects, duplicate auth
//! keys and global-rule plugin conflicts need the store: [`references`], [`auth_keys`] and
//! [`global_rule_conflict`] give the caller what to look up and the messages to answer with.

mod consumer;
mod expr;
mod pem;
mod plugins;
mod route;
mod ssl;
mod upstream;

pub use consumer::{auth_keys, duplicate_key_message, AuthKey, KeyOwner};
pub use route::ROUTE_PLUGINS_MESSAGE;
pub use upstream::parse_addr;

use crate::plugin::{Registry, SchemaType};
use crate::Kind;
use serde_json::Value;

/// Lua truthiness of an optional field: present and not `false` (JSON `null` is truthy).
pub(crate) fn truthy(v: Option<&Value>) -> Option<&Value> {
    v.filter(|v| !matches!(v, Value::Bool(false)))
}

/// Validates `conf` (with its id already set, for kinds that have one) as the Admin API does
/// before writing, and returns APISIX's `error_msg` on failure. `conf` itself is not changed:
/// the checks run on a copy into which the schema defaults are injected (APISIX stores what the
/// client sent).
///
/// * Plugin metadata: `conf["id"]` names the plugin (`invalid plugin name` if unknown, `missing
///   plugin name` if absent); the rest is checked against its `metadata_schema`.
/// * Secrets must be plaintext (decrypt a stored object before merging a PATCH onto it).
pub fn check(kind: Kind, conf: &Value, plugins: &Registry) -> Result<(), String> {
    let mut copy = conf.clone();
    match kind {
        Kind::Route => route::check(&mut copy),
        Kind::Upstream => upstream::check(&mut copy),
        Kind::Ssl => ssl::check(&mut copy),
        Kind::Consumer => consumer::check_consumer(&mut copy, plugins),
        Kind::Credential => consumer::check_credential(&mut copy, plugins),
        Kind::ConsumerGroup | Kind::PluginConfig | Kind::GlobalRule => {
            crate::schema::validate_in_place(kind.schema(), &mut copy)
                .map_err(|e| format!("invalid configuration: {e}"))?;
            plugins::check_map(
                copy.get("plugins").unwrap_or(&Value::Null),
                SchemaType::Route,
                plugins,
            )
        }
        Kind::PluginMetadata => {
            let name = match copy.as_object_mut().and_then(|o| o.shift_remove("id")) {
                Some(Value::String(name)) => name,
                Some(_) => return Err("invalid plugin name".to_string()),
                None => return Err("missing plugin name".to_string()),
            };
            plugins::check_metadata(&name, &mut copy, plugins)
        }
    }
}

/// The §1.3 step-3 check of PUT/POST bodies: `create_time`/`update_time` at the top level, in
/// `upstream`, or as a plugin name under `plugins`. Returns the offending path (`create_time`,
/// `upstream.update_time`, `plugins.create_time`); APISIX's message is
/// `the property is forbidden:  <path>` (two spaces), see [`forbidden_property_message`].
pub fn forbidden_property(conf: &Value) -> Option<String> {
    const FORBIDDEN: [&str; 2] = ["create_time", "update_time"];
    let found = |obj: Option<&Value>| {
        let obj = obj?.as_object()?;
        FORBIDDEN
            .into_iter()
            .find(|f| truthy(obj.get(*f)).is_some())
    };
    if let Some(f) = found(Some(conf)) {
        return Some(f.to_string());
    }
    if let Some(f) = found(conf.get("upstream")) {
        return Some(format!("upstream.{f}"));
    }
    found(conf.get("plugins")).map(|f| format!("plugins.{f}"))
}

/// APISIX's 400 message for a forbidden property path, with its two spaces.
pub fn forbidden_property_message(path: &str) -> String {
    format!("the property is forbidden:  {path}")
}

fn id_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(_) => Some(crate::schema::format_number(v.as_f64()?)),
        _ => None,
    }
}

fn push(out: &mut Vec<(Kind, String)>, kind: Kind, v: Option<&Value>) {
    if let Some(id) = truthy(v).and_then(id_string) {
        out.push((kind, id));
    }
}

fn upstream_refs(up: Option<&Value>, out: &mut Vec<(Kind, String)>) {
    push(
        out,
        Kind::Ssl,
        up.and_then(|u| u.get("tls"))
            .and_then(|t| t.get("client_cert_id")),
    );
}

/// The ids `conf` points at, in the order APISIX checks them, as (kind, id) with numeric ids
/// turned into strings like Lua's `tostring`: an upstream's `tls.client_cert_id` (an SSL object
/// that must be of `type: client`, see [`wrong_ssl_type_error`]), a route's `upstream_id` and
/// `plugin_config_id`, a consumer's `group_id`, then the traffic-split
/// `rules[].weighted_upstreams[].upstream_id` of a `plugins` map (see [`plugin_references`]).
/// Format a missing target with [`reference_error`].
pub fn references(kind: Kind, conf: &Value) -> Vec<(Kind, String)> {
    let mut out = Vec::new();
    match kind {
        Kind::Upstream => upstream_refs(Some(conf), &mut out),
        Kind::Route => {
            upstream_refs(conf.get("upstream"), &mut out);
            push(&mut out, Kind::Upstream, conf.get("upstream_id"));
            push(&mut out, Kind::PluginConfig, conf.get("plugin_config_id"));
        }
        Kind::Consumer => push(&mut out, Kind::ConsumerGroup, conf.get("group_id")),
        _ => {}
    }
    if kind.carries_plugins() {
        out.extend(plugin_references(conf));
    }
    out
}

/// The references held inside plugin configurations only (traffic-split upstreams), which
/// APISIX's delete protection reports as `plugin in route [1] is still using it now`.
pub fn plugin_references(conf: &Value) -> Vec<(Kind, String)> {
    let mut out = Vec::new();
    let split = conf.get("plugins").and_then(|p| p.get("traffic-split"));
    let rules = split.and_then(|t| t.get("rules")).and_then(Value::as_array);
    for rule in rules.into_iter().flatten() {
        let ups = rule.get("weighted_upstreams").and_then(Value::as_array);
        for up in ups.into_iter().flatten() {
            push(&mut out, Kind::Upstream, up.get("upstream_id"));
            upstream_refs(up.get("upstream"), &mut out);
        }
    }
    out
}

/// The 400 message for a reference whose target is missing, e.g.
/// `failed to fetch upstream info by upstream id [99], response code: 404`.
pub fn reference_error(kind: Kind, id: &str) -> String {
    let word = kind.word();
    format!("failed to fetch {word} info by {word} id [{id}], response code: 404")
}

/// The 400 message for an upstream `tls.client_cert_id` that names a server certificate.
pub fn wrong_ssl_type_error(id: &str) -> String {
    format!("failed to fetch ssl info by ssl id [{id}], wrong ssl type")
}

/// Whether `id` is valid as the string form of `id_schema` (`^[a-zA-Z0-9-_.]+$`, 1–64).
pub fn validate_id(id: &str) -> bool {
    (1..=64).contains(&id.chars().count())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// APISIX's rule that two global rules may not configure the same plugin: given the rule being
/// written (`id`, `conf`) and the stored ones, the 400 message of the first conflict, e.g.
/// `plugin 'limit-count' already exists in global rule with id '1'`.
pub fn global_rule_conflict<'a>(
    id: &str,
    conf: &Value,
    others: impl IntoIterator<Item = (&'a str, &'a Value)>,
) -> Option<String> {
    let mine = conf.get("plugins")?.as_object()?;
    for (other_id, other) in others {
        if other_id == id {
            continue;
        }
        let Some(theirs) = other.get("plugins").and_then(Value::as_object) else {
            continue;
        };
        if let Some(name) = mine
            .keys()
            .find(|name| truthy(theirs.get(name.as_str())).is_some())
        {
            return Some(format!(
                "plugin '{name}' already exists in global rule with id '{other_id}'"
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests;
