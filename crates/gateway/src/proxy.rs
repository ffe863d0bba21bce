//! One request through the data plane: route match, upstream pick, forward with retries, and the
//! response back — all on the snapshot the request started with.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use portico_expr::Vars as _;
use portico_snapshot::{RouteEntry, RouteUpstream, ServerCert, Snapshot};

use crate::body::GatewayBody;
use crate::call::Outgoing;
use crate::error::ProxyError;
use crate::forward::{self, Client};
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
        check_client_cert(snapshot, conn, &host, &path)?;
        let remote = SocketAddr::new(
            forward::client_ip(conn.remote.ip(), &parts.headers),
            conn.remote.port(),
        );
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
            remote,
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
            // The client's request target as sent: not normalised, query string included.
            path_and_query: parts
                .uri
                .path_and_query()
                .map_or_else(|| "/".to_string(), |pq| pq.as_str().to_string()),
            headers,
            client_host: host_header,
        };
        let (mut resp, in_flight) = self
            .forward(&upstream, outgoing, body, hash_key.as_deref(), timeouts)
            .await?;
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
        } else {
            forward::strip_hop_by_hop(resp.headers_mut(), false);
        }
        Ok(resp)
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
