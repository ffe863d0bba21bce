//! referer-restriction: allows or denies requests by the host of their `Referer` (APISIX
//! priority 2990, access phase; `apisix/plugins/referer-restriction.lua`).
//!
//! Exactly one of `whitelist` and `blacklist`, host patterns: `a.x.com` matches that host
//! exactly, `*.x.com` any host ending in `.x.com`, `*` every host (comparisons are
//! case-sensitive, as APISIX's). The host is taken from the first `Referer` header the way
//! lua-resty-http's `parse_uri` does (`http://`, `https://` or scheme-less `//`, then the host up
//! to `:`, `/` or `?`, or a bracketed IPv6 literal); a missing or malformed `Referer` is refused
//! unless `bypass_missing`. Refused: 403 `{"message":"<message>"}`
//! (`Your referer host is not allowed`).

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use http::header::REFERER;
use http::StatusCode;
use portico_model::schemas::defs::host_def;
use portico_model::PluginSpec;
use regex::Regex;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{typed, BuildEnv, Ctx, Flow, Plugin, Reply};

/// Plugin name.
pub const NAME: &str = "referer-restriction";

/// APISIX priority.
const PRIORITY: i32 = 2990;

const DEFAULT_MESSAGE: &str = "Your referer host is not allowed";

/// The registry row of referer-restriction.
pub fn spec() -> PluginSpec {
    let list = json!({"type": "array", "items": host_def(), "minItems": 1});
    PluginSpec::new(
        NAME,
        PRIORITY,
        json!({
            "type": "object",
            "properties": {
                "bypass_missing": {"type": "boolean", "default": false},
                "whitelist": list,
                "blacklist": list,
                "message": {"type": "string", "minLength": 1, "maxLength": 1024, "default": DEFAULT_MESSAGE}
            },
            "oneOf": [{"required": ["whitelist"]}, {"required": ["blacklist"]}]
        }),
    )
}

fn default_message() -> String {
    DEFAULT_MESSAGE.to_string()
}

/// The configuration.
#[derive(Debug, Deserialize)]
struct Config {
    #[serde(default)]
    bypass_missing: bool,
    whitelist: Option<Vec<String>>,
    blacklist: Option<Vec<String>>,
    #[serde(default = "default_message")]
    message: String,
}

/// Host patterns: exact names and `*` suffixes.
#[derive(Debug, Default)]
struct Hosts {
    exact: HashSet<String>,
    suffixes: Vec<String>,
}

impl Hosts {
    fn new(patterns: &[String]) -> Hosts {
        let mut hosts = Hosts::default();
        for p in patterns {
            match p.strip_prefix('*') {
                Some(suffix) => hosts.suffixes.push(suffix.to_string()),
                None => {
                    hosts.exact.insert(p.clone());
                }
            }
        }
        hosts
    }

    fn matches(&self, host: &str) -> bool {
        self.exact.contains(host) || self.suffixes.iter().any(|s| host.ends_with(s.as_str()))
    }
}

/// A referer-restriction instance.
#[derive(Debug)]
pub struct RefererRestriction {
    hosts: Hosts,
    /// `true` for a whitelist (block what does not match), `false` for a blacklist.
    allow: bool,
    bypass_missing: bool,
    message: String,
}

/// Builds referer-restriction from a checked configuration.
pub fn build(conf: &Value, _env: &BuildEnv<'_>) -> Result<Arc<dyn Plugin>, String> {
    let c: Config = typed(conf)?;
    let (hosts, allow) = match (c.whitelist, c.blacklist) {
        (Some(w), None) => (Hosts::new(&w), true),
        (None, Some(b)) => (Hosts::new(&b), false),
        _ => return Err("exactly one of whitelist and blacklist is expected".to_string()),
    };
    Ok(Arc::new(RefererRestriction {
        hosts,
        allow,
        bypass_missing: c.bypass_missing,
        message: c.message,
    }))
}

