//! The JSON Schema validator, a port of the subset of `api7/jsonschema` that APISIX uses, with
//! its exact error messages (reference §1.8), e.g.
//! `property "methods" validation failed: failed to validate item 1: matches none of the enum values`.
//!
//! Like api7/jsonschema it checks `properties` in schema order (serde_json keeps it) and it
//! *injects defaults*: an absent property whose schema has a `default` is set while validating,
//! so later keywords of the same pass (`if`, `oneOf`, `minProperties`, ...) and semantic checks
//! see the defaulted object. [`validate`] works on a copy; [`validate_in_place`] leaves the
//! defaults in the value (the typed layer and plugin checks use that).
//!
//! Lua semantics that show in results are kept: `{}` and `[]` are both objects and arrays; type
//! names in messages are Lua's (`table`, `userdata` for `null`); numbers print as `%.14g`.

mod compound;
pub(crate) mod lua;
pub mod pattern;
mod validator;

use serde_json::Value;

pub use lua::{cjson_encode, format_number};

/// Validates `value` against `schema` and returns the api7/jsonschema message of the first
/// failure. `value` is not changed (defaults are injected into a copy).
pub fn validate(schema: &Value, value: &Value) -> Result<(), String> {
    let mut copy = value.clone();
    validate_in_place(schema, &mut copy)
}

/// Validates `value` against `schema`, leaving the injected defaults in `value`.
pub fn validate_in_place(schema: &Value, value: &mut Value) -> Result<(), String> {
    validator::validate(schema, value)
}

#[cfg(test)]
mod tests;
