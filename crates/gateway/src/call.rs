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

use http::{Request, Response, StatusCode};
use hyper::body::{Body, Incoming};
use portico_balancer::health::Outcome;
use portico_balancer::{NodeIndex, Tried};
use portico_model::types::PassHost;
use portico_snapshot::{Timeouts, Upstream};
use rustls::pki_types::ServerName;

use crate::body::{BodyState, BodyWatch, GatewayBody, RequestBody, UpstreamBody};
use crate::error::{self, ProxyError};
use crate::forward;
use crate::pool::{Checkin, Conn, ConnectError, Keepalive, PoolKey, TlsTarget};
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
    /// Nothing reached the node: the request comes back for another try.
    NotSent(Box<Request<GatewayBody>>),
    /// The request (or part of it) was sent, then the exchange failed.
    Sent(String),
    /// No response head within the send/read timeouts.
    TimedOut,
}

impl Gateway {
    /// Sends the request to a node of `upstream`, trying others as nginx would. Returns the
    /// response and, for a 101, the node's in-flight share (held for the upgraded connection).
    pub(crate) async fn forward(
        &self,
        upstream: &Arc<Upstream>,
        out: Outgoing,
        body: ClientBody,
        hash_key: Option<&str>,
        timeouts: Timeouts,
    ) -> Result<(Response<GatewayBody>, Option<InFlight>, SocketAddr), ProxyError> {
        if upstream.nodes.is_empty() {
            return Err(ProxyError::NoNode);
        }
        trace::upstream(upstream.scheme, &out.path_and_query);
        let retry_deadline = upstream.retry_timeout.map(|t| Instant::now() + t);
        let (watch, mut body, buffered) = match body {
            ClientBody::Stream(body) if body.is_end_stream() => (BodyWatch::done(), None, None),
            ClientBody::Stream(body) => {
                let watch = BodyWatch::new();
                let limited = RequestBody::new(body, self.limits().max_body_bytes, watch.clone());
                (watch, Some(GatewayBody::Request(limited)), None)
            }
            // Read whole by the plugins: every try sends it again.
            ClientBody::Buffered(bytes) => (BodyWatch::done(), None, Some(bytes)),
        };
        let replayable = body.is_none() && out.method.is_idempotent();
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
            let now = Instant::now();
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
            let addr = match node.addr {
                Some(addr) => addr,
                None => match resolve(&node.host, node.port).await {
                    Some(addr) => addr,
                    None => {
                        tries.push(502);
                        let name = format!("{}:{}", node.host, node.port);
                        trace::failed(TryAddr::Name(name), 502, now);
                        report(Outcome::TcpFailure);
                        continue;
                    }
                },
            };
            let host = match upstream.pass_host {
                // A plugin's host (proxy-rewrite `host`) wins over `pass_host`.
                _ if out.host_override.is_some() => out.host_override.clone(),
                PassHost::Pass => out.client_host.clone(),
                PassHost::Node => Some(node.host_header.clone()),
                PassHost::Rewrite => upstream.upstream_host.clone(),
            };
            let key = PoolKey {
                addr,
                tls: upstream.tls.as_ref().map(|config| TlsTarget {
                    server_name: server_name(host.as_deref().unwrap_or(&node.host)),
                    config: config.clone(),
                }),
                h2: upstream.is_grpc(),
            };
            let in_flight = InFlight::start(upstream.clone(), idx);
            let try_started = Instant::now();
            let conn = match self.pool.get(&key, timeouts.connect, keepalive).await {
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
                Some(bytes) if !bytes.is_empty() => GatewayBody::full(bytes.clone()),
                Some(_) => GatewayBody::Empty,
                None => body.take().unwrap_or(GatewayBody::Empty),
            };
            let req = out.build(host.as_deref(), &key, upstream.is_grpc(), req_body)?;
            match self
                .attempt(conn, req, &key, keepalive, &watch, timeouts)
                .await
            {
                Ok((resp, checkin)) => {
                    let status = resp.status();
                    let rtt = try_started.elapsed();
                    trace::answered(addr, status.as_u16(), try_started, host.as_deref());
                    upstream.balancer.on_response(idx, rtt, Instant::now());
                    report(Outcome::Status(status.as_u16()));
                    if !tries.is_empty() || status.is_server_error() {
                        tries.push(status.as_u16());
                    }
                    let (resp, in_flight) = respond(resp, checkin, in_flight, &tries, timeouts);
                    return Ok((resp, in_flight, addr));
                }
                Err(Failure::NotSent(req)) => {
                    if buffered.is_none() {
                        body = Some(req.into_body());
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
        req: Request<GatewayBody>,
        key: &PoolKey,
        keepalive: Keepalive,
        watch: &BodyWatch,
        timeouts: Timeouts,
    ) -> Result<(Response<Incoming>, Option<Checkin>), Failure> {
        let reused = conn.is_reused();
        match exchange(conn, req, watch, timeouts).await {
            Err(Failure::NotSent(req)) if reused => {
                match self.pool.connect(key, timeouts.connect, keepalive).await {
                    Ok(conn) => exchange(conn, *req, watch, timeouts).await,
                    Err(_) => Err(Failure::NotSent(req)),
                }
            }
            other => other,
        }
    }
}

/// Sends `req` on `conn` and waits for the response head: while the body streams, at most the
/// send timeout between two of its frames; once it is sent, at most the read timeout.
async fn exchange(
    conn: Conn,
    req: Request<GatewayBody>,
    watch: &BodyWatch,
    timeouts: Timeouts,
) -> Result<(Response<Incoming>, Option<Checkin>), Failure> {
    let since = Instant::now();
    let sent = match conn {
        Conn::H1(mut sender, mut checkin) => {
            let resp = within(sender.try_send_request(req), watch, timeouts, since).await;
            match resp {
                Some(Ok(resp)) => {
                    checkin.hold(sender);
                    return Ok((resp, Some(checkin)));
                }
                Some(Err(e)) => e,
                None => return Err(Failure::TimedOut),
            }
        }
        Conn::H2(mut sender) => {
            match within(sender.try_send_request(req), watch, timeouts, since).await {
                Some(Ok(resp)) => return Ok((resp, None)),
                Some(Err(e)) => e,
                None => return Err(Failure::TimedOut),
            }
        }
    };
    let mut sent = sent;
    match sent.take_message() {
        Some(req) => Err(Failure::NotSent(Box::new(req))),
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
            () = watch.changed() => {}
        }
    }
}

/// The client's response from the node's: its body streamed under the read timeout, its
/// connection pooled at a clean end, `X-APISIX-Upstream-Status` when it is a 5xx.
fn respond(
    resp: Response<Incoming>,
    checkin: Option<Checkin>,
    in_flight: InFlight,
    tries: &[u16],
    timeouts: Timeouts,
) -> (Response<GatewayBody>, Option<InFlight>) {
    let (parts, incoming) = resp.into_parts();
    let (body, held) = if parts.status == StatusCode::SWITCHING_PROTOCOLS {
        // The connection now belongs to the upgraded stream; it never goes back.
        drop(checkin);
        (GatewayBody::Empty, Some(in_flight))
    } else if incoming.is_end_stream() {
        if let Some(c) = checkin {
            c.release();
        }
        (GatewayBody::Empty, None)
    } else {
        let body = UpstreamBody::new(incoming, checkin, timeouts.read, Box::new(in_flight));
        (GatewayBody::Upstream(body), None)
    };
    let mut resp = Response::from_parts(parts, body);
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
