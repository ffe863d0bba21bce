//! redirect: answers with a redirection instead of proxying (APISIX priority 900, rewrite phase;
//! `apisix/plugins/redirect.lua`).
//!
//! The target is one of:
//! * `http_to_https` on a request whose `X-Forwarded-Proto` (else `$scheme`) is not `https`:
//!   `https://$host:<port>$request_uri`, with 301 for GET and HEAD and 308 otherwise
//!   (`ret_code` does not apply). The port is plugin metadata `https_port` (APISIX's
//!   `plugin_attr.redirect.https_port`), else 9443 — the default HTTPS listener of Portico and of
//!   APISIX; 443 is left out of the URL;
//! * `uri`, with `$var` / `${var}` references (names of letters, digits and `_`; an unset
//!   variable is empty; `\$name` stays as written, backslash included; any other backslash is
//!   dropped — APISIX's own template grammar, not `resolve_var`'s);
//! * `regex_uri` `[pattern, template]` applied to `$uri` (first match, `$1`...); no match, no
//!   redirect — the request goes on.
//!
//! `encode_uri` escapes the part before `?` like `ngx_escape_uri`; `append_query_string` adds the
//! request's query with `?` (or `&` when the target has one). The answer is `ret_code` (302),
//! `Location: <target>` and nginx's page for the status.
//!
//! Differences: `regex_uri` uses the `regex` crate's dialect, and an invalid replacement template
//! is refused when written (APISIX fails at request time); `ret_code` above 999 is refused.

use std::sync::Arc;

use http::{Method, StatusCode};
use portico_expr::Vars;
use portico_model::PluginSpec;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::proxy_rewrite::uri_safe_encode;
use crate::response_rewrite::ngx_re::{NgxRegex, Replacement};
use crate::{typed, BuildEnv, Ctx, Flow, Plugin, Reply};

/// Plugin name.
pub const NAME: &str = "redirect";

/// APISIX priority.
const PRIORITY: i32 = 900;

/// The HTTPS port of `http_to_https` targets when plugin metadata names none.
pub const DEFAULT_HTTPS_PORT: u16 = 9443;

/// APISIX's pattern of `uri` (also its template grammar).
const URI_PATTERN: &str =
    r"(\\\$[0-9a-zA-Z_]+)|\$\{([0-9a-zA-Z_]+)\}|\$([0-9a-zA-Z_]+)|(\$|[^$\\]+)";

/// The configuration schema.
pub fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "ret_code": {"type": "integer", "minimum": 200, "default": 302},
            "uri": {"type": "string", "minLength": 2, "pattern": URI_PATTERN},
            "regex_uri": {
                "description": "params for generating new uri that substitute from client uri, first param is regular expression, the second one is uri template",
                "type": "array",
                "maxItems": 2,
                "minItems": 2,
                "items": {"description": "regex uri", "type": "string"}
            },
            "http_to_https": {"type": "boolean"},
            "encode_uri": {"type": "boolean", "default": false},
            "append_query_string": {"type": "boolean", "default": false}
        },
        "oneOf": [
            {"required": ["uri"]},
            {"required": ["regex_uri"]},
            {"required": ["http_to_https"]}
        ]
    })
}

/// The plugin metadata schema: Portico's stand-in for `plugin_attr.redirect`.
pub fn metadata_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "https_port": {"type": "integer", "minimum": 1, "maximum": 65535}
        }
    })
}

/// The registry row of redirect.
pub fn spec() -> PluginSpec {
    PluginSpec {
        check: Some(check),
        metadata_schema: Some(metadata_schema()),
        ..PluginSpec::new(NAME, PRIORITY, schema())
    }
}

fn check(conf: &Value) -> Result<(), String> {
    if let Some([pattern, template]) = conf
        .get("regex_uri")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
    {
        let (pattern, template) = (
            pattern.as_str().unwrap_or_default(),
            template.as_str().unwrap_or_default(),
        );
        let err = NgxRegex::new(pattern, "jo")
            .err()
            .or_else(|| Replacement::new(template).err());
        if let Some(err) = err {
            return Err(format!(
                "invalid regex_uri ({pattern}, {template}), err:{err}"
            ));
        }
    }
    let yes = |k: &str| conf.get(k).and_then(Value::as_bool) == Some(true);
    if yes("http_to_https") && yes("append_query_string") {
        return Err(
            "only one of `http_to_https` and `append_query_string` can be configured.".to_string(),
        );
    }
    if conf
        .get("ret_code")
        .and_then(Value::as_u64)
        .is_some_and(|c| c > 999)
    {
        return Err("ret_code must be a valid HTTP status (200–999)".to_string());
    }
    Ok(())
}

/// A piece of a `uri` template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Text(String),
    Var(String),
}

