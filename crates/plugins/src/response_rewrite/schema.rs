//! The registry row's parts of response-rewrite: its schema (APISIX `response-rewrite.lua`) and
//! the semantic checks the Admin API runs, APISIX's first, then Portico's own (see the module
//! documentation of [`super`]).

use portico_expr::Expr;
use serde_json::{json, Map, Value};

use super::ngx_re::{NgxRegex, Replacement};

/// `max_resp_body_size` default: 64 MiB.
pub const MAX_RESP_BODY_SIZE: u64 = 67_108_864;

fn header_value() -> Value {
    json!({"oneOf": [{"type": "string"}, {"type": "number"}]})
}

/// The configuration schema (without the injected `_meta`).
pub fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "max_resp_body_size": {
                "type": "integer",
                "minimum": 1,
                "default": MAX_RESP_BODY_SIZE,
                "description": "maximum response body size in bytes buffered into memory when filters are applied; larger responses are truncated"
            },
            "headers": {
                "description": "new headers for response",
                "anyOf": [
                    {
                        "type": "object",
                        "minProperties": 1,
                        "patternProperties": {"^[^:]+$": header_value()}
                    },
                    {
                        "properties": {
                            "add": {
                                "type": "array",
                                "minItems": 1,
                                "items": {"type": "string", "pattern": "^[^:]+:[^:]*[^/]$"}
                            },
                            "set": {
                                "type": "object",
                                "minProperties": 1,
                                "patternProperties": {"^[^:]+$": header_value()}
                            },
                            "remove": {
                                "type": "array",
                                "minItems": 1,
                                "items": {"type": "string", "pattern": "^[^:]+$"}
                            }
                        }
                    }
                ]
            },
            "body": {"description": "new body for response", "type": "string"},
            "body_base64": {
                "description": "whether new body for response need base64 decode before return",
                "type": "boolean",
                "default": false
            },
            "status_code": {
                "description": "new status code for response",
                "type": "integer",
                "minimum": 200,
                "maximum": 598
            },
            "vars": {"type": "array"},
            "filters": {
                "description": "a group of filters that modify response bodyby replacing one specified string by another",
                "type": "array",
                "minItems": 1,
                "items": {
                    "description": "filter that modifies response body",
                    "type": "object",
                    "required": ["regex", "replace"],
                    "properties": {
                        "regex": {"description": "match pattern on response body", "type": "string", "minLength": 1},
                        "scope": {"description": "regex substitution range", "type": "string", "enum": ["once", "global"], "default": "once"},
                        "replace": {"description": "regex substitution content", "type": "string"},
                        "options": {"description": "regex options", "type": "string", "default": "jo"}
                    }
                }
            }
        },
        "dependencies": {
            "body": {"not": {"required": ["filters"]}},
            "filters": {"not": {"required": ["body"]}}
        }
    })
}

/// The `{add, set, remove}` form (as opposed to the flat `{name: value}` form).
pub(super) fn is_new_headers_conf(headers: &Map<String, Value>) -> bool {
    ["add", "set", "remove"]
        .iter()
        .any(|k| matches!(headers.get(*k), Some(Value::Object(_) | Value::Array(_))))
}

/// `check_set_headers` of the flat form.
fn check_set_headers(headers: &Map<String, Value>) -> Result<(), String> {
    for (field, value) in headers {
        if !matches!(value, Value::String(_) | Value::Number(_)) {
            return Err("invalid type as header value".to_string());
        }
        if field.is_empty() {
            return Err("invalid field length in header".to_string());
        }
    }
    Ok(())
}

/// `ngx.decode_base64`: the standard alphabet, padding optional, everything from the first `=`
/// on ignored, a length of 1 modulo 4 refused; leftover bits are dropped.
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let data = text.split('=').next().unwrap_or_default().as_bytes();
    let value = |c: u8| -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
    };
    if data.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(data.len() / 4 * 3 + 2);
    for group in data.chunks(4) {
        let mut acc = 0u32;
        for &c in group {
            acc = (acc << 6) | value(c)?;
        }
        let bits = group.len() * 6;
        acc <<= 24 - bits;
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..1 + bits / 8]);
    }
    Some(out)
}

