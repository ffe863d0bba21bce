//! The JSON Schemas of Portico's resources, built once, as APISIX serves them at
//! `/apisix/admin/schema/<name>`.

pub mod defs;
mod resources;
mod upstream;

pub use resources::{
    consumer, consumer_group, credential, global_rule, plugin_config, plugin_metadata,
    plugins_list, route, ssl,
};
pub use upstream::{
    discovery_nodes, health_checker, health_checker_active, health_checker_passive, upstream,
    upstream_hash_header_schema, upstream_hash_vars_combinations_schema, upstream_hash_vars_schema,
};

use serde_json::Value;
use std::sync::OnceLock;

type Table = Vec<(&'static str, Value)>;

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        vec![
            ("route", route()),
            ("upstream", upstream()),
            ("consumer", consumer()),
            ("credential", credential()),
            ("consumer_group", consumer_group()),
            ("plugin_config", plugin_config()),
            ("global_rule", global_rule()),
            ("ssl", ssl()),
            ("plugins", plugins_list()),
            ("id_schema", defs::id_schema()),
            ("health_checker", health_checker()),
            ("health_checker_active", health_checker_active()),
            ("health_checker_passive", health_checker_passive()),
            ("discovery_nodes", discovery_nodes()),
            ("host_def", defs::host_def()),
            ("ip_def", defs::ip_def()),
            ("uri_def", defs::uri_def()),
            ("label_value_def", defs::label_value_def()),
            ("method_schema", defs::method_schema()),
            (
                "anonymous_consumer_schema",
                defs::anonymous_consumer_schema(),
            ),
            ("plugin_injected_schema", defs::plugin_injected_schema()),
            ("upstream_hash_vars_schema", upstream_hash_vars_schema()),
            ("upstream_hash_header_schema", upstream_hash_header_schema()),
            (
                "upstream_hash_vars_combinations_schema",
                upstream_hash_vars_combinations_schema(),
            ),
        ]
    })
}

/// The core schema served at `/apisix/admin/schema/<name>`; `None` answers
/// `400 {"error_msg":"not found schema: <name>"}`. Services, stream routes, protos and secrets
/// are not part of Portico and have none.
pub fn core_schema(name: &str) -> Option<&'static Value> {
    table().iter().find(|(n, _)| *n == name).map(|(_, v)| v)
}

/// The names [`core_schema`] knows.
pub fn core_schema_names() -> impl Iterator<Item = &'static str> {
    table().iter().map(|(n, _)| *n)
}

/// A core schema that is known to exist.
pub(crate) fn core_upstream() -> &'static Value {
    core_schema("upstream").unwrap_or_else(plugin_metadata_static)
}

/// The plugin-metadata resource schema (any object); kept apart because APISIX has no core
/// schema named `plugin_metadata`.
pub(crate) fn plugin_metadata_static() -> &'static Value {
    static S: OnceLock<Value> = OnceLock::new();
    S.get_or_init(plugin_metadata)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patterns<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(o) => {
                for (k, child) in o {
                    if k == "pattern" {
                        if let Value::String(p) = child {
                            out.push(p);
                        }
                    }
                    if k == "patternProperties" {
                        if let Value::Object(pp) = child {
                            out.extend(pp.keys().map(String::as_str));
                        }
                    }
                    patterns(child, out);
                }
            }
            Value::Array(a) => a.iter().for_each(|c| patterns(c, out)),
            _ => {}
        }
    }

    #[test]
    fn every_pattern_compiles() {
        let mut all = Vec::new();
        for name in core_schema_names() {
            if let Some(s) = core_schema(name) {
                patterns(s, &mut all);
            }
        }
        assert!(all.len() > 10);
        for p in all {
            assert!(
                crate::schema::pattern::compile(p).is_some(),
                "pattern {p} does not compile"
            );
        }
    }

    #[test]
    fn unknown_and_absent_schemas() {
        assert!(core_schema("route").is_some());
        assert!(core_schema("service").is_none());
        assert!(core_schema("stream_route").is_none());
        assert!(core_schema("plugin_metadata").is_none());
    }
}
