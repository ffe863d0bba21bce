//! request-validation: validates request headers and bodies against JSON Schemas (APISIX
//! priority 2800, rewrite phase; `apisix/plugins/request-validation.lua`).
//!
//! * `header_schema` is checked against the request headers as `ngx.req.get_headers()` gives
//!   them: lower-case names, a repeated header as a list of its values. Like that table's
//!   lookup, a property named `Content-Type` or `x_api_key` finds the header `content-type` or
//!   `x-api-key`.
//! * `body_schema` is checked against the body (read whole: [`Plugin::wants_request_body`]).
//!   A body whose `Content-Type` starts with `application/x-www-form-urlencoded` (any case) is
//!   decoded as form arguments (`ngx.decode_args`: values are strings, a repeated key a list, a
//!   key without `=` is `true`); anything else as JSON with cjson's rules and messages. A JSON
//!   body that passes is sent upstream re-encoded the way cjson encodes it, schema defaults
//!   included, so the upstream parses exactly what was checked.
//!
//! Refused requests get `rejected_code` (400) with `rejected_msg`, or else the validator's or
//! decoder's message as plain text (e.g. `property "x" is required`); a missing or empty body,
//! one larger than `max_req_body_size`, a repeated `Content-Type`, or the JSON text `false` get
//! `rejected_msg` or the nginx page of `rejected_code`. Both schemas are checked when written
//! ([`schema_check`]).

use std::sync::Arc;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, StatusCode};
use portico_model::schema::{cjson_encode, validate, validate_in_place};
use portico_model::PluginSpec;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::ctx::decode;
use crate::{typed, BuildEnv, Ctx, Flow, Plugin, Reply};

pub(crate) mod cjson;
mod schema_check;

/// Plugin name.
pub const NAME: &str = "request-validation";

/// APISIX priority.
const PRIORITY: i32 = 2800;

const MAX_BODY: u64 = 67_108_864;

/// The registry row of request-validation.
pub fn spec() -> PluginSpec {
    PluginSpec {
        check: Some(check),
        ..PluginSpec::new(
            NAME,
            PRIORITY,
            json!({
                "type": "object",
                "properties": {
                    "header_schema": {"type": "object"},
                    "body_schema": {"type": "object"},
                    "max_req_body_size": {
                        "type": "integer",
                        "minimum": 1,
                        "default": MAX_BODY,
                        "description": "maximum request body size in bytes buffered into memory; larger request bodies are rejected"
                    },
                    "rejected_code": {"type": "integer", "minimum": 200, "maximum": 599, "default": 400},
                    "rejected_msg": {"type": "string", "minLength": 1, "maxLength": 256}
                },
                "anyOf": [{"required": ["header_schema"]}, {"required": ["body_schema"]}]
            }),
        )
    }
}

fn check(conf: &Value) -> Result<(), String> {
    for key in ["body_schema", "header_schema"] {
        if let Some(schema) = conf.get(key) {
            schema_check::check(schema)?;
        }
    }
    Ok(())
}

fn max_body() -> u64 {
    MAX_BODY
}

fn bad_request() -> u16 {
    400
}

/// The configuration.
#[derive(Debug, Deserialize)]
struct Config {
    header_schema: Option<Value>,
    body_schema: Option<Value>,
    #[serde(default = "max_body")]
    max_req_body_size: u64,
    #[serde(default = "bad_request")]
    rejected_code: u16,
    rejected_msg: Option<String>,
}

/// A request-validation instance.
#[derive(Debug)]
pub struct RequestValidation {
    header_schema: Option<Value>,
    /// Top-level property names of `header_schema` that are not lower-case header names.
    header_aliases: Vec<(String, String)>,
    body_schema: Option<Value>,
    max_body: u64,
    status: StatusCode,
    message: Option<String>,
}

/// Builds request-validation from a checked configuration.
pub fn build(conf: &Value, _env: &BuildEnv<'_>) -> Result<Arc<dyn Plugin>, String> {
    let c: Config = typed(conf)?;
    Ok(Arc::new(RequestValidation {
        header_aliases: c.header_schema.as_ref().map(aliases).unwrap_or_default(),
        header_schema: c.header_schema,
        body_schema: c.body_schema,
        max_body: c.max_req_body_size,
        status: StatusCode::from_u16(c.rejected_code).map_err(|e| e.to_string())?,
        message: c.rejected_msg,
    }))
}

/// The names a header schema looks up at its top level (`properties`, `required`) that the
/// header table's `__index` would map to another key: lower-cased, `_` read as `-`.
fn aliases(schema: &Value) -> Vec<(String, String)> {
    let mut names: Vec<&str> = Vec::new();
    if let Some(Value::Object(props)) = schema.get("properties") {
        names.extend(props.keys().map(String::as_str));
    }
    if let Some(Value::Array(required)) = schema.get("required") {
        names.extend(required.iter().filter_map(Value::as_str));
    }
    let mut out: Vec<(String, String)> = Vec::new();
    for name in names {
        let header = name.to_ascii_lowercase().replace('_', "-");
        if header != name && !out.iter().any(|(n, _)| n == name) {
            out.push((name.to_string(), header));
        }
    }
    out
}

