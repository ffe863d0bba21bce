//! cors: Cross-Origin Resource Sharing headers (APISIX priority 4000, rewrite and header_filter
//! phases; `apisix/plugins/cors.lua`).
//!
//! `rewrite` remembers the request's `Origin` and answers **every** `OPTIONS` request itself
//! with an empty 200 (preflight or not; the upstream never sees it). `header_filter` then works
//! out the allowed origin of any response, as APISIX does:
//!
//! 1. `allow_origins_by_metadata`: the keys' origin lists in the plugin metadata
//!    (`allow_origins: {key: origins}`) — the request origin if one allows it;
//! 2. otherwise (when the metadata did not allow it and `allow_origins` is not `*`, or without
//!    metadata keys) `allow_origins_by_regex` if set — the request origin when a regex finds
//!    it — else `allow_origins`: `*`, `**` (the request origin, or `*` without one), one origin,
//!    or a comma list (the request origin when listed exactly);
//! 3. if that still does not allow the request origin, the metadata keys once more.
//!
//! When an origin results: `Access-Control-Allow-Origin`, `-Allow-Methods` (`**` = every
//! method), `-Max-Age`, `-Expose-Headers` (when set), `-Allow-Headers` (`**` echoes
//! `Access-Control-Request-Headers`), `-Allow-Credentials: true` (with `allow_credential`).
//! `Vary: Origin` is added whenever `allow_origins` is not `*`. `Timing-Allow-Origin` follows
//! `timing_allow_origins_by_regex` or `timing_allow_origins` the same way. A disallowed origin
//! gets no CORS headers; the request is proxied all the same. With `allow_credential`, no option
//! may be `*` (`**` forces).

use std::sync::Arc;

use http::header::{HeaderName, HeaderValue, ORIGIN, VARY};
use http::{Method, StatusCode};
use portico_model::schema::format_number;
use portico_model::PluginSpec;
use regex::Regex;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::uri_blocker::pcre;
use crate::{typed, BuildEnv, Ctx, Flow, Plugin, Reply};

/// Plugin name.
pub const NAME: &str = "cors";

/// APISIX priority.
const PRIORITY: i32 = 4000;

/// What `allow_origins`, `timing_allow_origins` and metadata origin lists may hold.
const ORIGINS_PATTERN: &str = r"^(\*|\*\*|null|\w+://[^,]+(,\w+://[^,]+)*)$";

/// What `allow_methods: "**"` stands for.
const ALL_METHODS: &str = "GET,POST,PUT,DELETE,PATCH,HEAD,OPTIONS,CONNECT,TRACE";

const REQUEST_HEADERS: &str = "access-control-request-headers";

const CREDENTIAL_STAR: &str =
    "you can not set '*' for other option when 'allow_credential' is true";

mod schema;

/// The registry row of cors.
pub fn spec() -> PluginSpec {
    PluginSpec {
        metadata_schema: Some(schema::metadata_schema()),
        check: Some(check),
        ..PluginSpec::new(NAME, PRIORITY, schema::schema())
    }
}

fn check(conf: &Value) -> Result<(), String> {
    let c: Config = typed(conf)?;
    let star = |v: &Option<String>| v.as_deref() == Some("*");
    if c.allow_credential
        && (c.allow_origins == "*"
            || c.allow_methods == "*"
            || c.allow_headers == "*"
            || star(&c.expose_headers)
            || star(&c.timing_allow_origins))
    {
        return Err(CREDENTIAL_STAR.to_string());
    }
    for list in [&c.allow_origins_by_regex, &c.timing_allow_origins_by_regex]
        .into_iter()
        .flatten()
    {
        pcre::compile_all(list)?;
    }
    Ok(())
}

fn star() -> String {
    "*".to_string()
}

fn five() -> f64 {
    5.0
}

