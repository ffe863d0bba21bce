//! consumer-restriction: allows or denies requests by who made them or where they go (APISIX
//! priority 2400, access phase; `apisix/plugins/consumer-restriction.lua`).
//!
//! `type` picks the value checked: `consumer_name` (the authenticated consumer's username),
//! `consumer_group_id` (its group) or `route_id`. No value (no consumer authenticated) answers
//! 401 `{"message":"The request is rejected, please check the <type> for this request"}`. A
//! value in `blacklist`, or not in `whitelist`, or (when not whitelisted) a method not listed
//! for it in `allowed_by_methods`, answers `rejected_code` (403) with
//! `{"message":"<rejected_msg>"}` or `{"message":"The <type> is forbidden."}`.
//!
//! `type: service_id` is refused when written: Portico has no services.

use std::sync::Arc;

use http::StatusCode;
use portico_model::schemas::defs::method_schema;
use portico_model::PluginSpec;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{typed, BuildEnv, Ctx, Flow, Plugin, Reply};

/// Plugin name.
pub const NAME: &str = "consumer-restriction";

const PRIORITY: i32 = 2400;

/// The registry row of consumer-restriction.
pub fn spec() -> PluginSpec {
    PluginSpec {
        check: Some(check),
        ..PluginSpec::new(
            NAME,
            PRIORITY,
            json!({
                "type": "object",
                "properties": {
                    "type": {
                        "type": "string",
                        "enum": ["consumer_name", "service_id", "route_id", "consumer_group_id"],
                        "default": "consumer_name"
                    },
                    "blacklist": {"type": "array", "minItems": 1, "items": {"type": "string"}},
                    "whitelist": {"type": "array", "minItems": 1, "items": {"type": "string"}},
                    "allowed_by_methods": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "user": {"type": "string"},
                                "methods": {"type": "array", "minItems": 1, "items": method_schema()}
                            }
                        }
                    },
                    "rejected_code": {"type": "integer", "minimum": 200, "default": 403},
                    "rejected_msg": {"type": "string"}
                },
                "anyOf": [
                    {"required": ["blacklist"]},
                    {"required": ["whitelist"]},
                    {"required": ["allowed_by_methods"]}
                ]
            }),
        )
    }
}

fn check(conf: &Value) -> Result<(), String> {
    if conf.get("type").and_then(Value::as_str) == Some("service_id") {
        return Err(
            "type \"service_id\" is not supported: Portico has no services (use route_id, consumer_name or consumer_group_id)"
                .into(),
        );
    }
    let code = conf.get("rejected_code").and_then(Value::as_u64);
    if code.is_some_and(|c| c > 999) {
        return Err("rejected_code must be at most 999".into());
    }
    Ok(())
}

/// What the plugin checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Type {
    ConsumerName,
    ConsumerGroupId,
    RouteId,
    ServiceId,
}

impl Type {
    fn word(self) -> &'static str {
        match self {
            Type::ConsumerName => "consumer_name",
            Type::ConsumerGroupId => "consumer_group_id",
            Type::RouteId => "route_id",
            Type::ServiceId => "service_id",
        }
    }
}

fn default_type() -> Type {
    Type::ConsumerName
}

fn default_code() -> u16 {
    403
}

#[derive(Debug, Deserialize)]
struct MethodRule {
    user: Option<String>,
    #[serde(default)]
    methods: Vec<String>,
}

/// The configuration.
#[derive(Debug, Deserialize)]
struct Config {
    #[serde(rename = "type", default = "default_type")]
    kind: Type,
    blacklist: Option<Vec<String>>,
    whitelist: Option<Vec<String>>,
    #[serde(default)]
    allowed_by_methods: Vec<MethodRule>,
    #[serde(default = "default_code")]
    rejected_code: u16,
    rejected_msg: Option<String>,
}

/// A consumer-restriction instance.
#[derive(Debug)]
pub struct ConsumerRestriction {
    kind: Type,
    blacklist: Vec<String>,
    whitelist: Option<Vec<String>>,
    allowed_by_methods: Vec<MethodRule>,
    rejected_code: StatusCode,
    rejected_msg: String,
    missing_msg: String,
}

