//! The keyword checks, in the order api7/jsonschema generates them: type, object keywords,
//! array keywords, string keywords, number keywords, enum, allOf, anyOf, oneOf, if/then/else,
//! not, format, const, contains.

use super::compound::{check_combinators, check_contains, format_matches};
use super::lua::{
    deep_eq, first_duplicate, format_number, format_value_number, is_array_like, is_empty_table,
    is_object_like, num, quote, type_name,
};
use super::pattern;
use serde_json::{Map, Value};

type Res = Result<(), String>;

/// What the array keywords decided: `items: true` ends validation with success right away.
enum Flow {
    Continue,
    Accept,
}

/// Validates `v` against `schema`, injecting `default`s of absent properties into `v` as
/// api7/jsonschema does.
pub(crate) fn validate(schema: &Value, v: &mut Value) -> Res {
    let s = match schema {
        Value::Bool(true) => return Ok(()),
        Value::Bool(false) => return Err("expect false always".to_string()),
        Value::Object(s) => s,
        _ => return Ok(()),
    };
    check_type(s, v)?;
    check_object(s, v)?;
    if let Flow::Accept = check_array(s, v)? {
        return Ok(());
    }
    check_string(s, v)?;
    check_number(s, v)?;
    if let Some(Value::Array(options)) = s.get("enum") {
        if !options.iter().any(|o| deep_eq(o, v)) {
            return Err("matches none of the enum values".to_string());
        }
    }
    check_combinators(s, v)?;
    if let (Some(Value::String(format)), Value::String(text)) = (s.get("format"), &*v) {
        if let Some(false) = format_matches(format, text) {
            return Err(format!("expect valid {format} format but got: {text}"));
        }
    }
    if let Some(c) = s.get("const") {
        if !deep_eq(c, v) {
            return Err("failed to check const value".to_string());
        }
    }
    check_contains(s, v)
}