/// The configuration.
#[derive(Debug, Deserialize)]
struct Config {
    #[serde(default = "star")]
    allow_origins: String,
    #[serde(default = "star")]
    allow_methods: String,
    #[serde(default = "star")]
    allow_headers: String,
    expose_headers: Option<String>,
    #[serde(default = "five")]
    max_age: f64,
    #[serde(default)]
    allow_credential: bool,
    allow_origins_by_regex: Option<Vec<String>>,
    allow_origins_by_metadata: Option<Vec<String>>,
    timing_allow_origins: Option<String>,
    timing_allow_origins_by_regex: Option<Vec<String>>,
}

/// A cors instance: regexes joined and compiled, metadata origins read, header values made.
#[derive(Debug)]
pub struct Cors {
    allow_origins: String,
    allow_methods: String,
    allow_headers: String,
    expose_headers: Option<String>,
    max_age: String,
    allow_credential: bool,
    origins_regex: Option<Regex>,
    metadata_keys: Option<Vec<String>>,
    /// The metadata's `allow_origins` map (`None` when the metadata has none).
    metadata_origins: Option<Map<String, Value>>,
    timing_allow_origins: Option<String>,
    timing_regex: Option<Regex>,
}

/// Builds cors from a checked configuration and the plugin metadata.
pub fn build(conf: &Value, env: &BuildEnv<'_>) -> Result<Arc<dyn Plugin>, String> {
    let c: Config = typed(conf)?;
    // APISIX joins the rules with `|` and searches once.
    let joined =
        |rules: Option<Vec<String>>| rules.map(|r| pcre::compile(&r.join("|"))).transpose();
    Ok(Arc::new(Cors {
        origins_regex: joined(c.allow_origins_by_regex)?,
        timing_regex: joined(c.timing_allow_origins_by_regex)?,
        allow_origins: c.allow_origins,
        allow_methods: match c.allow_methods.as_str() {
            "**" => ALL_METHODS.to_string(),
            _ => c.allow_methods,
        },
        allow_headers: c.allow_headers,
        expose_headers: c.expose_headers.filter(|e| !e.is_empty()),
        max_age: format_number(c.max_age),
        allow_credential: c.allow_credential,
        metadata_keys: c.allow_origins_by_metadata,
        metadata_origins: env
            .metadata
            .and_then(|m| m.get("allow_origins"))
            .and_then(Value::as_object)
            .cloned(),
        timing_allow_origins: c.timing_allow_origins,
    }))
}

/// What `rewrite` saw of the request: its `Origin` (APISIX keeps the original, later phases
/// may change the headers) and `Access-Control-Request-Headers` (the gateway hands the request
/// headers to the upstream before `header_filter` runs).
#[derive(Debug, Clone)]
struct Seen {
    origin: Option<String>,
    request_headers: Option<String>,
}

