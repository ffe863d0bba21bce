//! uri-blocker: refuses requests whose URI matches one of the `block_rules` regexes (APISIX
//! priority 2900, rewrite phase; `apisix/plugins/uri-blocker.lua`).
//!
//! The rules are joined with `|` (prefixed `(?i)` with `case_insensitive`) and searched, not
//! anchored, in APISIX's `$request_uri`: the normalised path (`$uri`, dot segments resolved and
//! percent-decoded, so `/./internal/x` cannot slip past `^/internal/`) followed by `?` and the
//! query string as sent. A hit answers `rejected_code` (403) with `{"error_msg":"<rejected_msg>"}`
//! when a message is configured, else the nginx page of that status. Every rule must compile
//! when written.

use std::sync::Arc;

use http::StatusCode;
use portico_expr::Vars;
use portico_model::PluginSpec;
use regex::Regex;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{typed, BuildEnv, Ctx, Flow, Plugin, Reply};

pub(crate) mod pcre;

/// Plugin name.
pub const NAME: &str = "uri-blocker";

/// APISIX priority.
const PRIORITY: i32 = 2900;

/// The registry row of uri-blocker.
pub fn spec() -> PluginSpec {
    PluginSpec {
        check: Some(check),
        ..PluginSpec::new(
            NAME,
            PRIORITY,
            json!({
                "type": "object",
                "properties": {
                    "block_rules": {
                        "type": "array",
                        "items": {"type": "string", "minLength": 1, "maxLength": 4096},
                        "uniqueItems": true
                    },
                    "rejected_code": {"type": "integer", "minimum": 200, "default": 403},
                    "rejected_msg": {"type": "string", "minLength": 1},
                    "case_insensitive": {"type": "boolean", "default": false}
                },
                "required": ["block_rules"]
            }),
        )
    }
}

fn check(conf: &Value) -> Result<(), String> {
    let c: Config = typed(conf)?;
    pcre::compile_all(&c.block_rules)?;
    status(c.rejected_code).map(|_| ())
}

/// APISIX only asks for `rejected_code >= 200`; an HTTP status has three digits.
fn status(code: u64) -> Result<StatusCode, String> {
    u16::try_from(code)
        .ok()
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or_else(|| format!("rejected_code {code} is not an HTTP status Portico can send"))
}

fn forbidden() -> u64 {
    403
}

/// `block_rules` as Lua reads it: an empty `{}` passes the schema as an empty array.
fn rules<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::Object(o) if o.is_empty() => Ok(Vec::new()),
        other => serde_json::from_value(other).map_err(serde::de::Error::custom),
    }
}

/// The configuration.
#[derive(Debug, Deserialize)]
struct Config {
    #[serde(deserialize_with = "rules")]
    block_rules: Vec<String>,
    #[serde(default = "forbidden")]
    rejected_code: u64,
    rejected_msg: Option<String>,
    #[serde(default)]
    case_insensitive: bool,
}

/// A uri-blocker instance: the rules joined into one regex.
#[derive(Debug)]
pub struct UriBlocker {
    rules: Regex,
    status: StatusCode,
    message: Option<String>,
}

/// Builds uri-blocker from a checked configuration.
pub fn build(conf: &Value, _env: &BuildEnv<'_>) -> Result<Arc<dyn Plugin>, String> {
    let c: Config = typed(conf)?;
    // An empty rule list joins into the empty pattern, which PCRE finds in every URI.
    let mut joined = c.block_rules.join("|");
    if c.case_insensitive {
        joined.insert_str(0, "(?i)");
    }
    Ok(Arc::new(UriBlocker {
        rules: pcre::compile(&joined)?,
        status: status(c.rejected_code)?,
        message: c.rejected_msg,
    }))
}

impl UriBlocker {
    /// APISIX's `$request_uri`: the normalised `$uri`, then `?` and the arguments if any.
    fn request_uri(ctx: &Ctx) -> String {
        let path = ctx.var("uri").map(|p| p.into_owned()).unwrap_or_default();
        match ctx.query() {
            "" => path,
            query => format!("{path}?{query}"),
        }
    }
}

