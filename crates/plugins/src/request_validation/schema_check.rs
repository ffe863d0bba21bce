//! Checks a user's JSON Schema when it is written (request-validation `header_schema`,
//! `body_schema`), as APISIX's `core.schema.valid` does by generating the api7/jsonschema
//! validator: what makes the generator fail is refused with the same words (`invalid JSON type:
//! test`, `bad argument #1 to 'ipairs' (table expected, got string)`, `unsupported enum type:
//! userdata`), without the Lua file position APISIX's message starts with.
//!
//! Also refused, because Portico's validator would not do what api7/jsonschema does: `$ref`,
//! `propertyNames: false`, a `pattern`/`patternProperties` regex Portico cannot compile,
//! non-numeric bounds (which api7/jsonschema turns into code that fails per request), and an
//! empty `enum` or `anyOf` (which it turns into code that does not load).

use serde_json::{Map, Value};

use crate::uri_blocker::pcre;

/// Checks one schema; the error is the message to answer with.
pub(crate) fn check(schema: &Value) -> Result<(), String> {
    walk(schema)
}

/// Lua's `type()` of a decoded JSON value.
fn lua_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "userdata",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) | Value::Object(_) => "table",
    }
}

/// Lua truthiness of an optional field (JSON `null` is a truthy lightuserdata).
fn truthy(v: Option<&Value>) -> Option<&Value> {
    v.filter(|v| **v != Value::Bool(false))
}

/// The sub-schemas of a table iterated with `pairs`/`ipairs`.
fn members(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(a) => a.iter().collect(),
        Value::Object(o) => o.values().collect(),
        _ => Vec::new(),
    }
}

/// `pairs(v)`/`ipairs(v)` needs a table.
fn table(v: &Value, iterator: &str) -> Result<(), String> {
    match v {
        Value::Array(_) | Value::Object(_) => Ok(()),
        other => Err(format!(
            "bad argument #1 to '{iterator}' (table expected, got {})",
            lua_type(other)
        )),
    }
}

/// A count formatted with `%d`.
fn count(v: &Value) -> Result<(), String> {
    match v {
        Value::Number(_) => Ok(()),
        other => Err(format!(
            "bad argument #2 to 'format' (number expected, got {})",
            lua_type(other)
        )),
    }
}

/// A bound compared with the value (Portico refuses what api7/jsonschema cannot compare).
fn bound(o: &Map<String, Value>, key: &str) -> Result<(), String> {
    match truthy(o.get(key)) {
        None | Some(Value::Number(_)) => Ok(()),
        Some(_) => Err(format!("{key} must be a number")),
    }
}

fn json_type(t: &str) -> Result<(), String> {
    const TYPES: [&str; 9] = [
        "object", "array", "table", "integer", "string", "boolean", "number", "null", "function",
    ];
    if TYPES.contains(&t) {
        Ok(())
    } else {
        Err(format!("invalid JSON type: {t}"))
    }
}

fn check_type(o: &Map<String, Value>) -> Result<(), String> {
    match o.get("type") {
        None => Ok(()),
        Some(Value::String(t)) => json_type(t),
        Some(Value::Array(types)) => types.iter().try_for_each(|t| match t {
            Value::String(t) => json_type(t),
            Value::Number(n) => Err(format!(
                "invalid JSON type: {}",
                portico_model::schema::format_number(n.as_f64().unwrap_or_default())
            )),
            other => Err(format!(
                "attempt to concatenate local 'jsontype' (a {} value)",
                lua_type(other)
            )),
        }),
        Some(other) => Err(format!("invalid \"type\" type: got {}", lua_type(other))),
    }
}

fn check_pattern(p: &Value) -> Result<(), String> {
    match p {
        Value::String(p) => pcre::compile(p).map(|_| ()),
        other => Err(format!(
            "bad argument #2 to 'format' (string expected, got {})",
            lua_type(other)
        )),
    }
}

