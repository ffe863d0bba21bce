//! Validation of `plugins` maps (`apisix/plugin.lua:check_single_plugin_schema`).

use super::expr::validate_rule;
use crate::plugin::{Registry, SchemaType};
use crate::schema::{cjson_encode, validate_in_place};
use serde_json::Value;

/// Checks every plugin of a `plugins` map, in map order, and returns the first failure:
/// `invalid plugin conf 1 for plugin [x]`, `unknown plugin [x]`,
/// `failed to check the configuration of plugin x err: <msg>`, or
/// `failed to validate the 'vars' expression: <msg>` for `_meta.filter`.
pub(crate) fn check_map(
    plugins: &Value,
    ty: SchemaType,
    registry: &Registry,
) -> Result<(), String> {
    let Some(map) = plugins.as_object() else {
        return Ok(());
    };
    for (name, conf) in map {
        check_one(name, conf, ty, registry)?;
    }
    Ok(())
}

/// Checks one plugin configuration.
pub(crate) fn check_one(
    name: &str,
    conf: &Value,
    ty: SchemaType,
    registry: &Registry,
) -> Result<(), String> {
    if !matches!(conf, Value::Object(_) | Value::Array(_)) {
        return Err(format!(
            "invalid plugin conf {} for plugin [{name}]",
            cjson_encode(conf)
        ));
    }
    let Some(spec) = registry.get(name) else {
        return Err(format!("unknown plugin [{name}]"));
    };
    let mut conf = conf.clone();
    let result = match registry.schema_for(name, ty) {
        Some(schema) => {
            let uses_main_schema = match ty {
                SchemaType::Route => true,
                SchemaType::Consumer => spec.consumer_schema.is_none(),
                SchemaType::Metadata => false,
            };
            match validate_in_place(schema, &mut conf) {
                Err(e) if uses_main_schema => Err(match spec.schema_error {
                    Some(rewrite) => rewrite(&conf, e),
                    None => e,
                }),
                Err(e) => Err(e),
                Ok(()) if uses_main_schema => spec.check.map_or(Ok(()), |check| check(&conf)),
                Ok(()) if ty == SchemaType::Consumer => {
                    spec.consumer_check.map_or(Ok(()), |check| check(&conf))
                }
                Ok(()) => Ok(()),
            }
        }
        None => Ok(()),
    };
    if let Err(e) = result {
        // A plugin switched off with `_meta.disable` never runs: APISIX accepts it anyway.
        if meta(&conf, "disable") != Some(&Value::Bool(true)) {
            return Err(format!(
                "failed to check the configuration of plugin {name} err: {e}"
            ));
        }
    }
    if let Some(filter) =
        meta(&conf, "filter").filter(|f| !matches!(f, Value::Null | Value::Bool(false)))
    {
        validate_rule(filter)
            .map_err(|e| format!("failed to validate the 'vars' expression: {e}"))?;
    }
    if meta(&conf, "pre_function").is_some_and(|f| !matches!(f, Value::Null | Value::Bool(false))) {
        return Err(format!(
            "_meta.pre_function is not supported: Portico does not run Lua code (plugin {name})"
        ));
    }
    Ok(())
}

fn meta<'a>(conf: &'a Value, key: &str) -> Option<&'a Value> {
    conf.get("_meta").and_then(|m| m.get(key))
}

/// Checks plugin metadata (`PUT /apisix/admin/plugin_metadata/<name>`); `conf` is the body
/// without `id`. A plugin without `metadata_schema` accepts any object.
pub(crate) fn check_metadata(
    name: &str,
    conf: &mut Value,
    registry: &Registry,
) -> Result<(), String> {
    if !registry.contains(name) {
        return Err("invalid plugin name".to_string());
    }
    let schema = registry
        .schema_for(name, SchemaType::Metadata)
        .unwrap_or(crate::schemas::plugin_metadata_static());
    validate_in_place(schema, conf).map_err(|e| format!("invalid configuration: {e}"))
}