/// `ngx.req.get_headers()` as JSON: lower-case names, repeated headers as lists.
fn header_table(headers: &HeaderMap, aliases: &[(String, String)]) -> Value {
    let mut table = Map::new();
    for name in headers.keys() {
        let mut values: Vec<Value> = headers
            .get_all(name)
            .iter()
            .map(|v| Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let value = match values.len() {
            1 => values.pop().unwrap_or(Value::Null),
            _ => Value::Array(values),
        };
        table.insert(name.as_str().to_string(), value);
    }
    for (name, header) in aliases {
        if !table.contains_key(name) {
            if let Some(v) = table.get(header).cloned() {
                table.insert(name.clone(), v);
            }
        }
    }
    Value::Object(table)
}

/// `ngx.decode_args(body, 0)`: `key=value` pairs split on `&`, percent-decoded (`+` is a
/// space); a key without `=` is `true`, a repeated key a list, an empty key is skipped.
fn form_table(body: &[u8]) -> Value {
    let text = String::from_utf8_lossy(body);
    let mut table = Map::new();
    for pair in text.split('&') {
        let (key, value) = match pair.split_once('=') {
            Some((k, v)) => (k, Value::String(decode(v).into_owned())),
            None => (pair, Value::Bool(true)),
        };
        if key.is_empty() {
            continue;
        }
        let key = decode(key).into_owned();
        match table.get_mut(&key) {
            None => {
                table.insert(key, value);
            }
            Some(Value::Array(list)) => list.push(value),
            Some(first) => *first = Value::Array(vec![first.take(), value]),
        }
    }
    Value::Object(table)
}

/// Lua's `tonumber` of a header value (decimal forms; enough for `Content-Length`).
fn lua_tonumber(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok()
}

impl RequestValidation {
    /// `return conf.rejected_code, conf.rejected_msg or err`.
    fn reject(&self, err: Option<String>) -> Flow {
        Flow::Respond(match self.message.clone().or(err) {
            Some(msg) => Reply::text(self.status, msg),
            None => Reply::page(self.status),
        })
    }

    fn check_body(&self, schema: &Value, ctx: &mut Ctx) -> Flow {
        let declared = ctx.header("content-length").and_then(lua_tonumber);
        if declared.is_some_and(|len| len > self.max_body as f64) {
            tracing::error!(
                "failed to get body: request size {} is greater than the maximum size {} allowed",
                declared.unwrap_or_default(),
                self.max_body
            );
            return self.reject(None);
        }
        let Some(body) = ctx.request_body.clone().filter(|b| !b.is_empty()) else {
            return self.reject(None);
        };
        if body.len() as u64 > self.max_body {
            tracing::error!(
                "failed to get body: request size {} is greater than the maximum size {} allowed",
                body.len(),
                self.max_body
            );
            return self.reject(None);
        }
        let mut types = ctx.headers.get_all(CONTENT_TYPE).iter();
        let content_type = types.next();
        if types.next().is_some() {
            tracing::error!("duplicated Content-Type header");
            return self.reject(None);
        }
        let form = content_type.is_some_and(|t| {
            t.as_bytes()
                .to_ascii_lowercase()
                .starts_with(b"application/x-www-form-urlencoded")
        });
        let mut decoded = if form {
            form_table(&body)
        } else {
            match cjson::decode(&body) {
                // `if not req_body`: the JSON text `false` fails without a message.
                Ok(Value::Bool(false)) => return self.reject(None),
                Ok(v) => v,
                Err(cjson::DecodeError::Syntax(e)) => {
                    tracing::error!("failed to decode the req body: {e}");
                    return self.reject(Some(e));
                }
                Err(cjson::DecodeError::NonFinite) => {
                    // APISIX cannot encode such a body again and fails the request.
                    tracing::error!("request body holds a NaN or infinite number");
                    return Flow::Respond(Reply::page(StatusCode::INTERNAL_SERVER_ERROR));
                }
            }
        };
        if let Err(e) = validate_in_place(schema, &mut decoded) {
            tracing::error!("req schema validation failed: {e}");
            return self.reject(Some(e));
        }
        if !form {
            ctx.request_body = Some(Bytes::from(cjson_encode(&decoded)));
        }
        Flow::Continue
    }
}

impl Plugin for RequestValidation {
    fn name(&self) -> &'static str {
        NAME
    }

    fn priority(&self) -> i32 {
        PRIORITY
    }

    fn rewrite(&self, ctx: &mut Ctx) -> Flow {
        if let Some(schema) = &self.header_schema {
            let headers = header_table(&ctx.headers, &self.header_aliases);
            if let Err(e) = validate(schema, &headers) {
                tracing::error!("req schema validation failed: {e}");
                return self.reject(Some(e));
            }
        }
        match &self.body_schema {
            Some(schema) => self.check_body(schema, ctx),
            None => Flow::Continue,
        }
    }

    fn wants_request_body(&self) -> bool {
        self.body_schema.is_some()
    }
}

#[cfg(test)]
mod tests;
