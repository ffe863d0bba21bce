//! Portico's gateway objects as APISIX 3.x's Admin API sees them: the resource kinds, their
//! JSON Schemas, validation with APISIX's exact messages, the plugin registry table, secrets at
//! rest, and typed configurations for the data plane.
//!
//! Pure: no I/O, no async. Checks that need other objects (references, duplicate auth keys,
//! global-rule plugin conflicts) are split out so the caller can answer them from its store.
//!
//! Where Portico deliberately differs from APISIX:
//! * routes carry no `plugins` (they use one plugin template via `plugin_config_id`), and
//!   `service_id`, `script`, `script_id`, `filter_func` and `_meta.pre_function` are refused with
//!   a message saying why (no services, no Lua); a route needs `upstream`, `upstream_id` or
//!   `plugin_config_id`;
//! * certificates and keys get a structural PEM/DER check here (APISIX's OpenSSL messages); the
//!   data plane parses them fully; `$secret://`/`$env://` references are not supported;
//! * secrets at rest use AES-256-GCM with random nonces instead of AES-CBC ([`keyring`]);
//! * schema regexes run on the `regex` crate with PCRE's ASCII classes; `$` does not match before
//!   a trailing newline ([`schema::pattern`]);
//! * properties are checked in schema order (APISIX: Lua table order), so when several fields are
//!   wrong the first one in the schema is reported;
//! * limit-count's `group conf mismatched` needs all stored configurations and is left to the
//!   snapshot compiler.
//!
//! ```
//! use portico_model::{check, Kind, Registry};
//! use serde_json::json;
//!
//! let plugins = Registry::default();
//! let err = check(Kind::Route, &json!({"id": "1", "uri": 1, "upstream_id": "1"}), &plugins);
//! assert_eq!(
//!     err.unwrap_err(),
//!     "invalid configuration: property \"uri\" validation failed: wrong type: expected string, got number"
//! );
//! ```

mod check;
pub mod keyring;
mod kind;
pub mod node;
pub mod plugin;
pub mod schema;
pub mod schemas;
mod secrets;
pub mod types;

pub use check::{
    auth_keys, check, duplicate_key_message, forbidden_property, forbidden_property_message,
    global_rule_conflict, parse_addr, plugin_references, reference_error, references, validate_id,
    wrong_ssl_type_error, AuthKey, KeyOwner, ROUTE_PLUGINS_MESSAGE,
};
pub use keyring::Keyring;
pub use kind::{Kind, Methods};
pub use plugin::{PluginSpec, Registry, SchemaType};
pub use schemas::core_schema;
pub use secrets::{decrypt_secrets, encrypt_secrets, strip_ssl_keys};
pub use types::parse;