/// Builds consumer-restriction from a checked configuration.
pub fn build(conf: &Value, _env: &BuildEnv<'_>) -> Result<Arc<dyn Plugin>, String> {
    let c: Config = typed(conf)?;
    if c.kind == Type::ServiceId {
        return Err("type \"service_id\" is not supported: Portico has no services".into());
    }
    let rejected_code = StatusCode::from_u16(c.rejected_code)
        .map_err(|_| format!("invalid rejected_code {}", c.rejected_code))?;
    let word = c.kind.word();
    Ok(Arc::new(ConsumerRestriction {
        kind: c.kind,
        blacklist: c.blacklist.unwrap_or_default(),
        whitelist: c.whitelist.filter(|w| !w.is_empty()),
        allowed_by_methods: c.allowed_by_methods,
        rejected_code,
        rejected_msg: c
            .rejected_msg
            .unwrap_or_else(|| format!("The {word} is forbidden.")),
        missing_msg: format!("The request is rejected, please check the {word} for this request"),
    }))
}

impl ConsumerRestriction {
    fn value<'a>(&self, ctx: &'a Ctx) -> Option<&'a str> {
        match self.kind {
            Type::ConsumerName => ctx.consumer.as_ref().map(|c| c.username.as_str()),
            Type::ConsumerGroupId => ctx.consumer.as_ref().and_then(|c| c.group_id()),
            Type::RouteId => Some(&*ctx.route_id).filter(|id| !id.is_empty()),
            Type::ServiceId => None,
        }
    }

    /// `is_method_allowed`: the first rule for `user` decides; a user without a rule may.
    fn method_allowed(&self, user: &str, method: &str) -> bool {
        match self
            .allowed_by_methods
            .iter()
            .find(|r| r.user.as_deref() == Some(user))
        {
            Some(rule) => rule.methods.iter().any(|m| m == method),
            None => true,
        }
    }
}

