//! prometheus: per-route request metrics (APISIX priority 500, log phase, `run_policy =
//! prefer_route`; `apisix/plugins/prometheus.lua`, `prometheus/exporter.lua`).
//!
//! Every request of a route whose plugins (template, consumer, or the workspace's global rules)
//! include prometheus is counted into the node's [`Registry`] (kept in
//! [`PluginState`](crate::PluginState), so counters survive snapshot swaps):
//! `apisix_http_status`, `apisix_http_latency` (`request`, `upstream`, `apisix`; APISIX's
//! buckets) and `apisix_bandwidth` (`ingress` = request length, `egress` = bytes sent), labelled
//! as APISIX labels them, plus `workspace`. The node-wide metrics (connections, total requests,
//! config store, node info) and the exporter listener are the gateway's
//! (`portico_gateway::metrics`).
//!
//! * `prefer_name`: the route label is the route's name when it has one.
//! * A global rule's instance does not count a request whose route chain has prometheus too
//!   (APISIX's `prefer_route`): each request is counted once.
//! * `plugin_metadata/prometheus` `disabled_labels {metric: [label]}` blanks those labels of
//!   `http_status`, `http_latency` and `bandwidth` for requests counted from then on (labels of
//!   metrics Portico does not export are accepted and have no effect).
//! * `matched_uri` / `matched_host` come from the [`MatchedRoute`] the gateway puts into
//!   [`Ctx::matched`] when the template or global rules have the plugin ([`wanted`]; a
//!   prometheus brought only by a consumer counts with them empty); `service` is always empty (Portico has no services); `node` is the IP of
//!   the upstream that answered; `response_source` is `upstream` when the upstream answered,
//!   `nginx` for the proxy's own 502/504, else `apisix`.

mod recent;
mod registry;
mod render;
mod series;

use std::sync::Arc;

use portico_model::PluginSpec;
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub use registry::{
    Families, Label, Masks, Metric, Observation, Registry, Source, LATENCY_BUCKETS_MS,
};
pub use render::escape;

use crate::{typed, BuildEnv, Ctx, Phases, Plugin};

/// Plugin name.
pub const NAME: &str = "prometheus";

pub use crate::ctx::MatchedRoute;

/// Labels of every APISIX metric (`metric_label_map`), for the metadata schema.
const METRIC_LABELS: &[(&str, &[&str])] = &[
    (
        "http_status",
        &[
            "code",
            "route",
            "matched_uri",
            "matched_host",
            "service",
            "consumer",
            "node",
            "request_type",
            "request_llm_model",
            "llm_model",
            "response_source",
        ],
    ),
    ("http_latency", &LATENCY_LABELS),
    ("bandwidth", &LATENCY_LABELS),
    ("llm_latency", &LLM_LABELS_TYPED),
    ("llm_prompt_tokens", &LLM_LABELS),
    ("llm_completion_tokens", &LLM_LABELS),
    (
        "llm_active_connections",
        &[
            "route",
            "route_id",
            "matched_uri",
            "matched_host",
            "service",
            "service_id",
            "consumer",
            "node",
            "request_type",
            "request_llm_model",
            "llm_model",
        ],
    ),
    ("llm_prompt_tokens_dist", &LLM_LABELS),
    ("llm_completion_tokens_dist", &LLM_LABELS),
    (
        "ai_cache_hits_total",
        &[
            "layer",
            "route",
            "route_id",
            "service",
            "service_id",
            "consumer",
            "node",
            "request_type",
            "request_llm_model",
            "llm_model",
        ],
    ),
    ("ai_cache_misses_total", &AI_CACHE_LABELS),
    ("ai_cache_bypasses_total", &AI_CACHE_LABELS),
    ("ai_cache_embedding_latency", &AI_CACHE_LABELS),
];

const LATENCY_LABELS: [&str; 8] = [
    "type",
    "route",
    "service",
    "consumer",
    "node",
    "request_type",
    "request_llm_model",
    "llm_model",
];
const LLM_LABELS_TYPED: [&str; 8] = [
    "type",
    "route_id",
    "service_id",
    "consumer",
    "node",
    "request_type",
    "request_llm_model",
    "llm_model",
];
const LLM_LABELS: [&str; 7] = [
    "route_id",
    "service_id",
    "consumer",
    "node",
    "request_type",
    "request_llm_model",
    "llm_model",
];
const AI_CACHE_LABELS: [&str; 9] = [
    "route",
    "route_id",
    "service",
    "service_id",
    "consumer",
    "node",
    "request_type",
    "request_llm_model",
    "llm_model",
];

/// Labels that define a metric's identity and cannot be disabled.
fn structural(metric: &str, label: &str) -> bool {
    matches!(
        (metric, label),
        ("http_status", "code")
            | ("http_latency", "type")
            | ("bandwidth", "type")
            | ("llm_latency", "type")
            | ("ai_cache_hits_total", "layer")
    )
}

