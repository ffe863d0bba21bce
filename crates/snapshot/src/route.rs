//! Routes compiled for the data plane.

use std::sync::Arc;

use portico_expr::Expr;
use portico_model::types;
use portico_plugins::RoutePlugins;
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
    /// The plugin template whose plugins the route runs.
    pub plugin_config_id: Option<String>,
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

/// A route as the router hands it out: its compiled parts, its resolved upstream and its
/// plugins.
///
/// # Running the plugins (what the gateway does per request)
///
/// `plugins` ([`RoutePlugins`]; the whole runtime is re-exported as [`crate::runtime`]) holds the workspace's global rules, the route's plugin template and the
/// workspace's consumers. After the route matched:
///
/// 1. Build the context: `let mut ctx = Ctx::new(parts.method, parts.uri, parts.headers,
///    conn.remote)`, then set `ctx.path` (the normalised `$uri` the router matched),
///    `ctx.host` (`$host`), `ctx.server_port`, `ctx.scheme` and `ctx.version`.
/// 2. `match entry.plugins.access_phase(&mut ctx).await`:
///    * `Flow::Respond(reply)`: answer with `reply` (status, headers, body; e.g. 401 from
///      key-auth, 503 when the template is missing). No upstream is contacted.
///    * `Flow::Continue`: proxy. Take the request from the context: method `ctx.method`,
///      headers `ctx.headers` (auth plugins added `X-Consumer-*`, proxy-rewrite changed
///      them; apply hop-by-hop stripping and `X-Forwarded-*` after), target `ctx.upstream_uri`
///      when set, else `ctx.uri`'s path and query (key-auth may have removed its query
///      argument), and `Host` = `ctx.upstream_host` when set (it beats `pass_host`), else as
///      today.
/// 3. With the response head in hand — the upstream's, the reply's, or one of the gateway's
///    own error pages (502, 504, ...) — call `entry.plugins.header_filter_phase(&mut ctx,
///    &mut status, &mut headers)` before sending it: it adds the response headers plugins set
///    (limit-count's `X-RateLimit-*`) and runs `header_filter`.
/// 4. When the body has been sent (or the client went away), call
///    `entry.plugins.log_phase(&mut ctx)`.
///
/// Requests that match no route run no plugins (APISIX would run the global rules; Portico's
/// global rules belong to a workspace, and an unmatched request has none).
#[derive(Debug)]
pub struct RouteEntry {
    pub route: Arc<CompiledRoute>,
    pub upstream: RouteUpstream,
    /// The plugins to run: global rules, the route's template, the consumers for auth.
    pub plugins: Arc<RoutePlugins>,
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