impl Plugin for ConsumerRestriction {
    fn name(&self) -> &'static str {
        NAME
    }

    fn priority(&self) -> i32 {
        PRIORITY
    }

    fn access(&self, ctx: &mut Ctx) -> Flow {
        let Some(value) = self.value(ctx) else {
            return Flow::Respond(Reply::message(StatusCode::UNAUTHORIZED, &self.missing_msg));
        };
        let reject = || Flow::Respond(Reply::message(self.rejected_code, &self.rejected_msg));
        if self.blacklist.iter().any(|v| v == value) {
            return reject();
        }
        let whitelisted = self
            .whitelist
            .as_ref()
            .map(|w| w.iter().any(|v| v == value));
        let mut block = whitelisted == Some(false);
        if whitelisted != Some(true)
            && !self.allowed_by_methods.is_empty()
            && !self.method_allowed(value, ctx.method.as_str())
        {
            block = true;
        }
        if block {
            return reject();
        }
        Flow::Continue
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::testing::{consumer, ctx_for, get, plugin};
    use crate::{Chain, ConsumerGroup, GroupLink};
    use portico_model::Kind;

    fn check_conf(conf: Value) -> Result<(), String> {
        portico_model::check(
            Kind::PluginConfig,
            &json!({"id": "1", "plugins": {NAME: conf}}),
            &crate::registry(),
        )
    }

    /// Status and body of `access` for `method` by `who` (username, group) on route `r1`.
    fn run(conf: Value, method: &str, who: Option<(&str, Option<&str>)>) -> (u16, String) {
        let p = plugin(NAME, conf);
        let mut ctx = ctx_for(get("/").method(method));
        ctx.route_id = "r1".into();
        if let Some((name, group)) = who {
            let mut c = consumer(name);
            c.group = group.map(|g| {
                GroupLink::Ready(Arc::new(ConsumerGroup {
                    id: g.to_string(),
                    key: format!("ws/default/consumer_groups/{g}"),
                    revision: 1,
                    plugins: Arc::new(Chain::empty()),
                }))
            });
            ctx.attach_consumer(Arc::new(c));
        }
        match p.access(&mut ctx) {
            Flow::Continue => (200, String::new()),
            Flow::Respond(r) => (r.status.as_u16(), String::from_utf8_lossy(&r.body).into()),
            Flow::Wait(_) => unreachable!("consumer-restriction never waits"),
        }
    }

    fn body(msg: &str) -> String {
        format!("{{\"message\":\"{msg}\"}}\n")
    }

    #[test]
    fn configurations() {
        assert_eq!(check_conf(json!({"whitelist": ["jack"]})), Ok(()));
        assert_eq!(
            check_conf(
                json!({"type": "route_id", "blacklist": ["1"], "rejected_code": 401, "rejected_msg": "no"})
            ),
            Ok(())
        );
        assert_eq!(
            check_conf(json!({"allowed_by_methods": [{"user": "jack", "methods": ["GET"]}]})),
            Ok(())
        );
        let prefix = "failed to check the configuration of plugin consumer-restriction err: ";
        assert_eq!(
            check_conf(json!({})),
            Err(format!("{prefix}object matches none of the required: [\"blacklist\"] or [\"whitelist\"] or [\"allowed_by_methods\"]"))
        );
        assert_eq!(
            check_conf(json!({"type": "service_id", "whitelist": ["s1"]})),
            Err(format!("{prefix}type \"service_id\" is not supported: Portico has no services (use route_id, consumer_name or consumer_group_id)"))
        );
        for bad in [
            json!({"whitelist": []}),
            json!({"whitelist": ["a"], "type": "ip"}),
            json!({"whitelist": ["a"], "rejected_code": 199}),
            json!({"whitelist": ["a"], "rejected_code": 1000}),
            json!({"allowed_by_methods": [{"user": "a", "methods": ["FETCH"]}]}),
        ] {
            assert!(check_conf(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn consumer_name_lists() {
        let white = json!({"whitelist": ["jack"]});
        assert_eq!(run(white.clone(), "GET", Some(("jack", None))).0, 200);
        assert_eq!(
            run(white.clone(), "GET", Some(("rose", None))),
            (403, body("The consumer_name is forbidden."))
        );
        assert_eq!(
            run(white, "GET", None),
            (
                401,
                body("The request is rejected, please check the consumer_name for this request")
            )
        );
        let black = json!({"blacklist": ["jack"], "rejected_code": 401, "rejected_msg": "go away"});
        assert_eq!(
            run(black.clone(), "GET", Some(("jack", None))),
            (401, body("go away"))
        );
        assert_eq!(run(black, "GET", Some(("rose", None))).0, 200);
    }

    #[test]
    fn groups_and_routes() {
        let conf = json!({"type": "consumer_group_id", "whitelist": ["gold"]});
        assert_eq!(
            run(conf.clone(), "GET", Some(("jack", Some("gold")))).0,
            200
        );
        assert_eq!(
            run(conf.clone(), "GET", Some(("jack", Some("silver")))),
            (403, body("The consumer_group_id is forbidden."))
        );
        assert_eq!(
            run(conf, "GET", Some(("jack", None))),
            (
                401,
                body(
                    "The request is rejected, please check the consumer_group_id for this request"
                )
            )
        );
        let conf = json!({"type": "route_id", "blacklist": ["r1"]});
        assert_eq!(
            run(conf, "GET", None),
            (403, body("The route_id is forbidden."))
        );
        assert_eq!(
            run(
                json!({"type": "route_id", "whitelist": ["r1"]}),
                "GET",
                None
            )
            .0,
            200
        );
    }

    #[test]
    fn methods_by_user() {
        let conf = json!({"allowed_by_methods": [
            {"user": "jack", "methods": ["POST"]},
            {"user": "jack", "methods": ["GET"]}
        ]});
        let mut seen = HashMap::new();
        for (who, method) in [("jack", "POST"), ("jack", "GET"), ("rose", "GET")] {
            seen.insert(
                (who, method),
                run(conf.clone(), method, Some((who, None))).0,
            );
        }
        // The first rule for a user decides; users without a rule pass.
        assert_eq!(seen[&("jack", "POST")], 200);
        assert_eq!(seen[&("jack", "GET")], 403);
        assert_eq!(seen[&("rose", "GET")], 200);
        // A whitelisted value skips the method rules; one not whitelisted is blocked anyway.
        let both = json!({"whitelist": ["jack"], "allowed_by_methods": [{"user": "jack", "methods": ["POST"]}]});
        assert_eq!(run(both.clone(), "GET", Some(("jack", None))).0, 200);
        assert_eq!(run(both, "POST", Some(("rose", None))).0, 403);
    }
}