fn check_object(o: &Map<String, Value>) -> Result<(), String> {
    let keywords = [
        "properties",
        "patternProperties",
        "minProperties",
        "maxProperties",
        "dependencies",
        "required",
    ];
    if !keywords.iter().any(|k| truthy(o.get(*k)).is_some())
        && !o.contains_key("additionalProperties")
    {
        return Ok(());
    }
    if let Some(required) = truthy(o.get("required")) {
        table(required, "ipairs")?;
    }
    if let Some(properties) = truthy(o.get("properties")) {
        table(properties, "pairs")?;
        members(properties).into_iter().try_for_each(walk)?;
    }
    if let Some(dependencies) = truthy(o.get("dependencies")) {
        table(dependencies, "pairs")?;
        for d in members(dependencies) {
            match d {
                Value::Array(names) if !names.is_empty() => {}
                other => walk(other)?,
            }
        }
    }
    if let Some(additional @ Value::Object(_)) = o.get("additionalProperties") {
        walk(additional)?;
    }
    if let Some(patterns) = truthy(o.get("patternProperties")) {
        table(patterns, "pairs")?;
        if let Value::Object(patterns) = patterns {
            for (pattern, sub) in patterns {
                pcre::compile(pattern)?;
                walk(sub)?;
            }
        }
    }
    for key in ["minProperties", "maxProperties"] {
        if let Some(n) = truthy(o.get(key)) {
            count(n)?;
        }
    }
    Ok(())
}

fn check_array(o: &Map<String, Value>) -> Result<(), String> {
    let items = o.get("items");
    let keywords = ["minItems", "maxItems", "uniqueItems"];
    if items.is_none() && !keywords.iter().any(|k| truthy(o.get(*k)).is_some()) {
        return Ok(());
    }
    for key in ["minItems", "maxItems"] {
        if let Some(n) = truthy(o.get(key)) {
            count(n)?;
        }
    }
    match truthy(items) {
        Some(Value::Array(tuple)) if !tuple.is_empty() => {
            tuple.iter().try_for_each(walk)?;
            if let Some(additional @ Value::Object(_)) = o.get("additionalItems") {
                walk(additional)?;
            }
        }
        Some(Value::Bool(true)) | None => {}
        Some(other) => walk(other)?,
    }
    Ok(())
}

fn check_combinators(o: &Map<String, Value>) -> Result<(), String> {
    if let Some(options) = truthy(o.get("enum")) {
        table(options, "ipairs")?;
        match options {
            Value::Array(values) if !values.is_empty() => {
                if values.iter().any(Value::is_null) {
                    return Err("unsupported enum type: userdata".to_string());
                }
            }
            _ => return Err("enum must be a non-empty array".to_string()),
        }
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        let Some(list) = truthy(o.get(key)) else {
            continue;
        };
        table(list, "ipairs")?;
        match list {
            Value::Array(schemas) if !schemas.is_empty() => schemas.iter().try_for_each(walk)?,
            _ if key == "anyOf" => return Err("anyOf must be a non-empty array".to_string()),
            _ => {}
        }
    }
    if let Some(cond) = truthy(o.get("if")) {
        walk(cond)?;
        for key in ["then", "else"] {
            if let Some(branch) = truthy(o.get(key)) {
                walk(branch)?;
            }
        }
    }
    if let Some(not) = truthy(o.get("not")) {
        walk(not)?;
    }
    match o.get("contains") {
        None | Some(Value::Bool(_)) => {}
        Some(contains) => walk(contains)?,
    }
    if o.get("propertyNames") == Some(&Value::Bool(false)) {
        return Err("propertyNames: false is not supported by Portico".to_string());
    }
    Ok(())
}