impl Plugin for UriBlocker {
    fn name(&self) -> &'static str {
        NAME
    }

    fn priority(&self) -> i32 {
        PRIORITY
    }

    fn rewrite(&self, ctx: &mut Ctx) -> Flow {
        if !self.rules.is_match(&Self::request_uri(ctx)) {
            return Flow::Continue;
        }
        Flow::Respond(match &self.message {
            Some(msg) => Reply::error_msg(self.status, msg),
            None => Reply::page(self.status),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{ctx_for, get, plugin};

    fn answer(conf: Value, uri: &str, path: Option<&str>) -> Option<(u16, String)> {
        let p = plugin(NAME, conf);
        let mut ctx = ctx_for(get(uri));
        if let Some(path) = path {
            ctx.path = path.to_string();
        }
        match p.rewrite(&mut ctx) {
            Flow::Respond(r) => Some((
                r.status.as_u16(),
                String::from_utf8_lossy(&r.body).into_owned(),
            )),
            Flow::Continue => None,
            Flow::Wait(_) => unreachable!("uri-blocker never waits"),
        }
    }

    #[test]
    fn rules_search_the_uri_and_its_query() {
        let conf = json!({"block_rules": ["aa", "bb", "c\\d+"]});
        assert_eq!(
            answer(conf.clone(), "/hello?x=bb", None).map(|r| r.0),
            Some(403)
        );
        assert_eq!(
            answer(conf.clone(), "/hello?c1=2", None).map(|r| r.0),
            Some(403)
        );
        assert_eq!(answer(conf.clone(), "/hello?cc=2", None), None);
        let page = answer(conf, "/aa", None).expect("blocked").1;
        assert!(page.contains("<title>403 Forbidden</title>"), "{page}");
    }

    #[test]
    fn sql_injection_rules() {
        let conf = json!({"block_rules": ["select.+(from|limit)", "(?:(union(.*?)select))"]});
        assert!(answer(conf.clone(), "/hello?name=;select%20from%20sys", None).is_some());
        assert!(answer(conf.clone(), "/hello?name=;union%20select%20", None).is_some());
        assert!(answer(conf, "/hello?cc=2", None).is_none());
    }

    #[test]
    fn message_code_and_case() {
        let conf = json!({"block_rules": ["AA"], "rejected_msg": "access is not allowed",
            "rejected_code": 451, "case_insensitive": true});
        assert_eq!(
            answer(conf.clone(), "/hello?aa=1", None),
            Some((451, "{\"error_msg\":\"access is not allowed\"}\n".into()))
        );
        let conf = json!({"block_rules": ["AA"]});
        assert_eq!(answer(conf, "/hello?aa=1", None), None);
    }

    #[test]
    fn matches_the_normalised_path() {
        // The gateway routes on the normalised path; the raw target keeps the dot segment.
        let conf = json!({"block_rules": ["^/internal/"]});
        assert!(answer(conf.clone(), "/./internal/x?aa=1", Some("/internal/x")).is_some());
        assert!(answer(conf, "/public/internal/", Some("/public/internal/")).is_none());
    }

    #[test]
    fn no_rules_block_everything() {
        // PCRE finds the empty pattern anywhere, as APISIX's joined empty list does.
        assert!(answer(json!({"block_rules": []}), "/x", None).is_some());
        assert!(answer(json!({"block_rules": {}}), "/x", None).is_some());
    }

    #[test]
    fn checks() {
        assert_eq!(
            check(&json!({"block_rules": ["^a", "^b("], "rejected_code": 403})),
            Err("pcre_compile() failed: missing ) in \"^b(\"".into())
        );
        assert!(check(&json!({"block_rules": ["^a"], "rejected_code": 1000})).is_err());
        assert_eq!(
            check(&json!({"block_rules": ["^a"], "rejected_code": 599})),
            Ok(())
        );
    }
}
