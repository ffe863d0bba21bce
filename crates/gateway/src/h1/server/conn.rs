//! One client connection, request after request, in the connection's own task: read a head,
//! hand the request to the gateway, write its response, and decide whether another may follow.

use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use http::header::HeaderMap;
use http::{Method, Request, Response, StatusCode, Version};
use hyper::body::Body;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;
use tokio::time::Sleep;

use super::body::{RequestBody, Wire};
use super::drain::Watch;
use super::io::{Io, Rewind};
use super::request::{HeadReader, Parsed, RequestHead};
use super::response::{self, Asked, Framing};
use crate::body::Inbound;
use crate::h1::decode::{Chunked, Decoder};
use crate::head::{BodyFraming, HeadLimits};
use crate::observe::{self, ObservedBody};
use crate::proxy::ConnInfo;
use crate::websocket::ClientUpgrade;
use crate::Gateway;

/// Room made in the read buffer before reading a head.
const HEAD_READ: usize = 8 * 1024;

/// Body frames up to this size are gathered behind the head (one write for a small response);
/// a larger one is written at once.
const COPY_FRAME: usize = 16 * 1024;

/// Buffered response bytes that are written before more body frames are taken.
const FLUSH_AT: usize = 32 * 1024;

/// How long a closing connection keeps draining a client that is still sending.
const LINGER: Duration = Duration::from_secs(5);

/// A read buffer larger than this is not kept by an idle connection.
const KEEP_READ: usize = 16 * 1024;

/// Serves one client connection until it closes. `read` holds what was read from it already;
/// `since` is when it was accepted (the first head's `header_timeout` counts from there);
/// `shutdown` turns true when the server drains: an idle connection then closes, a busy one
/// after its current response.
pub(crate) async fn serve(
    gateway: Arc<Gateway>,
    io: Io,
    read: BytesMut,
    mut info: ConnInfo,
    since: Instant,
    shutdown: Arc<Watch>,
) {
    let limits = gateway.limits();
    let head_limits = HeadLimits {
        max_head: limits.max_header_bytes,
        max_headers: limits.max_headers,
    };
    let mut conn = Conn {
        wire: Wire::new(io, read),
        heads: HeadReader::new(head_limits),
        max_head: limits.max_header_bytes,
        headers: None,
        out: Vec::new(),
        timer: Box::pin(tokio::time::sleep_until(since.into())),
        header_timeout: limits.header_timeout,
        keepalive_timeout: limits.keepalive_timeout,
        first: true,
        since,
        server: gateway.server_header.clone(),
    };
    let linger = loop {
        let head = match conn.next_head(&shutdown).await {
            Next::Head(head) => head,
            Next::Refused(status) => {
                tracing::debug!("refusing a request head from {}: {status}", info.remote);
                let resp = observe::refused(&gateway, &info, status);
                let asked = Asked {
                    version: Version::HTTP_11,
                    head_request: false,
                    keep_alive: false,
                };
                let _ = conn.respond(resp, asked, None, &shutdown).await;
                break true;
            }
            Next::Closed => break false,
        };
        conn.first = false;
        info.head_bytes = head.bytes;
        match conn.exchange(&gateway, &info, head, &shutdown).await {
            After::Next => {}
            After::Close => break conn.may_have_unread(),
            After::Gone => return,
        }
    };
    conn.close(linger).await;
}

/// What came of waiting for a request head (once per request: not boxed, which would cost an
/// allocation).
#[allow(clippy::large_enum_variant)]
enum Next {
    Head(RequestHead),
    Refused(StatusCode),
    /// The client closed, timed out, or the server drains.
    Closed,
}

/// What follows a request.
enum After {
    /// Another request may come.
    Next,
    /// The connection closes.
    Close,
    /// The connection was handed on (an upgrade) or broke.
    Gone,
}

