//! ua-restriction: allows or denies clients by `User-Agent` (APISIX priority 2999, access phase;
//! `apisix/plugins/ua-restriction.lua`).
//!
//! Exactly one of `allowlist` and `denylist` (PCRE-style regexes, searched unanchored in each
//! `User-Agent` value with surrounding whitespace stripped). With an allowlist a request passes
//! when one of its `User-Agent` headers matches a rule; with a denylist it is refused when one of
//! them matches. A request without `User-Agent` is refused unless `bypass_missing`. Refused:
//! 403 `{"message":"<message>"}` (`Not allowed`). Every rule must compile when written.

use std::sync::Arc;

use http::header::USER_AGENT;
use http::StatusCode;
use portico_model::PluginSpec;
use regex::Regex;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::uri_blocker::pcre;
use crate::{typed, BuildEnv, Ctx, Flow, Plugin, Reply};

/// Plugin name.
pub const NAME: &str = "ua-restriction";

/// APISIX priority.
const PRIORITY: i32 = 2999;

/// The registry row of ua-restriction.
pub fn spec() -> PluginSpec {
    let list = json!({"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}});
    PluginSpec {
        check: Some(check),
        ..PluginSpec::new(
            NAME,
            PRIORITY,
            json!({
                "type": "object",
                "properties": {
                    "bypass_missing": {"type": "boolean", "default": false},
                    "allowlist": list,
                    "denylist": list,
                    "message": {"type": "string", "minLength": 1, "maxLength": 1024, "default": "Not allowed"}
                },
                "oneOf": [{"required": ["allowlist"]}, {"required": ["denylist"]}]
            }),
        )
    }
}

fn check(conf: &Value) -> Result<(), String> {
    let c: Config = typed(conf)?;
    for list in [&c.allowlist, &c.denylist].into_iter().flatten() {
        pcre::compile_all(list)?;
    }
    Ok(())
}

fn not_allowed() -> String {
    "Not allowed".to_string()
}

/// The configuration.
#[derive(Debug, Deserialize)]
struct Config {
    #[serde(default)]
    bypass_missing: bool,
    allowlist: Option<Vec<String>>,
    denylist: Option<Vec<String>>,
    #[serde(default = "not_allowed")]
    message: String,
}

/// Which list the rules are.
#[derive(Debug)]
enum Rules {
    Allow(Vec<Regex>),
    Deny(Vec<Regex>),
}

/// A ua-restriction instance: the rules compiled once.
#[derive(Debug)]
pub struct UaRestriction {
    rules: Rules,
    bypass_missing: bool,
    message: String,
}

/// Builds ua-restriction from a checked configuration.
pub fn build(conf: &Value, _env: &BuildEnv<'_>) -> Result<Arc<dyn Plugin>, String> {
    let c: Config = typed(conf)?;
    let rules = match (c.allowlist, c.denylist) {
        (Some(allow), None) => Rules::Allow(pcre::compile_all(&allow)?),
        (None, Some(deny)) => Rules::Deny(pcre::compile_all(&deny)?),
        _ => return Err("exactly one of allowlist and denylist is expected".to_string()),
    };
    Ok(Arc::new(UaRestriction {
        rules,
        bypass_missing: c.bypass_missing,
        message: c.message,
    }))
}

/// Whether one `User-Agent` value matches a rule (`pl.stringx.strip` first).
fn matches(rules: &[Regex], agent: &str) -> bool {
    let agent = agent.trim_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    rules.iter().any(|re| re.is_match(agent))
}

impl Plugin for UaRestriction {
    fn name(&self) -> &'static str {
        NAME
    }

    fn priority(&self) -> i32 {
        PRIORITY
    }

    fn access(&self, ctx: &mut Ctx) -> Flow {
        let agents: Vec<String> = ctx
            .headers
            .get_all(USER_AGENT)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        if agents.is_empty() {
            if self.bypass_missing {
                return Flow::Continue;
            }
            return Flow::Respond(Reply::message(StatusCode::FORBIDDEN, &self.message));
        }
        let passed = match &self.rules {
            Rules::Allow(rules) => agents.iter().any(|a| matches(rules, a)),
            Rules::Deny(rules) => !agents.iter().any(|a| matches(rules, a)),
        };
        if passed {
            Flow::Continue
        } else {
            Flow::Respond(Reply::message(StatusCode::FORBIDDEN, &self.message))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{ctx_for, get, plugin};

    fn answer(conf: Value, agents: &[&str]) -> Option<(u16, String)> {
        let p = plugin(NAME, conf);
        let mut req = get("/");
        for a in agents {
            req = req.header("User-Agent", *a);
        }
        let mut ctx = ctx_for(req);
        match p.access(&mut ctx) {
            Flow::Respond(r) => Some((
                r.status.as_u16(),
                String::from_utf8_lossy(&r.body).into_owned(),
            )),
            Flow::Continue => None,
            Flow::Wait(_) => unreachable!("ua-restriction never waits"),
        }
    }

    fn denied() -> Option<(u16, String)> {
        Some((403, "{\"message\":\"Not allowed\"}\n".to_string()))
    }

    #[test]
    fn denylist() {
        let conf = json!({"denylist": ["my-bot1", "(Baiduspider)/(\\d+)\\.(\\d+)"]});
        assert_eq!(answer(conf.clone(), &["my-bot1"]), denied());
        assert_eq!(answer(conf.clone(), &["Baiduspider/3.0"]), denied());
        assert_eq!(answer(conf.clone(), &["my-bot1", "my-bot2"]), denied());
        assert_eq!(answer(conf.clone(), &["my-bot2", "my-bot1"]), denied());
        assert_eq!(answer(conf.clone(), &["foo/bar"]), None);
        assert_eq!(answer(conf.clone(), &["foo/bar", "curl"]), None);
        // Missing User-Agent is refused unless bypassed.
        assert_eq!(answer(conf, &[]), denied());
        let conf = json!({"denylist": ["x"], "bypass_missing": true});
        assert_eq!(answer(conf, &[]), None);
    }

    #[test]
    fn allowlist() {
        let conf = json!({"allowlist": ["my-bot1", "(Baiduspider)/(\\d+)\\.(\\d+)"],
            "message": "Do you want to do something bad?"});
        assert_eq!(answer(conf.clone(), &["my-bot1"]), None);
        assert_eq!(answer(conf.clone(), &["  Baiduspider/3.0  "]), None);
        assert_eq!(answer(conf.clone(), &["foo/bar", "my-bot1"]), None);
        assert_eq!(answer(conf.clone(), &["my-bot1", "foo/bar"]), None);
        assert_eq!(
            answer(conf.clone(), &["foo/bar"]),
            Some((
                403,
                "{\"message\":\"Do you want to do something bad?\"}\n".into()
            ))
        );
        assert_eq!(answer(conf, &[]).map(|a| a.0), Some(403));
    }

    #[test]
    fn rules_must_compile() {
        assert_eq!(
            check(&json!({"allowlist": ["ok", "(bad"], "bypass_missing": false, "message": "m"})),
            Err("pcre_compile() failed: missing ) in \"(bad\"".into())
        );
    }
}
