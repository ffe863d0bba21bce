//! The plugin registry: what the model needs to know of each plugin to validate and encrypt
//! configurations. The runtime half of a plugin lives in the data plane; this is its table row.

use crate::schemas::defs::{plugin_meta_schema, INJECTED_MARK};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// A semantic check beyond the schema; it sees the configuration with schema defaults applied.
pub type CheckFn = fn(&Value) -> Result<(), String>;

/// Rewrites a schema failure into a clearer message (given the configuration and the message).
pub type SchemaErrorFn = fn(&Value, String) -> String;

/// One plugin's model-side description.
#[derive(Debug, Clone)]
pub struct PluginSpec {
    /// The plugin name, e.g. `key-auth`.
    pub name: &'static str,
    /// APISIX priority (higher runs first), from the §5.3 catalogue.
    pub priority: i32,
    /// `type = 'auth'`: the plugin authenticates consumers; only such plugins may sit in a
    /// credential, and on consumers they are checked against `consumer_schema`.
    pub auth: bool,
    /// The schema of a configuration on routes (via templates), consumer groups, plugin templates
    /// and global rules. `_meta` is injected by the [`Registry`]; do not declare it.
    pub schema: Value,
    /// The schema of the configuration on consumers and credentials (auth plugins).
    pub consumer_schema: Option<Value>,
    /// The schema of `/apisix/admin/plugin_metadata/<name>`.
    pub metadata_schema: Option<Value>,
    /// Dotted paths of `schema` encrypted at rest.
    pub encrypt_fields: &'static [&'static str],
    /// Dotted paths of `consumer_schema` encrypted at rest.
    pub consumer_encrypt_fields: &'static [&'static str],
    /// Dotted paths of `metadata_schema` encrypted at rest.
    pub metadata_encrypt_fields: &'static [&'static str],
    /// Semantic checks run after `schema` passed (not after `consumer_schema`/`metadata_schema`).
    pub check: Option<CheckFn>,
    /// Semantic checks run after `consumer_schema` passed, on consumers and credentials
    /// (APISIX's `check_schema(conf, TYPE_CONSUMER)`, e.g. jwt-auth's key checks).
    pub consumer_check: Option<CheckFn>,
    /// Rewrites a failure of `schema` (APISIX does so for limit-count's count/rules conflict).
    pub schema_error: Option<SchemaErrorFn>,
    /// The consumer-schema field whose value must be unique among the consumers and credentials
    /// of a workspace (key-auth `key`, basic-auth `username`).
    pub consumer_key_field: Option<&'static str>,
}

impl PluginSpec {
    /// A spec with only a name, priority and schema; set the other fields with struct update.
    pub fn new(name: &'static str, priority: i32, schema: Value) -> PluginSpec {
        PluginSpec {
            name,
            priority,
            auth: false,
            schema,
            consumer_schema: None,
            metadata_schema: None,
            encrypt_fields: &[],
            consumer_encrypt_fields: &[],
            metadata_encrypt_fields: &[],
            check: None,
            consumer_check: None,
            schema_error: None,
            consumer_key_field: None,
        }
    }
}

/// Which of a plugin's schemas applies where it is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaType {
    /// Plugin templates, consumer groups, global rules: the (injected) `schema`.
    Route,
    /// Consumers and credentials: `consumer_schema`, falling back to `schema`.
    Consumer,
    /// Plugin metadata: `metadata_schema`.
    Metadata,
}

#[derive(Debug, Clone)]
struct Entry {
    spec: PluginSpec,
    schema: Value,
    consumer_schema: Option<Value>,
    metadata_schema: Option<Value>,
}

/// The registered plugins, sorted by priority (highest first).
#[derive(Debug, Clone, Default)]
pub struct Registry {
    entries: Vec<Entry>,
    index: HashMap<&'static str, usize>,
}

fn with_encrypt_fields(mut schema: Value, fields: &[&str]) -> Value {
    if let Value::Object(o) = &mut schema {
        if !fields.is_empty() && !o.contains_key("encrypt_fields") {
            o.insert("encrypt_fields".to_string(), json!(fields));
        }
    }
    schema
}

/// The schema with `_meta` and the injected mark, as APISIX's `load_plugin` makes it; `None`
/// when the schema declares `_meta` itself (APISIX refuses to load such a plugin).
fn inject_meta(schema: &Value) -> Option<Value> {
    let mut schema = schema.clone();
    let o = schema.as_object_mut()?;
    if o.get("$comment").and_then(Value::as_str) == Some(INJECTED_MARK) {
        return Some(schema);
    }
    let properties = o
        .entry("properties")
        .or_insert_with(|| Value::Object(Map::new()));
    let properties = properties.as_object_mut()?;
    if properties.contains_key("_meta") {
        return None;
    }
    properties.insert("_meta".to_string(), plugin_meta_schema());
    o.insert("$comment".to_string(), json!(INJECTED_MARK));
    Some(schema)
}

