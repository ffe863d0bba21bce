//! One request's call to its upstream: pick a node, connect, send, wait for the response head
//! under the timeouts, and try other nodes as nginx's `proxy_next_upstream error timeout` does
//! (`reference/apisix.md` §4.3).
//!
//! What may be tried again: a failed connect, or a request the connection refused before any of
//! it was sent, always; an error or timeout after sending only for an idempotent method without
//! a body (the body streams and is not kept, where nginx would have buffered it). A pooled
//! connection that turns out closed is replaced by a new one to the same node, without counting
//! a try.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::{Response, StatusCode};
use hyper::body::{Body, Incoming};
use portico_balancer::health::Outcome;
use portico_balancer::{NodeIndex, Tried};
use portico_model::types::PassHost;
use portico_snapshot::{Timeouts, Upstream};
use rustls::pki_types::ServerName;

use crate::body::{BodyState, BodyWatch, GatewayBody, RequestBody, Source, UpstreamBody};
use crate::error::{self, ProxyError};
use crate::forward;
use crate::h1::{self, encode::BodySize, Failed};
use crate::pool::{Conn, ConnectError, Keepalive, Pool, PoolKey, TlsTarget};
use crate::proxy::{ClientBody, Outgoing};
use crate::trace::{self, TryAddr};
use crate::Gateway;

/// A node's share of one request, from its pick until the response is done however it ends
/// (`least_conn` counts these; APISIX releases them in the log phase).
pub(crate) struct InFlight {
    upstream: Arc<Upstream>,
    node: NodeIndex,
}

impl InFlight {
    fn start(upstream: Arc<Upstream>, node: NodeIndex) -> InFlight {
        upstream.balancer.on_start(node);
        InFlight { upstream, node }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.upstream.balancer.on_finish(self.node);
    }
}

/// How one exchange with a node failed.
enum Failure {
    /// Nothing reached the node: the body (if any) comes back for another try.
    NotSent(Option<GatewayBody>),
    /// The request (or part of it) was sent, then the exchange failed.
    Sent(String),
    /// No response head within the send/read timeouts.
    TimedOut,
    /// The request cannot be sent as it is (a bad target): the client's fault, no retry.
    Refused(ProxyError),
}

