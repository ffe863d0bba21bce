//! Config → compiled snapshot: the one immutable structure a data-plane node serves from.
//!
//! A [`Snapshot`] is compiled off the request path from the cluster's objects ([`Config`]) and
//! swapped in whole; a request keeps the snapshot it started with. Compiling reuses every part of
//! the previous snapshot whose store revision did not change (compiled routes, upstreams with
//! their balancer and health state, certificates), so a change costs the changed objects plus one
//! router build.

mod build;
pub mod client_tls;
mod consumers;
mod health;
pub mod plugins;
pub mod route;
pub mod tls;
pub mod upstream;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use portico_router::Router;

pub use build::compile;
pub use plugins::{PluginCache, WorkspacePlugins};
/// The plugin runtime (context, flow, chains), for the gateway to call.
pub use portico_plugins as runtime;
pub use route::{CompiledRoute, RouteEntry, RouteUpstream};
pub use tls::{ServerCert, SniTable};
pub use upstream::{Timeouts, Upstream, UpstreamNode};

/// One stored object: its JSON and the revision that last changed it.
#[derive(Clone, Debug)]
pub struct Item {
    pub mod_revision: i64,
    pub value: serde_json::Value,
}

/// A cluster's objects keyed below the cluster prefix, e.g. `ws/default/routes/1`.
pub type Config = BTreeMap<String, Item>;

/// An object that could not be compiled, and why (the node keeps serving without it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub error: String,
}

/// The compiled configuration of one cluster at one store revision.
pub struct Snapshot {
    /// The store revision this snapshot reflects.
    pub revision: i64,
    pub router: Router<Arc<RouteEntry>>,
    pub sni: SniTable,
    /// Every compiled upstream by key (named ones, and inline ones under their route's key).
    pub upstreams: HashMap<String, Arc<Upstream>>,
    /// Compiled routes by key, for reuse by the next compile.
    pub routes: HashMap<String, Arc<CompiledRoute>>,
    /// Compiled certificates by key, for reuse: `(mod_revision, cert, server names)`.
    pub certs: HashMap<String, (i64, Arc<ServerCert>, Vec<String>)>,
    /// Compiled plugin chains and consumer indexes, and the plugin state that outlives
    /// snapshots (rate-limit counters), for reuse by the next compile.
    pub plugins: PluginCache,
    /// Objects left out.
    pub problems: Vec<Problem>,
}

impl Snapshot {
    /// A snapshot with nothing in it (every request gets 404).
    pub fn empty() -> Snapshot {
        Snapshot {
            revision: 0,
            router: empty_router(),
            sni: SniTable::default(),
            upstreams: HashMap::new(),
            routes: HashMap::new(),
            certs: HashMap::new(),
            plugins: PluginCache::default(),
            problems: Vec::new(),
        }
    }
}

/// A router without routes.
pub(crate) fn empty_router() -> Router<Arc<RouteEntry>> {
    Router::build(Vec::new()).expect("a router without routes always builds")
}

#[cfg(test)]
mod tests_plugins;