impl Registry {
    /// Builds the registry. A spec whose schema declares `_meta`, or whose name was already
    /// registered, is left out (APISIX likewise refuses to load it); [`Registry::len`] tells.
    pub fn new(specs: Vec<PluginSpec>) -> Registry {
        let mut entries: Vec<Entry> = Vec::with_capacity(specs.len());
        for spec in specs {
            if entries.iter().any(|e| e.spec.name == spec.name) {
                continue;
            }
            let Some(schema) = inject_meta(&spec.schema) else {
                continue;
            };
            entries.push(Entry {
                schema: with_encrypt_fields(schema, spec.encrypt_fields),
                consumer_schema: spec
                    .consumer_schema
                    .clone()
                    .map(|s| with_encrypt_fields(s, spec.consumer_encrypt_fields)),
                metadata_schema: spec
                    .metadata_schema
                    .clone()
                    .map(|s| with_encrypt_fields(s, spec.metadata_encrypt_fields)),
                spec,
            });
        }
        entries.sort_by(|a, b| {
            b.spec
                .priority
                .cmp(&a.spec.priority)
                .then(a.spec.name.cmp(b.spec.name))
        });
        let index = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.spec.name, i))
            .collect();
        Registry { entries, index }
    }

    fn entry(&self, name: &str) -> Option<&Entry> {
        self.index.get(name).and_then(|&i| self.entries.get(i))
    }

    /// The spec of a plugin.
    pub fn get(&self, name: &str) -> Option<&PluginSpec> {
        self.entry(name).map(|e| &e.spec)
    }

    /// Whether a plugin is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// Number of registered plugins.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no plugin is registered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Plugin names, highest priority first (`GET /apisix/admin/plugins/list`).
    pub fn names_by_priority(&self) -> Vec<&'static str> {
        self.entries.iter().map(|e| e.spec.name).collect()
    }

    /// Specs, highest priority first.
    pub fn specs(&self) -> impl Iterator<Item = &PluginSpec> + '_ {
        self.entries.iter().map(|e| &e.spec)
    }

    /// The schema served at `/apisix/admin/plugins/<name>`: `_meta` injected, the
    /// `"$comment":"this is a mark for our injected plugin schema"` mark and `encrypt_fields`.
    pub fn injected_schema(&self, name: &str) -> Option<Value> {
        self.entry(name).map(|e| e.schema.clone())
    }

    /// The consumer schema (`?schema_type=consumer`), with `encrypt_fields`.
    pub fn consumer_schema(&self, name: &str) -> Option<&Value> {
        self.entry(name).and_then(|e| e.consumer_schema.as_ref())
    }

    /// The metadata schema, with `encrypt_fields`.
    pub fn metadata_schema(&self, name: &str) -> Option<&Value> {
        self.entry(name).and_then(|e| e.metadata_schema.as_ref())
    }

    /// The schema that validates a configuration of `name` in a place of type `ty`. For
    /// consumers a plugin without `consumer_schema` falls back to its schema; for metadata a
    /// plugin without `metadata_schema` accepts any object (`None` here).
    pub fn schema_for(&self, name: &str, ty: SchemaType) -> Option<&Value> {
        let e = self.entry(name)?;
        match ty {
            SchemaType::Route => Some(&e.schema),
            SchemaType::Consumer => e.consumer_schema.as_ref().or(Some(&e.schema)),
            SchemaType::Metadata => e.metadata_schema.as_ref(),
        }
    }

    /// The encrypted fields of `name` in a place of type `ty` (the consumer type falls back to the
    /// plugin's own fields when it has no consumer schema, as APISIX does).
    pub fn encrypt_fields(&self, name: &str, ty: SchemaType) -> &'static [&'static str] {
        let Some(spec) = self.get(name) else {
            return &[];
        };
        match ty {
            SchemaType::Route => spec.encrypt_fields,
            SchemaType::Consumer if spec.consumer_schema.is_some() => spec.consumer_encrypt_fields,
            SchemaType::Consumer => spec.encrypt_fields,
            SchemaType::Metadata => spec.metadata_encrypt_fields,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &'static str, priority: i32) -> PluginSpec {
        PluginSpec::new(
            name,
            priority,
            json!({"type": "object", "properties": {"a": {"type": "string"}}}),
        )
    }

    #[test]
    fn sorted_by_priority_and_injected() {
        let r = Registry::new(vec![spec("low", 1), spec("high", 3000), spec("mid", 1000)]);
        assert_eq!(r.names_by_priority(), ["high", "mid", "low"]);
        let s = r.injected_schema("mid").expect("registered");
        assert_eq!(s["$comment"], INJECTED_MARK);
        assert!(s["properties"]["_meta"].is_object());
        assert!(r.get("nope").is_none());
    }

    #[test]
    fn meta_in_schema_and_duplicates_are_refused() {
        let bad = PluginSpec::new(
            "bad",
            1,
            json!({"type": "object", "properties": {"_meta": {}}}),
        );
        let r = Registry::new(vec![bad, spec("dup", 1), spec("dup", 2)]);
        assert_eq!(r.len(), 1);
        assert_eq!(r.get("dup").map(|s| s.priority), Some(1));
    }

    #[test]
    fn encrypt_fields_are_served() {
        let s = PluginSpec {
            consumer_schema: Some(
                json!({"type": "object", "properties": {"key": {"type": "string"}}}),
            ),
            consumer_encrypt_fields: &["key"],
            auth: true,
            ..spec("auth", 1)
        };
        let r = Registry::new(vec![s]);
        assert_eq!(
            r.consumer_schema("auth")
                .map(|s| s["encrypt_fields"].clone()),
            Some(json!(["key"]))
        );
        assert_eq!(r.encrypt_fields("auth", SchemaType::Consumer), ["key"]);
    }
}
