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

pub mod api_breaker;
pub mod basic_auth;
pub mod batch;
mod chain;
mod compile;
mod consumer;
pub mod consumer_restriction;
pub mod cors;
mod counters;
pub mod csrf;
mod ctx;
pub mod fault_injection;
pub mod file_logger;
pub mod gzip;
pub mod hmac_auth;
pub mod http_logger;
pub mod ip_restriction;
pub mod ip_text;
pub mod jwt_auth;
pub mod key_auth;
pub mod limit_conn;
pub mod limit_count;
pub mod limit_req;
pub mod log_entry;
pub mod mocking;
pub mod prometheus;
pub mod proxy_mirror;
pub mod proxy_rewrite;
pub mod random;
pub mod real_ip;
pub mod redirect;
pub mod redis;
mod redis_schema;
pub mod referer_restriction;
pub mod reply;
pub mod request_id;
pub mod request_validation;
pub mod response_rewrite;
mod route;
mod runtime;
pub mod tcp_logger;
pub mod template;
pub mod tls;
pub mod traffic_split;
pub mod ua_restriction;
pub mod uri_blocker;
mod vars;
mod version;

use portico_model::{PluginSpec, Registry};

pub use chain::{Chain, Entry};
pub use compile::{Compiler, Conf};
pub use consumer::{AuthMatch, Consumer, ConsumerGroup, ConsumerIndex, GroupLink};
pub use counters::{Count, Counters};
pub use ctx::{Ctx, LogInfo, MatchedRoute, Mirror, ResponseHead, UpstreamPick};
pub use reply::Reply;
pub use route::RoutePlugins;
pub use runtime::{
    typed, BuildEnv, BuildFn, Flow, Pending, Phases, Plugin, PluginState, Resume, UpstreamBuilder,
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
        name: hmac_auth::NAME,
        spec: hmac_auth::spec,
        build: hmac_auth::build,
    },
    Def {
        name: basic_auth::NAME,
        spec: basic_auth::spec,
        build: basic_auth::build,
    },
    Def {
        name: jwt_auth::NAME,
        spec: jwt_auth::spec,
        build: jwt_auth::build,
    },
    Def {
        name: key_auth::NAME,
        spec: key_auth::spec,
        build: key_auth::build,
    },
    Def {
        name: consumer_restriction::NAME,
        spec: consumer_restriction::spec,
        build: consumer_restriction::build,
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
    Def {
        name: prometheus::NAME,
        spec: prometheus::spec,
        build: prometheus::build,
    },
    Def {
        name: http_logger::NAME,
        spec: http_logger::spec,
        build: http_logger::build,
    },
    Def {
        name: tcp_logger::NAME,
        spec: tcp_logger::spec,
        build: tcp_logger::build,
    },
    Def {
        name: file_logger::NAME,
        spec: file_logger::spec,
        build: file_logger::build,
    },
    Def {
        name: redirect::NAME,
        spec: redirect::spec,
        build: redirect::build,
    },
    Def {
        name: response_rewrite::NAME,
        spec: response_rewrite::spec,
        build: response_rewrite::build,
    },
    Def {
        name: gzip::NAME,
        spec: gzip::spec,
        build: gzip::build,
    },
    Def {
        name: mocking::NAME,
        spec: mocking::spec,
        build: mocking::build,
    },
    Def {
        name: cors::NAME,
        spec: cors::spec,
        build: cors::build,
    },
    Def {
        name: ua_restriction::NAME,
        spec: ua_restriction::spec,
        build: ua_restriction::build,
    },
    Def {
        name: referer_restriction::NAME,
        spec: referer_restriction::spec,
        build: referer_restriction::build,
    },
    Def {
        name: csrf::NAME,
        spec: csrf::spec,
        build: csrf::build,
    },
    Def {
        name: uri_blocker::NAME,
        spec: uri_blocker::spec,
        build: uri_blocker::build,
    },
    Def {
        name: request_validation::NAME,
        spec: request_validation::spec,
        build: request_validation::build,
    },
    Def {
        name: real_ip::NAME,
        spec: real_ip::spec,
        build: real_ip::build,
    },
    Def {
        name: request_id::NAME,
        spec: request_id::spec,
        build: request_id::build,
    },
    Def {
        name: fault_injection::NAME,
        spec: fault_injection::spec,
        build: fault_injection::build,
    },
    Def {
        name: api_breaker::NAME,
        spec: api_breaker::spec,
        build: api_breaker::build,
    },
    Def {
        name: limit_conn::NAME,
        spec: limit_conn::spec,
        build: limit_conn::build,
    },
    Def {
        name: limit_req::NAME,
        spec: limit_req::spec,
        build: limit_req::build,
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
