//! The registry row's parts of proxy-rewrite: its schema (APISIX `proxy-rewrite.lua`) and the
//! semantic checks the Admin API runs.

use serde_json::{json, Value};

/// The methods proxy-rewrite may set (nginx's method constants).
pub const METHODS: [&str; 14] = [
    "GET", "POST", "PUT", "HEAD", "DELETE", "OPTIONS", "MKCOL", "COPY", "MOVE", "PROPFIND", "LOCK",
    "UNLOCK", "PATCH", "TRACE",
];

fn header_value() -> Value {
    json!({"oneOf": [{"type": "string"}, {"type": "number"}]})
}

fn header_values() -> Value {
    json!({"oneOf": [
        {"type": "string"},
        {"type": "number"},
        {"type": "array", "minItems": 1, "items": header_value()}
    ]})
}

/// The configuration schema (without the injected `_meta`).
pub fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "uri": {
                "description": "new uri for upstream",
                "type": "string",
                "minLength": 1,
                "maxLength": 4096,
                "pattern": "^\\/.*"
            },
            "method": {"description": "proxy route method", "type": "string", "enum": METHODS},
            "regex_uri": {
                "description": "new uri that substitute from client uri for upstream, lower priority than uri property",
                "type": "array",
                "minItems": 2,
                "items": {"description": "regex uri", "type": "string"}
            },
            "host": {
                "description": "new host for upstream",
                "type": "string",
                "pattern": "^[0-9a-zA-Z-.]+(:\\d{1,5})?$"
            },
            "headers": {
                "description": "new headers for request",
                "oneOf": [
                    {
                        "type": "object",
                        "minProperties": 1,
                        "additionalProperties": false,
                        "properties": {
                            "add": {"type": "object", "minProperties": 1, "patternProperties": {"^[^:]+$": header_values()}},
                            "set": {"type": "object", "minProperties": 1, "patternProperties": {"^[^:]+$": header_values()}},
                            "remove": {
                                "type": "array",
                                "minItems": 1,
                                "items": {"type": "string", "pattern": "^[^:]+$"}
                            }
                        }
                    },
                    {
                        "type": "object",
                        "minProperties": 1,
                        "patternProperties": {"^[^:]+$": header_value()}
                    }
                ]
            },
            "use_real_request_uri_unsafe": {
                "description": "use real_request_uri instead, THIS IS VERY UNSAFE.",
                "type": "boolean",
                "default": false
            }
        },
        "minProperties": 1
    })
}

pub(super) fn check(conf: &Value) -> Result<(), String> {
    if let Some(list) = conf
        .get("regex_uri")
        .and_then(Value::as_array)
        .filter(|l| !l.is_empty())
    {
        if list.len() % 2 != 0 {
            return Err("The length of regex_uri should be an even number".to_string());
        }
        for pair in list.chunks(2) {
            let pattern = pair[0].as_str().unwrap_or_default();
            let replacement = pair[1].as_str().unwrap_or_default();
            if let Err(e) = regex::Regex::new(pattern) {
                let reason = e
                    .to_string()
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ");
                return Err(format!(
                    "invalid regex_uri({pattern}, {replacement}): {reason}"
                ));
            }
        }
    }
    match conf.get("headers") {
        Some(Value::Object(headers)) if !is_new_headers_conf(headers) => check_set_headers(headers),
        _ => Ok(()),
    }
}

/// The `{add, set, remove}` form (as opposed to the legacy flat `{name: value}` form).
pub(super) fn is_new_headers_conf(headers: &serde_json::Map<String, Value>) -> bool {
    ["add", "set", "remove"]
        .iter()
        .any(|k| matches!(headers.get(*k), Some(Value::Object(_) | Value::Array(_))))
}

fn check_set_headers(headers: &serde_json::Map<String, Value>) -> Result<(), String> {
    for (field, value) in headers {
        let text = match value {
            Value::String(s) => Some(s.as_str()),
            Value::Number(_) => None,
            _ => return Err("invalid type as header value".to_string()),
        };
        if field.is_empty() {
            return Err("invalid field length in header".to_string());
        }
        if !field.bytes().all(|b| b > 32 && b < 127 && b != b':') {
            return Err("invalid field character in header".to_string());
        }
        if text.is_some_and(|t| t.bytes().any(|b| !(32..127).contains(&b))) {
            return Err("invalid value character in header".to_string());
        }
    }
    Ok(())
}
