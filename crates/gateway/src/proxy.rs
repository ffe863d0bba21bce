//! One request through the data plane: route match, upstream pick, forward with retries, and the
//! response back — all on the snapshot the request started with.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use hyper::body::{Body, Incoming};
use portico_balancer::health::Outcome;
use portico_balancer::Tried;
use portico_model::types::PassHost;
use portico_snapshot::{RouteEntry, RouteUpstream, Snapshot, Timeouts, Upstream};
use rustls::pki_types::ServerName;

use crate::body::GatewayBody;
use crate::error::ProxyError;
use crate::forward::{self, Client};
use crate::pool::{Conn, ConnectError, Keepalive, PoolKey, TlsTarget};
use crate::vars::RequestVars;
use crate::{uri, Gateway};
use portico_expr::Vars as _;

/// What the gateway knows about the connection a request came on.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    pub remote: SocketAddr,
    pub local_port: u16,
    /// `http` or `https`.
    pub scheme: &'static str,
    /// The certificate the TLS handshake picked, and whether the client presented a certificate
    /// that verified against its `client.ca`.
    pub tls: Option<(Arc<portico_snapshot::ServerCert>, bool)>,
}

impl Gateway {
    /// Answers one client request.
    pub async fn handle(&self, req: Request<Incoming>, conn: &ConnInfo) -> Response<GatewayBody> {
        let snapshot = self.snapshot();
        let version = req.version();
        let mut resp = match self.route_and_proxy(&snapshot, req, conn).await {
            Ok(resp) => resp,
            Err(e) => {
                tracing::debug!("{e}");
                e.to_response()
            }
        };
        resp.headers_mut()
            .insert(header::SERVER, self.server_header.clone());
        // The client's protocol, not the upstream's (an HTTP/1.0 upstream answers an HTTP/1.1
        // client in HTTP/1.1).
        *resp.version_mut() = version;
        resp
    }

