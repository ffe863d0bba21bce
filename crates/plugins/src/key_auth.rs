//! key-auth: authenticates a consumer by an API key in a header or query argument
//! (APISIX priority 2500, rewrite phase, auth type).

use portico_model::schemas::defs::{anonymous_consumer_schema, realm_schema};
use portico_model::PluginSpec;
use serde_json::json;

/// Plugin name.
pub const NAME: &str = "key-auth";

/// The registry row of key-auth.
pub fn spec() -> PluginSpec {
    PluginSpec {
        auth: true,
        consumer_schema: Some(json!({
            "type": "object",
            "properties": {"key": {"type": "string"}},
            "required": ["key"]
        })),
        consumer_encrypt_fields: &["key"],
        consumer_key_field: Some("key"),
        ..PluginSpec::new(
            NAME,
            2500,
            json!({
                "type": "object",
                "properties": {
                    "header": {"type": "string", "default": "apikey"},
                    "query": {"type": "string", "default": "apikey"},
                    "realm": realm_schema("key"),
                    "hide_credentials": {"type": "boolean", "default": false},
                    "anonymous_consumer": anonymous_consumer_schema()
                }
            }),
        )
    }
}
