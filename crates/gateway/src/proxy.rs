//! One request through the data plane: route match, upstream pick, forward with retries, and the
//! response back — all on the snapshot the request started with.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use portico_expr::Vars as _;
use portico_snapshot::runtime::{Ctx, Flow, MatchedRoute, Mirror, Phases, Reply, UpstreamPick};
use portico_snapshot::{RouteEntry, RouteUpstream, ServerCert, Snapshot, Upstream};

use bytes::Bytes;
use http_body_util::BodyExt as _;

use crate::body::{GatewayBody, Inbound};
use crate::error::ProxyError;
use crate::filtered::FilteredBody;
use crate::forward::{self, Client};
use crate::pool::PoolKey;
use crate::vars::RequestVars;
use crate::{uri, Gateway};

/// What the gateway knows about the connection a request came on.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    pub remote: SocketAddr,
    pub local_port: u16,
    /// `http` or `https`.
    pub scheme: &'static str,
    /// The certificate the TLS handshake picked, and whether the client presented a certificate
    /// that verified against its `client.ca`.
    pub tls: Option<(Arc<ServerCert>, bool)>,
    /// Bytes of the current request's head as read (HTTP/1.x); 0 when not known (HTTP/2).
    pub head_bytes: u64,
}

impl Gateway {
    /// Answers one client request.
    pub async fn handle(&self, req: Request<Inbound>, conn: &ConnInfo) -> Response<GatewayBody> {
        let snapshot = self.snapshot();
        let version = req.version();
        let mut resp = match self.route_and_proxy(&snapshot, req, conn).await {
            Ok(resp) => resp,
            Err(e) => {
                tracing::debug!("{e}");
                e.to_response()
            }
        };
        if version >= http::Version::HTTP_2 {
            // HTTP/1.x heads get it from the gateway's own writer (`h1::server::response`).
            resp.headers_mut()
                .insert(header::SERVER, self.server_header.clone());
        }
        // The client's protocol, not the upstream's (an HTTP/1.0 upstream answers an HTTP/1.1
        // client in HTTP/1.1).
        *resp.version_mut() = version;
        resp
    }

    async fn route_and_proxy(
        &self,
        snapshot: &Snapshot,
        req: Request<Inbound>,
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
        check_client_cert(snapshot, conn, &host, &path)?;
        let remote = SocketAddr::new(
            forward::client_ip(conn.remote.ip(), &parts.headers),
            conn.remote.port(),
        );
        let mut matched = None;
        let (entry, hash_key) = {
            let vars = RequestVars {
                parts: &parts,
                uri: &path,
                host: &host,
                remote,
                server_port: conn.local_port,
                scheme: conn.scheme,
            };
            let found = snapshot.router.find(&portico_router::Request {
                host: &host,
                path: &path,
                method: parts.method.as_str(),
                remote_addr: remote.ip(),
                vars: &vars,
            });
            let found = found.ok_or(ProxyError::NoRoute)?;
            let entry: Arc<RouteEntry> = found.route.clone();
            if entry.plugins.wants_matched_route() {
                matched = Some(matched_route(&found));
            }
            let key = match &entry.upstream {
                RouteUpstream::Ready(up) => up.hash_key.as_ref().map(|k| {
                    k.resolve(|name| vars.var(name).map(|v| Cow::Owned(v.into_owned())))
                        .into_owned()
                }),
                _ => None,
            };
            (entry, key)
        };
        // The route's plugins (template and global rules) run before the upstream is chosen.
        // Their context (boxed: it travels on into the response body, moved as a pointer) runs
        // the log phase even when the client leaves before its answer (nginx's 499).
        let mut pending = None;
        let (parts, body, picked) = if entry.plugins.is_empty() {
            (parts, ClientBody::Stream(body), None)
        } else {
            let path = path.into_owned();
            let mut ctx = Box::new(Ctx::routed(
                parts.method.clone(),
                std::mem::take(&mut parts.uri),
                std::mem::take(&mut parts.headers),
                remote,
                path,
                host,
            ));
            ctx.server_port = conn.local_port;
            ctx.scheme = conn.scheme;
            ctx.version = parts.version;
            // HTTP/1.x heads are written by the gateway's own writer, which takes late headers.
            ctx.late_headers = parts.version < http::Version::HTTP_2;
            ctx.log.request_length = match conn.head_bytes {
                0 => request_length(&ctx),
                head => head + hyper::body::Body::size_hint(&body).exact().unwrap_or(0),
            };
            ctx.matched = matched.take();
            let pending = pending.insert(Unanswered {
                ctx: Some(ctx),
                entry: entry.clone(),
            });
            match self
                .plugin_request(snapshot, &entry, pending.ctx(), parts, body, &host_header)
                .await
            {
                Ok(go) => go,
                Err(answer) => return Ok(finish(entry, pending.answered(), answer)),
            }
        };
        // One call site for both kinds of route: the upstream call's large future is laid out
        // once in this one.
        let started = pending.is_some().then(portico_clock::now);
        let ctx = pending.as_mut().map(Unanswered::ctx);
        let remote = ctx.as_ref().map_or(remote, |c| c.remote);
        let result = self
            .proxy_upstream(
                &entry,
                parts,
                body,
                host_header,
                hash_key,
                remote,
                conn,
                ctx,
                picked,
            )
            .await;
        let Some(mut pending) = pending else {
            return result;
        };
        let mut ctx = pending.answered();
        let resp = result.unwrap_or_else(|e| {
            tracing::debug!("{e}");
            e.to_response()
        });
        if let (Some(_), Some(started)) = (ctx.log.upstream_addr, started) {
            ctx.log.upstream_status = Some(resp.status().as_u16());
            ctx.log.upstream_latency =
                Some(portico_clock::now().saturating_duration_since(started));
        }
        Ok(finish(entry, ctx, resp))
    }

