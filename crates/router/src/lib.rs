//! Route matching of APISIX's default HTTP router, `radixtree_host_uri`: a [`Router`] is compiled
//! once per config snapshot from [`RouteSpec`]s and queried per request with [`Router::find`].
//! No I/O; building and matching never panic on configuration or request input.
//!
//! Matching, as in APISIX (lua-resty-radixtree with `no_param_match`):
//!
//! 1. Routes with hosts first. The request host is looked up as an exact host, then against
//!    wildcard hosts from the longest suffix to the shortest (`*.foo.com` matches any depth below
//!    `foo.com` but not `foo.com`; `*` matches all). Each host has its own URI table; the first
//!    table with a route passing every condition wins, even over a higher-priority route without
//!    hosts.
//! 2. Otherwise the table of routes without hosts.
//!
//! Within a URI table: the exact path first (a URI without `*`; `:name` is literal), then every
//! stored prefix of the path from the longest to the shortest (`/foo*` stores `/foo` and matches
//! `/foo` and `/foobar`; `/foo/*` stores `/foo/` and does not match `/foo`; a `*` in the middle
//! stores the text before it and also checks the whole path). Candidates under one stored path
//! are ordered by `priority` (higher first), then by pattern length (longer first), then by
//! order in the route list; the first one whose method, remote address and `vars` pass wins.
//! So `priority` only ranks routes stored under the same path.
//!
//! Finding the candidate lists costs time proportional to the host and path length (hash maps
//! for exact hosts and paths, radix trees for wildcard hosts and prefixes), not to the number of
//! routes; only candidates whose conditions fail add to it.
//!
//! Left to the caller: dropping disabled routes (`status: 0`), giving a route its service's
//! `hosts` when it has none, and everything `filter_func` would do (Lua, not portable). The
//! `radixtree_uri` and `radixtree_uri_with_parameter` routers are not implemented.

mod host;
mod pattern;
mod radix;
mod route;
mod table;

use std::net::IpAddr;

use portico_expr::{Expr, IpMatcher, Vars};

use crate::host::{HostTable, HostTableBuilder};
use crate::pattern::Pattern;
use crate::route::{Methods, Route};
use crate::table::{Slot, UriTable, UriTableBuilder};

/// One route as the router needs it: the match conditions and an opaque payload.
#[derive(Debug, Clone)]
pub struct RouteSpec<T> {
    /// What [`Router::find`] hands back, e.g. an index or an `Arc` of the compiled route.
    pub id: T,
    /// The route's `uri`/`uris`. A route without URIs is kept but never matches.
    pub uris: Vec<String>,
    /// `host`/`hosts`, or the service's `hosts` when the route has none; empty = any host.
    /// Lower-cased by the router.
    pub hosts: Vec<String>,
    /// Upper-case method names (`GET` ... `PURGE`); empty = every method.
    pub methods: Vec<String>,
    /// `remote_addr`/`remote_addrs`: IPv4/IPv6 addresses and CIDRs; empty = every client.
    pub remote_addrs: Vec<String>,
    /// The compiled `vars` rule, checked last.
    pub vars: Option<Expr>,
    /// `priority` (default 0): ranks routes stored under the same path, higher first.
    pub priority: i64,
}

impl<T> RouteSpec<T> {
    /// A route with payload `id` and no conditions at all (and no URIs yet).
    pub fn new(id: T) -> RouteSpec<T> {
        RouteSpec {
            id,
            uris: Vec::new(),
            hosts: Vec::new(),
            methods: Vec::new(),
            remote_addrs: Vec::new(),
            vars: None,
            priority: 0,
        }
    }
}

/// What a request offers to matching.
#[derive(Clone, Copy)]
pub struct Request<'a> {
    /// `$host`: the lower-cased `Host` header without port (or the server name).
    pub host: &'a str,
    /// `$uri`: the normalised path, without query string.
    pub path: &'a str,
    /// `$request_method`, upper case.
    pub method: &'a str,
    /// `$remote_addr` (after real-IP processing).
    pub remote_addr: IpAddr,
    /// Variables for `vars` rules.
    pub vars: &'a dyn Vars,
}

/// The route a request matched.
#[derive(Debug, PartialEq, Eq)]
pub struct Match<'a, T> {
    /// The payload of the route.
    pub route: &'a T,
    /// The URI pattern that matched, as configured (Prometheus `matched_uri`).
    pub matched_uri: &'a str,
    /// The route host that matched, as configured but lower-cased (Prometheus `matched_host`);
    /// `None` when the route has no hosts.
    pub matched_host: Option<&'a str>,
}

