//! Every response the gateway makes up itself, in one place, with APISIX's statuses and bodies
//! (`reference/apisix.md` §3.10).

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};

use crate::body::GatewayBody;

/// Where a failure came from; decides the status, the body and whether another node may be tried.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// No route matched: 404 `{"error_msg":"404 Route Not Found"}`.
    #[error("no route matched")]
    NoRoute,
    /// The route's `upstream_id` names no upstream: 502.
    #[error("upstream {0} not found")]
    MissingUpstream(String),
    /// The route has no upstream at all: 503.
    #[error("missing upstream configuration in route")]
    NoUpstream,
    /// The upstream has no node (or no node could be picked): 503.
    #[error("no valid upstream node")]
    NoNode,
    /// Every try failed on connect/send errors: 502.
    #[error("upstream unreachable: {0}")]
    Unreachable(String),
    /// The upstream did not answer in time: 504.
    #[error("upstream timed out: {0}")]
    Timeout(String),
    /// The client sent something the gateway refuses (malformed, too large, mTLS): 4xx.
    #[error("bad request: {1}")]
    Client(StatusCode, String),
    /// A bug or an impossible state: 500.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::NoRoute => StatusCode::NOT_FOUND,
            ProxyError::MissingUpstream(_) | ProxyError::Unreachable(_) => StatusCode::BAD_GATEWAY,
            ProxyError::NoUpstream | ProxyError::NoNode => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::Client(status, _) => *status,
            ProxyError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The response the client gets.
    pub fn to_response(&self) -> Response<GatewayBody> {
        match self {
            ProxyError::NoRoute => text_response(
                StatusCode::NOT_FOUND,
                "text/plain; charset=utf-8",
                Bytes::from_static(b"{\"error_msg\":\"404 Route Not Found\"}\n"),
            ),
            other => error_page(other.status()),
        }
    }
}

/// The reason phrase nginx prints for `status`.
pub fn reason(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "Authorization Required",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Large",
        431 => "Request Header Fields Too Large",
        502 => "Bad Gateway",
        503 => "Service Temporarily Unavailable",
        504 => "Gateway Time-out",
        _ => status.canonical_reason().unwrap_or(""),
    }
}

/// The nginx-style HTML error page APISIX answers with when there is no body of its own.
pub fn error_page(status: StatusCode) -> Response<GatewayBody> {
    let title = format!("{} {}", status.as_u16(), reason(status));
    let page = format!(
        "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n<hr><center>portico</center>\r\n</body>\r\n</html>\r\n"
    );
    text_response(status, "text/html", Bytes::from(page))
}

/// A response with a body made by the gateway.
pub fn text_response(
    status: StatusCode,
    content_type: &'static str,
    body: Bytes,
) -> Response<GatewayBody> {
    let len = body.len();
    let mut resp = Response::new(GatewayBody::full(body));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    resp
}