    /// The plugins' request phases of a route with plugins: the request to send upstream (and
    /// the upstream a plugin picked), or the answer a plugin gave instead.
    async fn plugin_request(
        &self,
        snapshot: &Snapshot,
        entry: &Arc<RouteEntry>,
        ctx: &mut Ctx,
        mut parts: http::request::Parts,
        body: Inbound,
        host_header: &Option<String>,
    ) -> Result<(http::request::Parts, ClientBody, Option<Arc<Upstream>>), Response<GatewayBody>>
    {
        let mut body = ClientBody::Stream(body);
        if entry.plugins.wants_request_body() {
            // Boxed: only routes that read the body carry its future.
            match Box::pin(self.read_body(body)).await {
                Ok(bytes) => {
                    ctx.request_body = Some(bytes.clone());
                    body = ClientBody::Buffered(bytes);
                }
                Err(e) => return Err(e.to_response()),
            }
        }
        match entry.plugins.access_phase(ctx).await {
            Flow::Continue => {}
            Flow::Respond(reply) => return Err(reply.into_response(GatewayBody::full)),
            Flow::Wait(_) => unreachable!("access_phase settles every wait"),
        }
        parts.method = ctx.method.clone();
        if let Some(bytes) = ctx.request_body.take() {
            set_body_length(&mut ctx.headers, bytes.len());
            body = ClientBody::Buffered(bytes);
        }
        let picked = match ctx.upstream_pick.take() {
            None => None,
            Some(pick) => match resolve_pick(snapshot, entry, pick) {
                Ok(up) => Some(up),
                Err(reply) => return Err(reply.into_response(GatewayBody::full)),
            },
        };
        if let Some(mirror) = ctx.mirror.take() {
            self.mirror(entry, *mirror, &parts, ctx, &body, host_header.as_deref());
        }
        Ok((parts, body, picked))
    }

    /// Sends a copy of the request to a mirror (proxy-mirror) in the background; its answer is
    /// read and dropped, its failures only logged.
    fn mirror(
        &self,
        entry: &RouteEntry,
        mirror: Mirror,
        parts: &http::request::Parts,
        ctx: &Ctx,
        body: &ClientBody,
        host_header: Option<&str>,
    ) {
        let (Some(gateway), UpstreamPick::Built(any)) = (self.me.upgrade(), mirror.upstream) else {
            return;
        };
        let Ok(upstream) = any.downcast::<Upstream>() else {
            return;
        };
        let client = Client {
            remote: ctx.remote,
            scheme: ctx.scheme,
            server_port: ctx.server_port,
            host_header,
        };
        let path_and_query = mirror.path_and_query.unwrap_or_else(|| {
            ctx.upstream_uri.clone().unwrap_or_else(|| {
                ctx.uri
                    .path_and_query()
                    .map_or_else(|| "/".to_string(), |pq| pq.as_str().to_string())
            })
        });
        let mut outgoing = Outgoing::new(
            parts.method.clone(),
            path_and_query,
            ctx.headers.clone(),
            &client,
            false,
            upstream.is_grpc(),
        );
        outgoing.host_override.clone_from(&ctx.upstream_host);
        let body = match body {
            ClientBody::Buffered(bytes) => bytes.clone(),
            ClientBody::Stream(_) => Bytes::new(),
        };
        let route = entry.route.id.clone();
        tokio::spawn(async move {
            let timeouts = upstream.timeout;
            match gateway
                .forward(
                    &upstream,
                    &mut outgoing,
                    ClientBody::Buffered(body),
                    None,
                    timeouts,
                )
                .await
            {
                Ok((resp, _in_flight, _)) => {
                    if let Err(e) = resp.into_body().collect().await {
                        tracing::debug!("route {route}: mirror response body: {e}");
                    }
                }
                Err(e) => tracing::warn!("route {route}: mirror request failed: {e}"),
            }
        });
    }