fn is_name(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Splits a `uri` the way APISIX's `re_gmatch` over [`URI_PATTERN`] does.
fn parse_uri(text: &str) -> Vec<Seg> {
    let bytes = text.as_bytes();
    let name_len = |from: usize| {
        bytes[from.min(bytes.len())..]
            .iter()
            .take_while(|b| is_name(**b))
            .count()
    };
    let mut segs = Vec::new();
    let push_text = |segs: &mut Vec<Seg>, t: &str| match segs.last_mut() {
        Some(Seg::Text(prev)) => prev.push_str(t),
        _ => segs.push(Seg::Text(t.to_string())),
    };
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if bytes.get(i + 1) == Some(&b'$') && name_len(i + 2) > 0 => {
                let end = i + 2 + name_len(i + 2);
                push_text(&mut segs, &text[i..end]);
                i = end;
            }
            // A backslash that does not start `\$name` matches no alternative: skipped.
            b'\\' => i += 1,
            b'$' if bytes.get(i + 1) == Some(&b'{')
                && name_len(i + 2) > 0
                && bytes.get(i + 2 + name_len(i + 2)) == Some(&b'}') =>
            {
                let n = name_len(i + 2);
                segs.push(Seg::Var(text[i + 2..i + 2 + n].to_string()));
                i += 3 + n;
            }
            b'$' if name_len(i + 1) > 0 => {
                let n = name_len(i + 1);
                segs.push(Seg::Var(text[i + 1..i + 1 + n].to_string()));
                i += 1 + n;
            }
            b'$' => {
                push_text(&mut segs, "$");
                i += 1;
            }
            _ => {
                let end = text[i..].find(['$', '\\']).map_or(text.len(), |n| i + n);
                push_text(&mut segs, &text[i..end]);
                i = end;
            }
        }
    }
    segs
}

fn render(segs: &[Seg], vars: &dyn Vars) -> String {
    let mut out = String::new();
    for seg in segs {
        match seg {
            Seg::Text(t) => out.push_str(t),
            Seg::Var(name) => {
                if let Some(v) = vars.var(name) {
                    out.push_str(&v);
                }
            }
        }
    }
    out
}

#[derive(Debug, Deserialize)]
struct Config {
    ret_code: u16,
    uri: Option<String>,
    regex_uri: Option<Vec<String>>,
    #[serde(default)]
    http_to_https: bool,
    encode_uri: bool,
    append_query_string: bool,
}

/// A redirect instance.
#[derive(Debug)]
pub struct Redirect {
    ret_code: StatusCode,
    uri: Option<Vec<Seg>>,
    regex_uri: Option<(NgxRegex, Replacement)>,
    http_to_https: bool,
    encode_uri: bool,
    append_query_string: bool,
    https_port: u16,
}

/// Builds redirect from a checked configuration and its metadata.
pub fn build(conf: &Value, env: &BuildEnv<'_>) -> Result<Arc<dyn Plugin>, String> {
    let c: Config = typed(conf)?;
    let regex_uri = match c.regex_uri.as_deref() {
        Some([pattern, template]) => {
            Some((NgxRegex::new(pattern, "jo")?, Replacement::new(template)?))
        }
        _ => None,
    };
    let https_port = env
        .metadata
        .and_then(|m| m.get("https_port"))
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(DEFAULT_HTTPS_PORT);
    Ok(Arc::new(Redirect {
        ret_code: StatusCode::from_u16(c.ret_code).map_err(|e| e.to_string())?,
        uri: c.uri.as_deref().map(parse_uri),
        regex_uri,
        http_to_https: c.http_to_https,
        encode_uri: c.encode_uri,
        append_query_string: c.append_query_string,
        https_port,
    }))
}

impl Redirect {
    /// The target and status, or `None` when this request is not redirected.
    fn target(&self, ctx: &Ctx) -> Option<(String, StatusCode)> {
        let proto = ctx.header("X-Forwarded-Proto").unwrap_or(ctx.scheme);
        if self.http_to_https && proto != "https" {
            let port = match self.https_port {
                443 => String::new(),
                p => format!(":{p}"),
            };
            let host = ctx.var("host").unwrap_or_default();
            let request_uri = ctx.var("request_uri").unwrap_or_default();
            let code = if ctx.method == Method::GET || ctx.method == Method::HEAD {
                StatusCode::MOVED_PERMANENTLY
            } else {
                StatusCode::PERMANENT_REDIRECT
            };
            return Some((format!("https://{host}{port}{request_uri}"), code));
        }
        if let Some(segs) = &self.uri {
            return Some((render(segs, ctx), self.ret_code));
        }
        let (re, with) = self.regex_uri.as_ref()?;
        let uri = ctx.var("uri").unwrap_or_default();
        let (out, n) = re.sub(uri.as_bytes(), with);
        (n > 0).then(|| (String::from_utf8_lossy(&out).into_owned(), self.ret_code))
    }
}

impl Plugin for Redirect {
    fn name(&self) -> &'static str {
        NAME
    }

    fn priority(&self) -> i32 {
        PRIORITY
    }

    fn rewrite(&self, ctx: &mut Ctx) -> Flow {
        let Some((mut target, code)) = self.target(ctx) else {
            return Flow::Continue;
        };
        let query_at = target.find('?');
        if self.encode_uri {
            let (path, rest) = target.split_at(query_at.unwrap_or(target.len()));
            target = format!("{}{rest}", uri_safe_encode(path));
        }
        let args = ctx.query();
        if self.append_query_string && !args.is_empty() {
            target.push(if query_at.is_some() { '&' } else { '?' });
            target.push_str(args);
        }
        Flow::Respond(Reply::page(code).with_header("Location", &target))
    }
}

#[cfg(test)]
mod tests;
