//! Early answers of plugins, with APISIX's body rules (`apisix/core/response.lua:resp_exit`,
//! reference §0 #8 and §3.10):
//!
//! * `return code, {message = ...}` (auth plugins) → [`Reply::message`]: `{"message":"..."}\n`;
//! * `return code, {error_msg = ...}` (a configured `rejected_msg`) → [`Reply::error_msg`];
//! * any other table → [`Reply::json`]: cjson text plus `\n`; a string → [`Reply::text`], raw;
//! * `return code` without a body → [`Reply::page`]: the nginx HTML page of that status (empty
//!   for a status nginx has no page for, e.g. 200 or 418).
//!
//! Bodies made by `resp_exit` carry nginx's default type, `text/plain; charset=utf-8`, even when
//! they hold JSON; pages are `text/html`.

use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, Response, StatusCode};
use serde_json::{json, Value};

/// Content type of JSON and text bodies made by the gateway (nginx `default_type` + `charset`).
pub const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

/// A response a plugin answers with instead of proxying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Status code.
    pub status: StatusCode,
    /// Headers (`Content-Type` included; `Content-Length` is set by [`Reply::into_response`]).
    pub headers: HeaderMap,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Reply {
    fn with_body(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Reply {
        let mut headers = HeaderMap::new();
        if !body.is_empty() {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        }
        Reply {
            status,
            headers,
            body,
        }
    }

    /// `core.response.exit(code)`: the nginx error page of `status` (`text/html`), or an empty
    /// body when nginx has no page for it.
    pub fn page(status: StatusCode) -> Reply {
        let body = nginx_page(status)
            .map(String::into_bytes)
            .unwrap_or_default();
        Reply::with_body(status, "text/html", body)
    }

    /// `core.response.exit(code, {message = msg})`, the form auth plugins use.
    pub fn message(status: StatusCode, msg: &str) -> Reply {
        Reply::json(status, &json!({ "message": msg }))
    }

    /// `core.response.exit(code, {error_msg = msg})`, the form of a configured rejection message.
    pub fn error_msg(status: StatusCode, msg: &str) -> Reply {
        Reply::json(status, &json!({ "error_msg": msg }))
    }

    /// `core.response.exit(code, tbl)`: cjson text of `body` followed by `\n`.
    pub fn json(status: StatusCode, body: &Value) -> Reply {
        Reply::with_body(status, TEXT_PLAIN, json_body(body))
    }

    /// `core.response.exit(code, "text")`: the string as it is.
    pub fn text(status: StatusCode, body: impl Into<String>) -> Reply {
        Reply::with_body(status, TEXT_PLAIN, body.into().into_bytes())
    }

    /// Adds a header (replacing one of the same name); an invalid name or value is skipped.
    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            self.headers.insert(n, v);
        }
        self
    }

    /// Replaces the body by `_meta.error_response` (already encoded, see [`error_response_body`]).
    pub(crate) fn replace_body(&mut self, body: &[u8]) {
        self.body = body.to_vec();
        self.headers
            .insert(CONTENT_TYPE, HeaderValue::from_static(TEXT_PLAIN));
    }

    /// The HTTP response, with `Content-Length`; `body` wraps the bytes in the caller's body type.
    pub fn into_response<B>(self, body: impl FnOnce(Vec<u8>) -> B) -> Response<B> {
        let len = self.body.len();
        let mut resp = Response::new(body(self.body));
        *resp.status_mut() = self.status;
        *resp.headers_mut() = self.headers;
        resp.headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from(len));
        resp
    }
}

/// cjson text of a table body plus the `\n` `resp_exit` appends.
pub fn json_body(body: &Value) -> Vec<u8> {
    let mut text = portico_model::schema::cjson_encode(body);
    text.push('\n');
    text.into_bytes()
}

/// The body `_meta.error_response` stands for: a string as it is, anything else as JSON + `\n`.
pub fn error_response_body(conf: &Value) -> Vec<u8> {
    match conf {
        Value::String(s) => s.clone().into_bytes(),
        other => json_body(other),
    }
}

/// nginx's reason phrase for `status` (its own spelling, e.g. `Service Temporarily Unavailable`);
/// `None` for a status nginx has no error page for.
pub fn nginx_reason(status: StatusCode) -> Option<&'static str> {
    Some(match status.as_u16() {
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Authorization Required",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Time-out",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Large",
        415 => "Unsupported Media Type",
        416 => "Requested Range Not Satisfiable",
        421 => "Misdirected Request",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Temporarily Unavailable",
        504 => "Gateway Time-out",
        505 => "HTTP Version Not Supported",
        507 => "Insufficient Storage",
        _ => return None,
    })
}

/// The nginx error page of `status`, signed `portico` like the gateway's own pages.
pub fn nginx_page(status: StatusCode) -> Option<String> {
    let title = format!("{} {}", status.as_u16(), nginx_reason(status)?);
    Some(format!(
        "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n<hr><center>portico</center>\r\n</body>\r\n</html>\r\n"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_follow_resp_exit() {
        let r = Reply::message(StatusCode::UNAUTHORIZED, "Missing API key in request");
        assert_eq!(r.body, b"{\"message\":\"Missing API key in request\"}\n");
        assert_eq!(r.headers[CONTENT_TYPE], TEXT_PLAIN);
        let r = Reply::error_msg(StatusCode::SERVICE_UNAVAILABLE, "a/b");
        assert_eq!(r.body, b"{\"error_msg\":\"a\\/b\"}\n");
        let r = Reply::page(StatusCode::SERVICE_UNAVAILABLE);
        let page = String::from_utf8(r.body.clone()).unwrap_or_default();
        assert!(page.contains("<title>503 Service Temporarily Unavailable</title>"));
        assert_eq!(r.headers[CONTENT_TYPE], "text/html");
        let r = Reply::page(StatusCode::OK);
        assert!(r.body.is_empty() && r.headers.is_empty());
        assert_eq!(error_response_body(&json!("x")), b"x");
        assert_eq!(error_response_body(&json!({"m": 1})), b"{\"m\":1}\n");
    }

    #[test]
    fn into_response_sets_length() {
        let resp = Reply::text(StatusCode::FORBIDDEN, "no")
            .with_header("X-A", "1")
            .into_response(|b| b);
        assert_eq!(resp.status(), 403);
        assert_eq!(resp.headers()[CONTENT_LENGTH], "2");
        assert_eq!(resp.headers()["x-a"], "1");
        assert_eq!(resp.body(), b"no");
    }
}