impl Gateway {
    /// Sends the request to a node of `upstream`, trying others as nginx would. Returns the
    /// response and, for a 101, the node's in-flight share (held for the upgraded connection).
    pub(crate) async fn forward(
        &self,
        upstream: &Arc<Upstream>,
        out: &mut Outgoing,
        body: ClientBody,
        hash_key: Option<&str>,
        timeouts: Timeouts,
    ) -> Result<(Response<GatewayBody>, Option<InFlight>, SocketAddr), ProxyError> {
        if upstream.nodes.is_empty() {
            return Err(ProxyError::NoNode);
        }
        trace::upstream(upstream.scheme, &out.path_and_query);
        let retry_deadline = upstream.retry_timeout.map(|t| Instant::now() + t);
        let (streaming, mut body, buffered) = match body {
            ClientBody::Stream(body) if body.is_end_stream() => (None, None, None),
            ClientBody::Stream(body) => {
                let watch = BodyWatch::new();
                let limited = RequestBody::new(body, self.limits().max_body_bytes, watch.clone());
                (Some(watch), Some(GatewayBody::Request(limited)), None)
            }
            // Read whole by the plugins: every try sends it again.
            ClientBody::Buffered(bytes) => (None, None, Some(bytes)),
        };
        let watch = streaming.as_deref().unwrap_or_else(|| BodyWatch::done());
        let replayable = body.is_none() && out.method.is_idempotent();
        // An upgrade (WebSocket) handshake goes on a hyper connection of its own.
        let upgrade = out.upgrade;
        let mut tried = Tried::new();
        let mut tries: Vec<u16> = Vec::new();
        let passive = upstream
            .checks
            .as_ref()
            .is_some_and(|c| c.passive.is_some());
        let keepalive = Keepalive {
            size: upstream.keepalive_size,
            idle_timeout: upstream.keepalive_idle,
            requests: upstream.keepalive_requests,
        };
        loop {
            if tried.len() > upstream.retries {
                return Err(exhausted(tries));
            }
            let now = portico_clock::now();
            if !tried.is_empty() && retry_deadline.is_some_and(|d| now >= d) {
                return Err(unreachable("retry_timeout exceeded", tries));
            }
            let Some(idx) = upstream.balancer.pick(hash_key, &tried, now) else {
                return Err(unreachable("all upstream servers tried", tries));
            };
            tried.insert(idx);
            let Some(node) = upstream.nodes.get(idx.get()) else {
                return Err(ProxyError::Internal(format!(
                    "balancer picked node {idx:?}"
                )));
            };
            let report = |outcome: Outcome| {
                // Failed tries count whenever the upstream is health-checked (as APISIX reports
                // them to its checker); proxied statuses only with passive checks configured.
                let is_status = matches!(outcome, Outcome::Status(_));
                if let Some(h) = upstream.balancer.health().filter(|_| passive || !is_status) {
                    h.report_passive(idx, outcome);
                }
            };
            // The try's clock: one reading serves the pick, the checkout and the timeouts.
            let mut try_started = now;
            let addr = match node.addr {
                Some(addr) => addr,
                None => match Box::pin(resolve(&node.host, node.port)).await {
                    Some(addr) => {
                        try_started = portico_clock::now();
                        addr
                    }
                    None => {
                        tries.push(502);
                        let name = format!("{}:{}", node.host, node.port);
                        trace::failed(TryAddr::Name(name), 502, now);
                        report(Outcome::TcpFailure);
                        continue;
                    }
                },
            };
            let host: Option<&str> = match upstream.pass_host {
                // A plugin's host (proxy-rewrite `host`) wins over `pass_host`.
                _ if out.host_override.is_some() => out.host_override.as_deref(),
                PassHost::Pass => out.client_host.as_deref(),
                PassHost::Node => Some(&node.host_header),
                PassHost::Rewrite => upstream.upstream_host.as_deref(),
            };
            let key = PoolKey {
                addr,
                tls: upstream.tls.as_ref().map(|config| TlsTarget {
                    server_name: server_name(host.unwrap_or(&node.host)),
                    config: config.clone(),
                }),
                h2: upstream.is_grpc(),
            };
            let in_flight = InFlight::start(upstream.clone(), idx);
            let conn = match self.pool.checkout(&key, keepalive, upgrade, try_started) {
                Some(conn) => Ok(conn),
                // Boxed: the connect future is large and rarely needed, and every request's
                // future would otherwise carry its room.
                None => Box::pin(self.pool.connect(&key, timeouts.connect, upgrade)).await,
            };
            let conn = match conn {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::debug!("{e}");
                    let timed_out = matches!(e, ConnectError::Timeout(_));
                    tries.push(if timed_out { 504 } else { 502 });
                    trace::failed(
                        TryAddr::Socket(addr),
                        *tries.last().unwrap_or(&502),
                        try_started,
                    );
                    report(if timed_out {
                        Outcome::Timeout
                    } else {
                        Outcome::TcpFailure
                    });
                    continue;
                }
            };
            let req_body = match &buffered {
                Some(bytes) if !bytes.is_empty() => Some(GatewayBody::full(bytes.clone())),
                Some(_) => None,
                None => body.take(),
            };
            let exchange = Exchange {
                since: try_started,
                out: &*out,
                host,
                key: &key,
                keepalive,
                watch,
                timeouts,
                grpc: upstream.is_grpc(),
            };
            match self.attempt(conn, req_body, &exchange).await {
                Ok(answer) => {
                    let status = answer.status();
                    let answered = portico_clock::now();
                    let rtt = answered.saturating_duration_since(try_started);
                    trace::answered(addr, status.as_u16(), try_started, host);
                    upstream.balancer.on_response(idx, rtt, answered);
                    report(Outcome::Status(status.as_u16()));
                    if !tries.is_empty() || status.is_server_error() {
                        tries.push(status.as_u16());
                    }
                    // The request's header map, done with, holds the response's headers.
                    let headers = if out.keep_headers {
                        spare_headers()
                    } else {
                        let mut headers = std::mem::take(&mut out.headers);
                        headers.clear();
                        headers
                    };
                    let (resp, in_flight) = respond(answer, headers, in_flight, &tries, timeouts);
                    return Ok((resp, in_flight, addr));
                }
                Err(Failure::NotSent(returned)) => {
                    if buffered.is_none() {
                        body = returned;
                    }
                    tries.push(502);
                    trace::failed(TryAddr::Socket(addr), 502, try_started);
                    report(Outcome::TcpFailure);
                }
                Err(Failure::Sent(reason)) => {
                    match watch.state() {
                        BodyState::TooLarge => return Err(too_large()),
                        BodyState::ClientError => return Err(client_gone()),
                        _ => {}
                    }
                    tries.push(502);
                    trace::failed(TryAddr::Socket(addr), 502, try_started);
                    report(Outcome::TcpFailure);
                    tracing::debug!("upstream {addr}: {reason}");
                    if !replayable {
                        return Err(unreachable(&reason, tries));
                    }
                }
                Err(Failure::Refused(e)) => return Err(e),
                Err(Failure::TimedOut) => {
                    tries.push(504);
                    trace::failed(TryAddr::Socket(addr), 504, try_started);
                    report(Outcome::Timeout);
                    if !replayable {
                        return Err(exhausted(tries));
                    }
                }
            }
        }
    }

    /// One exchange on `conn`; when a pooled connection turns out closed before the request
    /// went out, once more on a new connection to the same node.
    async fn attempt(
        &self,
        conn: Conn,
        body: Option<GatewayBody>,
        ex: &Exchange<'_>,
    ) -> Result<Answer, Failure> {
        let reused = conn.is_reused();
        match self.exchange(conn, body, ex).await {
            Err(Failure::NotSent(body)) if reused => {
                match Box::pin(self.pool.connect(ex.key, ex.timeouts.connect, false)).await {
                    Ok(conn) => self.exchange(conn, body, ex).await,
                    Err(_) => Err(Failure::NotSent(body)),
                }
            }
            other => other,
        }
    }

    /// Sends the request on `conn` and waits for the response head: while the body streams, at
    /// most the send timeout between two of its frames; once it is sent, at most the read
    /// timeout.
    async fn exchange(
        &self,
        conn: Conn,
        body: Option<GatewayBody>,
        ex: &Exchange<'_>,
    ) -> Result<Answer, Failure> {
        let mut conn = match conn {
            Conn::H1(conn) => conn,
            // Boxed like the connect: only gRPC and upgrade requests need room for it.
            Conn::H2(sender) => {
                return Box::pin(hyper_exchange(HyperSender::H2(sender), body, ex)).await
            }
            Conn::Upgrade(sender) => {
                return Box::pin(hyper_exchange(HyperSender::H1(sender), body, ex)).await
            }
        };
        let size = match &body {
            None => BodySize::Empty,
            Some(b) => match b.size_hint().exact() {
                Some(0) if b.is_end_stream() => BodySize::Empty,
                Some(n) => BodySize::Known(n),
                None => BodySize::Unknown,
            },
        };
        let body = body.filter(|_| size != BodySize::Empty);
        let framing = conn
            .queue_head(ex.out, ex.host, size)
            .map_err(Failure::Refused)?;
        let head_request = ex.out.method == http::Method::HEAD;
        let sending = h1::Sending {
            body,
            framing,
            head_request,
            since: ex.since,
        };
        match h1::exchange(&mut conn, sending, ex.watch, ex.timeouts).await {
            Ok(head) => Ok(Answer::H1(head, conn, self.pool.clone(), ex.keepalive)),
            Err(Failed::Unsent(body)) => Err(Failure::NotSent(body)),
            Err(Failed::Sent(reason)) => Err(Failure::Sent(reason)),
            Err(Failed::TimedOut) => Err(Failure::TimedOut),
        }
    }
}

