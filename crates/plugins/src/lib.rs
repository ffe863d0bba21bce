//! Portico's plugins and their runtime.
//!
//! * [`TABLE`] is the one list of plugins a reader can grep: each row names a plugin's file, its
//!   registry row (`spec`: schema with APISIX's defaults, priority, secret fields, consumer
//!   schema, checks) and its runtime constructor (`build`).
//! * The runtime: the [`Plugin`] trait and its phases, the per-request [`Ctx`], [`Flow`] and
//!   [`Reply`] (APISIX's body rules), compiled [`Chain`]s with `_meta` applied, the consumer
//!   merge ([`Chain::merged`]), the per-workspace [`ConsumerIndex`], and [`RoutePlugins`], the
//!   three calls the gateway makes per request.
//! * [`PluginState`] holds what survives snapshot swaps (limit-count counters).
//!
//! Where the runtime deliberately differs from APISIX is listed in `docs/plugins.md`.

pub mod basic_auth;
mod chain;
mod compile;
mod consumer;
mod counters;
mod ctx;
pub mod ip_restriction;
pub mod key_auth;
pub mod limit_count;
pub mod proxy_mirror;
pub mod proxy_rewrite;
pub mod random;
mod redis_schema;
pub mod reply;
mod route;
mod runtime;
pub mod template;
pub mod traffic_split;
mod vars;

use portico_model::{PluginSpec, Registry};

pub use chain::{Chain, Entry};
pub use compile::{Compiler, Conf};
pub use consumer::{AuthMatch, Consumer, ConsumerGroup, ConsumerIndex, GroupLink};
pub use counters::{Count, Counters};
pub use ctx::{Ctx, LogInfo, Mirror, ResponseHead, UpstreamPick};
pub use reply::Reply;
pub use route::RoutePlugins;
pub use runtime::{
    typed, BuildEnv, BuildFn, Flow, Pending, Plugin, PluginState, Resume, UpstreamBuilder,
};

/// One row of the plugin table.
#[derive(Debug, Clone, Copy)]
pub struct Def {
    /// Plugin name.
    pub name: &'static str,
    /// Its registry row.
    pub spec: fn() -> PluginSpec,
    /// Its runtime constructor.
    pub build: BuildFn,
}

/// Every plugin Portico knows, in catalogue order (the registry sorts by priority).
pub const TABLE: &[Def] = &[
    Def {
        name: ip_restriction::NAME,
        spec: ip_restriction::spec,
        build: ip_restriction::build,
    },
    Def {
        name: basic_auth::NAME,
        spec: basic_auth::spec,
        build: basic_auth::build,
    },
    Def {
        name: key_auth::NAME,
        spec: key_auth::spec,
        build: key_auth::build,
    },
    Def {
        name: proxy_rewrite::NAME,
        spec: proxy_rewrite::spec,
        build: proxy_rewrite::build,
    },
    Def {
        name: limit_count::NAME,
        spec: limit_count::spec,
        build: limit_count::build,
    },
    Def {
        name: proxy_mirror::NAME,
        spec: proxy_mirror::spec,
        build: proxy_mirror::build,
    },
    Def {
        name: traffic_split::NAME,
        spec: traffic_split::spec,
        build: traffic_split::build,
    },
];

/// The registry rows of every plugin in [`TABLE`].
pub fn specs() -> Vec<PluginSpec> {
    TABLE.iter().map(|d| (d.spec)()).collect()
}

/// The plugin registry.
pub fn registry() -> Registry {
    Registry::new(specs())
}

/// The runtime constructor of a plugin.
pub fn builder(name: &str) -> Option<BuildFn> {
    TABLE.iter().find(|d| d.name == name).map(|d| d.build)
}

#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_chain;
