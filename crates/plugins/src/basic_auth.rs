//! basic-auth: authenticates a consumer by `Authorization: Basic` credentials
//! (APISIX priority 2520, rewrite phase, auth type).

use portico_model::schemas::defs::{anonymous_consumer_schema, realm_schema};
use portico_model::PluginSpec;
use serde_json::json;

/// Plugin name.
pub const NAME: &str = "basic-auth";

/// The registry row of basic-auth.
pub fn spec() -> PluginSpec {
    PluginSpec {
        auth: true,
        consumer_schema: Some(json!({
            "type": "object",
            "title": "work with consumer object",
            "properties": {
                "username": {"type": "string"},
                "password": {"type": "string"}
            },
            "required": ["username", "password"]
        })),
        consumer_encrypt_fields: &["password"],
        consumer_key_field: Some("username"),
        ..PluginSpec::new(
            NAME,
            2520,
            json!({
                "type": "object",
                "title": "work with route or service object",
                "properties": {
                    "hide_credentials": {"type": "boolean", "default": false},
                    "realm": realm_schema("basic"),
                    "anonymous_consumer": anonymous_consumer_schema()
                }
            }),
        )
    }
}
