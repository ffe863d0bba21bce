//! Typed configurations for the data plane, with APISIX's runtime defaults applied.
//!
//! The Admin API stores exactly what the client sent (reference §0 #2); the defaults of the
//! schemas apply when an object is used. [`parse`] turns a stored (validated, decrypted) object
//! into its typed form. Closed resources reject unknown fields. Lua leniencies that the validator
//! accepts are absorbed here too: integral floats (`1.0`) read as integers, and an empty `{}`
//! where a list is expected (or `[]` where a map is) reads as empty.

mod consumer;
mod de;
mod health;
mod route;
mod ssl;
mod upstream;

pub use consumer::{Consumer, ConsumerGroup, Credential, GlobalRule, PluginConfig};
pub use health::{
    ActiveCheck, ActiveHealthy, ActiveUnhealthy, CheckType, HealthCheck, PassiveCheck,
    PassiveHealthy, PassiveUnhealthy,
};
pub use route::Route;
pub use ssl::{Ssl, SslClient, SslType};
pub use upstream::{HashOn, KeepalivePool, Node, PassHost, Scheme, Timeout, Upstream, UpstreamTls};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Number, Value};
use std::collections::BTreeMap;
use std::fmt;

/// The `plugins` map of an object: plugin name → configuration.
pub type Plugins = Map<String, Value>;

/// `labels`: key → value.
pub type Labels = BTreeMap<String, String>;

/// Parses a stored object into its typed form; the error names the offending field as serde
/// reports it.
pub fn parse<T: DeserializeOwned>(v: &Value) -> Result<T, String> {
    let mut v = v.clone();
    integral_floats_to_ints(&mut v);
    serde_json::from_value(v).map_err(|e| e.to_string())
}

fn integral_floats_to_ints(v: &mut Value) {
    match v {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15) {
                *v = Value::Number(Number::from(f as i64));
            }
        }
        Value::Array(a) => a.iter_mut().for_each(integral_floats_to_ints),
        Value::Object(o) => o.values_mut().for_each(integral_floats_to_ints),
        _ => {}
    }
}

/// An object id: a string, or an integer read as its decimal string (APISIX's `tostring`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(pub String);

impl Id {
    /// The id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => Ok(Id(s)),
            Value::Number(n) => Ok(Id(n.to_string())),
            other => Err(serde::de::Error::custom(format!("invalid id: {other}"))),
        }
    }
}

#[cfg(test)]
mod tests;
