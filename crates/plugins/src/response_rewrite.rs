//! response-rewrite: changes the status, headers and body of the response the client gets —
//! the upstream's or an early answer of the gateway or another plugin (APISIX priority 899,
//! header_filter and body_filter; `apisix/plugins/response-rewrite.lua`).
//!
//! `header_filter`: when `vars` (a lua-resty-expr rule evaluated on the response: `$status`,
//! `$upstream_status`, `$sent_http_<name>` / `$upstream_http_<name>`, the request's variables)
//! holds — or is absent — `status_code` replaces the status; with `body` or
//! `filters`, `Content-Length`, `Content-Encoding`, `Last-Modified` and `ETag` are removed
//! (`clear_header_as_body_modified`); then the header operations run: `add` (`"Name: value"`
//! appended), `set` (replaced; an empty value removes), `remove` — or the flat `{name: value}`
//! form, which sets. Values take `$var`s.
//!
//! `body_filter`:
//! * `body` (base64-decoded with `body_base64`) replaces the body: it goes out with the first
//!   chunk (or at the end of an empty body) and every upstream chunk after it is dropped;
//! * `filters` hold the body back (chunks are emptied) until it ends, then each filter replaces
//!   the first (`scope: once`) or every (`global`) match of `regex` (ngx.re options `options`)
//!   with `replace` (`$0`, `$1`, `${1}`, `$$`), in order. At most `max_resp_body_size` bytes
//!   (64 MiB) are held: a longer body is truncated to that size, filtered and sent, and the rest
//!   dropped. A gzip-encoded upstream body is decoded as it arrives, and the limit applies to the
//!   decoded body (APISIX cuts the encoded bytes, which then fail to decode).
//!
//! A gzip plugin of the same request compresses what this plugin produced (nginx's gzip filter
//! runs after the Lua filters): see [`crate::gzip::take_pending`].
//!
//! Differences from APISIX, all refused when written or documented in `docs/plugins.md`: header
//! names and values must be valid HTTP; an `add` item must read `Name: value` (APISIX accepts
//! some it cannot split and then drops every header operation at run time); a `replace` must be
//! a valid ngx.re template; regexes are the `regex` crate's dialect. With `filters`, a body
//! encoded other than gzip (`br`, `deflate`) passes unchanged with its headers (APISIX clears
//! `Content-Encoding` and sends an empty body).

pub(crate) mod ngx_re;
mod schema;

use std::borrow::Cow;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::header::{
    HeaderName, HeaderValue, ACCEPT_RANGES, CONTENT_ENCODING, CONTENT_LENGTH, ETAG, LAST_MODIFIED,
};
use http::StatusCode;
use portico_expr::{Expr, Vars};
use portico_model::PluginSpec;
use serde::Deserialize;
use serde_json::Value;

use crate::gzip::{self, Decoder, Encoder};
use crate::template::Template;
use crate::{typed, BuildEnv, Ctx, Plugin};

use ngx_re::{NgxRegex, Replacement};
pub use schema::{decode_base64, schema, MAX_RESP_BODY_SIZE};

/// Plugin name.
pub const NAME: &str = "response-rewrite";

/// APISIX priority.
const PRIORITY: i32 = 899;

/// The registry row of response-rewrite.
pub fn spec() -> PluginSpec {
    PluginSpec {
        check: Some(schema::check),
        ..PluginSpec::new(NAME, PRIORITY, schema())
    }
}

#[derive(Debug, Deserialize)]
struct FilterConf {
    regex: String,
    scope: String,
    replace: String,
    options: String,
}

#[derive(Debug, Deserialize)]
struct Config {
    max_resp_body_size: u64,
    headers: Option<serde_json::Map<String, Value>>,
    body: Option<String>,
    body_base64: bool,
    status_code: Option<u16>,
    vars: Option<Value>,
    filters: Option<Vec<FilterConf>>,
}

/// One compiled filter.
#[derive(Debug)]
struct Filter {
    regex: NgxRegex,
    replace: Replacement,
    global: bool,
}

/// A response-rewrite instance.
#[derive(Debug)]
pub struct ResponseRewrite {
    vars: Option<Expr>,
    status: Option<StatusCode>,
    body: Option<Bytes>,
    filters: Vec<Filter>,
    max_body: usize,
    add: Vec<(HeaderName, Template)>,
    set: Vec<(HeaderName, Template)>,
    remove: Vec<HeaderName>,
}

fn header_name(name: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("invalid header name: {name}"))
}

/// A header value as a template (numbers print as Lua prints them).
fn value_template(v: &Value) -> Template {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => portico_model::schema::format_number(n.as_f64().unwrap_or_default()),
        other => other.to_string(),
    };
    Template::new(&text)
}

