//! Deserializers for Lua's empty-table ambiguity: `{}` is an empty list and `[]` an empty map.

use serde::de::{DeserializeOwned, Error};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A list that may arrive as `{}`.
pub(crate) fn list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    match Value::deserialize(d)? {
        Value::Object(o) if o.is_empty() => Ok(Vec::new()),
        v @ Value::Array(_) => serde_json::from_value(v).map_err(D::Error::custom),
        other => Err(D::Error::custom(format!("expected an array, got {other}"))),
    }
}

/// A map that may arrive as `[]`.
pub(crate) fn map<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned + Default,
{
    match Value::deserialize(d)? {
        Value::Array(a) if a.is_empty() => Ok(T::default()),
        v @ Value::Object(_) => serde_json::from_value(v).map_err(D::Error::custom),
        other => Err(D::Error::custom(format!("expected an object, got {other}"))),
    }
}

/// An optional map that may arrive as `[]`.
pub(crate) fn opt_map<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned + Default,
{
    map(d).map(Some)
}