/// The host part of a `Referer`, as lua-resty-http's `parse_uri` reads it; `None` when the
/// value is not a URI it parses.
pub(crate) fn referer_host(referer: &str) -> Option<&str> {
    static URI: OnceLock<Option<Regex>> = OnceLock::new();
    let re = URI
        .get_or_init(|| Regex::new(r"^(?:(https?):)?//((?:[^\[\]:/?]+)|(?:\[.+\]))").ok())
        .as_ref()?;
    re.captures(referer)
        .and_then(|c| c.get(2))
        .map(|m| m.as_str())
}

impl Plugin for RefererRestriction {
    fn name(&self) -> &'static str {
        NAME
    }

    fn priority(&self) -> i32 {
        PRIORITY
    }

    fn access(&self, ctx: &mut Ctx) -> Flow {
        let referer = ctx
            .headers
            .get(REFERER)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let block = match referer.as_deref().and_then(referer_host) {
            None => !self.bypass_missing,
            Some(host) => self.hosts.matches(host) != self.allow,
        };
        if block {
            return Flow::Respond(Reply::message(StatusCode::FORBIDDEN, &self.message));
        }
        Flow::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{ctx_for, get, plugin};

    fn status(conf: &Value, referer: Option<&str>) -> u16 {
        let p = plugin(NAME, conf.clone());
        let mut req = get("/");
        if let Some(r) = referer {
            req = req.header("Referer", r);
        }
        match p.access(&mut ctx_for(req)) {
            Flow::Respond(r) => {
                assert_eq!(
                    String::from_utf8_lossy(&r.body),
                    format!(
                        "{{\"message\":\"{}\"}}\n",
                        conf["message"].as_str().unwrap_or(DEFAULT_MESSAGE)
                    )
                );
                r.status.as_u16()
            }
            Flow::Continue => 200,
            Flow::Wait(_) => unreachable!("referer-restriction never waits"),
        }
    }

    #[test]
    fn parses_hosts_like_resty_http() {
        assert_eq!(referer_host("http://www.foo.com/x?y"), Some("www.foo.com"));
        assert_eq!(referer_host("https://a.b:8443/"), Some("a.b"));
        assert_eq!(referer_host("//schemeless.com"), Some("schemeless.com"));
        assert_eq!(referer_host("http://[::1]:80/"), Some("[::1]"));
        assert_eq!(referer_host("HTTP://upper.com"), None);
        assert_eq!(referer_host("ftp://x.com"), None);
        assert_eq!(referer_host("x.com"), None);
    }

    #[test]
    fn whitelist() {
        let conf = json!({"whitelist": ["*.xx.com", "yy.com"]});
        assert_eq!(status(&conf, Some("http://www.xx.com/x")), 200);
        assert_eq!(status(&conf, Some("https://yy.com")), 200);
        assert_eq!(status(&conf, Some("http://xx.com")), 403);
        assert_eq!(status(&conf, Some("http://www.yy.com")), 403);
        assert_eq!(status(&conf, Some("http://YY.com")), 403);
        assert_eq!(status(&conf, None), 403);
        assert_eq!(status(&conf, Some("malformed")), 403);
        let bypass = json!({"whitelist": ["yy.com"], "bypass_missing": true, "message": "go"});
        assert_eq!(status(&bypass, None), 200);
        assert_eq!(status(&bypass, Some("/relative")), 200);
        assert_eq!(status(&bypass, Some("http://zz.com")), 403);
    }

    #[test]
    fn blacklist() {
        let conf = json!({"blacklist": ["*.xx.com"], "message": "Your referer host is deny"});
        assert_eq!(status(&conf, Some("http://www.xx.com")), 403);
        assert_eq!(status(&conf, Some("http://www.yy.com")), 200);
        assert_eq!(status(&conf, None), 403);
        let all = json!({"blacklist": ["*"]});
        assert_eq!(status(&all, Some("http://any.where")), 403);
    }
}