/// Builds response-rewrite from a checked configuration.
pub fn build(conf: &Value, _env: &BuildEnv<'_>) -> Result<Arc<dyn Plugin>, String> {
    let c: Config = typed(conf)?;
    let vars = c.vars.as_ref().map(Expr::compile).transpose()?;
    let status = c
        .status_code
        .map(|s| StatusCode::from_u16(s).map_err(|e| e.to_string()))
        .transpose()?;
    let body = match (&c.body, c.body_base64) {
        (Some(b), true) => Some(Bytes::from(
            decode_base64(b).ok_or("invalid base64 content")?,
        )),
        (Some(b), false) => Some(Bytes::from(b.clone().into_bytes())),
        (None, _) => None,
    };
    let mut filters = Vec::new();
    for f in c.filters.unwrap_or_default() {
        filters.push(Filter {
            regex: NgxRegex::new(&f.regex, &f.options)?,
            replace: Replacement::new(&f.replace)?,
            global: f.scope == "global",
        });
    }
    let (mut add, mut set, mut remove) = (Vec::new(), Vec::new(), Vec::new());
    if let Some(headers) = &c.headers {
        if schema::is_new_headers_conf(headers) {
            for item in headers
                .get("add")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let item = item.as_str().unwrap_or_default();
                let (name, value) =
                    schema::split_add(item).ok_or_else(|| format!("invalid header: {item}"))?;
                add.push((header_name(name)?, Template::new(value)));
            }
            for (name, v) in headers
                .get("set")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                set.push((header_name(name)?, value_template(v)));
            }
            for name in headers
                .get("remove")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                remove.push(header_name(name.as_str().unwrap_or_default())?);
            }
        } else {
            for (name, v) in headers {
                set.push((header_name(name)?, value_template(v)));
            }
        }
    }
    Ok(Arc::new(ResponseRewrite {
        vars,
        status,
        body,
        filters,
        max_body: usize::try_from(c.max_resp_body_size).unwrap_or(usize::MAX),
        add,
        set,
        remove,
    }))
}

/// The request's variables plus those of the response being filtered: `$sent_http_<name>` and
/// `$upstream_http_<name>` (the response's headers as they stand) and `$upstream_status`.
struct ResponseVars<'a>(&'a Ctx);

impl Vars for ResponseVars<'_> {
    fn var(&self, name: &str) -> Option<Cow<'_, str>> {
        let ctx = self.0;
        let header = name
            .strip_prefix("sent_http_")
            .or_else(|| name.strip_prefix("upstream_http_"));
        if let (Some(h), Some(head)) = (header, ctx.response.as_ref()) {
            let wanted = h.replace('_', "-");
            return head
                .headers
                .get(wanted.as_str())
                .map(|v| String::from_utf8_lossy(v.as_bytes()));
        }
        if name == "upstream_status" {
            return ctx.log.upstream_status.map(|s| Cow::Owned(s.to_string()));
        }
        ctx.var(name)
    }
}

/// Header names and their rendered values.
type Rendered = Vec<(HeaderName, String)>;

/// What the body filter does for one request.
#[derive(Debug)]
enum Mode {
    /// Send `body` once, drop the upstream's.
    Replace { sent: bool },
    /// Hold the body (decoded as it comes when gzip), filter it at its end (or once
    /// `max_resp_body_size` is reached).
    Filter {
        held: Vec<u8>,
        gunzip: Option<Box<Decoder>>,
        done: bool,
    },
}

#[derive(Debug)]
struct Work {
    mode: Mode,
    /// gzip's compression, taken over: applied to what this plugin sends.
    gzip: Option<Encoder>,
}

/// Per-request state of every response-rewrite instance that changes the body (one in the
/// global rules and one in the template may both run), keyed by instance.
#[derive(Clone, Debug, Default)]
struct Works(Vec<(usize, Arc<Mutex<Work>>)>);

/// The content coding of a body about to be filtered: `Ok(true)` gzip, `Ok(false)` none,
/// `Err(coding)` one Portico cannot decode.
fn coding(value: Option<&HeaderValue>) -> Result<bool, String> {
    let text = value.map_or_else(String::new, |v| {
        String::from_utf8_lossy(v.as_bytes())
            .trim()
            .to_ascii_lowercase()
    });
    match text.as_str() {
        "" | "identity" => Ok(false),
        "gzip" | "x-gzip" => Ok(true),
        _ => Err(text),
    }
}

