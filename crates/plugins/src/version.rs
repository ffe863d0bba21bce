//! `apisix/plugin.lua:conf_version`: the checksum of a plugin configuration that rate-limit
//! plugins put into their counter keys, so that editing a configuration starts new counters.

use serde_json::Value;

/// JSON with object keys sorted (`core.json.stably_encode`), appended to `out`.
pub(crate) fn stable_json(v: &Value, out: &mut String) {
    match v {
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                stable_json(&o[k.as_str()], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, item) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                stable_json(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// crc32 of the configuration encoded with sorted keys.
pub(crate) fn conf_version(conf: &Value) -> u32 {
    let mut text = String::new();
    stable_json(conf, &mut text);
    crc32fast::hash(text.as_bytes())
}