fn walk(schema: &Value) -> Result<(), String> {
    let o = match schema {
        Value::Object(o) => o,
        // Indexing a string finds no keyword; a table with only list entries has none either.
        Value::Bool(_) | Value::String(_) | Value::Array(_) => return Ok(()),
        other => {
            return Err(format!(
                "attempt to index local 'schema' (a {} value)",
                lua_type(other)
            ))
        }
    };
    if o.contains_key("$ref") {
        return Err("$ref is not supported by Portico".to_string());
    }
    check_type(o)?;
    check_object(o)?;
    check_array(o)?;
    for key in ["minLength", "maxLength"] {
        if let Some(n) = truthy(o.get(key)) {
            count(n)?;
        }
    }
    if let Some(p) = truthy(o.get("pattern")) {
        check_pattern(p)?;
    }
    for key in [
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
    ] {
        bound(o, key)?;
    }
    check_combinators(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(schema: Value) -> String {
        check(&schema).expect_err("refused")
    }

    #[test]
    fn generator_failures() {
        assert_eq!(err(json!({"type": "test"})), "invalid JSON type: test");
        assert_eq!(
            err(
                json!({"type": "string", "properties": {"test": {"type": "string", "enum": "test-enum"}}})
            ),
            "bad argument #1 to 'ipairs' (table expected, got string)"
        );
        assert_eq!(
            err(
                json!({"type": "object", "properties": {"test": {"type": "string"}}, "required": "test-required"})
            ),
            "bad argument #1 to 'ipairs' (table expected, got string)"
        );
        assert_eq!(err(json!({"type": 1})), "invalid \"type\" type: got number");
        assert_eq!(err(json!({"type": ["string", 5]})), "invalid JSON type: 5");
        assert_eq!(
            err(json!({"properties": "x"})),
            "bad argument #1 to 'pairs' (table expected, got string)"
        );
        assert_eq!(
            err(json!({"properties": {"a": {"minLength": "x"}}})),
            "bad argument #2 to 'format' (number expected, got string)"
        );
        assert_eq!(
            err(json!({"enum": ["a", null]})),
            "unsupported enum type: userdata"
        );
        assert_eq!(
            err(json!({"items": [{"type": "nope"}]})),
            "invalid JSON type: nope"
        );
        assert_eq!(
            err(json!({"anyOf": [{"type": "string"}, {"properties": {"x": 3}}]})),
            "attempt to index local 'schema' (a number value)"
        );
    }

    #[test]
    fn portico_refusals() {
        assert!(err(json!({"$ref": "#/definitions/x"})).contains("$ref"));
        assert!(err(json!({"properties": {"a": {"pattern": "(?=x)"}}})).contains("look-around"));
        assert!(err(json!({"patternProperties": {"(": {}}})).contains("missing )"));
        assert_eq!(
            err(json!({"exclusiveMinimum": true})),
            "exclusiveMinimum must be a number"
        );
        assert_eq!(err(json!({"enum": []})), "enum must be a non-empty array");
        assert_eq!(
            err(json!({"propertyNames": false})),
            "propertyNames: false is not supported by Portico"
        );
    }

    #[test]
    fn accepted_schemas() {
        for schema in [
            json!({"type": "object"}),
            json!({"type": ["object", "array", "table", "function", "null"]}),
            json!({"type": "object", "required": ["a"], "properties": {
                "a": {"type": "string", "minLength": 1, "maxLength": 5, "pattern": "^\\w+$"},
                "b": {"type": "integer", "minimum": 1, "maximum": 254, "default": 3},
                "c": {"type": "array", "minItems": 1, "items": {"type": "string", "enum": ["x", "y"]}, "uniqueItems": true},
                "d": {"oneOf": [{"type": "string"}, {"type": "number", "multipleOf": 0.5}]},
                "e": {"if": {"const": 1}, "then": {"not": {"type": "string"}}, "else": true}
            }, "additionalProperties": false, "dependencies": {"a": ["b"], "c": {"required": ["d"]}}}),
            json!({"required": []}),
        ] {
            assert_eq!(check(&schema), Ok(()), "{schema}");
        }
    }
}