    /// Reads a request body whole for the plugins that need it, within the body limit (or
    /// [`PLUGIN_BODY_LIMIT`] when the node sets none): past it 413.
    async fn read_body(&self, body: ClientBody) -> Result<Bytes, ProxyError> {
        let ClientBody::Stream(body) = body else {
            return Err(ProxyError::Internal("request body read twice".into()));
        };
        let limit = self.limits().max_body_bytes.unwrap_or(PLUGIN_BODY_LIMIT);
        let limited =
            http_body_util::Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX));
        match limited.collect().await {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ProxyError::Client(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body larger than {limit} bytes"),
            )),
            Err(e) => Err(ProxyError::Client(
                StatusCode::BAD_REQUEST,
                format!("reading the request body failed: {e}"),
            )),
        }
    }

    /// From the upstream choice on: forwards the request and returns the upstream's response.
    #[allow(clippy::too_many_arguments)]
    async fn proxy_upstream(
        &self,
        entry: &RouteEntry,
        mut parts: http::request::Parts,
        body: ClientBody,
        host_header: Option<String>,
        hash_key: Option<String>,
        remote: SocketAddr,
        conn: &ConnInfo,
        mut plugins: Option<&mut Ctx>,
        picked: Option<Arc<Upstream>>,
    ) -> Result<Response<GatewayBody>, ProxyError> {
        let upstream = match picked {
            Some(up) => up,
            None => match &entry.upstream {
                RouteUpstream::Ready(up) => up.clone(),
                RouteUpstream::Missing(id) => return Err(ProxyError::MissingUpstream(id.clone())),
                RouteUpstream::None => return Err(ProxyError::NoUpstream),
            },
        };
        // After the plugins ran, the chash key reads the request as they left it (real-ip's
        // address, rewritten headers), as APISIX computes it in its balancer phase.
        let hash_key = match (&upstream.hash_key, plugins.as_deref()) {
            (Some(k), Some(ctx)) => Some(
                k.resolve(|name| ctx.var(name).map(|v| Cow::Owned(v.into_owned())))
                    .into_owned(),
            ),
            _ => hash_key,
        };
        // A context's headers go upstream as they are and come back for the later phases.
        let headers = match plugins.as_deref_mut() {
            Some(ctx) => std::mem::take(&mut ctx.headers),
            None => std::mem::take(&mut parts.headers),
        };
        let websocket = entry.route.enable_websocket && is_websocket(&headers);
        let client_upgrade = if websocket {
            crate::websocket::ClientUpgrade::take(&mut parts.extensions)
        } else {
            None
        };
        let timeouts = entry.route.timeout.unwrap_or(upstream.timeout);
        let client = Client {
            remote,
            scheme: conn.scheme,
            server_port: conn.local_port,
            host_header: host_header.as_deref(),
        };
        // The client's request target as sent (not normalised, query string included), unless
        // a plugin rewrote it.
        let path_and_query = match plugins.as_deref() {
            Some(ctx) => ctx.upstream_uri.clone().unwrap_or_else(|| {
                ctx.uri
                    .path_and_query()
                    .map_or_else(|| "/".to_string(), |pq| pq.as_str().to_string())
            }),
            None => parts
                .uri
                .path_and_query()
                .map_or_else(|| "/".to_string(), |pq| pq.as_str().to_string()),
        };
        let mut outgoing = Outgoing::new(
            parts.method,
            path_and_query,
            headers,
            &client,
            websocket,
            upstream.is_grpc(),
        );
        outgoing.client_host = host_header;
        if let Some(ctx) = plugins.as_deref() {
            outgoing.host_override.clone_from(&ctx.upstream_host);
            outgoing.keep_headers = true;
        }
        let forwarded = self
            .forward(
                &upstream,
                &mut outgoing,
                body,
                hash_key.as_deref(),
                timeouts,
            )
            .await;
        if let Some(ctx) = plugins {
            ctx.headers = outgoing.headers;
            if let Ok((_, _, addr)) = &forwarded {
                ctx.log.upstream_addr = Some(*addr);
            }
        }
        let (mut resp, in_flight, _) = forwarded?;
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            match client_upgrade {
                Some(client_upgrade) => {
                    crate::websocket::splice(client_upgrade, &mut resp, in_flight);
                }
                None => {
                    return Err(ProxyError::Unreachable {
                        reason: "upstream switched protocols unasked".into(),
                        tries: Vec::new(),
                    })
                }
            }
        }
        Ok(resp)
    }
}