/// A header name `http` accepts (an RFC 9110 token).
fn valid_name(name: &str) -> bool {
    http::header::HeaderName::from_bytes(name.as_bytes()).is_ok()
}

/// A header value `http` accepts (no control characters but tab).
fn valid_value(value: &str) -> bool {
    http::header::HeaderValue::from_str(value).is_ok()
}

/// An `add` item split as APISIX does at run time: `^([^:\s]+)\s*:\s*([^:]+)$`.
pub(super) fn split_add(item: &str) -> Option<(&str, &str)> {
    let (name, value) = item.split_once(':')?;
    let name = name.trim_end_matches(|c: char| c.is_ascii_whitespace());
    if name.is_empty() || name.contains(|c: char| c.is_ascii_whitespace()) || value.contains(':') {
        return None;
    }
    let trimmed = value.trim_start_matches(|c: char| c.is_ascii_whitespace());
    // `\s*` gives back a character when the value would be empty.
    let value = if trimmed.is_empty() {
        &value[value.len().saturating_sub(1)..]
    } else {
        trimmed
    };
    (!value.is_empty()).then_some((name, value))
}

/// Portico's checks of the header operations: names and values must be valid HTTP, `add`
/// items must split into a name and a value (APISIX would fail at run time and drop every
/// header operation of the configuration).
fn check_header_ops(headers: &Map<String, Value>) -> Result<(), String> {
    let value_text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let check_pair = |name: &str, value: &str| -> Result<(), String> {
        if !valid_name(name) {
            return Err(format!("invalid header name: {name}"));
        }
        if !valid_value(value) {
            return Err(format!("invalid value of header {name}"));
        }
        Ok(())
    };
    if !is_new_headers_conf(headers) {
        for (name, value) in headers {
            check_pair(name, &value_text(value))?;
        }
        return Ok(());
    }
    for item in headers
        .get("add")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let item = item.as_str().unwrap_or_default();
        let (name, value) = split_add(item).ok_or_else(|| {
            format!("invalid header to add: \"{item}\" (expected \"Name: value\")")
        })?;
        check_pair(name, value)?;
    }
    for (name, value) in headers
        .get("set")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        check_pair(name, &value_text(value))?;
    }
    for name in headers
        .get("remove")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = name.as_str().unwrap_or_default();
        if !valid_name(name) {
            return Err(format!("invalid header name: {name}"));
        }
    }
    Ok(())
}

/// `_M.check_schema` after the schema passed, then Portico's header and replacement checks.
pub(super) fn check(conf: &Value) -> Result<(), String> {
    if let Some(Value::Object(headers)) = conf.get("headers") {
        if !is_new_headers_conf(headers) {
            check_set_headers(headers)?;
        }
    }
    if conf.get("body_base64").and_then(Value::as_bool) == Some(true) {
        let body = conf.get("body").and_then(Value::as_str).unwrap_or_default();
        if body.is_empty() || decode_base64(body).is_none() {
            return Err("invalid base64 content".to_string());
        }
    }
    if let Some(vars) = conf.get("vars") {
        Expr::compile(vars)
            .map_err(|e| format!("failed to validate the 'vars' expression: {e}"))?;
    }
    for filter in conf
        .get("filters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let regex = filter
            .get("regex")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let options = filter
            .get("options")
            .and_then(Value::as_str)
            .unwrap_or("jo");
        NgxRegex::new(regex, options)
            .map_err(|e| format!("regex \"{regex}\" validation failed: {e}"))?;
    }
    if let Some(Value::Object(headers)) = conf.get("headers") {
        check_header_ops(headers)?;
    }
    for filter in conf
        .get("filters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let replace = filter
            .get("replace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        Replacement::new(replace)?;
    }
    Ok(())
}