fn type_matches(t: &str, v: &Value) -> Result<bool, String> {
    Ok(match t {
        "object" => is_object_like(v),
        "array" => is_array_like(v),
        "table" => matches!(v, Value::Array(_) | Value::Object(_)),
        "integer" => num(v).is_some_and(|n| n.is_finite() && n.fract() == 0.0),
        "number" => v.is_number(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        "function" => false,
        other => return Err(format!("invalid JSON type: {other}")),
    })
}

fn check_type(s: &Map<String, Value>, v: &Value) -> Res {
    match s.get("type") {
        None => Ok(()),
        Some(Value::String(t)) => {
            if type_matches(t, v)? {
                Ok(())
            } else {
                Err(format!("wrong type: expected {t}, got {}", type_name(v)))
            }
        }
        Some(Value::Array(ts)) => {
            let mut names = Vec::with_capacity(ts.len());
            let mut ok = false;
            for t in ts {
                let t = t.as_str().unwrap_or_default();
                ok = ok || type_matches(t, v)?;
                names.push(t);
            }
            if ok {
                Ok(())
            } else {
                Err(format!(
                    "wrong type: expected one of {}, got {}",
                    names.join(", "),
                    type_name(v)
                ))
            }
        }
        Some(other) => Err(format!("invalid \"type\" type: got {}", type_name(other))),
    }
}

const OBJECT_KEYWORDS: [&str; 7] = [
    "properties",
    "additionalProperties",
    "patternProperties",
    "minProperties",
    "maxProperties",
    "dependencies",
    "required",
];

fn has(v: &Value, key: &str) -> bool {
    v.as_object().is_some_and(|o| o.contains_key(key))
}

/// Turns an empty array into an empty object so that a default can be stored in it (Lua tables
/// are both).
fn as_object_mut(v: &mut Value) -> Option<&mut Map<String, Value>> {
    if is_empty_table(v) && !v.is_object() {
        *v = Value::Object(Map::new());
    }
    v.as_object_mut()
}

fn check_object(s: &Map<String, Value>, v: &mut Value) -> Res {
    if !OBJECT_KEYWORDS.iter().any(|k| s.contains_key(*k)) {
        return Ok(());
    }
    let empty = Map::new();
    let properties = s
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let dependencies = s
        .get("dependencies")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let required: Vec<&str> = match s.get("required") {
        Some(Value::Array(r)) => r.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if is_object_like(v) {
        for (prop, sub) in properties {
            if let Some(pv) = v.get_mut(prop.as_str()) {
                validate(sub, pv)
                    .map_err(|e| format!("property \"{prop}\" validation failed: {e}"))?;
                if let Some(dep) = dependencies.get(prop) {
                    check_dependency(prop, dep, v)?;
                }
                continue;
            }
            if required.contains(&prop.as_str()) {
                return Err(format!("property \"{prop}\" is required"));
            }
            if let Some(default) = sub.get("default").filter(|d| !d.is_null()) {
                if let Some(obj) = as_object_mut(v) {
                    obj.insert(prop.clone(), default.clone());
                }
            }
        }
        for r in required.iter().filter(|r| !properties.contains_key(**r)) {
            if !has(v, r) {
                return Err(format!("property \"{r}\" is required"));
            }
        }
        for (prop, dep) in dependencies
            .iter()
            .filter(|(p, _)| !properties.contains_key(*p))
        {
            if has(v, prop) {
                check_dependency(prop, dep, v)?;
            }
        }
        check_property_names(s, properties, v)?;
        let count = v.as_object().map_or(0, Map::len);
        if let Some(min) = s.get("minProperties").and_then(num) {
            if (count as f64) < min {
                return Err(format!(
                    "expect object to have at least {} properties",
                    format_number(min)
                ));
            }
        }
        if let Some(max) = s.get("maxProperties").and_then(num) {
            if (count as f64) > max {
                return Err(format!(
                    "expect object to have at most {} properties",
                    format_number(max)
                ));
            }
        }
    }
    if matches!(s.get("required"), Some(Value::Array(r)) if r.is_empty()) && !is_empty_table(v) {
        return Err("the input data should be an empty table".to_string());
    }
    Ok(())
}

fn check_dependency(prop: &str, dep: &Value, v: &mut Value) -> Res {
    match dep {
        Value::Array(list) if !list.is_empty() => {
            for d in list.iter().filter_map(Value::as_str) {
                if !has(v, d) {
                    return Err(format!(
                        "property \"{d}\" is required when \"{prop}\" is set"
                    ));
                }
            }
            Ok(())
        }
        _ => validate(dep, v)
            .map_err(|e| format!("failed to validate dependent schema for \"{prop}\": {e}")),
    }
}

/// `patternProperties` and `additionalProperties`, walked together over the value's keys.
fn check_property_names(
    s: &Map<String, Value>,
    properties: &Map<String, Value>,
    v: &mut Value,
) -> Res {
    let additional = s
        .get("additionalProperties")
        .filter(|a| **a != Value::Bool(true));
    let patterns = s.get("patternProperties").and_then(Value::as_object);
    if additional.is_none() && patterns.is_none() {
        return Ok(());
    }
    let Some(obj) = v.as_object_mut() else {
        return Ok(());
    };
    for (key, value) in obj.iter_mut() {
        let mut matched = false;
        for (patt, sub) in patterns.into_iter().flatten() {
            if pattern::is_match(patt, key) {
                validate(sub, value)
                    .map_err(|e| format!("failed to validate {key} (matching \"{patt}\"): {e}"))?;
                matched = true;
            }
        }
        match additional {
            Some(_) if properties.contains_key(key) || matched => {}
            Some(extra @ Value::Object(_)) => validate(extra, value)
                .map_err(|e| format!("failed to validate additional property {key}: {e}"))?,
            Some(_) => return Err(format!("additional properties forbidden, found {key}")),
            None => {}
        }
    }
    Ok(())
}

fn check_array(s: &Map<String, Value>, v: &mut Value) -> Result<Flow, String> {
    let items = s.get("items");
    if items.is_none()
        && !["minItems", "maxItems", "uniqueItems"]
            .iter()
            .any(|k| s.contains_key(*k))
    {
        return Ok(Flow::Continue);
    }
    match items {
        Some(Value::Bool(true)) => return Ok(Flow::Accept),
        Some(Value::Bool(false)) if is_empty_table(v) => return Ok(Flow::Accept),
        Some(Value::Bool(false)) => return Err("expect false always".to_string()),
        _ => {}
    }
    if !is_array_like(v) {
        return Ok(Flow::Continue);
    }
    let len = v.as_array().map_or(0, Vec::len) as f64;
    if let Some(min) = s.get("minItems").and_then(num) {
        if len < min {
            return Err(format!(
                "expect array to have at least {} items",
                format_number(min)
            ));
        }
    }
    if let Some(max) = s.get("maxItems").and_then(num) {
        if len > max {
            return Err(format!(
                "expect array to have at most {} items",
                format_number(max)
            ));
        }
    }
    if let Some(arr) = v.as_array_mut() {
        match items {
            Some(Value::Array(tuple)) if !tuple.is_empty() => check_tuple(s, tuple, arr)?,
            Some(each) => {
                for (i, item) in arr.iter_mut().enumerate() {
                    validate(each, item)
                        .map_err(|e| format!("failed to validate item {}: {e}", i + 1))?;
                }
            }
            None => {}
        }
        if s.get("uniqueItems")
            .is_some_and(|u| *u != Value::Bool(false) && !u.is_null())
        {
            if let Some((a, b)) = first_duplicate(arr) {
                return Err(format!(
                    "expected unique items but items {a} and {b} are equal"
                ));
            }
        }
    }
    Ok(Flow::Continue)
}

fn check_tuple(s: &Map<String, Value>, tuple: &[Value], arr: &mut [Value]) -> Res {
    for (i, sub) in tuple.iter().enumerate() {
        let Some(item) = arr.get_mut(i) else {
            return Ok(());
        };
        validate(sub, item).map_err(|e| format!("failed to validate item {}: {e}", i + 1))?;
    }
    match s.get("additionalItems") {
        Some(Value::Bool(false)) if arr.len() > tuple.len() => {
            Err("found unexpected extra items in array".to_string())
        }
        Some(extra @ Value::Object(_)) => {
            for (i, item) in arr.iter_mut().enumerate().skip(tuple.len()) {
                validate(extra, item)
                    .map_err(|e| format!("failed to validate additional item {}: {e}", i + 1))?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn check_string(s: &Map<String, Value>, v: &Value) -> Res {
    let Value::String(text) = v else {
        return Ok(());
    };
    let length = || text.chars().count();
    if let Some(min) = s.get("minLength").and_then(num) {
        let c = length();
        if (c as f64) < min {
            return Err(format!(
                "string too short, expected at least {}, got {c}",
                min as i64
            ));
        }
    }
    if let Some(max) = s.get("maxLength").and_then(num) {
        let c = length();
        if (c as f64) > max {
            return Err(format!(
                "string too long, expected at most {}, got {c}",
                max as i64
            ));
        }
    }
    if let Some(Value::String(p)) = s.get("pattern") {
        if !pattern::is_match(p, text) {
            return Err(format!(
                "failed to match pattern {} with {}",
                quote(p),
                quote(text)
            ));
        }
    }
    Ok(())
}

fn check_number(s: &Map<String, Value>, v: &Value) -> Res {
    let Some(n) = v.as_f64() else {
        return Ok(());
    };
    let shown = || format_value_number(v);
    let bound = |key: &str| s.get(key).and_then(num);
    if let Some(min) = bound("minimum").filter(|m| n < *m) {
        return Err(format!(
            "expected {} to be at least {}",
            shown(),
            format_number(min)
        ));
    }
    if let Some(min) = bound("exclusiveMinimum").filter(|m| n <= *m) {
        return Err(format!(
            "expected {} to be greater than {}",
            shown(),
            format_number(min)
        ));
    }
    if let Some(max) = bound("maximum").filter(|m| n > *m) {
        return Err(format!(
            "expected {} to be at most {}",
            shown(),
            format_number(max)
        ));
    }
    if let Some(max) = bound("exclusiveMaximum").filter(|m| n >= *m) {
        return Err(format!(
            "expected {} to be smaller than {}",
            shown(),
            format_number(max)
        ));
    }
    if let Some(m) = bound("multipleOf") {
        let bad = if m.fract() == 0.0 {
            n - (n / m).floor() * m != 0.0
        } else {
            let quotient = n / m;
            let rounded = (quotient + 0.5).floor();
            let tol = 1e-12 * if rounded == 0.0 { 1.0 } else { rounded.abs() };
            (quotient - rounded).abs() > tol
        };
        if bad {
            return Err(format!(
                "expected {} to be a multiple of {}",
                shown(),
                format_number(m)
            ));
        }
    }
    Ok(())
}
