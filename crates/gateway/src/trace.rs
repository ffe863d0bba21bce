//! What the proxy learns about one request while it handles it — the matched route, the
//! consumer, every upstream try — kept where the access log and the request counters read it
//! once the response has ended.
//!
//! The trace is a task-local ([`scope`]) so that the places that learn these facts (routing in
//! `proxy.rs`, the retry loop in `call.rs`) note them with one call and no extra parameters.
//! Outside a scope (a `Gateway::handle` called directly) every note is a no-op.

use std::cell::RefCell;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use portico_model::types::Scheme;
use portico_router::Match;
use portico_snapshot::runtime::Consumer;
use portico_snapshot::{CompiledRoute, RouteEntry};
use tokio::task::futures::TaskLocalFuture;

tokio::task_local! {
    /// Boxed: the scope swaps its value in and out of the thread at every poll.
    static TRACE: Box<RefCell<Trace>>;
}

/// Facts about one request that only the proxy knows.
#[derive(Debug, Default)]
pub(crate) struct Trace {
    /// Whether the access log wants the upstream request's host and URI (they cost a copy).
    pub wants_target: bool,
    /// The matched route, with the positions of the URI and host that matched in its spec.
    pub route: Option<Arc<CompiledRoute>>,
    pub matched_uri: Option<u16>,
    pub matched_host: Option<u16>,
    /// The consumer the auth plugins attached.
    pub consumer: Option<Arc<Consumer>>,
    /// Every try, in order (nginx's `$upstream_addr`, `$upstream_status`, ...).
    pub tries: Vec<Try>,
    /// `$upstream_scheme`; `None` before an upstream was chosen.
    pub upstream_scheme: Option<&'static str>,
    /// `$upstream_host`: the `Host` sent upstream; `None` = the client's.
    pub upstream_host: Option<String>,
    /// `$upstream_uri`: the request target sent upstream.
    pub upstream_uri: Option<String>,
}

/// One exchange with one node.
#[derive(Debug, Clone)]
pub(crate) struct Try {
    pub addr: TryAddr,
    /// The node's status, or nginx's stand-in for a failed try (502, 504).
    pub status: u16,
    pub started: Instant,
    /// Time to the end of the try; `None` for the answering try until its body has ended.
    pub took: Option<Duration>,
}

/// Where a try went: an address, or a node name that did not resolve.
#[derive(Debug, Clone)]
pub(crate) enum TryAddr {
    Socket(SocketAddr),
    Name(String),
}

impl Trace {
    /// The route's matched URI pattern and host as configured (`""` when none).
    pub fn matched(&self) -> (&str, &str) {
        let Some(route) = &self.route else {
            return ("", "");
        };
        fn pick(list: &[String], at: Option<u16>) -> &str {
            at.and_then(|i| list.get(usize::from(i)))
                .map_or("", String::as_str)
        }
        (
            pick(&route.spec.uris, self.matched_uri),
            pick(&route.spec.hosts, self.matched_host),
        )
    }

    /// Ends the answering try at `end`, and returns the time spent in all tries.
    pub fn close_tries(&mut self, end: Instant) -> Option<Duration> {
        let mut total = None::<Duration>;
        for t in &mut self.tries {
            let took = *t
                .took
                .get_or_insert_with(|| end.saturating_duration_since(t.started));
            total = Some(total.unwrap_or_default() + took);
        }
        total
    }
}

/// Runs `fut` with a fresh trace; take it back with `TaskLocalFuture::take_value`.
pub(crate) fn scope<F: Future>(wants_target: bool, fut: F) -> TaskLocalFuture<Scoped, F> {
    let trace = Trace {
        wants_target,
        ..Trace::default()
    };
    TRACE.scope(Box::new(RefCell::new(trace)), fut)
}

/// What a trace scope holds.
pub(crate) type Scoped = Box<RefCell<Trace>>;

fn with(f: impl FnOnce(&mut Trace)) {
    let _ = TRACE.try_with(|t| {
        if let Ok(mut t) = t.try_borrow_mut() {
            f(&mut t);
        }
    });
}

/// Notes the route a request matched (called once the router answered).
pub(crate) fn matched(found: &Match<'_, Arc<RouteEntry>>) {
    with(|t| {
        let route = &found.route.route;
        let spec = &route.spec;
        t.matched_uri = spec
            .uris
            .iter()
            .position(|u| u == found.matched_uri)
            .and_then(|i| u16::try_from(i).ok());
        t.matched_host = found.matched_host.and_then(|h| {
            spec.hosts
                .iter()
                .position(|c| c.eq_ignore_ascii_case(h))
                .and_then(|i| u16::try_from(i).ok())
        });
        t.route = Some(route.clone());
    });
}

/// The matched route's URI pattern and host as configured, for the plugins' context
/// (prometheus' `matched_uri` and `matched_host`); `None` outside a trace scope.
pub(crate) fn matched_route() -> Option<portico_snapshot::runtime::prometheus::MatchedRoute> {
    TRACE
        .try_with(|t| {
            let t = t.try_borrow().ok()?;
            t.route.as_ref()?;
            let (uri, host) = t.matched();
            Some(portico_snapshot::runtime::prometheus::MatchedRoute {
                uri: uri.to_string(),
                host: host.to_string(),
            })
        })
        .ok()
        .flatten()
}

/// Notes the consumer the access phase attached, if any.
pub(crate) fn consumer(consumer: Option<&Arc<Consumer>>) {
    if let Some(c) = consumer {
        with(|t| t.consumer = Some(c.clone()));
    }
}

/// Notes the upstream request: its scheme, and (when the access log wants them) the target and
/// the `Host` it carries (`None` = the client's).
pub(crate) fn upstream(scheme: Scheme, path_and_query: &str) {
    with(|t| {
        t.upstream_scheme = Some(match scheme {
            Scheme::Https => "https",
            Scheme::Grpc => "grpc",
            Scheme::Grpcs => "grpcs",
            _ => "http",
        });
        if t.wants_target {
            t.upstream_uri = Some(path_and_query.to_string());
        }
    });
}

/// Notes a try that ended now with `status` (a failure: nginx's 502 or 504).
pub(crate) fn failed(addr: TryAddr, status: u16, started: Instant) {
    with(|t| {
        t.tries.push(Try {
            addr,
            status,
            started,
            took: Some(started.elapsed()),
        });
    });
}

/// Notes the try whose response goes to the client; its time runs until the body ends.
pub(crate) fn answered(addr: SocketAddr, status: u16, started: Instant, host: Option<&str>) {
    with(|t| {
        t.tries.push(Try {
            addr: TryAddr::Socket(addr),
            status,
            started,
            took: None,
        });
        if t.wants_target {
            t.upstream_host = host.map(str::to_string);
        }
    });
}