/// Why a route list could not be compiled; `route` is the index in the list given to
/// [`Router::build`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouterError {
    /// A method outside lua-resty-radixtree's list (`GET POST PUT DELETE PATCH HEAD OPTIONS
    /// CONNECT TRACE PURGE`).
    #[error("route #{route}: unknown method '{method}'")]
    UnknownMethod { route: usize, method: String },
    /// A `remote_addrs` entry that is neither an IP nor a CIDR.
    #[error("route #{route}: invalid IP address: {message}")]
    RemoteAddr { route: usize, message: String },
    /// A URI whose full-path check could not be compiled.
    #[error("route #{route}: invalid uri '{uri}': {reason}")]
    Uri {
        route: usize,
        uri: String,
        reason: String,
    },
    /// More routes or URIs than the router indexes (over 4 billion).
    #[error("too many routes or uris")]
    TooLarge,
}

/// An immutable, compiled router; cheap to share between threads when `T` is.
#[derive(Debug)]
pub struct Router<T> {
    routes: Box<[Route<T>]>,
    patterns: Box<[Pattern]>,
    hosts: HostTable,
    fallback: UriTable,
}

impl<T> Router<T> {
    /// Compiles the routes. Order matters: among candidates with equal priority and pattern
    /// length under the same stored path, the earlier route wins.
    pub fn build(specs: Vec<RouteSpec<T>>) -> Result<Router<T>, RouterError> {
        let mut routes = Vec::with_capacity(specs.len());
        let mut patterns: Vec<Pattern> = Vec::with_capacity(specs.len());
        let mut hosts = HostTableBuilder::default();
        let mut fallback = UriTableBuilder::default();
        for (index, spec) in specs.into_iter().enumerate() {
            let route = u32::try_from(index).map_err(|_| RouterError::TooLarge)?;
            let methods =
                Methods::parse(&spec.methods).map_err(|method| RouterError::UnknownMethod {
                    route: index,
                    method,
                })?;
            let remote_addrs = match spec.remote_addrs.as_slice() {
                [] => None,
                list => Some(
                    IpMatcher::new(list).map_err(|message| RouterError::RemoteAddr {
                        route: index,
                        message,
                    })?,
                ),
            };
            let mut slots = Vec::with_capacity(spec.uris.len());
            for uri in &spec.uris {
                let pattern = Pattern::compile(uri).map_err(|reason| RouterError::Uri {
                    route: index,
                    uri: uri.clone(),
                    reason,
                })?;
                let id = u32::try_from(patterns.len()).map_err(|_| RouterError::TooLarge)?;
                slots.push(Slot {
                    route,
                    pattern: id,
                    checked: pattern.has_check(),
                });
                patterns.push(pattern);
            }
            let add = |table: &mut UriTableBuilder| {
                for slot in &slots {
                    table.add(&patterns[slot.pattern as usize], *slot, spec.priority);
                }
            };
            if spec.hosts.is_empty() {
                add(&mut fallback);
            } else {
                for host in &spec.hosts {
                    add(hosts.table(host));
                }
            }
            routes.push(Route::new(spec.id, methods, remote_addrs, spec.vars));
        }
        Ok(Router {
            routes: routes.into_boxed_slice(),
            patterns: patterns.into_boxed_slice(),
            hosts: hosts.build().map_err(|_| RouterError::TooLarge)?,
            fallback: fallback.build().map_err(|_| RouterError::TooLarge)?,
        })
    }

    /// The route for a request, or `None` (APISIX answers `404 Route Not Found`).
    pub fn find(&self, req: &Request<'_>) -> Option<Match<'_, T>> {
        let accept = |slot: Slot| {
            self.routes
                .get(slot.route as usize)
                .is_some_and(|route| route.accepts(req))
                && (!slot.checked
                    || self
                        .patterns
                        .get(slot.pattern as usize)
                        .is_some_and(|pattern| pattern.accepts(req.path)))
        };
        if !self.hosts.is_empty() {
            for entry in self.hosts.candidates(req.host) {
                if let Some(slot) = entry.table.find(req.path, accept) {
                    return self.matched(slot, Some(&entry.pattern));
                }
            }
        }
        let slot = self.fallback.find(req.path, accept)?;
        self.matched(slot, None)
    }

    fn matched<'r>(&'r self, slot: Slot, host: Option<&'r str>) -> Option<Match<'r, T>> {
        Some(Match {
            route: &self.routes.get(slot.route as usize)?.id,
            matched_uri: self.patterns.get(slot.pattern as usize)?.text(),
            matched_host: host,
        })
    }

    /// The number of routes compiled in.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// True when the router has no routes (every request is a miss).
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}
