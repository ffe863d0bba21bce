//! Upstream schema (`_M.upstream` of `apisix/schema_def.lua`) with its health checker, nodes in
//! both forms, TLS and keep-alive pool, plus the chash key schemas.

use super::defs::{
    certificate_schema, desc_def, host_def, id_schema, labels_def, private_key_schema,
    rule_name_def, timeout_def, timestamp_def, METHODS,
};
use serde_json::{json, Value};

fn statuses(default: &[u16]) -> Value {
    json!({
        "type": "array",
        "minItems": 1,
        "items": {"type": "integer", "minimum": 200, "maximum": 599},
        "uniqueItems": true,
        "default": default
    })
}

fn counter(minimum: u32, default: u32) -> Value {
    json!({"type": "integer", "minimum": minimum, "maximum": 254, "default": default})
}

/// `health_checker_active`.
pub fn health_checker_active() -> Value {
    json!({
        "type": "object",
        "properties": {
            "type": {"type": "string", "enum": ["http", "https", "tcp"], "default": "http"},
            "timeout": {"type": "number", "default": 1},
            "concurrency": {"type": "integer", "default": 10},
            "host": host_def(),
            "port": {"type": "integer", "minimum": 1, "maximum": 65535},
            "http_method": {"type": "string", "enum": METHODS, "default": "GET"},
            "http_path": {"type": "string", "default": "/"},
            "http_req_body": {"type": "string", "default": ""},
            "https_verify_certificate": {"type": "boolean", "default": true},
            "healthy": {
                "type": "object",
                "properties": {
                    "interval": {"type": "integer", "minimum": 1, "default": 1},
                    "http_statuses": statuses(&[200, 302]),
                    "successes": counter(1, 2)
                }
            },
            "unhealthy": {
                "type": "object",
                "properties": {
                    "interval": {"type": "integer", "minimum": 1, "default": 1},
                    "http_statuses": statuses(&[429, 404, 500, 501, 502, 503, 504, 505]),
                    "http_failures": counter(1, 5),
                    "tcp_failures": counter(1, 2),
                    "timeouts": counter(1, 3)
                }
            },
            "req_headers": {
                "type": "array",
                "minItems": 1,
                "items": {"type": "string", "uniqueItems": true}
            }
        }
    })
}

/// `health_checker_passive`.
pub fn health_checker_passive() -> Value {
    json!({
        "type": "object",
        "properties": {
            "type": {"type": "string", "enum": ["http", "https", "tcp"], "default": "http"},
            "healthy": {
                "type": "object",
                "properties": {
                    "http_statuses": statuses(&[
                        200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304,
                        305, 306, 307, 308
                    ]),
                    "successes": counter(0, 5)
                }
            },
            "unhealthy": {
                "type": "object",
                "properties": {
                    "http_statuses": statuses(&[429, 500, 503]),
                    "tcp_failures": counter(0, 2),
                    "timeouts": counter(0, 7),
                    "http_failures": counter(0, 5)
                }
            }
        }
    })
}

/// `health_checker`: `active`, or `active` + `passive` (passive alone is invalid).
pub fn health_checker() -> Value {
    json!({
        "type": "object",
        "properties": {
            "active": health_checker_active(),
            "passive": health_checker_passive()
        },
        "anyOf": [
            {"required": ["active"]},
            {"required": ["active", "passive"]}
        ]
    })
}

fn nodes_schema() -> Value {
    json!({"anyOf": [
        {
            "type": "object",
            "patternProperties": {
                ".*": {"description": "weight of node", "type": "integer", "minimum": 0}
            }
        },
        {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "host": host_def(),
                    "port": {"description": "port of node", "type": "integer", "minimum": 1, "maximum": 65535},
                    "weight": {"description": "weight of node", "type": "integer", "minimum": 0},
                    "priority": {"description": "priority of node", "type": "integer", "default": 0},
                    "metadata": {"description": "metadata of node", "type": "object"}
                },
                "required": ["host", "weight"]
            }
        }
    ]})
}

