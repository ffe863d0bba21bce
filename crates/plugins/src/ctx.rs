//! The per-request context plugins read and change (APISIX's `api_ctx` plus the parts of the
//! nginx request plugins touch).
//!
//! The gateway builds it after the route matched ([`Ctx::new`], then fills `path`, `host`,
//! `server_port`, `scheme`), hands it to the route's
//! [`RoutePlugins`](crate::RoutePlugins) phases, and builds the upstream request from it:
//! `method`, `headers`, and `upstream_uri` (or `uri` when no plugin set one) and `upstream_host`.

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use http::header::{HeaderName, HeaderValue, HOST};
use http::{Extensions, HeaderMap, Method, StatusCode, Uri, Version};

use crate::chain::Chain;
use crate::consumer::{Consumer, ConsumerIndex};

/// The response head the `header_filter` phase sees and may change.
#[derive(Debug, Clone, Default)]
pub struct ResponseHead {
    /// Status code.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
}

/// An upstream chosen by a plugin.
#[derive(Clone)]
pub enum UpstreamPick {
    /// An upstream object of the route's workspace, by id.
    Id(String),
    /// An upstream the plugin built from its own configuration with
    /// [`BuildEnv::upstreams`](crate::BuildEnv) (the gateway knows its concrete type).
    Built(Arc<dyn Any + Send + Sync>),
}

impl fmt::Debug for UpstreamPick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpstreamPick::Id(id) => write!(f, "Id({id})"),
            UpstreamPick::Built(_) => f.write_str("Built(..)"),
        }
    }
}

/// A copy of the request to send elsewhere, whose answer is ignored (proxy-mirror).
#[derive(Debug, Clone)]
pub struct Mirror {
    /// Where the copy goes: an upstream the plugin built (see [`UpstreamPick::Built`]).
    pub upstream: UpstreamPick,
    /// Path and query of the copy; `None`: those of the upstream request.
    pub path_and_query: Option<String>,
}

/// How the request went, filled in by the gateway for the `log` phase (APISIX's log variables).
#[derive(Debug, Clone)]
pub struct LogInfo {
    /// When the request head arrived (read with [`portico_clock::now`]); see
    /// [`LogInfo::start_time`] for the wall-clock time.
    pub started: Instant,
    /// Bytes of the request head and declared body (`$request_length`).
    pub request_length: u64,
    /// Bytes of response body handed to the client so far (`$body_bytes_sent`).
    pub body_bytes_sent: u64,
    /// The upstream address of the last try (`$upstream_addr`).
    pub upstream_addr: Option<SocketAddr>,
    /// The upstream's status of the last try (`$upstream_status`).
    pub upstream_status: Option<u16>,
    /// Time from the request head to the upstream's response head (`$upstream_response_time`).
    pub upstream_latency: Option<Duration>,
    /// Bytes of the response's status line and headers as sent (`$bytes_sent` less the body):
    /// counted by the gateway as it writes an HTTP/1.x head, reckoned from the headers for
    /// HTTP/2; 0 until then.
    pub response_head_bytes: u64,
}

impl LogInfo {
    /// When the request head arrived, as wall-clock time (`start_time`).
    pub fn start_time(&self) -> SystemTime {
        portico_clock::system_time(self.started)
    }
}

impl Default for LogInfo {
    fn default() -> LogInfo {
        LogInfo {
            started: portico_clock::now(),
            request_length: 0,
            body_bytes_sent: 0,
            upstream_addr: None,
            upstream_status: None,
            upstream_latency: None,
            response_head_bytes: 0,
        }
    }
}

/// The URI pattern and host of the route that matched, as configured (`""` when the route has
/// no hosts).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchedRoute {
    /// The route's `uri`/`uris` entry that matched.
    pub uri: String,
    /// The route's `host`/`hosts` entry that matched.
    pub host: String,
}