/// What every exchange of one request shares.
struct Exchange<'a> {
    /// When the try began (the timeouts count from it).
    since: Instant,
    out: &'a Outgoing,
    /// The `Host` as `pass_host` decided.
    host: Option<&'a str>,
    key: &'a PoolKey,
    keepalive: Keepalive,
    watch: &'a BodyWatch,
    timeouts: Timeouts,
    grpc: bool,
}

/// A node's response head, with where its body comes from.
enum Answer {
    /// From the gateway's own HTTP/1.1 connection (which the body holds until it ends).
    H1(h1::decode::Head, Box<h1::Conn>, Pool, Keepalive),
    /// From a hyper connection.
    Hyper(Response<Incoming>),
}

impl Answer {
    fn status(&self) -> StatusCode {
        match self {
            Answer::H1(head, ..) => head.status,
            Answer::Hyper(resp) => resp.status(),
        }
    }
}

enum HyperSender {
    H1(hyper::client::conn::http1::SendRequest<GatewayBody>),
    H2(hyper::client::conn::http2::SendRequest<GatewayBody>),
}

/// [`Gateway::exchange`] on a hyper connection.
async fn hyper_exchange(
    sender: HyperSender,
    body: Option<GatewayBody>,
    ex: &Exchange<'_>,
) -> Result<Answer, Failure> {
    let since = portico_clock::now();
    let body = body.unwrap_or(GatewayBody::Empty);
    let req = ex
        .out
        .build(ex.host, ex.key, ex.grpc, body)
        .map_err(Failure::Refused)?;
    let sent = match sender {
        HyperSender::H1(mut sender) => {
            match within(sender.try_send_request(req), ex.watch, ex.timeouts, since).await {
                Some(Ok(resp)) => return Ok(Answer::Hyper(resp)),
                Some(Err(e)) => e,
                None => return Err(Failure::TimedOut),
            }
        }
        HyperSender::H2(mut sender) => {
            match within(sender.try_send_request(req), ex.watch, ex.timeouts, since).await {
                Some(Ok(resp)) => return Ok(Answer::Hyper(resp)),
                Some(Err(e)) => e,
                None => return Err(Failure::TimedOut),
            }
        }
    };
    let mut sent = sent;
    match sent.take_message() {
        Some(req) => Err(Failure::NotSent(Some(req.into_body()))),
        None => Err(Failure::Sent(sent.into_error().to_string())),
    }
}