    async fn route_and_proxy(
        &self,
        snapshot: &Snapshot,
        req: Request<Incoming>,
        conn: &ConnInfo,
    ) -> Result<Response<GatewayBody>, ProxyError> {
        let (mut parts, body) = req.into_parts();
        let host_header = request_host(&parts).map(str::to_string);
        let host = host_header
            .as_deref()
            .map(forward::host_without_port)
            .unwrap_or_default();
        let path = uri::normalize(parts.uri.path()).ok_or_else(|| {
            ProxyError::Client(StatusCode::BAD_REQUEST, "invalid request path".into())
        })?;
        if let Some((cert, verified)) = &conn.tls {
            if cert.mtls && !verified && !cert.skip_mtls.iter().any(|re| re.is_match(&path)) {
                return Err(ProxyError::Client(
                    StatusCode::BAD_REQUEST,
                    "client certificate required".into(),
                ));
            }
        }
        let (entry, hash_key) = {
            let vars = RequestVars {
                parts: &parts,
                uri: &path,
                host: &host,
                remote: conn.remote,
                server_port: conn.local_port,
                scheme: conn.scheme,
            };
            let found = snapshot.router.find(&portico_router::Request {
                host: &host,
                path: &path,
                method: parts.method.as_str(),
                remote_addr: conn.remote.ip(),
                vars: &vars,
            });
            let entry: Arc<RouteEntry> = found.ok_or(ProxyError::NoRoute)?.route.clone();
            let key = match &entry.upstream {
                RouteUpstream::Ready(up) => up.hash_key.as_ref().map(|k| {
                    k.resolve(|name| vars.var(name).map(|v| Cow::Owned(v.into_owned())))
                        .into_owned()
                }),
                _ => None,
            };
            (entry, key)
        };
        let upstream = match &entry.upstream {
            RouteUpstream::Ready(up) => up.clone(),
            RouteUpstream::Missing(id) => return Err(ProxyError::MissingUpstream(id.clone())),
            RouteUpstream::None => return Err(ProxyError::NoUpstream),
        };
        let websocket = entry.route.enable_websocket && is_websocket(&parts.headers);
        let client_upgrade = if websocket {
            parts.extensions.remove::<hyper::upgrade::OnUpgrade>()
        } else {
            None
        };
        let timeouts = entry.route.timeout.unwrap_or(upstream.timeout);
        let client = Client {
            remote: conn.remote,
            scheme: conn.scheme,
            server_port: conn.local_port,
            host_header: host_header.as_deref(),
        };
        let mut headers = std::mem::take(&mut parts.headers);
        forward::strip_hop_by_hop(&mut headers, websocket);
        forward::set_forwarded(&mut headers, &client);
        if upstream.is_grpc() {
            headers.insert(header::TE, HeaderValue::from_static("trailers"));
        }
        let outgoing = Outgoing {
            method: parts.method,
            path_and_query: parts
                .uri
                .path_and_query()
                .map_or_else(|| "/".to_string(), |pq| pq.as_str().to_string()),
            headers,
            client_host: host_header,
        };
        let mut resp = self
            .forward(&upstream, outgoing, body, hash_key.as_deref(), timeouts)
            .await?;
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            if let Some(client_upgrade) = client_upgrade {
                crate::websocket::splice(client_upgrade, &mut resp);
            }
        } else {
            forward::strip_hop_by_hop(resp.headers_mut(), false);
        }
        Ok(resp)
    }

    /// Sends the request to a node of `upstream`, retrying other nodes on connect failures (and,
    /// for requests without a body, on errors and timeouts) as nginx does.
    async fn forward(
        &self,
        upstream: &Upstream,
        out: Outgoing,
        body: Incoming,
        hash_key: Option<&str>,
        timeouts: Timeouts,
    ) -> Result<Response<GatewayBody>, ProxyError> {
        if upstream.nodes.is_empty() {
            return Err(ProxyError::NoNode);
        }
        let started = Instant::now();
        let deadline = upstream.retry_timeout.map(|t| started + t);
        let replayable = body.is_end_stream();
        let mut body = Some(body);
        let mut tried = Tried::new();
        let mut statuses: Vec<u16> = Vec::new();
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
            let now = Instant::now();
            let can_retry = tried.len() <= upstream.retries && deadline.is_none_or(|d| now < d);
            let picked = if can_retry {
                upstream.balancer.pick(hash_key, &tried, now)
            } else {
                None
            };
            let Some(idx) = picked else {
                return Err(final_error(&statuses));
            };
            tried.insert(idx);
            let node = &upstream.nodes[idx.get()];
            let report = |outcome: Outcome| {
                if passive {
                    if let Some(h) = upstream.balancer.health() {
                        h.report_passive(idx, outcome);
                    }
                }
            };
            let addr = match node.addr {
                Some(addr) => addr,
                None => match resolve(&node.host, node.port).await {
                    Some(addr) => addr,
                    None => {
                        statuses.push(502);
                        report(Outcome::TcpFailure);
                        continue;
                    }
                },
            };
            let host = match upstream.pass_host {
                PassHost::Pass => out.client_host.clone(),
                PassHost::Node => Some(node.host_header.clone()),
                PassHost::Rewrite => upstream.upstream_host.clone(),
            };
            let tls = upstream.tls.as_ref().map(|config| TlsTarget {
                server_name: server_name(host.as_deref().unwrap_or(&node.host)),
                config: config.clone(),
            });
            let key = PoolKey {
                addr,
                tls,
                h2: upstream.is_grpc(),
            };
            upstream.balancer.on_start(idx);
            let conn = self.pool.get(&key, timeouts.connect, keepalive).await;
            let conn = match conn {
                Ok(conn) => conn,
                Err(e) => {
                    upstream.balancer.on_finish(idx);
                    let timed_out = matches!(e, ConnectError::Timeout(_));
                    report(if timed_out {
                        Outcome::Timeout
                    } else {
                        Outcome::TcpFailure
                    });
                    statuses.push(if timed_out { 504 } else { 502 });
                    tracing::debug!("{e}");
                    continue;
                }
            };
            let req_body = match body.take() {
                Some(b) if !replayable => GatewayBody::Stream(b),
                _ => GatewayBody::Empty,
            };
            let req = out.build(host.as_deref(), &key, upstream.is_grpc(), req_body)?;
            let sent_at = Instant::now();
            let result = tokio::time::timeout(timeouts.send + timeouts.read, send(conn, req)).await;
            upstream.balancer.on_finish(idx);
            match result {
                Ok(Ok(resp)) => {
                    upstream
                        .balancer
                        .on_response(idx, sent_at.elapsed(), Instant::now());
                    report(Outcome::Status(resp.status().as_u16()));
                    let mut resp = resp;
                    if !statuses.is_empty() || resp.status().is_server_error() {
                        statuses.push(resp.status().as_u16());
                        if resp.status().is_server_error() {
                            set_upstream_status(&mut resp, &statuses);
                        }
                    }
                    return Ok(resp);
                }
                Ok(Err(e)) => {
                    report(Outcome::TcpFailure);
                    statuses.push(502);
                    tracing::debug!("upstream {addr}: {e}");
                    if !replayable {
                        return Err(ProxyError::Unreachable(e.to_string()));
                    }
                }
                Err(_) => {
                    report(Outcome::Timeout);
                    statuses.push(504);
                    if !replayable {
                        return Err(ProxyError::Timeout(addr.to_string()));
                    }
                }
            }
        }
    }
}