/// The parts of the upstream request that every try shares.
///
/// `headers` are the client's (as the plugins left them), unchanged: the hop-by-hop ones are
/// left out and the forwarded ones laid over where the request is written.
pub(crate) struct Outgoing {
    pub method: Method,
    pub path_and_query: String,
    pub headers: http::HeaderMap,
    /// The client's `Host` header, port included.
    pub client_host: Option<String>,
    /// A `Host` set by a plugin; wins over `pass_host`.
    pub host_override: Option<String>,
    /// The hop-by-hop headers among `headers`.
    pub hop: forward::HopByHop,
    /// The forwarded headers.
    pub forwarded: forward::Forwarded,
    /// A WebSocket handshake: `Connection`/`Upgrade` go upstream.
    pub upgrade: bool,
    /// gRPC: `TE: trailers` goes upstream.
    pub grpc: bool,
    /// `headers` are handed back after the exchange (a plugin context reads them later), so the
    /// response does not reuse their map.
    pub keep_headers: bool,
}

impl Outgoing {
    /// The upstream request for `headers` from `client`.
    pub(crate) fn new(
        method: Method,
        path_and_query: String,
        headers: http::HeaderMap,
        client: &Client<'_>,
        upgrade: bool,
        grpc: bool,
    ) -> Outgoing {
        Outgoing {
            hop: forward::HopByHop::find(&headers, upgrade),
            forwarded: forward::Forwarded::new(&headers, client),
            method,
            path_and_query,
            headers,
            client_host: None,
            host_override: None,
            upgrade,
            grpc,
            keep_headers: false,
        }
    }

    /// The request for one try: `host` as `pass_host` decided, the target absolute for HTTP/2.
    pub(crate) fn build(
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
        let mut headers = self.headers.clone();
        self.hop.strip(&mut headers);
        self.forwarded.apply(&mut headers);
        if self.grpc {
            headers.insert(header::TE, HeaderValue::from_static("trailers"));
        }
        *req.headers_mut() = headers;
        if h2 {
            *req.version_mut() = http::Version::HTTP_2;
            req.headers_mut().remove(header::HOST);
        } else if let Some(host) = host.and_then(|h| HeaderValue::from_str(h).ok()) {
            req.headers_mut().insert(header::HOST, host);
        }
        Ok(req)
    }
}

/// APISIX's `verify_https_client`: a certificate object with `client.ca` requires a client
/// certificate that verified in the handshake, unless `skip_mtls_uri_regex` exempts the URI
/// (400 otherwise). Both the object the handshake picked by SNI and the one the `Host` names
/// count, so a client cannot reach an mTLS host through another name's handshake.
fn check_client_cert(
    snapshot: &Snapshot,
    conn: &ConnInfo,
    host: &str,
    path: &str,
) -> Result<(), ProxyError> {
    let Some((handshake, verified)) = &conn.tls else {
        return Ok(());
    };
    let exempt = |cert: &ServerCert| cert.skip_mtls.iter().any(|re| re.is_match(path));
    let mut refused = handshake.mtls && !verified && !exempt(handshake);
    if let Some(by_host) = snapshot.sni.find(host) {
        if by_host.mtls && !exempt(by_host) && (!verified || by_host.id != handshake.id) {
            refused = true;
        }
    }
    if refused {
        return Err(ProxyError::Client(
            StatusCode::BAD_REQUEST,
            "client certificate required".into(),
        ));
    }
    Ok(())
}

/// The upstream a plugin picked (traffic-split): an upstream of the route's workspace by id, or
/// one the plugin compiled. A missing id answers APISIX's 500.
fn resolve_pick(
    snapshot: &Snapshot,
    entry: &RouteEntry,
    pick: UpstreamPick,
) -> Result<Arc<Upstream>, Box<Reply>> {
    match pick {
        UpstreamPick::Id(id) => {
            let key = format!("ws/{}/upstreams/{id}", entry.route.workspace);
            snapshot.upstreams.get(&key).cloned().ok_or_else(|| {
                Box::new(Reply::text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("failed to fetch upstream info by upstream id: {id}"),
                ))
            })
        }
        UpstreamPick::Built(any) => any.downcast::<Upstream>().map_err(|_| {
            tracing::error!(
                "route {}: a plugin picked an upstream of unknown type",
                entry.route.id
            );
            Box::new(Reply::page(StatusCode::INTERNAL_SERVER_ERROR))
        }),
    }
}