/// Runs `fut` under the send/read timeouts that `watch` and `since` (the try's start) imply;
/// `None` when they run out.
async fn within<F: Future>(
    fut: F,
    watch: &BodyWatch,
    timeouts: Timeouts,
    since: Instant,
) -> Option<F::Output> {
    let deadline = || {
        let limit = match watch.state() {
            BodyState::Streaming => timeouts.send,
            _ => timeouts.read,
        };
        watch.last_moved().max(since) + limit
    };
    let mut fut = std::pin::pin!(fut);
    loop {
        tokio::select! {
            out = &mut fut => return Some(out),
            () = tokio::time::sleep_until(deadline().into()) => {
                if Instant::now() >= deadline() {
                    return None;
                }
            }
            () = watch.changed(), if watch.state() == BodyState::Streaming => {}
        }
    }
}

/// The client's response from the node's: its body streamed under the read timeout, an
/// HTTP/1.1 connection pooled at a clean end, `X-APISIX-Upstream-Status` when it is a 5xx.
fn respond(
    answer: Answer,
    headers: http::HeaderMap,
    in_flight: InFlight,
    tries: &[u16],
    timeouts: Timeouts,
) -> (Response<GatewayBody>, Option<InFlight>) {
    let (mut resp, held) = match answer {
        Answer::H1(head, conn, pool, policy) => {
            let mut resp = Response::new(GatewayBody::Empty);
            *resp.status_mut() = head.status;
            *resp.version_mut() = head.version;
            *resp.headers_mut() = headers;
            // Hop-by-hop headers were left out as the head was read, but for those its
            // `Connection` header names.
            conn.headers_into(&head, resp.headers_mut());
            if head.names_hop_headers && head.status != StatusCode::SWITCHING_PROTOCOLS {
                forward::strip_hop_by_hop(resp.headers_mut(), false);
            }
            if let Some(reason) = head.reason {
                if let Ok(reason) = hyper::ext::ReasonPhrase::try_from(reason) {
                    resp.extensions_mut().insert(reason);
                }
            }
            let mut body = h1::ResponseBody::new(conn, head.body, pool, policy);
            if head.body.is_done() {
                body.release();
            } else {
                let body = UpstreamBody::new(Source::H1(body), timeouts.read, in_flight);
                *resp.body_mut() = GatewayBody::Upstream(body);
            }
            (resp, None)
        }
        Answer::Hyper(resp) => {
            let (mut parts, incoming) = resp.into_parts();
            if parts.status != StatusCode::SWITCHING_PROTOCOLS {
                forward::strip_hop_by_hop(&mut parts.headers, false);
            }
            let (body, held) = if parts.status == StatusCode::SWITCHING_PROTOCOLS {
                // The connection now belongs to the upgraded stream.
                (GatewayBody::Empty, Some(in_flight))
            } else if incoming.is_end_stream() {
                (GatewayBody::Empty, None)
            } else {
                let body = UpstreamBody::new(Source::Hyper(incoming), timeouts.read, in_flight);
                (GatewayBody::Upstream(body), None)
            };
            (Response::from_parts(parts, body), held)
        }
    };
    error::set_upstream_status(&mut resp, tries);
    (resp, held)
}

