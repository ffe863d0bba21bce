//! Portico's plugins: one file per plugin, each with a `spec()` giving its registry row (schema
//! with APISIX's defaults, priority, secret fields, consumer schema and semantic checks).
//! [`registry`] is the one table a reader can grep. The runtime of each plugin joins its file in
//! the data-plane work.

pub mod basic_auth;
pub mod ip_restriction;
pub mod key_auth;
pub mod limit_count;
pub mod proxy_rewrite;
mod redis_schema;

use portico_model::{PluginSpec, Registry};

/// Every plugin Portico knows, in catalogue order (the registry sorts by priority).
pub fn specs() -> Vec<PluginSpec> {
    vec![
        ip_restriction::spec(),
        basic_auth::spec(),
        key_auth::spec(),
        proxy_rewrite::spec(),
        limit_count::spec(),
    ]
}

/// The plugin registry.
pub fn registry() -> Registry {
    Registry::new(specs())
}

#[cfg(test)]
mod tests;