/// The parts of the upstream request that every try shares.
struct Outgoing {
    method: http::Method,
    path_and_query: String,
    headers: http::HeaderMap,
    /// The client's `Host` header, port included.
    client_host: Option<String>,
}

impl Outgoing {
    fn build(
        &self,
        host: Option<&str>,
        key: &PoolKey,
        h2: bool,
        body: GatewayBody,
    ) -> Result<Request<GatewayBody>, ProxyError> {
        let uri: Uri = if h2 {
            let scheme = if key.tls.is_some() { "https" } else { "http" };
            let authority = host.map_or_else(|| key.addr.to_string(), str::to_string);
            format!("{scheme}://{authority}{}", self.path_and_query).parse()
        } else {
            self.path_and_query.parse()
        }
        .map_err(|e| {
            ProxyError::Client(StatusCode::BAD_REQUEST, format!("bad request target: {e}"))
        })?;
        let mut req = Request::new(body);
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = uri;
        *req.headers_mut() = self.headers.clone();
        if h2 {
            *req.version_mut() = http::Version::HTTP_2;
            req.headers_mut().remove(header::HOST);
        } else if let Some(host) = host.and_then(|h| HeaderValue::from_str(h).ok()) {
            req.headers_mut().insert(header::HOST, host);
        }
        Ok(req)
    }
}

async fn send(
    conn: Conn,
    req: Request<GatewayBody>,
) -> Result<Response<GatewayBody>, hyper::Error> {
    match conn {
        Conn::H1(mut sender, mut checkin) => {
            let resp = sender.send_request(req).await?;
            checkin.hold(sender);
            let (parts, body) = resp.into_parts();
            let body = if parts.status == StatusCode::SWITCHING_PROTOCOLS {
                // The connection now belongs to the upgraded stream; it never goes back.
                drop(checkin);
                GatewayBody::Empty
            } else if body.is_end_stream() {
                checkin.release();
                GatewayBody::Empty
            } else {
                GatewayBody::Pooled(body, Some(checkin))
            };
            Ok(Response::from_parts(parts, body))
        }
        Conn::H2(mut sender) => {
            let resp = sender.send_request(req).await?;
            Ok(resp.map(GatewayBody::Stream))
        }
    }
}

/// The error after the last try: 504 if it timed out, else 502.
fn final_error(statuses: &[u16]) -> ProxyError {
    match statuses.last() {
        Some(504) => ProxyError::Timeout("all tries timed out".into()),
        Some(_) => ProxyError::Unreachable("all upstream servers tried".into()),
        None => ProxyError::NoNode,
    }
}

/// `X-APISIX-Upstream-Status: 502, 502, 200` when the final status is a 5xx or tries failed.
fn set_upstream_status(resp: &mut Response<GatewayBody>, statuses: &[u16]) {
    let text = statuses
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if let Ok(v) = HeaderValue::from_str(&text) {
        resp.headers_mut().insert("x-apisix-upstream-status", v);
    }
}

fn request_host(parts: &http::request::Parts) -> Option<&str> {
    parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))
}

fn is_websocket(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
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
