//! The log entries of the logger plugins (http-logger, tcp-logger, file-logger), as APISIX's
//! `apisix/utils/log-util.lua` builds them.
//!
//! * Default entry (`get_full_log`): `{request: {url, uri, method, headers, querystring, size[,
//!   body]}, response: {status, headers, size[, body]}, server: {hostname, version}, upstream,
//!   service_id, route_id, consumer: {username}, client_ip, start_time (ms), latency,
//!   upstream_latency, apisix_latency}`; `log_format_extra` adds its fields where the default
//!   entry has none of that name.
//! * Custom entry: the plugin's `log_format`, else the plugin metadata's (when not empty): each
//!   `"$var"` value is the variable's value (left out when unset), other values are kept,
//!   objects nest (five levels; deeper ones are empty); `route_id` is added.
//! * `include_req_body` / `include_resp_body` (with `include_*_expr` evaluated per request)
//!   add the bodies to the default entry, cut at `max_req_body_bytes` / `max_resp_body_bytes`.
//!
//! What the entry needs but the proxy hands on before the `log` phase is kept in
//! [`Ctx::data`] by the logger's earlier phases: the request headers and body (`access`), the
//! response headers (`header_filter`) and the response body (`body_filter`, bounded).
//! Variables are read by [`LogVars`] ([`vars`] lists them).

pub mod vars;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::UNIX_EPOCH;

use bytes::Bytes;
use http::HeaderMap;
use portico_expr::{Expr, Vars};
use serde::Deserialize;
use serde_json::{json, Map, Number, Value};

use crate::ctx::{decode, query_pairs};
use crate::Ctx;

pub use vars::{hostname, LogVars};

/// Default `max_req_body_bytes` and `max_resp_body_bytes` (512 KiB).
pub const MAX_BODY: usize = 524_288;

/// Nesting levels a `log_format` may have (APISIX `MAX_LOG_FORMAT_DEPTH`).
const MAX_DEPTH: usize = 5;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn max_body() -> usize {
    MAX_BODY
}