/// One request's context.
#[derive(Debug)]
pub struct Ctx {
    /// Request method (proxy-rewrite may change it); sent upstream.
    pub method: Method,
    /// Request target as received (path and query, not normalised). Plugins that drop a query
    /// argument (key-auth `hide_credentials`) change it, with [`Ctx::remove_query_arg`] (which
    /// keeps the received one for `$real_request_uri`); sent upstream when `upstream_uri` is
    /// `None`.
    pub uri: Uri,
    /// HTTP version of the client request.
    pub version: Version,
    /// Request headers; sent upstream as they are after the plugins ran.
    pub headers: HeaderMap,
    /// `$uri`: the normalised path the route matched on. [`Ctx::new`] sets the raw path.
    pub path: String,
    /// `$host`: lower-cased, without port. [`Ctx::new`] takes it from the `Host` header.
    pub host: String,
    /// The client's address (`$remote_addr`, `$remote_port`).
    pub remote: SocketAddr,
    /// The listener's port (`$server_port`).
    pub server_port: u16,
    /// `http` or `https` (`$scheme`).
    pub scheme: &'static str,
    /// The matched route's id (`$route_id`); set by the route's plugins.
    pub route_id: Arc<str>,
    /// The matched route's name (`$route_name`).
    pub route_name: Option<Arc<str>>,
    /// The matched route's URI pattern and host as configured (prometheus' `matched_uri` and
    /// `matched_host`); set by the gateway when a plugin of the route wants them.
    pub matched: Option<MatchedRoute>,
    /// The authenticated consumer, once an auth plugin attached one.
    pub consumer: Option<Arc<Consumer>>,
    /// `$upstream_uri`: path and query to send upstream instead of `uri` (proxy-rewrite).
    pub upstream_uri: Option<String>,
    /// `Host` to send upstream; wins over the upstream's `pass_host` (proxy-rewrite `host`).
    pub upstream_host: Option<String>,
    /// Response headers set by plugins before the response exists (`core.response.set_header`
    /// in rewrite/access); laid over whatever response the client gets.
    pub response_headers: HeaderMap,
    /// The response head during `header_filter` (and after it, for `log`).
    pub response: Option<ResponseHead>,
    /// Scratch data plugins keep for later phases of the same request.
    pub data: Extensions,
    /// The client's request body, read whole before the first phase when a plugin of the route
    /// [wants it](crate::Plugin::wants_request_body); what is here when the phases end is what
    /// the upstream gets (a plugin may replace it). `None` when no plugin asked.
    pub request_body: Option<Bytes>,
    /// The upstream a plugin chose instead of the route's (traffic-split).
    pub upstream_pick: Option<UpstreamPick>,
    /// Where a copy of the request goes (proxy-mirror; boxed: rare, and the context stays
    /// within the allocator's small size classes).
    pub mirror: Option<Box<Mirror>>,
    /// How the request went, for `log` (filled by the gateway).
    pub log: LogInfo,
    /// limit-count's quota headers, until the response head exists.
    pub(crate) quota: Option<crate::limit_count::QuotaNote>,
    /// Set by the gateway when it writes the response head itself (HTTP/1.x): headers noted
    /// for the response that no `header_filter` plugin needs to see are left to it
    /// ([`Ctx::take_late_headers`]) instead of going through the header map.
    pub late_headers: bool,
    /// The request target as received, kept once a plugin changes `uri` (through
    /// [`Ctx::remove_query_arg`], the one way plugins change it).
    request_uri: Option<Uri>,
    vars: Vec<(String, String)>,
    pub(crate) consumers: Option<Arc<ConsumerIndex>>,
    /// The request phases ran on this context (with the route's global rules): the later
    /// phases run the global rules too.
    pub(crate) global_rules: bool,
    pub(crate) route_chain: Option<Arc<Chain>>,
    filters: Vec<(u64, bool)>,
}