impl ResponseRewrite {
    fn id(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    fn changes_body(&self) -> bool {
        self.body.is_some() || !self.filters.is_empty()
    }

    /// Applies the filters to a held body.
    fn filtered(&self, held: &[u8]) -> Bytes {
        let mut body = held.to_vec();
        for f in &self.filters {
            let (out, _) = if f.global {
                f.regex.gsub(&body, &f.replace)
            } else {
                f.regex.sub(&body, &f.replace)
            };
            body = out;
        }
        Bytes::from(body)
    }

    /// The header operations, rendered against the request (before the response is changed).
    fn rendered_headers(&self, ctx: &Ctx) -> (Rendered, Rendered) {
        let render = |list: &[(HeaderName, Template)]| {
            list.iter()
                .map(|(n, t)| (n.clone(), t.render(&ResponseVars(ctx)).0))
                .collect::<Vec<_>>()
        };
        (render(&self.add), render(&self.set))
    }

    /// Starts changing the body: clears the headers that described the old one, takes over a
    /// pending gzip compression. `None`: the body is left alone (an encoding filters cannot
    /// read).
    fn begin_body(&self, ctx: &mut Ctx) -> Option<Work> {
        let pending = gzip::take_pending(ctx);
        let head = ctx.response.as_mut()?;
        // gzip set `Content-Encoding: gzip` itself: the body as it stands is not encoded.
        let gzip_applied = pending.as_ref().is_some_and(gzip::Deferred::applied);
        let encoding = if gzip_applied {
            None
        } else {
            head.headers.get(CONTENT_ENCODING)
        };
        let mode = if self.body.is_some() {
            Mode::Replace { sent: false }
        } else {
            match coding(encoding) {
                Ok(gunzip) => Mode::Filter {
                    held: Vec::new(),
                    gunzip: gunzip.then(|| Box::new(Decoder::new())),
                    done: false,
                },
                Err(other) => {
                    tracing::error!(
                        "response-rewrite: filters not applied to a body with unsupported content encoding {other:?}"
                    );
                    return None;
                }
            }
        };
        for name in [CONTENT_LENGTH, CONTENT_ENCODING, LAST_MODIFIED, ETAG] {
            head.headers.remove(name);
        }
        let gzip = pending
            .filter(|_| gzip::status_compressible(head.status))
            .map(|p| {
                head.headers
                    .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                head.headers.remove(ACCEPT_RANGES);
                p.into_encoder()
            });
        Some(Work { mode, gzip })
    }

    fn work(&self, ctx: &Ctx) -> Option<Arc<Mutex<Work>>> {
        let id = self.id();
        ctx.data
            .get::<Works>()?
            .0
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, w)| w.clone())
    }
}

impl Plugin for ResponseRewrite {
    fn name(&self) -> &'static str {
        NAME
    }

    fn priority(&self) -> i32 {
        PRIORITY
    }

    fn header_filter(&self, ctx: &mut Ctx) {
        let matched = self
            .vars
            .as_ref()
            .is_none_or(|e| e.eval(&ResponseVars(ctx)));
        if ctx.response.is_none() || !matched {
            return;
        }
        if let (Some(status), Some(head)) = (self.status, ctx.response.as_mut()) {
            head.status = status;
            if !gzip::status_compressible(status) {
                gzip::cancel(ctx);
            }
        }
        if self.changes_body() {
            if let Some(work) = self.begin_body(ctx) {
                let mut works = ctx.data.remove::<Works>().unwrap_or_default();
                works.0.push((self.id(), Arc::new(Mutex::new(work))));
                ctx.data.insert(works);
            }
        }
        // Values see the new status (`$status`), as nginx's variable does.
        let (add, set) = self.rendered_headers(ctx);
        let Some(head) = ctx.response.as_mut() else {
            return;
        };
        for (name, value) in add {
            match HeaderValue::from_str(&value) {
                Ok(v) => {
                    head.headers.append(name, v);
                }
                Err(_) => tracing::debug!("response-rewrite: invalid value of header {name}"),
            }
        }
        for (name, value) in set {
            if value.is_empty() {
                head.headers.remove(&name);
                continue;
            }
            match HeaderValue::from_str(&value) {
                Ok(v) => {
                    head.headers.insert(name, v);
                }
                Err(_) => tracing::debug!("response-rewrite: invalid value of header {name}"),
            }
        }
        for name in &self.remove {
            head.headers.remove(name);
        }
    }

    fn body_filter(&self, ctx: &mut Ctx, chunk: &mut Bytes, eof: bool) {
        let Some(work) = self.work(ctx) else {
            return;
        };
        let mut work = work.lock().unwrap_or_else(|e| e.into_inner());
        let out = match &mut work.mode {
            Mode::Replace { sent } => {
                if std::mem::replace(sent, true) {
                    Bytes::new()
                } else {
                    self.body.clone().unwrap_or_default()
                }
            }
            Mode::Filter { done: true, .. } => Bytes::new(),
            Mode::Filter { held, gunzip, done } => {
                let decoded = match gunzip {
                    None => Ok(None),
                    Some(d) => d.push(chunk).and_then(|mut out| {
                        if eof {
                            out.extend(d.finish()?);
                        }
                        Ok(Some(out))
                    }),
                };
                match decoded {
                    Ok(None) => held.extend_from_slice(chunk),
                    Ok(Some(out)) => held.extend_from_slice(&out),
                    Err(e) => {
                        // APISIX sends nothing of a body it could not decode.
                        tracing::error!("response-rewrite: filters may not work as expected: {e}");
                        *done = true;
                        *held = Vec::new();
                    }
                }
                if !*done && (held.len() >= self.max_body || eof) {
                    held.truncate(self.max_body);
                    *done = true;
                    let out = self.filtered(held);
                    *held = Vec::new();
                    out
                } else {
                    Bytes::new()
                }
            }
        };
        *chunk = match work.gzip.as_mut() {
            None => out,
            Some(enc) if eof => {
                let mut all = enc.push(&out).to_vec();
                all.extend_from_slice(&enc.finish());
                Bytes::from(all)
            }
            Some(enc) => enc.push(&out),
        };
    }
}

#[cfg(test)]
pub(crate) mod tests;
