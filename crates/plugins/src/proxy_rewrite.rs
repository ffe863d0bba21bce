//! proxy-rewrite: rewrites the upstream request's URI, method, host and headers
//! (APISIX priority 1008, rewrite phase; `apisix/plugins/proxy-rewrite.lua`).
//!
//! Runtime: sets `ctx.upstream_uri` (always), `ctx.upstream_host` (`host`), `ctx.method`
//! (`method`) and changes `ctx.headers` — add, then set, then remove; the legacy flat
//! `{name: value}` form is `set`. The URI is `uri` (with `$var`s, `?` in values escaped), else
//! the first `regex_uri` pair whose pattern matches `$uri` (ngx.re.sub: first match, `$1` /
//! `${1}` / `$$`), else `$uri`; it is then escaped like nginx's `ngx_escape_uri` and the client's
//! query string is appended. With `use_real_request_uri_unsafe` the client's raw target is the
//! base and nothing is escaped. Header values take `$1` captures of the matched `regex_uri` and
//! `$var`s.
//!
//! Deviation: regexes are the `regex` crate's (no look-around or back-references), compiled
//! once; a replacement that names a non-numeric capture is refused when built.

use std::borrow::Cow;
use std::sync::Arc;

use http::header::HeaderName;
use http::Method;
use portico_expr::Vars;
use portico_model::PluginSpec;
use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

use crate::template::Template;
use crate::{typed, BuildEnv, Ctx, Flow, Plugin};

/// Plugin name.
pub const NAME: &str = "proxy-rewrite";

mod schema;
use schema::is_new_headers_conf;
pub use schema::{schema, METHODS};

/// The registry row of proxy-rewrite.
pub fn spec() -> PluginSpec {
    PluginSpec {
        check: Some(schema::check),
        ..PluginSpec::new(NAME, 1008, schema())
    }
}

/// The configuration.
#[derive(Debug, Deserialize)]
struct Config {
    uri: Option<String>,
    method: Option<String>,
    regex_uri: Option<Vec<String>>,
    host: Option<String>,
    headers: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    use_real_request_uri_unsafe: bool,
}

/// A piece of an `ngx.re.sub` replacement.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Group(usize),
}

/// Parses an `ngx.re.sub` replacement: `$N`, `${N}`, `$$`.
fn replacement(text: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut lit = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            lit.push(c);
            continue;
        }
        let braced = chars.next_if_eq(&'{').is_some();
        if !braced && chars.next_if_eq(&'$').is_some() {
            lit.push('$');
            continue;
        }
        let mut digits = String::new();
        while let Some(d) = chars.next_if(char::is_ascii_digit) {
            digits.push(d);
        }
        if digits.is_empty() || (braced && chars.next_if_eq(&'}').is_none()) {
            return Err(format!(
                "invalid capturing variable name in replacement {text:?}"
            ));
        }
        if !lit.is_empty() {
            pieces.push(Piece::Text(std::mem::take(&mut lit)));
        }
        pieces.push(Piece::Group(digits.parse().unwrap_or(usize::MAX)));
    }
    if !lit.is_empty() {
        pieces.push(Piece::Text(lit));
    }
    Ok(pieces)
}

/// One header value (numbers print as Lua prints them).
fn header_template(v: &Value) -> Template {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_f64() => {
            portico_model::schema::format_number(n.as_f64().unwrap_or_default())
        }
        other => other.to_string(),
    };
    Template::with_captures(&text)
}

fn header_templates(v: &Value) -> Vec<Template> {
    match v {
        Value::Array(items) => items.iter().map(header_template).collect(),
        v => vec![header_template(v)],
    }
}

fn header_name(name: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("invalid header name: {name}"))
}

/// A proxy-rewrite instance.
#[derive(Debug)]
pub struct ProxyRewrite {
    uri: Option<Template>,
    regex_uri: Vec<(Regex, Vec<Piece>)>,
    host: Option<String>,
    method: Option<Method>,
    add: Vec<(HeaderName, Vec<Template>)>,
    /// `(name, values, many)`: `many` for an array value (the header gets every value).
    set: Vec<(HeaderName, Vec<Template>, bool)>,
    remove: Vec<HeaderName>,
    real_request_uri: bool,
}

/// Builds proxy-rewrite from a checked configuration.
pub fn build(conf: &Value, _env: &BuildEnv<'_>) -> Result<Arc<dyn Plugin>, String> {
    let c: Config = typed(conf)?;
    let mut regex_uri = Vec::new();
    for pair in c.regex_uri.unwrap_or_default().chunks(2) {
        if let [pattern, with] = pair {
            let re =
                Regex::new(pattern).map_err(|e| format!("invalid regex_uri {pattern}: {e}"))?;
            regex_uri.push((re, replacement(with)?));
        }
    }
    let (mut add, mut set, mut remove) = (Vec::new(), Vec::new(), Vec::new());
    if let Some(headers) = &c.headers {
        if is_new_headers_conf(headers) {
            for (name, v) in headers
                .get("add")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                add.push((header_name(name)?, header_templates(v)));
            }
            for (name, v) in headers
                .get("set")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                set.push((header_name(name)?, header_templates(v), v.is_array()));
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
                set.push((header_name(name)?, header_templates(v), false));
            }
        }
    }
    let method = c
        .method
        .map(|m| Method::from_bytes(m.as_bytes()).map_err(|e| e.to_string()))
        .transpose()?;
    Ok(Arc::new(ProxyRewrite {
        uri: c.uri.as_deref().map(Template::new),
        regex_uri,
        host: c.host,
        method,
        add,
        set,
        remove,
        real_request_uri: c.use_real_request_uri_unsafe,
    }))
}