impl Ctx {
    /// A context for a request from `remote`. `path` starts as the raw path and `host` as the
    /// `Host` header (lower-cased, port removed); the gateway overwrites both with what it
    /// routed on, and sets `server_port` and `scheme`.
    pub fn new(method: Method, uri: Uri, headers: HeaderMap, remote: SocketAddr) -> Ctx {
        let path = uri.path().to_string();
        let host = headers
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| uri.host())
            .map(|h| strip_port(h).to_ascii_lowercase())
            .unwrap_or_default();
        Ctx::routed(method, uri, headers, remote, path, host)
    }

    /// A context for a request the gateway routed on `path` (normalised) and `host` (lower-cased,
    /// without port); it then sets `server_port`, `scheme` and `version`.
    pub fn routed(
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        remote: SocketAddr,
        path: String,
        host: String,
    ) -> Ctx {
        Ctx {
            method,
            request_uri: None,
            uri,
            version: Version::HTTP_11,
            headers,
            path,
            host,
            remote,
            server_port: 0,
            scheme: "http",
            route_id: empty_id(),
            route_name: None,
            matched: None,
            consumer: None,
            upstream_uri: None,
            upstream_host: None,
            response_headers: HeaderMap::new(),
            response: None,
            data: Extensions::new(),
            request_body: None,
            upstream_pick: None,
            mirror: None,
            log: LogInfo::default(),
            quota: None,
            late_headers: false,
            vars: Vec::new(),
            consumers: None,
            global_rules: false,
            route_chain: None,
            filters: Vec::new(),
        }
    }

    /// A context from a whole request (its head is copied), for tests and tools.
    pub fn from_request<B>(req: &http::Request<B>, remote: SocketAddr) -> Ctx {
        let mut ctx = Ctx::new(
            req.method().clone(),
            req.uri().clone(),
            req.headers().clone(),
            remote,
        );
        ctx.version = req.version();
        ctx
    }

    /// The response headers left for the gateway to write with the response head (see
    /// [`Ctx::late_headers`]): limit-count's quota headers, which replace any of the same name.
    pub fn take_late_headers(&mut self) -> Option<crate::limit_count::QuotaNote> {
        self.quota.take()
    }

    /// The request target as the client sent it (`$real_request_uri`).
    pub fn real_request_uri(&self) -> &str {
        self.request_uri
            .as_ref()
            .unwrap_or(&self.uri)
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
    }

    /// The request's query string (without `?`), empty when there is none.
    pub fn query(&self) -> &str {
        self.uri.query().unwrap_or("")
    }

    /// The first value of a request header (name case-insensitive), if it is valid text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Sets (`Some`) or removes (`None`) a request header; `core.request.set_header`. Returns
    /// false, changing nothing, for an invalid name or value.
    pub fn set_header(&mut self, name: &str, value: Option<&str>) -> bool {
        let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
            return false;
        };
        match value {
            None => {
                self.headers.remove(&name);
                true
            }
            Some(v) => match HeaderValue::from_bytes(v.as_bytes()) {
                Ok(v) => {
                    self.headers.insert(name, v);
                    true
                }
                Err(_) => false,
            },
        }
    }

    /// Adds a request header value after the existing ones; `core.request.add_header`.
    pub fn add_header(&mut self, name: &str, value: &str) -> bool {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            (Ok(n), Ok(v)) => {
                self.headers.append(n, v);
                true
            }
            _ => false,
        }
    }

    /// Sets a response header for whatever response the client gets
    /// (`core.response.set_header`); an invalid name or value is skipped.
    pub fn set_response_header(&mut self, name: &str, value: &str) {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            self.response_headers.insert(n, v);
        }
    }

    /// The first value of query argument `name`, percent-decoded (`arg_<name>`); a bare `name`
    /// without `=` reads as the empty string.
    pub fn query_arg(&self, name: &str) -> Option<Cow<'_, str>> {
        query_pairs(self.query())
            .find(|(k, _)| decode(k) == name)
            .map(|(_, v)| decode(v))
    }

    /// Removes every occurrence of query argument `name` from `uri`; the other arguments stay
    /// as they were sent. Returns whether one was removed.
    pub fn remove_query_arg(&mut self, name: &str) -> bool {
        let query = self.query();
        let kept: Vec<&str> = query
            .split('&')
            .filter(|pair| {
                let key = pair.split_once('=').map_or(*pair, |(k, _)| k);
                decode(key) != name
            })
            .collect();
        if kept.len() == query.split('&').count() {
            return false;
        }
        let kept = kept.join("&");
        let path = self.uri.path();
        let target = if kept.is_empty() {
            path.to_string()
        } else {
            format!("{path}?{kept}")
        };
        match target.parse::<Uri>() {
            Ok(uri) => {
                let received = std::mem::replace(&mut self.uri, uri);
                self.request_uri.get_or_insert(received);
                true
            }
            Err(_) => false,
        }
    }

    /// Sets a request variable (`ctx.var.<name> = value`), which then wins over the computed
    /// one for every reader ([`portico_expr::Vars`]).
    pub fn set_var(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self.vars.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value,
            None => self.vars.push((name.to_string(), value)),
        }
    }

    pub(crate) fn var_override(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// `consumer.attach_consumer`: remembers the consumer and sets the upstream headers
    /// `X-Consumer-Username`, `X-Credential-Identifier` and `X-Consumer-Custom-ID`, removing
    /// each one the consumer has no value for (so a client cannot forge them).
    pub fn attach_consumer(&mut self, consumer: Arc<Consumer>) {
        /// The upstream headers naming the attached consumer, in the order of
        /// `Consumer::header_values`: `X-Consumer-Username`, `X-Credential-Identifier`,
        /// `X-Consumer-Custom-ID` (as text, compared without a `HeaderName`).
        const CONSUMER_HEADERS: [&str; 3] = [
            "x-consumer-username",
            "x-credential-identifier",
            "x-consumer-custom-id",
        ];

        /// The same as header names (static: copied into a request without a refcount).
        static CONSUMER_HEADER_NAMES: [HeaderName; 3] = [
            HeaderName::from_static(CONSUMER_HEADERS[0]),
            HeaderName::from_static(CONSUMER_HEADERS[1]),
            HeaderName::from_static(CONSUMER_HEADERS[2]),
        ];
        let values = consumer.header_values();
        // Which names the request carries, found in one pass over its names: a removal costs
        // a hash and a probe even when there is nothing to remove (the usual case).
        let mut present = [false; 3];
        if values.iter().any(Option::is_none) {
            for name in self.headers.keys() {
                let name = name.as_str();
                if let Some(i) = CONSUMER_HEADERS.iter().position(|h| *h == name) {
                    present[i] = true;
                }
            }
        }
        for (i, value) in values.iter().enumerate() {
            match value {
                Some(value) => {
                    self.headers
                        .insert(CONSUMER_HEADER_NAMES[i].clone(), value.clone());
                }
                None if present[i] => {
                    self.headers.remove(&CONSUMER_HEADER_NAMES[i]);
                }
                None => {}
            }
        }
        self.consumer = Some(consumer);
    }

    /// The consumers an auth plugin may authenticate (the route's workspace).
    pub fn consumers(&self) -> Option<&ConsumerIndex> {
        self.consumers.as_deref()
    }

    /// Uses `index` for auth plugins (done by [`RoutePlugins`](crate::RoutePlugins); tests).
    pub fn set_consumers(&mut self, index: Arc<ConsumerIndex>) {
        self.consumers = Some(index);
    }

    /// `_meta.filter` of plugin entry `id`, evaluated once per request.
    pub(crate) fn cached_filter(&mut self, id: u64, eval: impl FnOnce(&Ctx) -> bool) -> bool {
        if let Some((_, v)) = self.filters.iter().find(|(i, _)| *i == id) {
            return *v;
        }
        let v = eval(self);
        self.filters.push((id, v));
        v
    }
}

/// The `route_id` of a context no route's plugins ran on yet (shared, not allocated per request).
fn empty_id() -> Arc<str> {
    static EMPTY: std::sync::OnceLock<Arc<str>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(|| Arc::from("")).clone()
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_once(']').map_or(host, |(h, _)| &h[1..]);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if !h.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// `key=value` pairs of a query string (a bare key has an empty value).
pub(crate) fn query_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
}

/// Percent-decodes a query component (`+` is a space); invalid escapes stay as they are.
pub(crate) fn decode(s: &str) -> Cow<'_, str> {
    if !s.contains(['%', '+']) {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}
