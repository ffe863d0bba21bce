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
    /// No node could answer: every try failed on connect/send errors, or no node was left to
    /// try, or `retry_timeout` ran out: 502. `tries` holds the status of each failed try (nginx's
    /// `$upstream_status`, e.g. `[502, 504]`).
    #[error("upstream unreachable: {reason}")]
    Unreachable { reason: String, tries: Vec<u16> },
    /// The last try timed out: 504.
    #[error("upstream timed out: {reason}")]
    Timeout { reason: String, tries: Vec<u16> },
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
            ProxyError::MissingUpstream(_) | ProxyError::Unreachable { .. } => {
                StatusCode::BAD_GATEWAY
            }
            ProxyError::NoUpstream | ProxyError::NoNode => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
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
            ProxyError::Unreachable { tries, .. } | ProxyError::Timeout { tries, .. } => {
                let mut resp = error_page(self.status());
                set_upstream_status(&mut resp, tries);
                resp
            }
            other => error_page(other.status()),
        }
    }
}

/// `X-APISIX-Upstream-Status: 502, 504` (nginx's `$upstream_status`, one entry per try) when
/// the last try ended in a 5xx, as APISIX's `set_resp_upstream_status` does.
pub fn set_upstream_status(resp: &mut Response<GatewayBody>, tries: &[u16]) {
    if !tries.last().is_some_and(|s| (500..600).contains(s)) {
        return;
    }
    let text = tries
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if let Ok(v) = HeaderValue::from_str(&text) {
        resp.headers_mut().insert("x-apisix-upstream-status", v);
    }
}

/// The reason phrase nginx prints for `status`.
pub fn reason(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "Authorization Required",
        405 => "Not Allowed",
        408 => "Request Time-out",
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
