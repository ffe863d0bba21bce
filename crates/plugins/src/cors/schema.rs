//! cors's schemas, as APISIX declares them (descriptions included: the Admin API serves them).

use serde_json::{json, Value};

use super::ORIGINS_PATTERN;

/// A list of regexes (`allow_origins_by_regex`, `timing_allow_origins_by_regex`) or metadata
/// keys.
fn list(description: &str) -> Value {
    json!({
        "type": "array",
        "description": description,
        "items": {"type": "string", "minLength": 1, "maxLength": 4096},
        "minItems": 1,
        "uniqueItems": true
    })
}

/// The plugin schema.
pub fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "allow_origins": {
                "description": "you can use '*' to allow all origins when no credentials,'**' to allow forcefully(it will bring some security risks, be carefully),multiple origin use ',' to split. default: *.",
                "type": "string",
                "pattern": ORIGINS_PATTERN,
                "default": "*"
            },
            "allow_methods": {
                "description": "you can use '*' to allow all methods when no credentials,'**' to allow forcefully(it will bring some security risks, be carefully),multiple method use ',' to split. default: *.",
                "type": "string",
                "default": "*"
            },
            "allow_headers": {
                "description": "you can use '*' to allow all header when no credentials,'**' to allow forcefully(it will bring some security risks, be carefully),multiple header use ',' to split. default: *.",
                "type": "string",
                "default": "*"
            },
            "expose_headers": {
                "description": "multiple header use ',' to split.If not specified, no custom headers are exposed.",
                "type": "string"
            },
            "max_age": {
                "description": "maximum number of seconds the results can be cached.-1 means no cached, the max value is depend on browser,more details plz check MDN. default: 5.",
                "type": "integer",
                "default": 5
            },
            "allow_credential": {
                "description": "allow client append credential. according to CORS specification,if you set this option to 'true', you can not use '*' for other options.",
                "type": "boolean",
                "default": false
            },
            "allow_origins_by_regex": list("you can use regex to allow specific origins when no credentials,for example use [.*\\.test.com$] to allow a.test.com and b.test.com"),
            "allow_origins_by_metadata": list("set allowed origins by referencing origins in plugin metadata"),
            "timing_allow_origins": {
                "description": "you can use '*' to allow all origins which can view timing information when no credentials,'**' to allow forcefully (it will bring some security risks, be careful),multiple origin use ',' to split. default: nil",
                "type": "string",
                "pattern": ORIGINS_PATTERN
            },
            "timing_allow_origins_by_regex": list("you can use regex to allow specific origins which can view timing information,for example use [.*\\.test.com] to allow a.test.com and b.test.com")
        }
    })
}

/// The schema of `plugin_metadata/cors`.
pub fn metadata_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "allow_origins": {
                "type": "object",
                "additionalProperties": {"type": "string", "pattern": ORIGINS_PATTERN}
            }
        }
    })
}