/// The error once no try is left: 504 when the last one timed out, else 502.
fn exhausted(tries: Vec<u16>) -> ProxyError {
    match tries.last() {
        Some(504) => ProxyError::Timeout {
            reason: "upstream timed out".into(),
            tries,
        },
        _ => unreachable("upstream failed", tries),
    }
}

fn unreachable(reason: &str, tries: Vec<u16>) -> ProxyError {
    ProxyError::Unreachable {
        reason: reason.to_string(),
        tries,
    }
}

fn too_large() -> ProxyError {
    ProxyError::Client(
        StatusCode::PAYLOAD_TOO_LARGE,
        "request body too large".into(),
    )
}

fn client_gone() -> ProxyError {
    ProxyError::Client(
        StatusCode::BAD_REQUEST,
        "reading the request body failed".into(),
    )
}

fn server_name(host: &str) -> ServerName<'static> {
    let bare = forward::host_without_port(host);
    let bare = bare.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(bare.to_string())
        .unwrap_or_else(|_| ServerName::try_from("localhost").expect("static name"))
}

async fn resolve(host: &str, port: u16) -> Option<SocketAddr> {
    tokio::net::lookup_host((host, port)).await.ok()?.next()
}

thread_local! {
    /// A request header map a plugin context was done with, kept for the next response that
    /// cannot reuse its request's map (the context keeps that one).
    static SPARE_HEADERS: std::cell::RefCell<Option<http::HeaderMap>> =
        const { std::cell::RefCell::new(None) };
}

/// An empty header map: the spare one when there is one (no allocation), else a new one.
fn spare_headers() -> http::HeaderMap {
    SPARE_HEADERS
        .with_borrow_mut(Option::take)
        .unwrap_or_default()
}

/// Keeps `map`'s room for [`spare_headers`] (one map per thread; a map grown unusually large is
/// let go).
pub(crate) fn recycle_headers(mut map: http::HeaderMap) {
    if map.capacity() == 0 || map.capacity() > 64 {
        return;
    }
    map.clear();
    SPARE_HEADERS.with_borrow_mut(|spare| {
        if spare.is_none() {
            *spare = Some(map);
        }
    });
}