/// The schema properties every logger shares.
pub fn schema_properties() -> Map<String, Value> {
    let expr = json!({"type": "array", "minItems": 1, "items": {"type": "array"}});
    let v = json!({
        "log_format": {"type": "object"},
        "log_format_extra": {"type": "object"},
        "include_req_body": {"type": "boolean", "default": false},
        "include_req_body_expr": expr,
        "include_resp_body": {"type": "boolean", "default": false},
        "include_resp_body_expr": expr,
        "max_req_body_bytes": {"type": "integer", "minimum": 1, "default": MAX_BODY},
        "max_resp_body_bytes": {"type": "integer", "minimum": 1, "default": MAX_BODY}
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// The semantic check of the `include_*_expr` rules (`log_util.check_log_schema`).
pub fn check(conf: &Value) -> Result<(), String> {
    for field in ["include_req_body_expr", "include_resp_body_expr"] {
        if let Some(rule) = conf.get(field) {
            Expr::compile(rule)
                .map_err(|e| format!("failed to validate the '{field}' expression: {e}"))?;
        }
    }
    Ok(())
}

/// The logging options of a logger's configuration.
#[derive(Debug, Default, Deserialize)]
struct Options {
    log_format: Option<Map<String, Value>>,
    log_format_extra: Option<Map<String, Value>>,
    #[serde(default)]
    include_req_body: bool,
    include_req_body_expr: Option<Value>,
    #[serde(default)]
    include_resp_body: bool,
    include_resp_body_expr: Option<Value>,
    #[serde(default = "max_body")]
    max_req_body_bytes: usize,
    #[serde(default = "max_body")]
    max_resp_body_bytes: usize,
}

/// One value of a compiled `log_format`.
#[derive(Debug, Clone)]
enum Field {
    Var(String),
    Const(Value),
    Nested(Vec<(String, Field)>),
}

/// A compiled `log_format`.
#[derive(Debug, Clone)]
pub struct LogFormat(Vec<(String, Field)>);

impl LogFormat {
    /// Compiles a `log_format` object.
    pub fn new(format: &Map<String, Value>) -> LogFormat {
        LogFormat(compile(format, 1))
    }

    /// The entry for one request.
    pub fn build(&self, vars: &LogVars<'_>) -> Map<String, Value> {
        build(&self.0, vars)
    }

    /// Whether a value reads variable `name`.
    pub fn reads(&self, name: &str) -> bool {
        fn any(fields: &[(String, Field)], name: &str) -> bool {
            fields.iter().any(|(_, f)| match f {
                Field::Var(v) => v == name,
                Field::Nested(n) => any(n, name),
                Field::Const(_) => false,
            })
        }
        any(&self.0, name)
    }

    /// Whether a value reads a variable whose name starts with `prefix`.
    fn reads_prefix(&self, prefix: &str) -> bool {
        fn any(fields: &[(String, Field)], prefix: &str) -> bool {
            fields.iter().any(|(_, f)| match f {
                Field::Var(v) => v.starts_with(prefix),
                Field::Nested(n) => any(n, prefix),
                Field::Const(_) => false,
            })
        }
        any(&self.0, prefix)
    }
}

fn compile(format: &Map<String, Value>, depth: usize) -> Vec<(String, Field)> {
    format
        .iter()
        .map(|(k, v)| {
            let field = match v {
                Value::Object(nested) if depth >= MAX_DEPTH => {
                    tracing::warn!("log_format nesting exceeds max depth {MAX_DEPTH}, truncating");
                    let _ = nested;
                    Field::Nested(Vec::new())
                }
                Value::Object(nested) => Field::Nested(compile(nested, depth + 1)),
                Value::String(s) if s.starts_with('$') => Field::Var(s[1..].to_string()),
                other => Field::Const(other.clone()),
            };
            (k.clone(), field)
        })
        .collect()
}

fn build(fields: &[(String, Field)], vars: &LogVars<'_>) -> Map<String, Value> {
    let mut entry = Map::new();
    for (key, field) in fields {
        let value = match field {
            Field::Var(name) => match vars.var(name) {
                Some(v) => Value::String(v.into_owned()),
                None => continue,
            },
            Field::Const(v) => v.clone(),
            Field::Nested(nested) => Value::Object(build(nested, vars)),
        };
        entry.insert(key.clone(), value);
    }
    entry
}

/// What the logger's earlier phases keep for `log` (one per request, shared by its loggers).
#[derive(Debug, Default, Clone)]
pub(crate) struct Captured {
    pub req_headers: Option<HeaderMap>,
    pub req_body: Option<Bytes>,
    pub resp_headers: Option<HeaderMap>,
    /// Bytes of the response's status line and headers.
    pub head_bytes: u64,
    /// Response bodies, per logger instance that collects one.
    pub bodies: Vec<(u64, RespBody)>,
}

/// A response body being collected.
#[derive(Debug, Default, Clone)]
pub(crate) struct RespBody {
    pub wanted: bool,
    pub data: Vec<u8>,
    pub complete: bool,
}

/// A logger's compiled options: what to capture and how to build its entries.
#[derive(Debug)]
pub struct LogOptions {
    id: u64,
    format: Option<LogFormat>,
    extra: Option<LogFormat>,
    include_req_body: bool,
    req_expr: Option<Expr>,
    include_resp_body: bool,
    resp_expr: Option<Expr>,
    max_req_body: usize,
    max_resp_body: usize,
}

impl LogOptions {
    /// The options of a checked configuration; `metadata` is the plugin's metadata, whose
    /// `log_format` (when not empty) and `log_format_extra` apply when the configuration has
    /// none.
    pub fn new(conf: &Value, metadata: Option<&Value>) -> Result<LogOptions, String> {
        let o: Options = crate::typed(&pick(conf, &schema_properties()))?;
        let meta_format = metadata
            .and_then(|m| m.get("log_format"))
            .and_then(Value::as_object)
            .filter(|f| !f.is_empty());
        let format = o.log_format.as_ref().or(meta_format).map(LogFormat::new);
        let extra = o
            .log_format_extra
            .as_ref()
            .or_else(|| {
                metadata
                    .and_then(|m| m.get("log_format_extra"))
                    .and_then(Value::as_object)
            })
            .filter(|e| !e.is_empty())
            .map(LogFormat::new);
        let rule = |r: &Option<Value>| r.as_ref().map(Expr::compile).transpose();
        Ok(LogOptions {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            format,
            extra,
            include_req_body: o.include_req_body,
            req_expr: rule(&o.include_req_body_expr)?,
            include_resp_body: o.include_resp_body,
            resp_expr: rule(&o.include_resp_body_expr)?,
            max_req_body: o.max_req_body_bytes,
            max_resp_body: o.max_resp_body_bytes,
        })
    }

    /// Whether the logger needs the request body read (`include_req_body`, or `$request_body`
    /// in its format).
    pub fn wants_request_body(&self) -> bool {
        self.include_req_body
            || [&self.format, &self.extra]
                .into_iter()
                .flatten()
                .any(|f| f.reads("request_body"))
    }

    /// Whether a custom format reads response headers or the response body (else the
    /// default entry does, or nothing).
    fn wants_response(&self) -> bool {
        match &self.format {
            None => true,
            Some(f) => {
                f.reads_prefix("sent_http_") || f.reads("resp_body") || f.reads("bytes_sent")
            }
        }
    }

    /// `access`: keeps the request headers and body as they are now (the proxy takes them
    /// before `log`).
    pub fn access(&self, ctx: &mut Ctx) {
        let headers = ctx.headers.clone();
        let body = ctx.request_body.clone();
        let c = captured(ctx);
        if c.req_headers.is_none() {
            c.req_headers = Some(headers);
        }
        if c.req_body.is_none() {
            c.req_body = body;
        }
    }

    /// `header_filter`: keeps the response headers and the head's size.
    pub fn header_filter(&self, ctx: &mut Ctx) {
        if !self.wants_response() && !self.include_resp_body {
            return;
        }
        let Some(head) = &ctx.response else { return };
        if captured_ref(ctx).is_some_and(|c| c.resp_headers.is_some()) {
            return;
        }
        let headers = head.headers.clone();
        let reason = head.status.canonical_reason().map_or(0, str::len);
        let size: usize = headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 4)
            .sum();
        let c = captured(ctx);
        c.head_bytes = (15 + reason + size + 2) as u64;
        c.resp_headers = Some(headers);
    }

    /// `body_filter`: collects the response body when `include_resp_body` (and its rule)
    /// says so, up to `max_resp_body_bytes`.
    pub fn body_filter(&self, ctx: &mut Ctx, chunk: &Bytes, eof: bool) {
        if !self.include_resp_body {
            return;
        }
        let known =
            captured_ref(ctx).is_some_and(|c| c.bodies.iter().any(|(id, _)| *id == self.id));
        if !known {
            let wanted = self
                .resp_expr
                .as_ref()
                .is_none_or(|e| e.eval(&LogVars::new(ctx)));
            captured(ctx).bodies.push((
                self.id,
                RespBody {
                    wanted,
                    ..RespBody::default()
                },
            ));
        }
        let max = self.max_resp_body;
        let c = captured(ctx);
        let Some((_, body)) = c.bodies.iter_mut().find(|(id, _)| *id == self.id) else {
            return;
        };
        if !body.wanted {
            return;
        }
        let room = max.saturating_sub(body.data.len());
        body.data.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if eof {
            body.complete = true;
        }
    }

    /// The entry for a request whose response has ended.
    pub fn entry(&self, ctx: &Ctx) -> Map<String, Value> {
        let vars = LogVars::new(ctx).with_body(self.id);
        if let Some(format) = &self.format {
            let mut entry = format.build(&vars);
            entry.insert("route_id".into(), Value::String(ctx.route_id.to_string()));
            return entry;
        }
        let mut entry = self.full(ctx, &vars);
        if let Some(extra) = &self.extra {
            for (k, v) in extra.build(&vars) {
                if !entry.contains_key(&k) {
                    entry.insert(k, v);
                }
            }
        }
        entry
    }

    /// APISIX's `get_full_log`.
    fn full(&self, ctx: &Ctx, vars: &LogVars<'_>) -> Map<String, Value> {
        let c = vars.captured();
        let request_uri = vars.var("request_uri").unwrap_or_default();
        let mut request = Map::new();
        request.insert(
            "url".into(),
            json!(format!(
                "{}://{}:{}{request_uri}",
                ctx.scheme, ctx.host, ctx.server_port
            )),
        );
        request.insert("uri".into(), json!(request_uri));
        request.insert("method".into(), json!(ctx.method.as_str()));
        let req_headers = c
            .and_then(|c| c.req_headers.as_ref())
            .filter(|_| ctx.headers.is_empty())
            .unwrap_or(&ctx.headers);
        request.insert("headers".into(), headers_json(req_headers));
        request.insert("querystring".into(), query_json(ctx.query()));
        request.insert("size".into(), json!(ctx.log.request_length));
        if self.include_req_body && self.req_expr.as_ref().is_none_or(|e| e.eval(vars)) {
            let body = c
                .and_then(|c| c.req_body.as_ref())
                .or(ctx.request_body.as_ref());
            if let Some(body) = body {
                let cut = &body[..body.len().min(self.max_req_body)];
                request.insert(
                    "body".into(),
                    json!(String::from_utf8_lossy(cut).into_owned()),
                );
            }
        }
        let mut response = Map::new();
        let status = ctx.response.as_ref().map_or(0, |r| r.status.as_u16());
        response.insert("status".into(), json!(status));
        let empty = HeaderMap::new();
        let resp_headers = c.and_then(|c| c.resp_headers.as_ref()).unwrap_or(&empty);
        response.insert("headers".into(), headers_json(resp_headers));
        let head = c.map_or(0, |c| c.head_bytes);
        response.insert("size".into(), json!(head + ctx.log.body_bytes_sent));
        if self.include_resp_body {
            if let Some(body) = vars.resp_body() {
                response.insert("body".into(), json!(body));
            }
        }
        let latency = portico_clock::now()
            .saturating_duration_since(ctx.log.started)
            .as_secs_f64()
            * 1000.0;
        let upstream_latency = ctx.log.upstream_latency.map(|d| d.as_millis() as u64);
        let apisix_latency = (latency - upstream_latency.unwrap_or(0) as f64).max(0.0);
        let start_ms = ctx
            .log
            .start_time()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);

        let mut entry = Map::new();
        entry.insert("request".into(), Value::Object(request));
        entry.insert("response".into(), Value::Object(response));
        entry.insert(
            "server".into(),
            json!({"hostname": hostname(), "version": env!("CARGO_PKG_VERSION")}),
        );
        if let Some(addr) = &ctx.log.upstream_addr {
            entry.insert("upstream".into(), json!(addr.to_string()));
        }
        entry.insert("service_id".into(), json!(""));
        entry.insert("route_id".into(), json!(&*ctx.route_id));
        if let Some(consumer) = &ctx.consumer {
            entry.insert("consumer".into(), json!({"username": consumer.username}));
        }
        entry.insert("client_ip".into(), json!(ctx.remote.ip().to_string()));
        entry.insert("start_time".into(), json!(start_ms));
        entry.insert("latency".into(), float(latency));
        if let Some(u) = upstream_latency {
            entry.insert("upstream_latency".into(), json!(u));
        }
        entry.insert("apisix_latency".into(), float(apisix_latency));
        entry
    }
}

fn float(v: f64) -> Value {
    Number::from_f64(v).map_or(Value::Null, Value::Number)
}

/// Only the `keys` of `conf`.
fn pick(conf: &Value, keys: &Map<String, Value>) -> Value {
    let mut only = Map::new();
    for key in keys.keys() {
        if let Some(v) = conf.get(key) {
            only.insert(key.clone(), v.clone());
        }
    }
    Value::Object(only)
}

pub(crate) fn captured(ctx: &mut Ctx) -> &mut Captured {
    if ctx.data.get::<Captured>().is_none() {
        ctx.data.insert(Captured::default());
    }
    ctx.data
        .get_mut::<Captured>()
        .expect("inserted just before")
}

pub(crate) fn captured_ref(ctx: &Ctx) -> Option<&Captured> {
    ctx.data.get::<Captured>()
}

/// Headers as `ngx.req.get_headers()` returns them: lower-case names, a list for a repeated
/// header.
fn headers_json(headers: &HeaderMap) -> Value {
    let mut out = Map::new();
    for name in headers.keys() {
        let mut values: Vec<Value> = headers
            .get_all(name)
            .iter()
            .map(|v| json!(String::from_utf8_lossy(v.as_bytes())))
            .collect();
        let value = if values.len() == 1 {
            values.remove(0)
        } else {
            Value::Array(values)
        };
        out.insert(name.as_str().to_string(), value);
    }
    Value::Object(out)
}

/// Query arguments as `ngx.req.get_uri_args()` returns them: decoded, a list for a repeated
/// argument, `true` for one without `=`.
fn query_json(query: &str) -> Value {
    let mut out = Map::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let value = match pair.split_once('=') {
            Some((_, v)) => json!(decode(v)),
            None => Value::Bool(true),
        };
        let key = query_pairs(pair).next().map_or("", |(k, _)| k);
        let key = decode(key).into_owned();
        match out.get_mut(&key) {
            Some(Value::Array(list)) => list.push(value),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, value]);
            }
            None => {
                out.insert(key, value);
            }
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests;
