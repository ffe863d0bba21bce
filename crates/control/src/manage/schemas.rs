//! JSON Schemas of the management API: request bodies are validated against them (with the same
//! validator and messages as the Admin API) and the OpenAPI document shows them.

use serde_json::{json, Value};

const NAME: &str = "^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$";

pub fn any() -> Value {
    json!({})
}

pub fn any_object() -> Value {
    json!({"type": "object"})
}

pub fn deleted() -> Value {
    json!({"type": "object", "properties": {"deleted": {"type": "string"}, "id": {"type": "string"}}})
}

fn list_of(item: Value) -> Value {
    json!({"type": "object", "properties": {
        "list": {"type": "array", "items": item},
        "total": {"type": "integer"}
    }})
}

fn pem(min: u32) -> Value {
    json!({"type": "string", "minLength": min, "maxLength": 65536})
}

/// `PUT /api/v1/etcd_resources/{id}`.
pub fn etcd_body() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 100},
            "description": {"type": "string", "maxLength": 256},
            "endpoints": {
                "type": "array", "minItems": 1, "uniqueItems": true,
                "items": {"type": "string", "pattern": "^https?://[^/\\s]+$"}
            },
            "user": {"type": "string", "minLength": 1, "maxLength": 256},
            "password": {"type": "string", "maxLength": 256},
            "tls": {
                "type": "object",
                "properties": {"ca": pem(64), "cert": pem(64), "key": pem(64)},
                "additionalProperties": false
            }
        },
        "required": ["name", "endpoints"],
        "additionalProperties": false
    })
}

pub fn etcd_answer() -> Value {
    json!({"type": "object", "properties": {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "endpoints": {"type": "array", "items": {"type": "string"}},
        "user": {"type": "string"},
        "has_password": {"type": "boolean"},
        "tls": {"type": "object", "properties": {"ca": {"type": "string"}, "cert": {"type": "string"}, "has_key": {"type": "boolean"}}},
        "health": {"type": "object", "properties": {
            "reachable": {"type": "boolean"},
            "version": {"type": "string"},
            "revision": {"type": "integer"},
            "error": {"type": "string"}
        }},
        "clusters": {"type": "array", "items": {"type": "string"}}
    }})
}

pub fn etcd_list() -> Value {
    list_of(etcd_answer())
}

/// `PUT /api/v1/clusters/{id}`.
pub fn cluster_body() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 100},
            "description": {"type": "string", "maxLength": 256},
            "etcd_resource": {"type": "string", "pattern": NAME},
            "prefix": {"type": "string", "pattern": "^(/[a-zA-Z0-9_.-]+)+$", "maxLength": 256},
            "external_address": {"type": "string", "maxLength": 256}
        },
        "required": ["name", "etcd_resource"],
        "additionalProperties": false
    })
}

pub fn cluster_answer() -> Value {
    json!({"type": "object", "properties": {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "description": {"type": "string"},
        "etcd_resource": {"type": "string"},
        "prefix": {"type": "string"},
        "external_address": {"type": "string"},
        "add_node_command": {"type": "string"},
        "status": {"type": "object", "properties": {
            "etcd_reachable": {"type": "boolean"},
            "latest_revision": {"type": "integer"},
            "nodes": {"type": "object", "additionalProperties": {"type": "integer"}},
            "error": {"type": "string"}
        }}
    }})
}

pub fn cluster_list() -> Value {
    list_of(cluster_answer())
}

/// `PUT /api/v1/clusters/{c}/workspaces/{w}`.
pub fn workspace_body() -> Value {
    json!({
        "type": "object",
        "properties": {
            "description": {"type": "string", "maxLength": 256},
            "hosts": {
                "type": "array", "uniqueItems": true,
                "items": {"type": "string", "pattern": "^\\*?[0-9a-zA-Z-._]+$", "maxLength": 256}
            }
        },
        "additionalProperties": false
    })
}

pub fn workspace() -> Value {
    json!({"type": "object", "properties": {
        "name": {"type": "string"},
        "cluster": {"type": "string"},
        "description": {"type": "string"},
        "hosts": {"type": "array", "items": {"type": "string"}}
    }})
}

pub fn workspace_list() -> Value {
    list_of(workspace())
}

pub fn node() -> Value {
    json!({"type": "object", "properties": {
        "id": {"type": "string"},
        "hostname": {"type": "string"},
        "addresses": {"type": "array", "items": {"type": "string"}},
        "version": {"type": "string"},
        "start_time": {"type": "integer"},
        "last_heartbeat": {"type": "integer"},
        "applied_revision": {"type": "integer"},
        "latest_revision": {"type": "integer"},
        "drained": {"type": "boolean"},
        "state": {"type": "string", "enum": ["healthy", "lagging", "lost", "offline"]}
    }})
}

pub fn node_list() -> Value {
    list_of(node())
}

/// `POST /api/v1/tokens`.
pub fn token_body() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 100},
            "role": {"type": "string", "enum": ["admin", "viewer"]},
            "cluster": {"type": "string", "pattern": NAME},
            "workspace": {"type": "string", "pattern": NAME}
        },
        "required": ["name", "role"],
        "dependencies": {"workspace": ["cluster"]},
        "additionalProperties": false
    })
}

pub fn token() -> Value {
    json!({"type": "object", "properties": {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "role": {"type": "string"},
        "cluster": {"type": "string"},
        "workspace": {"type": "string"},
        "key": {"type": "string", "description": "Only in the answer to the creation."},
        "create_time": {"type": "integer"}
    }})
}

pub fn token_list() -> Value {
    list_of(token())
}

/// Names of clusters, workspaces, etcd resources and tokens.
pub fn name_pattern() -> &'static str {
    NAME
}