struct Conn {
    wire: Arc<Wire>,
    heads: HeadReader,
    max_head: usize,
    /// The last response's header map, emptied, for the next request's headers.
    headers: Option<HeaderMap>,
    /// Response bytes not written yet.
    out: Vec<u8>,
    /// The header and keep-alive timeouts: one timer for the connection's life.
    timer: Pin<Box<Sleep>>,
    header_timeout: Duration,
    keepalive_timeout: Duration,
    /// No request was read yet.
    first: bool,
    since: Instant,
    /// The `Server` header of every response.
    server: http::HeaderValue,
}

impl Conn {
    /// Waits for the next request head: within `header_timeout` of the connection's start for
    /// the first, of its first byte for later ones; an idle connection waits `keepalive_timeout`
    /// and closes at once when the server drains.
    async fn next_head(&mut self, shutdown: &Watch) -> Next {
        if !self.first && shutdown.draining() {
            return Next::Closed;
        }
        let mut idle_since = None;
        let mut head_since = None;
        poll_fn(|cx| {
            let mut w = self.wire.lock();
            loop {
                match self.heads.parse(&mut w.read, &mut self.headers) {
                    Parsed::Head(head) => return Poll::Ready(Next::Head(head)),
                    Parsed::Refused(status) => return Poll::Ready(Next::Refused(status)),
                    Parsed::Partial => {}
                }
                if w.eof {
                    return Poll::Ready(Next::Closed);
                }
                match w.poll_fill(cx, HEAD_READ) {
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                        w.eof = true;
                        return Poll::Ready(Next::Closed);
                    }
                    Poll::Ready(Ok(_)) => {}
                    Poll::Pending => break,
                }
            }
            let idle = w.read.is_empty();
            drop(w);
            let deadline = if self.first {
                self.since + self.header_timeout
            } else if idle {
                if shutdown.poll_draining(cx).is_ready() {
                    return Poll::Ready(Next::Closed);
                }
                *idle_since.get_or_insert_with(portico_clock::now) + self.keepalive_timeout
            } else {
                *head_since.get_or_insert_with(portico_clock::now) + self.header_timeout
            };
            let deadline = tokio::time::Instant::from_std(deadline);
            if self.timer.deadline() != deadline {
                self.timer.as_mut().reset(deadline);
            }
            if self.timer.as_mut().poll(cx).is_ready() {
                tracing::debug!("client connection: no request head in time");
                return Poll::Ready(Next::Closed);
            }
            Poll::Pending
        })
        .await
    }

    /// Hands one request to the gateway and writes its answer.
    async fn exchange(
        &mut self,
        gateway: &Arc<Gateway>,
        info: &ConnInfo,
        head: RequestHead,
        shutdown: &Watch,
    ) -> After {
        let RequestHead {
            mut parts, verdict, ..
        } = head;
        let asked = Asked {
            version: parts.version,
            head_request: parts.method == Method::HEAD,
            keep_alive: verdict.keep_alive,
        };
        let body = match verdict.body {
            BodyFraming::Empty => Inbound::Empty,
            BodyFraming::Length(n) => Inbound::H1(RequestBody::start(
                &self.wire,
                Decoder::Length(n),
                verdict.expect_continue,
            )),
            BodyFraming::Chunked => Inbound::H1(RequestBody::start(
                &self.wire,
                Decoder::Chunked(Chunked::Size),
                verdict.expect_continue,
            )),
        };
        let upgrade = verdict.upgrade.then(|| {
            let (tx, own) = ClientUpgrade::own();
            parts.extensions.insert(own);
            tx
        });
        let req = Request::from_parts(parts, body);
        let mut handling = pin!(observe::serve(gateway.clone(), req, info, None));
        // A client that may send another request and closes its side meanwhile has gone away
        // (nginx's 499); one that said it sends no more (`Connection: close`, HTTP/1.0) may
        // just have shut its sending side and still gets the answer.
        let half_close = !verdict.keep_alive;
        let answered = poll_fn(|cx| {
            if let Poll::Ready(resp) = handling.as_mut().poll(cx) {
                return Poll::Ready(Some(resp));
            }
            if self.hung_up(cx, half_close) {
                return Poll::Ready(None);
            }
            Poll::Pending
        })
        .await;
        let Some(resp) = answered else {
            tracing::debug!("client {} went away before its answer", info.remote);
            return After::Gone;
        };
        let keep = match self.respond(resp, asked, upgrade, shutdown).await {
            Ok(keep) => keep,
            Err(Some(e)) => {
                tracing::debug!("client connection {}: {e}", info.remote);
                return After::Gone;
            }
            Err(None) => return After::Gone,
        };
        let mut w = self.wire.lock();
        // A body nobody read: what already arrived of it is skipped; a body still on its way
        // ends the connection.
        let body_done = w.drain_buffered();
        w.generation = w.generation.wrapping_add(1);
        if w.read.capacity() > KEEP_READ && w.read.is_empty() {
            w.read = BytesMut::new();
        }
        if keep && body_done && !w.eof {
            After::Next
        } else {
            After::Close
        }
    }

    /// Whether the client went away while its request is handled: watched only while no body
    /// is being read (the body's reads see it then), by reading ahead what the client sends.
    fn hung_up(&mut self, cx: &mut Context<'_>, half_close: bool) -> bool {
        let mut w = self.wire.lock();
        if !w.body.is_done() || w.eof {
            return false;
        }
        while w.read.len() < self.max_head + HEAD_READ {
            // Into whatever room the buffer has: the bytes of the head just read are still
            // in use, and a new buffer now would be needed only for a client that sends more.
            match w.poll_fill(cx, 1) {
                Poll::Ready(Ok(0)) => {
                    w.eof = true;
                    return !half_close;
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(_)) => {
                    w.eof = true;
                    return true;
                }
                Poll::Pending => return false,
            }
        }
        false
    }

    /// Writes a response; returns whether the connection may carry another request.
    /// `Err(None)`: the connection was handed to an upgrade.
    async fn respond(
        &mut self,
        resp: Response<ObservedBody>,
        mut asked: Asked,
        upgrade: Option<oneshot::Sender<Rewind>>,
        shutdown: &Watch,
    ) -> Result<bool, Option<io::Error>> {
        let (parts, body) = resp.into_parts();
        asked.keep_alive &= !shutdown.draining();
        let upgrade = upgrade.filter(|_| parts.status == StatusCode::SWITCHING_PROTOCOLS);
        let mut body = body;
        let late = body.take_late_headers();
        let before = self.out.len();
        let (framing, keep) = response::head(
            &mut self.out,
            &parts,
            &body.size_hint(),
            asked,
            portico_clock::now(),
            late.as_ref(),
            &self.server,
        );
        body.head_written((self.out.len() - before) as u64);
        let mut headers = parts.headers;
        headers.clear();
        self.headers = Some(headers);
        if let Some(tx) = upgrade {
            drop(body);
            self.write_out(Bytes::new(), b"").await.map_err(Some)?;
            let mut w = self.wire.lock();
            let io = std::mem::replace(&mut w.io, Io::Gone);
            let read = w.read.split().freeze();
            let _ = tx.send(Rewind::new(read, io));
            return Err(None);
        }
        match framing {
            Framing::None => drop(body),
            _ => self.send_body(body, framing).await.map_err(Some)?,
        }
        if !self.out.is_empty() {
            self.write_out(Bytes::new(), b"").await.map_err(Some)?;
        }
        Ok(keep)
    }

    /// Writes a response body: small frames gathered behind the head (the last one not copied
    /// but written from its own buffer in the same system call), all written whenever the body
    /// has nothing more ready.
    async fn send_body(&mut self, mut body: ObservedBody, framing: Framing) -> io::Result<()> {
        let mut left = match framing {
            Framing::Length(n) => n,
            _ => u64::MAX,
        };
        let chunked = framing == Framing::Chunked;
        // What follows a frame written from its own buffer.
        let (after_frame, after_last): (&'static [u8], &'static [u8]) = match chunked {
            true => (b"\r\n", b"\r\n0\r\n\r\n"),
            false => (b"", b""),
        };
        loop {
            let mut held = Bytes::new();
            let ended = poll_fn(|cx| loop {
                match Pin::new(&mut body).poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => {
                        let Ok(data) = frame.into_data() else {
                            continue; // trailers are not sent on HTTP/1.x
                        };
                        if data.is_empty() {
                            continue;
                        }
                        if data.len() as u64 > left {
                            return Poll::Ready(Err(io::Error::other(
                                "response body longer than its Content-Length",
                            )));
                        }
                        left -= data.len() as u64;
                        if !held.is_empty() {
                            self.out.extend_from_slice(&held);
                            self.out.extend_from_slice(after_frame);
                        }
                        if chunked {
                            response::chunk_size(&mut self.out, data.len());
                        }
                        held = data;
                        if held.len() > COPY_FRAME || self.out.len() >= FLUSH_AT {
                            return Poll::Ready(Ok(false));
                        }
                    }
                    Poll::Ready(None) => {
                        if chunked {
                            if held.is_empty() {
                                self.out.extend_from_slice(response::LAST_CHUNK);
                            }
                        } else if framing != Framing::Close && left > 0 {
                            return Poll::Ready(Err(io::Error::other(
                                "response body shorter than its Content-Length",
                            )));
                        }
                        return Poll::Ready(Ok(true));
                    }
                    Poll::Ready(Some(Err(e))) => {
                        return Poll::Ready(Err(io::Error::other(format!("response body: {e}"))))
                    }
                    Poll::Pending if !self.out.is_empty() || !held.is_empty() => {
                        return Poll::Ready(Ok(false))
                    }
                    Poll::Pending => return Poll::Pending,
                }
            })
            .await?;
            let tail = match (held.is_empty(), ended) {
                (true, _) => &b""[..],
                (false, false) => after_frame,
                (false, true) => after_last,
            };
            self.write_out(held, tail).await?;
            if ended {
                return Ok(());
            }
        }
    }

    /// Writes the buffered bytes, then `big`, then `tail`.
    async fn write_out(&mut self, mut big: Bytes, mut tail: &'static [u8]) -> io::Result<()> {
        let mut pos = 0;
        let out = &self.out;
        let wire = &self.wire;
        poll_fn(|cx| {
            let mut w = wire.lock();
            let io = &mut w.io;
            while pos < out.len() || !big.is_empty() || !tail.is_empty() {
                let n = if big.is_empty() && tail.is_empty() {
                    ready!(Pin::new(&mut *io).poll_write(cx, &out[pos..]))?
                } else {
                    let slices = [
                        IoSlice::new(&out[pos..]),
                        IoSlice::new(&big),
                        IoSlice::new(tail),
                    ];
                    ready!(Pin::new(&mut *io).poll_write_vectored(cx, &slices))?
                };
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                let mut n = n;
                let k = n.min(out.len() - pos);
                pos += k;
                n -= k;
                let k = n.min(big.len());
                big.advance(k);
                n -= k;
                tail = &tail[n.min(tail.len())..];
            }
            Pin::new(&mut *io).poll_flush(cx)
        })
        .await?;
        self.out.clear();
        Ok(())
    }

    /// Whether the client may still be sending bytes nobody will read.
    fn may_have_unread(&self) -> bool {
        let w = self.wire.lock();
        !w.eof && (!w.read.is_empty() || !w.body.is_done())
    }

    /// Ends the connection: the write side is shut; when the client may still be sending, what
    /// it sends is read and dropped for a while, so that it reads the answer rather than a
    /// reset.
    async fn close(&mut self, linger: bool) {
        let wire = &self.wire;
        let shut = poll_fn(|cx| Pin::new(&mut wire.lock().io).poll_shutdown(cx));
        if tokio::time::timeout(LINGER, shut).await.is_err() || !linger {
            return;
        }
        let drain = poll_fn(|cx| {
            let mut w = wire.lock();
            let mut scratch = [0u8; 8192];
            loop {
                let mut buf = ReadBuf::new(&mut scratch);
                match Pin::new(&mut w.io).poll_read(cx, &mut buf) {
                    Poll::Ready(Ok(())) if !buf.filled().is_empty() => {}
                    Poll::Ready(_) => return Poll::Ready(()),
                    Poll::Pending => return Poll::Pending,
                }
            }
        });
        let _ = tokio::time::timeout(LINGER, drain).await;
    }
}