/// `ngx_escape_uri(NGX_ESCAPE_URI)`: control bytes, space, `#`, `%`, `?`, DEL and non-ASCII.
pub fn uri_safe_encode(s: &str) -> Cow<'_, str> {
    let escape = |b: u8| b <= b' ' || matches!(b, b'#' | b'%' | b'?') || b >= 0x7f;
    escape_bytes(s, escape)
}

/// `core.utils.escape_uri_control_chars`: bytes 0x00–0x1F and 0x7F.
fn escape_control(s: &str) -> Cow<'_, str> {
    escape_bytes(s, |b| b < 0x20 || b == 0x7f)
}

fn escape_bytes(s: &str, escape: impl Fn(u8) -> bool) -> Cow<'_, str> {
    if !s.bytes().any(&escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for b in s.bytes() {
        if escape(b) {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(char::from(b));
        }
    }
    Cow::Owned(out)
}

fn escape_separator(s: &str) -> Cow<'_, str> {
    if s.contains('?') {
        Cow::Owned(s.replace('?', "%3F"))
    } else {
        Cow::Borrowed(s)
    }
}

impl ProxyRewrite {
    /// The upstream URI and the `regex_uri` captures (index 0 = whole match).
    fn upstream_uri(&self, ctx: &Ctx) -> (String, Vec<Option<String>>) {
        let mut captures = Vec::new();
        let mut uri = ctx.var("uri").map_or_else(String::new, Cow::into_owned);
        let mut query = "";
        let mut escaped_separator = false;
        if self.real_request_uri {
            uri = ctx.real_request_uri().to_string();
            query = uri.find('?').map_or("", |i| &ctx.real_request_uri()[i..]);
        }
        if let Some(t) = &self.uri {
            escaped_separator = true;
            let mut rendered = t.render_with(ctx, &[], Some(escape_separator)).0;
            if let Some(q) = query.strip_prefix('?') {
                rendered.push(if rendered.contains('?') { '&' } else { '?' });
                rendered.push_str(q);
            }
            uri = rendered;
        } else if !self.regex_uri.is_empty() {
            escaped_separator = !uri.contains('?');
            if let Some((caps, with)) = self
                .regex_uri
                .iter()
                .find_map(|(re, with)| Some((re.captures(&uri)?, with)))
            {
                captures = (0..caps.len())
                    .map(|i| caps.get(i).map(|m| m.as_str().to_string()))
                    .collect();
                let whole = caps.get(0).map_or(0..0, |m| m.range());
                let mut out = uri[..whole.start].to_string();
                for piece in with {
                    match piece {
                        Piece::Text(t) => out.push_str(t),
                        Piece::Group(n) => out.push_str(caps.get(*n).map_or("", |m| m.as_str())),
                    }
                }
                out.push_str(&uri[whole.end..]);
                uri = out;
            }
        }
        if self.real_request_uri {
            return (uri, captures);
        }
        let split = if escaped_separator {
            uri.find('?')
        } else {
            None
        };
        let mut out = match split {
            Some(i) => format!(
                "{}{}",
                uri_safe_encode(&uri[..i]),
                escape_control(&uri[i..])
            ),
            None => uri_safe_encode(&uri).into_owned(),
        };
        let args = ctx.query();
        if !args.is_empty() {
            out.push(if split.is_some() { '&' } else { '?' });
            out.push_str(args);
        }
        (out, captures)
    }
}

impl Plugin for ProxyRewrite {
    fn name(&self) -> &'static str {
        NAME
    }

    fn priority(&self) -> i32 {
        1008
    }

    fn rewrite(&self, ctx: &mut Ctx) -> Flow {
        if let Some(host) = &self.host {
            ctx.upstream_host = Some(host.clone());
        }
        let (uri, captures) = self.upstream_uri(ctx);
        ctx.upstream_uri = Some(uri);
        let render = |ctx: &Ctx, t: &Template| t.render_with(ctx, &captures, None).0;
        for (name, values) in &self.add {
            for v in values {
                let value = render(ctx, v);
                ctx.add_header(name.as_str(), &value);
            }
        }
        for (name, values, many) in &self.set {
            if *many {
                let rendered: Vec<String> = values.iter().map(|v| render(ctx, v)).collect();
                ctx.set_header(name.as_str(), None);
                for value in rendered {
                    ctx.add_header(name.as_str(), &value);
                }
            } else if let Some(v) = values.first() {
                let value = render(ctx, v);
                ctx.set_header(name.as_str(), Some(&value));
            }
        }
        for name in &self.remove {
            ctx.set_header(name.as_str(), None);
        }
        if let Some(method) = &self.method {
            ctx.method = method.clone();
        }
        Flow::Continue
    }
}

#[cfg(test)]
mod tests;
