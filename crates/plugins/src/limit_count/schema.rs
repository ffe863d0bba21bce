//! The registry row's parts of limit-count: its schema (APISIX `limit-count/init.lua`), the
//! metadata schema, and the semantic checks the Admin API runs.

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::redis_schema::{redis, redis_cluster, redis_sentinel};

/// `sync_interval` default: no delayed Redis synchronisation.
const NO_DELAYED_SYNC: f64 = -1.0;

fn count_or_var() -> Value {
    json!({"oneOf": [{"type": "integer", "exclusiveMinimum": 0}, {"type": "string"}]})
}

fn policy_is(policy: &str) -> Value {
    json!({"properties": {"policy": {"enum": [policy]}}})
}

/// The configuration schema (without the injected `_meta`).
pub fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "count": count_or_var(),
            "time_window": count_or_var(),
            "window_type": {"type": "string", "enum": ["fixed", "sliding"], "default": "fixed"},
            "rules": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "count": count_or_var(),
                        "time_window": count_or_var(),
                        "key": {"type": "string"},
                        "header_prefix": {"type": "string", "description": "prefix for rate limit headers"}
                    },
                    "required": ["count", "time_window", "key"]
                }
            },
            "group": {"type": "string"},
            "key": {"type": "string", "default": "remote_addr"},
            "key_type": {"type": "string", "enum": ["var", "var_combination", "constant"], "default": "var"},
            "rejected_code": {"type": "integer", "minimum": 200, "maximum": 599, "default": 503},
            "rejected_msg": {"type": "string", "minLength": 1},
            "policy": {
                "type": "string",
                "enum": ["local", "redis", "redis-cluster", "redis-sentinel"],
                "default": "local"
            },
            "allow_degradation": {"type": "boolean", "default": false},
            "show_limit_quota_header": {"type": "boolean", "default": true},
            "sync_interval": {"type": "number", "default": NO_DELAYED_SYNC}
        },
        "oneOf": [{"required": ["count", "time_window"]}, {"required": ["rules"]}],
        "if": policy_is("redis"),
        "then": redis(),
        "else": {
            "if": policy_is("redis-cluster"),
            "then": redis_cluster(),
            "else": {"if": policy_is("redis-sentinel"), "then": redis_sentinel()}
        }
    })
}

/// The plugin-metadata schema: names of the quota headers.
pub fn metadata_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "limit_header": {"type": "string", "default": "X-RateLimit-Limit"},
            "remaining_header": {"type": "string", "default": "X-RateLimit-Remaining"},
            "reset_header": {"type": "string", "default": "X-RateLimit-Reset"}
        }
    })
}

/// Whether a delayed synchronisation interval is configured.
fn present_sync(conf: &Value) -> bool {
    conf.get("sync_interval")
        .and_then(Value::as_f64)
        .is_some_and(|s| s != NO_DELAYED_SYNC)
}

const CONFLICT: &str = "count/time_window and rules cannot be specified at the same time";

fn present(conf: &Value, key: &str) -> bool {
    conf.get(key).is_some_and(|v| *v != Value::Bool(false))
}

pub(super) fn schema_error(conf: &Value, err: String) -> String {
    let both = (present(conf, "count") || present(conf, "time_window")) && present(conf, "rules");
    if both && err.contains("value should match only one schema") {
        CONFLICT.to_string()
    } else {
        err
    }
}

pub(super) fn check(conf: &Value) -> Result<(), String> {
    if present(conf, "rules") && (present(conf, "count") || present(conf, "time_window")) {
        return Err(CONFLICT.to_string());
    }
    if present(conf, "group") && present(conf, "rules") {
        return Err("group and rules cannot be specified at the same time".to_string());
    }
    let policy = conf
        .get("policy")
        .and_then(Value::as_str)
        .unwrap_or("local");
    if policy != "local" {
        if let Some(sync) = conf
            .get("sync_interval")
            .and_then(Value::as_f64)
            .filter(|s| *s != NO_DELAYED_SYNC)
        {
            if sync < 0.1 {
                return Err("sync_interval should not be smaller than 0.1".to_string());
            }
            if conf
                .get("time_window")
                .and_then(Value::as_f64)
                .is_some_and(|w| sync >= w)
            {
                return Err("sync_interval should be smaller than time_window".to_string());
            }
        }
    }
    let mut keys = HashSet::new();
    for rule in conf
        .get("rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = rule.get("key").and_then(Value::as_str).unwrap_or_default();
        if !keys.insert(key) {
            return Err(format!("duplicate key '{key}' in rules"));
        }
    }
    // Refused at write time, so that nothing is accepted that the data plane would leave out.
    crate::redis_schema::check(policy, conf)?;
    match policy {
        "local" | "redis" | "redis-cluster" | "redis-sentinel" => {}
        other => return Err(format!("policy {other} is not supported")),
    }
    if policy != "local" && present_sync(conf) {
        return Err("sync_interval (delayed synchronisation) is not supported yet".to_string());
    }
    if let Some(window) = conf
        .get("window_type")
        .and_then(Value::as_str)
        .filter(|w| *w != "fixed")
    {
        return Err(format!("window_type {window} is not supported yet"));
    }
    Ok(())
}
