//! mocking: answers every request with a made-up response, without an upstream (APISIX priority
//! 10900, access phase; `apisix/plugins/mocking.lua`).
//!
//! The body is `response_example`, else an example generated from `response_schema`
//! ([`generate`]; JSON for `application/json` and `text/plain`, XML under `<data>` for
//! `application/xml` and `text/xml`); either way its `$var`s are resolved. The answer has status
//! `response_status` (200), `Content-Type: <content_type>` (`application/json;charset=utf8`), with
//! `with_mock_header` (default) `x-mock-by: Portico/<version>` (APISIX sends `APISIX/<version>`),
//! and every `response_headers` entry (values with `$var`s) added. It goes out after `delay`
//! seconds, waited without blocking the worker.
//!
//! Refused when written, beyond APISIX's checks: a 1xx or above-999 `response_status` (no final
//! response can carry it); `response_schema` without `response_example` for `text/html` (APISIX
//! then answers an empty body); header names or values that are not valid HTTP.

mod generate;

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use http::{HeaderMap, StatusCode};
use portico_model::PluginSpec;
use regex::Regex;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::template::Template;
use crate::{typed, BuildEnv, Ctx, Flow, Plugin, Reply};

pub use generate::{to_xml, Rng};

/// Plugin name.
pub const NAME: &str = "mocking";

/// APISIX priority.
const PRIORITY: i32 = 10900;

/// The `x-mock-by` value.
pub const MOCK_BY: &str = concat!("Portico/", env!("CARGO_PKG_VERSION"));

/// Media types mocking answers with.
const SUPPORTED: [&str; 5] = [
    "application/xml",
    "application/json",
    "text/plain",
    "text/html",
    "text/xml",
];

/// The configuration schema.
pub fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "delay": {"type": "integer", "default": 0},
            "response_status": {"type": "integer", "default": 200, "minimum": 100},
            "content_type": {"type": "string", "default": "application/json;charset=utf8"},
            "response_example": {"type": "string"},
            "response_schema": {"type": "object"},
            "with_mock_header": {"type": "boolean", "default": true},
            "response_headers": {
                "type": "object",
                "minProperties": 1,
                "patternProperties": {
                    "^[^:]+$": {"oneOf": [{"type": "string"}, {"type": "number"}]}
                }
            }
        },
        "anyOf": [
            {"required": ["response_example"]},
            {"required": ["response_schema"]}
        ]
    })
}

/// The registry row of mocking.
pub fn spec() -> PluginSpec {
    PluginSpec {
        check: Some(check),
        ..PluginSpec::new(NAME, PRIORITY, schema())
    }
}

/// `parse_content_type`: the media type is what precedes the last `;` of the first run of
/// printable ASCII that has one (`([ -~]*);([ -~]*)`), else the whole value.
fn media_type(content_type: &str) -> &str {
    static RE: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new("([ -~]*);([ -~]*)").ok());
    RE.as_ref()
        .and_then(|re| re.captures(content_type))
        .and_then(|c| c.get(1))
        .map_or(content_type, |m| m.as_str())
}

fn check(conf: &Value) -> Result<(), String> {
    let content_type = conf
        .get("content_type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let media = media_type(content_type);
    if !SUPPORTED.contains(&media) {
        return Err("unsupported content type!".to_string());
    }
    if HeaderValue::from_str(content_type).is_err() {
        return Err(format!("invalid content_type: {content_type}"));
    }
    let status = conf
        .get("response_status")
        .and_then(Value::as_u64)
        .unwrap_or(200);
    if !(200..=999).contains(&status) {
        return Err(format!(
            "response_status {status} is not supported: a final response needs 200–999"
        ));
    }
    if conf.get("response_example").is_none() && media == "text/html" {
        return Err(
            "response_schema generates JSON or XML bodies only: use a JSON, XML or text/plain content_type"
                .to_string(),
        );
    }
    for (name, value) in conf
        .get("response_headers")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        if HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(format!("invalid header name: {name}"));
        }
        if HeaderValue::from_str(&header_text(value)).is_err() {
            return Err(format!("invalid value of header {name}"));
        }
    }
    Ok(())
}