/// `discovery_nodes`: nodes as service discovery returns them.
pub fn discovery_nodes() -> Value {
    json!({
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "host": {"description": "domain or ip"},
                "port": {"description": "port of node", "type": "integer", "minimum": 1, "maximum": 65535},
                "weight": {"description": "weight of node", "type": "integer", "minimum": 0},
                "priority": {"description": "priority of node", "type": "integer"},
                "metadata": {"description": "metadata of node", "type": "object"}
            },
            "required": ["host", "weight"]
        }
    })
}

/// The upstream schema (standalone resource and inline in routes).
pub fn upstream() -> Value {
    json!({
        "type": "object",
        "properties": {
            "id": id_schema(),
            "name": rule_name_def(),
            "desc": desc_def(),
            "labels": labels_def(),
            "create_time": timestamp_def(),
            "update_time": timestamp_def(),
            "nodes": nodes_schema(),
            "retries": {"type": "integer", "minimum": 0},
            "retry_timeout": {"type": "number", "minimum": 0},
            "timeout": timeout_def(),
            "tls": {
                "type": "object",
                "properties": {
                    "client_cert_id": id_schema(),
                    "client_cert": certificate_schema(),
                    "client_key": private_key_schema(),
                    "verify": {
                        "type": "boolean",
                        "description": "Turn on server certificate verification, currently only kafka upstream is supported",
                        "default": false
                    }
                },
                "dependencies": {
                    "client_cert": {"required": ["client_key"]},
                    "client_key": {"required": ["client_cert"]},
                    "client_cert_id": {"not": {"required": ["client_cert", "client_key"]}}
                }
            },
            "keepalive_pool": {
                "type": "object",
                "properties": {
                    "size": {"type": "integer", "default": 320, "minimum": 1},
                    "idle_timeout": {"type": "number", "default": 60, "minimum": 0},
                    "requests": {"type": "integer", "default": 1000, "minimum": 1}
                }
            },
            "type": {"description": "algorithms of load balancing", "type": "string", "default": "roundrobin"},
            "checks": health_checker(),
            "hash_on": {
                "type": "string",
                "default": "vars",
                "enum": ["vars", "header", "cookie", "consumer", "vars_combinations"]
            },
            "key": {"description": "the key of chash for dynamic load balancing", "type": "string"},
            "scheme": {
                "default": "http",
                "enum": ["grpc", "grpcs", "http", "https", "tcp", "tls", "udp", "kafka"],
                "description": "The scheme of the upstream. For L7 proxy, it can be one of grpc/grpcs/http/https. For L4 proxy, it can be one of tcp/tls/udp. For specific protocols, it can be kafka."
            },
            "discovery_type": {"description": "discovery type", "type": "string"},
            "discovery_args": {
                "type": "object",
                "properties": {
                    "namespace_id": {"description": "namespace id", "type": "string"},
                    "group_name": {"description": "group name", "type": "string"}
                }
            },
            "pass_host": {
                "description": "mod of host passing",
                "type": "string",
                "enum": ["pass", "node", "rewrite"],
                "default": "pass"
            },
            "upstream_host": host_def(),
            "service_name": {"type": "string", "maxLength": 256, "minLength": 1}
        },
        "oneOf": [
            {"required": ["nodes"]},
            {"required": ["service_name", "discovery_type"]}
        ],
        "additionalProperties": false
    })
}

/// `upstream_hash_vars_schema`: the chash `key` when `hash_on` is `vars`.
pub fn upstream_hash_vars_schema() -> Value {
    json!({
        "type": "string",
        "pattern": "^((uri|server_name|server_addr|request_uri|remote_port|remote_addr|query_string|host|hostname|mqtt_client_id)|arg_[0-9a-zA-z_-]+)$"
    })
}

/// `upstream_hash_header_schema`: the chash `key` when `hash_on` is `header` or `cookie`.
pub fn upstream_hash_header_schema() -> Value {
    json!({"type": "string", "pattern": "^[a-zA-Z0-9-_]+$"})
}

/// `upstream_hash_vars_combinations_schema`.
pub fn upstream_hash_vars_combinations_schema() -> Value {
    json!({"type": "string"})
}
