//! ip-restriction: allows or denies clients by address (APISIX priority 3000, access phase).

use portico_model::schemas::defs::ip_def;
use portico_model::PluginSpec;
use serde_json::{json, Value};
use std::net::{Ipv4Addr, Ipv6Addr};

/// Plugin name.
pub const NAME: &str = "ip-restriction";

/// The registry row of ip-restriction.
pub fn spec() -> PluginSpec {
    let list = json!({"type": "array", "items": {"anyOf": ip_def()}, "minItems": 1});
    PluginSpec {
        check: Some(check),
        ..PluginSpec::new(
            NAME,
            3000,
            json!({
                "type": "object",
                "properties": {
                    "message": {"type": "string", "minLength": 1, "maxLength": 1024, "default": "Your IP address is not allowed"},
                    "response_code": {"type": "integer", "minimum": 403, "maximum": 404, "default": 403},
                    "whitelist": list,
                    "blacklist": list
                },
                "oneOf": [{"required": ["whitelist"]}, {"required": ["blacklist"]}]
            }),
        )
    }
}

/// `core.ip.validate_cidr_or_ip`: the schema's IPv6 patterns are loose, so parse for real.
pub fn is_ip_or_cidr(text: &str) -> bool {
    let (ip, mask) = match text.split_once('/') {
        Some((ip, mask)) => match mask.trim().parse::<u8>() {
            Ok(mask) => (ip, mask),
            Err(_) => return false,
        },
        None => (text, 0),
    };
    if ip.parse::<Ipv4Addr>().is_ok() {
        return mask <= 32;
    }
    mask <= 128 && ip.parse::<Ipv6Addr>().is_ok()
}

fn check(conf: &Value) -> Result<(), String> {
    for list in ["whitelist", "blacklist"] {
        for item in conf
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let text = item.as_str().unwrap_or_default();
            if !is_ip_or_cidr(text) {
                return Err(format!("invalid ip address: {text}"));
            }
        }
    }
    Ok(())
}
