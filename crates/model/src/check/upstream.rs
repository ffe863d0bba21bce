//! Upstream checks (`apisix/upstream.lua:check_upstream_conf`), for upstream objects and the
//! inline `upstream` of routes.

use super::pem;
use crate::schema::validate_in_place;
use crate::schemas::{
    upstream_hash_header_schema, upstream_hash_vars_combinations_schema, upstream_hash_vars_schema,
};
use serde_json::Value;
use std::net::Ipv6Addr;

fn truthy(v: Option<&Value>) -> Option<&Value> {
    v.filter(|v| !matches!(v, Value::Bool(false)))
}

/// A bare IPv6 literal (`::1`): accepted by `host_def` but ambiguous in `host:port` keys.
fn is_bare_ipv6(host: &str) -> bool {
    !host.starts_with('[') && host.parse::<Ipv6Addr>().is_ok()
}

/// Validates an upstream in place (the schema injects its defaults into `conf`).
pub(crate) fn check(conf: &mut Value) -> Result<(), String> {
    if let Some(Value::Array(nodes)) = conf.get("nodes") {
        let bare = nodes.iter().any(|n| {
            n.get("host")
                .and_then(Value::as_str)
                .is_some_and(is_bare_ipv6)
        });
        if bare {
            return Err(
                "invalid configuration: IPv6 address must be enclosed with '[' and ']'".to_string(),
            );
        }
    }
    validate_in_place(crate::schemas::core_upstream(), conf)
        .map_err(|e| format!("invalid configuration: {e}"))?;

    if let Some(Value::Object(nodes)) = conf.get("nodes") {
        for addr in nodes.keys() {
            if let Some(port) = parse_addr(addr).1 {
                if !(1.0..=65535.0).contains(&port) {
                    return Err(format!(
                        "invalid port {}",
                        crate::schema::format_number(port)
                    ));
                }
            }
        }
    }

    if conf.get("pass_host").and_then(Value::as_str) == Some("rewrite") {
        let host = conf.get("upstream_host");
        if host.is_none() || host.and_then(Value::as_str) == Some("") {
            return Err("`upstream_host` can't be empty when `pass_host` is `rewrite`".to_string());
        }
    }

    if let Some(tls) = conf.get("tls") {
        if let Some(cert) = truthy(tls.get("client_cert")).and_then(Value::as_str) {
            pem::validate_pair(cert, tls.get("client_key").and_then(Value::as_str))?;
        }
    }

    check_chash(conf)
}

fn check_chash(conf: &Value) -> Result<(), String> {
    if conf.get("type").and_then(Value::as_str) != Some("chash") {
        return Ok(());
    }
    let hash_on = conf.get("hash_on").and_then(Value::as_str);
    let key = truthy(conf.get("key"));
    if hash_on != Some("consumer") && key.is_none() {
        return Err("missing key".to_string());
    }
    let schema = match hash_on {
        None => return Err("type is chash, err: hash_on is nil".to_string()),
        Some("vars") => upstream_hash_vars_schema(),
        Some("header" | "cookie") => upstream_hash_header_schema(),
        Some("consumer") => return Ok(()),
        Some("vars_combinations") => upstream_hash_vars_combinations_schema(),
        Some(other) => return Err(format!("type is chash, err: invalid hash_on type {other}")),
    };
    match key {
        Some(key) => {
            crate::schema::validate(&schema, key).map_err(|e| format!("invalid configuration: {e}"))
        }
        None => Ok(()),
    }
}

/// `core.utils.parse_addr`: splits `host:port`; IPv6 literals keep their brackets; the port is
/// Lua's `tonumber` of what follows the last colon (`None` when absent or not a number).
pub fn parse_addr(addr: &str) -> (&str, Option<f64>) {
    if addr.starts_with('[') {
        if addr.ends_with(']') {
            return (addr, None);
        }
        return match last_colon(addr) {
            Some(pos) if pos > 0 && addr.as_bytes()[pos - 1] == b']' => {
                (&addr[..pos], lua_tonumber(&addr[pos + 1..]))
            }
            _ => (addr, None),
        };
    }
    let mut colons = 0;
    for c in addr.chars() {
        if c == '.' {
            break;
        }
        if c == ':' {
            colons += 1;
            if colons == 2 {
                return (addr, None);
            }
        }
    }
    match last_colon(addr) {
        Some(pos) => (&addr[..pos], lua_tonumber(&addr[pos + 1..])),
        None => (addr, None),
    }
}

/// The last `:` that is not the final character (Lua's `rfind_char(addr, ":", #addr - 1)`).
fn last_colon(addr: &str) -> Option<usize> {
    addr.rfind(':').filter(|&pos| pos + 1 < addr.len())
}

