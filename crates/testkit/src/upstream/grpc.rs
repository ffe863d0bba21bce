//! Unary gRPC over HTTP/2, framed by hand: each message is a 1-byte compressed flag, a 4-byte
//! big-endian length and the message bytes; requests carry `content-type: application/grpc`
//! and `te: trailers`; the outcome travels in the `grpc-status`/`grpc-message` trailers.
//!
//! Messages are raw bytes, not protobuf: the build has no `protoc`, and nothing between client
//! and server looks inside a message, so any bytes exercise the same path a protobuf would.

use std::error::Error;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};

use super::{Handler, TestBody};

/// A unary method: full method path (`/pkg.Service/Method`) and request message in, response
/// message or `(grpc-status, grpc-message)` out.
pub type Method = Arc<dyn Fn(&str, Bytes) -> Result<Bytes, (u32, String)> + Send + Sync>;

/// A message in gRPC's length-prefixed framing (uncompressed).
pub fn frame(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + message.len());
    out.put_u8(0);
    out.put_u32(u32::try_from(message.len()).expect("message under 4 GiB"));
    out.put_slice(message);
    out.freeze()
}

/// The one message of a unary call's framed body; `None` when the framing is wrong.
pub fn unframe(data: &[u8]) -> Option<Bytes> {
    let (&flag, rest) = data.split_first()?;
    let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    let message = rest.get(4..4 + len)?;
    (flag == 0 && rest.len() == 4 + len).then(|| Bytes::copy_from_slice(message))
}

/// A gRPC server answering every unary call with `method` (serve it with `Proto::H2`).
/// A request that is not gRPC gets HTTP 415.
pub fn server(method: Method) -> Handler {
    Arc::new(move |req| {
        let method = method.clone();
        Box::pin(async move { answer(req, &method).await })
    })
}

/// A method that answers with the request message reversed, and fails with status 3
/// (`INVALID_ARGUMENT`) for an empty message.
pub fn reverse() -> Method {
    Arc::new(|_path, msg| {
        if msg.is_empty() {
            return Err((3, "empty message".into()));
        }
        Ok(msg.iter().rev().copied().collect::<Vec<u8>>().into())
    })
}

async fn answer(req: Request<Incoming>, method: &Method) -> Response<TestBody> {
    let is_grpc = req
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    if !is_grpc {
        let mut resp = Response::new(TestBody::empty());
        *resp.status_mut() = StatusCode::UNSUPPORTED_MEDIA_TYPE;
        return resp;
    }
    let path = req.uri().path().to_string();
    let body = match req.into_body().collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => return trailers_only(13, "request body aborted"),
    };
    let Some(message) = unframe(&body) else {
        return trailers_only(13, "bad message framing");
    };
    let (data, code, text) = match method(&path, message) {
        Ok(reply) => (Some(frame(&reply)), 0, String::new()),
        Err((code, text)) => (None, code, text),
    };
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from(code));
    if let Ok(v) = HeaderValue::from_str(&text) {
        if !text.is_empty() {
            trailers.insert("grpc-message", v);
        }
    }
    grpc_response(TestBody::WithTrailers {
        data,
        trailers: Some(trailers),
    })
}

fn trailers_only(code: u32, text: &'static str) -> Response<TestBody> {
    let mut resp = grpc_response(TestBody::empty());
    resp.headers_mut()
        .insert("grpc-status", HeaderValue::from(code));
    resp.headers_mut()
        .insert("grpc-message", HeaderValue::from_static(text));
    resp
}

fn grpc_response(body: TestBody) -> Response<TestBody> {
    let mut resp = Response::new(body);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    resp
}

/// What a unary call got back.
#[derive(Debug)]
pub struct GrpcReply {
    /// The HTTP status (200 for every gRPC outcome).
    pub http_status: u16,
    pub headers: HeaderMap,
    /// The response message, unframed.
    pub message: Option<Bytes>,
    /// `grpc-status`, from the trailers (or the headers of a trailers-only answer).
    pub grpc_status: Option<String>,
    pub grpc_message: Option<String>,
    pub trailers: HeaderMap,
}

/// One unary call over a new h2c (prior knowledge) connection to `addr`.
pub async fn call(
    addr: SocketAddr,
    authority: &str,
    path: &str,
    message: &[u8],
) -> Result<GrpcReply, Box<dyn Error + Send + Sync>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    call_on(stream, "http", authority, path, message).await
}

/// One unary call over `io` (plain TCP for `scheme` `http`, or a TLS stream that chose `h2`).
pub async fn call_on<I>(
    io: I,
    scheme: &str,
    authority: &str,
    path: &str,
    message: &[u8],
) -> Result<GrpcReply, Box<dyn Error + Send + Sync>>
where
    I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io)).await?;
    tokio::spawn(conn);
    let req = Request::post(format!("{scheme}://{authority}{path}"))
        .header(header::CONTENT_TYPE, "application/grpc")
        .header(header::TE, "trailers")
        .body(Full::new(frame(message)))?;
    let resp = sender.send_request(req).await?;
    let (parts, body) = resp.into_parts();
    let collected = body.collect().await?;
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let data = collected.to_bytes();
    let text = |name: &str| {
        trailers
            .get(name)
            .or_else(|| parts.headers.get(name))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    Ok(GrpcReply {
        http_status: parts.status.as_u16(),
        message: if data.is_empty() {
            None
        } else {
            unframe(&data)
        },
        grpc_status: text("grpc-status"),
        grpc_message: text("grpc-message"),
        headers: parts.headers,
        trailers,
    })
}
