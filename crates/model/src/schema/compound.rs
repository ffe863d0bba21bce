//! Compound keywords (allOf, anyOf, oneOf, if/then/else, not), string formats and `contains`.

use super::lua::{cjson_encode, is_empty_table};
use super::pattern;
use super::validator::validate;
use serde_json::{Map, Value};

type Res = Result<(), String>;

pub(super) fn check_combinators(s: &Map<String, Value>, v: &mut Value) -> Res {
    if let Some(Value::Array(all)) = s.get("allOf") {
        for (i, sub) in all.iter().enumerate() {
            validate(sub, v).map_err(|e| format!("allOf {} failed: {e}", i + 1))?;
        }
    }
    if let Some(Value::Array(any)) = s.get("anyOf") {
        if !any.iter().any(|sub| validate(sub, v).is_ok()) {
            let required: Vec<String> = any
                .iter()
                .filter_map(|sub| sub.get("required"))
                .map(cjson_encode)
                .collect();
            let mut msg = "object matches none of the required".to_string();
            if !required.is_empty() {
                msg.push_str(": ");
                msg.push_str(&required.join(" or "));
            }
            return Err(msg);
        }
    }
    if let Some(Value::Array(one)) = s.get("oneOf") {
        let mut matched = None;
        for (i, sub) in one.iter().enumerate() {
            if validate(sub, v).is_ok() {
                if let Some(first) = matched {
                    return Err(format!(
                        "value should match only one schema, but matches both schemas {first} and {}",
                        i + 1
                    ));
                }
                matched = Some(i + 1);
            }
        }
        if matched.is_none() {
            return Err("value should match only one schema, but matches none".to_string());
        }
    }
    if let Some(cond) = s.get("if") {
        let matched = validate(cond, v).is_ok();
        if let Some(then) = s.get("then").filter(|_| matched) {
            if validate(then, v).is_err() {
                return Err("then clause did not match".to_string());
            }
        }
        if let Some(otherwise) = s.get("else").filter(|_| !matched) {
            if validate(otherwise, v).is_err() {
                return Err("else clause did not match".to_string());
            }
        }
    }
    if let Some(not) = s.get("not") {
        if validate(not, v).is_ok() {
            return Err("value wasn't supposed to match schema".to_string());
        }
    }
    Ok(())
}

/// `Some(valid)` for the formats api7/jsonschema knows, `None` for the others (not checked).
pub(super) fn format_matches(format: &str, text: &str) -> Option<bool> {
    let re = match format {
        "ipv4" => return Some(text.parse::<std::net::Ipv4Addr>().is_ok()),
        "ipv6" => return Some(text.parse::<std::net::Ipv6Addr>().is_ok()),
        "email" => r"^([A-Za-z0-9_\-\.])+\@([A-Za-z0-9_\-\.])+\.([A-Za-z]{2,4})$",
        "hostname" => r"^[a-zA-Z0-9\-\.]+$",
        "uuid" => r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
        "date" => r"^\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])$",
        "date-time" => {
            r"^\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])[Tt](?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d+)?(?:[Zz]|[+-](?:[01]\d|2[0-3]):[0-5]\d)$"
        }
        "uri" => r"^[a-zA-Z][a-zA-Z0-9+\-.]*:[^\s]*$",
        _ => return None,
    };
    Some(pattern::is_match(re, text))
}

pub(super) fn check_contains(s: &Map<String, Value>, v: &Value) -> Res {
    match s.get("contains") {
        None => Ok(()),
        Some(Value::Bool(true)) if matches!(v, Value::Array(a) if !a.is_empty()) => Ok(()),
        Some(Value::Bool(true)) => Err("check contains: expect array table".to_string()),
        Some(Value::Bool(false)) if !matches!(v, Value::Array(_) | Value::Object(_)) => Ok(()),
        Some(Value::Bool(false)) => Err("check contains: expect table".to_string()),
        Some(sub) => {
            if is_empty_table(v) {
                return Err("check contains: empty array is invalid".to_string());
            }
            let Some(items) = v.as_array() else {
                return Ok(());
            };
            let failing = items
                .iter()
                .filter(|item| validate(sub, &mut (*item).clone()).is_err())
                .count();
            if failing == items.len() {
                return Err("failed to check contains".to_string());
            }
            Ok(())
        }
    }
}