fn lua_tonumber(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(v: Value) -> String {
        check(&mut v.clone()).expect_err("should fail")
    }

    #[test]
    fn valid_upstreams_get_defaults() {
        let mut v = json!({"nodes": {"127.0.0.1:1980": 1}});
        assert_eq!(check(&mut v), Ok(()));
        assert_eq!(v["type"], "roundrobin");
        assert_eq!(v["pass_host"], "pass");
        assert!(check(&mut json!({"nodes": [{"host": "[::1]", "port": 80, "weight": 1}]})).is_ok());
        assert!(
            check(&mut json!({"type": "chash", "key": "remote_addr", "nodes": {"a:1": 1}})).is_ok()
        );
        assert!(
            check(&mut json!({"type": "chash", "hash_on": "consumer", "nodes": {"a:1": 1}}))
                .is_ok()
        );
    }

    #[test]
    fn semantic_errors() {
        assert_eq!(
            err(json!({"nodes": [{"host": "::1", "port": 80, "weight": 1}]})),
            "invalid configuration: IPv6 address must be enclosed with '[' and ']'"
        );
        assert_eq!(
            err(json!({"nodes": {"127.0.0.1:70000": 1}})),
            "invalid port 70000"
        );
        assert_eq!(err(json!({"nodes": {"127.0.0.1:0": 1}})), "invalid port 0");
        assert_eq!(
            err(json!({"nodes": {"a:1": 1}, "pass_host": "rewrite"})),
            "`upstream_host` can't be empty when `pass_host` is `rewrite`"
        );
        assert_eq!(
            err(json!({"nodes": {"a:1": 1}, "type": "chash"})),
            "missing key"
        );
        assert_eq!(
            err(json!({"nodes": {"a:1": 1}, "type": "chash", "key": "not_support"})),
            "invalid configuration: failed to match pattern \"^((uri|server_name|server_addr|request_uri|remote_port|remote_addr|query_string|host|hostname|mqtt_client_id)|arg_[0-9a-zA-z_-]+)$\" with \"not_support\""
        );
        assert_eq!(
            err(json!({"nodes": {"a:1": 1}, "type": "chash", "hash_on": "header", "key": "$#^@"})),
            "invalid configuration: failed to match pattern \"^[a-zA-Z0-9-_]+$\" with \"$#^@\""
        );
    }

    #[test]
    fn schema_errors() {
        assert_eq!(
            err(json!({"nodes": {"a:1": 1}, "hash_on": "bad"})),
            "invalid configuration: property \"hash_on\" validation failed: matches none of the enum values"
        );
        assert_eq!(
            err(json!({"nodes": {"a:1": 1}, "retries": -1})),
            "invalid configuration: property \"retries\" validation failed: expected -1 to be at least 0"
        );
        assert_eq!(
            err(json!({"nodes": {"a:1": 1}, "timeout": {"connect": 1, "send": 1}})),
            "invalid configuration: property \"timeout\" validation failed: property \"read\" is required"
        );
        assert_eq!(
            err(json!({"nodes": {"a:1": 1}, "checks": {"passive": {}}})),
            "invalid configuration: property \"checks\" validation failed: object matches none of the required: [\"active\"] or [\"active\",\"passive\"]"
        );
        assert_eq!(
            err(json!({"nodes": 1})),
            "invalid configuration: property \"nodes\" validation failed: object matches none of the required"
        );
        assert_eq!(
            err(json!({})),
            "invalid configuration: value should match only one schema, but matches none"
        );
        assert_eq!(
            err(json!({"nodes": {"a:1": 1}, "tls": {"client_cert_id": "1", "client_cert": "c", "client_key": "k"}})),
            "invalid configuration: property \"tls\" validation failed: failed to validate dependent schema for \"client_cert_id\": value wasn't supposed to match schema"
        );
        assert_eq!(
            err(json!({"nodes": {"a:1": 1}, "tls": {"client_cert": "c", "client_key": "k"}})),
            "invalid configuration: property \"tls\" validation failed: property \"client_cert\" validation failed: string too short, expected at least 128, got 1"
        );
        assert_eq!(
            err(json!({"nodes": {"a:1": 1}, "tls": {"client_key": "k".repeat(64)}})),
            "invalid configuration: property \"tls\" validation failed: failed to validate dependent schema for \"client_key\": property \"client_cert\" is required"
        );
    }

    #[test]
    fn addresses_split_like_apisix() {
        assert_eq!(parse_addr("127.0.0.1:80"), ("127.0.0.1", Some(80.0)));
        assert_eq!(parse_addr("example.com"), ("example.com", None));
        assert_eq!(parse_addr("[::1]:8080"), ("[::1]", Some(8080.0)));
        assert_eq!(parse_addr("[::1]"), ("[::1]", None));
        assert_eq!(parse_addr("::1"), ("::1", None));
    }
}
