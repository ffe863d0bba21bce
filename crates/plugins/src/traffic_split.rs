//! traffic-split: sends a share of a route's requests to other upstreams (APISIX priority 966,
//! access phase; `apisix/plugins/traffic-split.lua`).
//!
//! `rules` are tried in order; the first whose `match` has an entry with true `vars` (or that has
//! no `match`) is chosen. Within it, `weighted_upstreams` share the requests by weight, spread
//! like APISIX's round robin (smooth: a 1:3 split sends every fourth request, not runs of three).
//! An entry with only a `weight` stands for the route's own upstream; `upstream_id` names an
//! upstream of the route's workspace, looked up per request (a missing one answers 500
//! `failed to fetch upstream info by upstream id: <id>`); `upstream` is an inline upstream,
//! compiled once with the plugin, so its balancer state lasts as long as the configuration.

use std::sync::{Arc, Mutex};

use http::StatusCode;
use portico_expr::Expr;
use portico_model::schemas::upstream;
use portico_model::PluginSpec;
use serde_json::{json, Map, Value};

use crate::{BuildEnv, Ctx, Flow, Plugin, Reply, UpstreamPick};

/// Plugin name.
pub const NAME: &str = "traffic-split";

const PRIORITY: i32 = 966;

/// The inline upstream schema: the upstream properties traffic-split allows.
fn upstream_def() -> Value {
    let full = upstream();
    let mut properties = Map::new();
    for name in [
        "name",
        "hash_on",
        "key",
        "nodes",
        "timeout",
        "pass_host",
        "upstream_host",
        "scheme",
    ] {
        if let Some(p) = full["properties"].get(name) {
            properties.insert(name.to_string(), p.clone());
        }
    }
    properties.insert(
        "type".into(),
        json!({"type": "string", "enum": ["roundrobin", "chash"], "default": "roundrobin"}),
    );
    json!({
        "type": "object",
        "properties": properties,
        "required": ["nodes"],
        "additionalProperties": false
    })
}

/// The registry row of traffic-split.
pub fn spec() -> PluginSpec {
    PluginSpec {
        check: Some(check),
        ..PluginSpec::new(
            NAME,
            PRIORITY,
            json!({
                "type": "object",
                "properties": {
                    "rules": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "match": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "properties": {"vars": {"type": "array"}}
                                    }
                                },
                                "weighted_upstreams": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "properties": {
                                            "upstream_id": portico_model::schemas::defs::id_schema(),
                                            "upstream": upstream_def(),
                                            "weight": {"type": "integer", "default": 1, "minimum": 0}
                                        }
                                    },
                                    "minItems": 1,
                                    "maxItems": 20
                                }
                            }
                        }
                    }
                }
            }),
        )
    }
}

/// Semantic check: every `vars` compiles.
fn check(conf: &Value) -> Result<(), String> {
    for rule in conf["rules"].as_array().into_iter().flatten() {
        for m in rule["match"].as_array().into_iter().flatten() {
            if let Some(vars) = m.get("vars") {
                Expr::compile(vars)
                    .map_err(|e| format!("failed to validate the 'vars' expression: {e}"))?;
            }
        }
    }
    Ok(())
}

/// Where one weighted entry sends requests.
#[derive(Clone)]
enum Target {
    /// The route's own upstream.
    Route,
    Id(String),
    Built(Arc<dyn std::any::Any + Send + Sync>),
}

/// One rule: its match conditions and its weighted targets.
struct Rule {
    /// Empty: the rule always applies.
    matches: Vec<Expr>,
    targets: Vec<(Target, i64)>,
    /// Smooth weighted round robin: the current weight of each target.
    current: Mutex<Vec<i64>>,
}

impl Rule {
    fn applies(&self, ctx: &Ctx) -> bool {
        self.matches.is_empty() || self.matches.iter().any(|e| e.eval(ctx))
    }

    /// nginx's smooth weighted round robin over the targets with weight > 0.
    fn pick(&self) -> Option<Target> {
        let total: i64 = self.targets.iter().map(|(_, w)| *w).sum();
        if total == 0 {
            return None;
        }
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let mut best = None::<usize>;
        for (i, (_, w)) in self.targets.iter().enumerate() {
            if *w == 0 {
                continue;
            }
            current[i] += w;
            if best.is_none_or(|b| current[i] > current[b]) {
                best = Some(i);
            }
        }
        let b = best?;
        current[b] -= total;
        Some(self.targets[b].0.clone())
    }
}

/// A traffic-split instance.
pub struct TrafficSplit {
    rules: Vec<Rule>,
}

impl std::fmt::Debug for TrafficSplit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TrafficSplit({} rules)", self.rules.len())
    }
}

/// Builds traffic-split from a checked configuration; inline upstreams are compiled now.
pub fn build(conf: &Value, env: &BuildEnv<'_>) -> Result<Arc<dyn Plugin>, String> {
    let mut rules = Vec::new();
    for rule in conf["rules"].as_array().into_iter().flatten() {
        let mut matches = Vec::new();
        for m in rule["match"].as_array().into_iter().flatten() {
            if let Some(vars) = m.get("vars") {
                matches.push(Expr::compile(vars)?);
            }
        }
        let mut targets = Vec::new();
        for w in rule["weighted_upstreams"].as_array().into_iter().flatten() {
            let weight = w["weight"].as_i64().unwrap_or(1);
            let target = if let Some(id) = w.get("upstream_id") {
                Target::Id(match id {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
            } else if let Some(up) = w.get("upstream") {
                let builder = env
                    .upstreams
                    .ok_or("inline upstreams need a data plane to compile them")?;
                Target::Built(builder.build(up)?)
            } else {
                Target::Route
            };
            targets.push((target, weight));
        }
        let current = Mutex::new(vec![0; targets.len()]);
        rules.push(Rule {
            matches,
            targets,
            current,
        });
    }
    Ok(Arc::new(TrafficSplit { rules }))
}

impl Plugin for TrafficSplit {
    fn name(&self) -> &'static str {
        NAME
    }

    fn priority(&self) -> i32 {
        PRIORITY
    }

    fn access(&self, ctx: &mut Ctx) -> Flow {
        let Some(rule) = self.rules.iter().find(|r| r.applies(ctx)) else {
            return Flow::Continue;
        };
        ctx.upstream_pick = match rule.pick() {
            None | Some(Target::Route) => None,
            Some(Target::Id(id)) => Some(UpstreamPick::Id(id)),
            Some(Target::Built(up)) => Some(UpstreamPick::Built(up)),
        };
        Flow::Continue
    }
}

/// The answer when a picked `upstream_id` does not exist (a plain string, as APISIX sends it).
pub fn missing_upstream(id: &str) -> Reply {
    Reply::text(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("failed to fetch upstream info by upstream id: {id}"),
    )
}

#[cfg(test)]
#[path = "traffic_split/tests.rs"]
mod tests;