/// A header value as Lua's `tostring` prints it.
fn header_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => portico_model::schema::format_number(n.as_f64().unwrap_or_default()),
        other => other.to_string(),
    }
}

#[derive(Debug, Deserialize)]
struct Config {
    delay: i64,
    response_status: u16,
    content_type: String,
    response_example: Option<String>,
    response_schema: Option<Value>,
    with_mock_header: bool,
    response_headers: Option<serde_json::Map<String, Value>>,
}

/// How a body is made.
#[derive(Debug)]
enum Body {
    Example(Template),
    Json(Value),
    Xml(Value),
}

/// A mocking instance.
#[derive(Debug)]
pub struct Mocking {
    delay: Option<Duration>,
    status: StatusCode,
    /// `Content-Type` and `x-mock-by`.
    headers: HeaderMap,
    body: Body,
    extra: Vec<(HeaderName, Template)>,
}

/// Builds mocking from a checked configuration.
pub fn build(conf: &Value, _env: &BuildEnv<'_>) -> Result<Arc<dyn Plugin>, String> {
    let c: Config = typed(conf)?;
    let mut headers = HeaderMap::new();
    let content_type = HeaderValue::from_str(&c.content_type).map_err(|e| e.to_string())?;
    headers.insert(CONTENT_TYPE, content_type);
    if c.with_mock_header {
        headers.insert("x-mock-by", HeaderValue::from_static(MOCK_BY));
    }
    let media = media_type(&c.content_type);
    let body = match (c.response_example, c.response_schema) {
        (Some(example), _) => Body::Example(Template::new(&example)),
        (None, Some(schema)) if media.ends_with("xml") => Body::Xml(schema),
        (None, Some(schema)) => Body::Json(schema),
        (None, None) => return Err("response_example or response_schema is required".into()),
    };
    let mut extra = Vec::new();
    for (name, value) in c.response_headers.iter().flatten() {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| e.to_string())?;
        extra.push((name, Template::new(&header_text(value))));
    }
    Ok(Arc::new(Mocking {
        delay: u64::try_from(c.delay)
            .ok()
            .filter(|d| *d > 0)
            .map(Duration::from_secs),
        status: StatusCode::from_u16(c.response_status).map_err(|e| e.to_string())?,
        headers,
        body,
        extra,
    }))
}

impl Mocking {
    /// The answer to one request.
    fn reply(&self, ctx: &Ctx) -> Reply {
        let body = match &self.body {
            Body::Example(t) => t.render(ctx).0,
            Body::Json(schema) => {
                let example = generate::object(schema, &mut Rng::default());
                let text = portico_model::schema::cjson_encode(&example);
                Template::new(&text).render(ctx).0
            }
            Body::Xml(schema) => {
                let example = generate::object(schema, &mut Rng::default());
                Template::new(&to_xml(&example)).render(ctx).0
            }
        };
        let mut headers = self.headers.clone();
        for (name, value) in &self.extra {
            match HeaderValue::from_str(&value.render(ctx).0) {
                Ok(v) => {
                    headers.append(name.clone(), v);
                }
                Err(_) => tracing::debug!("mocking: invalid value of header {name}"),
            }
        }
        Reply {
            status: self.status,
            headers,
            body: body.into_bytes(),
        }
    }
}

impl Plugin for Mocking {
    fn name(&self) -> &'static str {
        NAME
    }

    fn priority(&self) -> i32 {
        PRIORITY
    }

    fn access(&self, ctx: &mut Ctx) -> Flow {
        let reply = self.reply(ctx);
        match self.delay {
            None => Flow::Respond(reply),
            Some(delay) => Flow::wait(async move {
                tokio::time::sleep(delay).await;
                Flow::Respond(reply)
            }),
        }
    }
}

#[cfg(test)]
mod tests;
