//! Routes compiled for the data plane.

use std::sync::Arc;

use portico_expr::Expr;
use portico_model::types;
use portico_router::RouteSpec;

use crate::upstream::{Timeouts, Upstream};

/// A route's own compiled parts; reused while its store revision does not change.
#[derive(Debug)]
pub struct CompiledRoute {
    /// Store key below the cluster prefix, e.g. `ws/default/routes/1`.
    pub key: String,
    pub workspace: String,
    pub id: String,
    pub name: Option<String>,
    pub mod_revision: i64,
    /// `timeout`, overriding the upstream's.
    pub timeout: Option<Timeouts>,
    pub enable_websocket: bool,
    /// The `upstream_id`, which wins over an inline upstream.
    pub upstream_id: Option<String>,
    /// The inline upstream, compiled.
    pub inline_upstream: Option<Arc<Upstream>>,
    /// The match conditions.
    pub spec: RouteSpec<()>,
}

/// Where a matched route sends its requests.
#[derive(Debug, Clone)]
pub enum RouteUpstream {
    Ready(Arc<Upstream>),
    /// `upstream_id` names no (usable) upstream: 502.
    Missing(String),
    /// The route has no upstream: 503.
    None,
}

/// A route as the router hands it out: its compiled parts and its resolved upstream.
#[derive(Debug)]
pub struct RouteEntry {
    pub route: Arc<CompiledRoute>,
    pub upstream: RouteUpstream,
}

/// The match conditions of a typed route.
pub fn spec(route: &types::Route) -> Result<RouteSpec<()>, String> {
    let vars = match &route.vars {
        Some(rule) => Some(
            Expr::compile(rule)
                .map_err(|e| format!("failed to validate the 'vars' expression: {e}"))?,
        ),
        None => None,
    };
    let mut spec = RouteSpec::new(());
    spec.uris = route.paths().into_iter().map(str::to_string).collect();
    spec.hosts = route.host_list().into_iter().map(str::to_string).collect();
    spec.methods = route.methods.clone();
    spec.remote_addrs = route
        .remote_addr_list()
        .into_iter()
        .map(str::to_string)
        .collect();
    spec.vars = vars;
    spec.priority = route.priority;
    // The router checks methods, addresses and patterns when it is built: try this route alone
    // so that one bad route cannot keep the others out of the snapshot.
    portico_router::Router::build(vec![spec.clone()]).map_err(|e| e.to_string())?;
    Ok(spec)
}