/// A request's context until its response exists: dropped before (the client went away while
/// the plugins or the upstream were at work), it runs the log phase with nginx's 499.
struct Unanswered {
    ctx: Option<Box<Ctx>>,
    entry: Arc<RouteEntry>,
}

impl Unanswered {
    fn ctx(&mut self) -> &mut Ctx {
        self.ctx
            .get_or_insert_with(|| unreachable!("the context is taken once answered"))
    }

    fn answered(&mut self) -> Box<Ctx> {
        match self.ctx.take() {
            Some(ctx) => ctx,
            None => unreachable!("the context is taken once"),
        }
    }
}

impl Drop for Unanswered {
    fn drop(&mut self) {
        if let Some(mut ctx) = self.ctx.take() {
            ctx.response = Some(portico_snapshot::runtime::ResponseHead {
                status: StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
                headers: http::HeaderMap::new(),
            });
            self.entry.plugins.log_phase(&mut ctx);
        }
    }
}

/// Largest request body read whole for plugins when the node sets no body limit.
pub const PLUGIN_BODY_LIMIT: u64 = 32 * 1024 * 1024;

/// A client's request body as the upstream gets it: streamed, or read whole by the plugins.
pub(crate) enum ClientBody {
    Stream(Inbound),
    Buffered(Bytes),
}

/// Runs the plugins' `header_filter` phase on the response about to be sent, and hands the
/// body to their `body_filter` and `log` phases.
fn finish(
    entry: Arc<RouteEntry>,
    mut ctx: Box<Ctx>,
    resp: Response<GatewayBody>,
) -> Response<GatewayBody> {
    let (mut head, body) = resp.into_parts();
    crate::trace::consumer(ctx.consumer.as_ref());
    // Without a `body_filter` the body passes unchanged and keeps its length whatever the
    // headers say; with one, only while `Content-Length` survives `header_filter`.
    let filters = entry.plugins.has(&ctx, Phases::BODY_FILTER);
    let had_length = filters && head.headers.contains_key(header::CONTENT_LENGTH);
    entry
        .plugins
        .header_filter_phase(&mut ctx, &mut head.status, &mut head.headers);
    let keeps_length =
        !filters || (had_length && head.headers.contains_key(header::CONTENT_LENGTH));
    if ctx.version >= http::Version::HTTP_2 {
        // HTTP/1.x counts the head as it writes it; HTTP/2's is reckoned as text.
        ctx.log.response_head_bytes = head_text_length(head.status, &head.headers);
    }
    let body = FilteredBody::new(body, ctx, entry, filters, keeps_length);
    Response::from_parts(head, GatewayBody::Filtered(Box::new(body)))
}

/// The length of a response head written as HTTP/1.1 text.
fn head_text_length(status: StatusCode, headers: &http::HeaderMap) -> u64 {
    let reason = status.canonical_reason().map_or(0, str::len);
    let fields: usize = headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    (15 + reason + fields + 2) as u64
}

/// The route's URI pattern and host that matched, as configured (`""` for a route without
/// hosts).
fn matched_route(found: &portico_router::Match<'_, Arc<RouteEntry>>) -> MatchedRoute {
    let spec = &found.route.route.spec;
    let host = found
        .matched_host
        .and_then(|h| spec.hosts.iter().find(|c| c.eq_ignore_ascii_case(h)));
    MatchedRoute {
        uri: found.matched_uri.to_string(),
        host: host.cloned().unwrap_or_default(),
    }
}

/// `$request_length` of a request whose head was not read as bytes (HTTP/2), as far as its
/// fields tell it: request line, headers, declared body.
fn request_length(ctx: &Ctx) -> u64 {
    let line = ctx.method.as_str().len() + ctx.real_request_uri().len() + 12;
    let mut headers = 0;
    let mut body = None;
    for (n, v) in &ctx.headers {
        headers += n.as_str().len() + v.len() + 4;
        if body.is_none() && *n == header::CONTENT_LENGTH {
            body = std::str::from_utf8(v.as_bytes())
                .ok()
                .and_then(|v| v.parse::<u64>().ok());
        }
    }
    (line + headers + 2) as u64 + body.unwrap_or(0)
}

/// Frames a body read whole: `Content-Length` of its size, no `Transfer-Encoding`.
fn set_body_length(headers: &mut http::HeaderMap, len: usize) {
    headers.remove(header::TRANSFER_ENCODING);
    if len > 0 || headers.contains_key(header::CONTENT_LENGTH) {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
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