/// The configuration schema.
pub fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {"prefer_name": {"type": "boolean", "default": false}}
    })
}

/// The plugin-metadata schema: `disabled_labels`.
pub fn metadata_schema() -> Value {
    let mut properties = Map::new();
    for (metric, labels) in METRIC_LABELS {
        let allowed: Vec<&str> = labels
            .iter()
            .copied()
            .filter(|l| !structural(metric, l))
            .collect();
        properties.insert(
            metric.to_string(),
            json!({"type": "array", "items": {"type": "string", "enum": allowed}}),
        );
    }
    json!({
        "type": "object",
        "properties": {
            "disabled_labels": {
                "type": "object",
                "properties": properties,
                "additionalProperties": false
            }
        }
    })
}

/// The registry row of prometheus.
pub fn spec() -> PluginSpec {
    PluginSpec {
        metadata_schema: Some(metadata_schema()),
        ..PluginSpec::new(NAME, 500, schema())
    }
}

#[derive(Debug, Deserialize)]
struct Config {
    #[serde(default)]
    prefer_name: bool,
}

/// A prometheus instance.
#[derive(Debug)]
pub struct Prometheus {
    /// This instance's number in the per-thread cache of recent label sets.
    number: u64,
    prefer_name: bool,
    /// The workspace of the object the configuration belongs to.
    workspace: Box<str>,
    /// Configured in a global rule: yields to the route's own instance.
    global: bool,
    masks: Masks,
    registry: Arc<Registry>,
}

/// The disabled-label masks of the metadata's `disabled_labels`.
fn masks(metadata: Option<&Value>) -> Masks {
    let mut masks = Masks::default();
    let Some(disabled) = metadata
        .and_then(|m| m.get("disabled_labels"))
        .and_then(Value::as_object)
    else {
        return masks;
    };
    for (metric, which) in [
        ("http_status", Metric::HttpStatus),
        ("http_latency", Metric::HttpLatency),
        ("bandwidth", Metric::Bandwidth),
    ] {
        let labels = disabled.get(metric).and_then(Value::as_array);
        for label in labels.into_iter().flatten().filter_map(Value::as_str) {
            if let Some(label) = Label::from_name(label) {
                masks.disable(which, label);
            }
        }
    }
    masks
}

/// The workspace of a store key `ws/<workspace>/...`.
pub(crate) fn workspace_of(owner: &str) -> &str {
    owner
        .strip_prefix("ws/")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("")
}

/// Builds an instance.
pub fn build(conf: &Value, env: &BuildEnv<'_>) -> Result<Arc<dyn Plugin>, String> {
    let c: Config = typed(conf)?;
    Ok(Arc::new(Prometheus {
        number: recent::instance_number(),
        prefer_name: c.prefer_name,
        workspace: workspace_of(env.owner).into(),
        global: env.owner.contains("/global_rules/"),
        masks: masks(env.metadata),
        registry: env.state.prometheus.clone(),
    }))
}

/// Whether the request's route chain (template, merged with the consumer's) has prometheus.
fn route_has_prometheus(ctx: &Ctx) -> bool {
    ctx.route_chain
        .as_ref()
        .is_some_and(|c| c.entries().iter().any(|e| e.name() == NAME))
}

impl Plugin for Prometheus {
    fn name(&self) -> &'static str {
        NAME
    }

    fn priority(&self) -> i32 {
        500
    }

    fn phases(&self) -> Phases {
        Phases::LOG
    }

    fn wants_matched_route(&self) -> bool {
        true
    }

    fn log(&self, ctx: &Ctx) {
        if self.global && route_has_prometheus(ctx) {
            return;
        }
        let route = match (&ctx.route_name, self.prefer_name) {
            (Some(name), true) => name,
            _ => &ctx.route_id,
        };
        let (matched_uri, matched_host) = ctx
            .matched
            .as_ref()
            .map_or(("", ""), |m| (m.uri.as_str(), m.host.as_str()));
        let status = ctx.response.as_ref().map_or(499, |r| r.status.as_u16());
        let node = ctx.log.upstream_addr.map(|a| a.ip());
        let source = if ctx.log.upstream_addr.is_some() {
            Source::Upstream
        } else if matches!(status, 502 | 504) {
            Source::Nginx
        } else {
            Source::Apisix
        };
        let head = ctx.log.response_head_bytes;
        let observation = Observation {
            workspace: &self.workspace,
            route,
            matched_uri,
            matched_host,
            consumer: ctx.consumer.as_ref().map_or("", |c| c.username.as_str()),
            node,
            status,
            source,
            masks: self.masks,
            total: portico_clock::now().saturating_duration_since(ctx.log.started),
            upstream: ctx.log.upstream_latency,
            ingress: ctx.log.request_length,
            egress: head + ctx.log.body_bytes_sent,
        };
        recent::observe(&self.registry, self.number, route, &observation);
    }
}

#[cfg(test)]
mod tests;