fn header_text(ctx: &Ctx, name: &str) -> Option<String> {
    ctx.headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// APISIX's `match_origins`: the same origin (both absent included), or `*`.
fn origin_matches(req: Option<&str>, allowed: Option<&str>) -> bool {
    req == allowed || allowed == Some("*")
}

/// `process_with_allow_origins`: what an origin list allows for `req`.
fn allowed_by_list(origins: &str, req: Option<&str>) -> Option<String> {
    let origins = match origins {
        "**" => req.unwrap_or("*"),
        other => other,
    };
    if !origins.contains(',') {
        return Some(origins.to_string());
    }
    let req = req?;
    origins
        .split(',')
        .any(|o| !o.is_empty() && o == req)
        .then(|| req.to_string())
}

/// `process_with_allow_origins_by_regex`: the request origin when the joined rules find it.
fn allowed_by_regex(re: &Regex, req: Option<&str>) -> Option<String> {
    req.filter(|r| re.is_match(r)).map(str::to_string)
}

impl Cors {
    /// `process_with_allow_origins_by_metadata`. A key missing from the metadata makes APISIX's
    /// header filter fail (the error), as soon as it is reached.
    fn allowed_by_metadata(&self, req: Option<&str>) -> Result<Option<String>, String> {
        let (Some(keys), Some(map)) = (&self.metadata_keys, &self.metadata_origins) else {
            return Ok(None);
        };
        for key in keys {
            let Some(origins) = map.get(key).and_then(Value::as_str) else {
                return Err(format!(
                    "no allow_origins for key {key} in the cors metadata"
                ));
            };
            let allowed = allowed_by_list(origins, req);
            if origin_matches(req, allowed.as_deref()) {
                return Ok(req.map(str::to_string));
            }
        }
        Ok(None)
    }

    /// The `Access-Control-Allow-Origin` value for a request origin, if any.
    fn allowed_origin(&self, req: Option<&str>) -> Result<Option<String>, String> {
        let mut allowed = None;
        let mut local = true;
        if self.metadata_keys.is_some() {
            allowed = self.allowed_by_metadata(req)?;
            local = !origin_matches(req, allowed.as_deref()) && self.allow_origins != "*";
        }
        if local {
            allowed = match &self.origins_regex {
                None => allowed_by_list(&self.allow_origins, req),
                Some(re) => allowed_by_regex(re, req),
            };
        }
        if !origin_matches(req, allowed.as_deref()) {
            allowed = self.allowed_by_metadata(req)?;
        }
        Ok(allowed)
    }

    /// The `Timing-Allow-Origin` value for a request origin, if any.
    fn timing_origin(&self, req: Option<&str>) -> Option<String> {
        let allowed = match (&self.timing_regex, &self.timing_allow_origins) {
            (Some(re), _) => allowed_by_regex(re, req),
            (None, Some(origins)) => allowed_by_list(origins, req),
            (None, None) => None,
        };
        allowed.filter(|a| origin_matches(req, Some(a)))
    }
}

fn set(headers: &mut http::HeaderMap, name: &'static str, value: Option<&str>) {
    let name = HeaderName::from_static(name);
    match value.map(HeaderValue::from_str) {
        Some(Ok(v)) => {
            headers.insert(name, v);
        }
        // `core.response.set_header(name, nil)` removes the header.
        None => {
            headers.remove(name);
        }
        Some(Err(_)) => {}
    }
}

impl Plugin for Cors {
    fn name(&self) -> &'static str {
        NAME
    }

    fn priority(&self) -> i32 {
        PRIORITY
    }

    fn rewrite(&self, ctx: &mut Ctx) -> Flow {
        let seen = Seen {
            origin: header_text(ctx, ORIGIN.as_str()),
            request_headers: header_text(ctx, REQUEST_HEADERS),
        };
        ctx.data.insert(seen);
        if ctx.method == Method::OPTIONS {
            return Flow::Respond(Reply::page(StatusCode::OK));
        }
        Flow::Continue
    }

    fn header_filter(&self, ctx: &mut Ctx) {
        let seen = ctx.data.get::<Seen>().cloned();
        let req = seen.as_ref().and_then(|s| s.origin.as_deref());
        let allowed = match self.allowed_origin(req) {
            Ok(allowed) => allowed,
            Err(e) => {
                tracing::error!("cors: {e}");
                return;
            }
        };
        let requested_headers = match &seen {
            Some(seen) => seen.request_headers.clone(),
            None => header_text(ctx, REQUEST_HEADERS),
        };
        let timing = self.timing_origin(req);
        let Some(head) = ctx.response.as_mut() else {
            return;
        };
        let headers = &mut head.headers;
        if self.allow_origins != "*" {
            headers.append(VARY, HeaderValue::from_static("Origin"));
        }
        if let Some(origin) = allowed {
            set(headers, "access-control-allow-origin", Some(&origin));
            set(
                headers,
                "access-control-allow-methods",
                Some(&self.allow_methods),
            );
            set(headers, "access-control-max-age", Some(&self.max_age));
            if let Some(expose) = &self.expose_headers {
                set(headers, "access-control-expose-headers", Some(expose));
            }
            let allow_headers = match self.allow_headers.as_str() {
                "**" => requested_headers.as_deref(),
                other => Some(other),
            };
            set(headers, "access-control-allow-headers", allow_headers);
            if self.allow_credential {
                set(headers, "access-control-allow-credentials", Some("true"));
            }
        }
        if let Some(timing) = timing {
            set(headers, "timing-allow-origin", Some(&timing));
        }
    }
}

#[cfg(test)]
mod tests;
