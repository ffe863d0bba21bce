//! HTTP/1.1 to upstream nodes, without a task per connection.
//!
//! The request's own task does all of it: it writes the request head straight from the client's
//! headers into the connection's reused write buffer ([`encode`]), streams the body, reads the
//! response head into the connection's reused read buffer and parses it in place ([`decode`];
//! header values are slices of that buffer, not copies). The response body is read from the
//! connection only when the client asks for more ([`ResponseBody`]), so the client's pace is the
//! back-pressure; at its clean end the connection goes back to the pool. An idle pooled
//! connection costs no task and no timer: whether the node closed it meanwhile is seen when it
//! is taken out again ([`Conn::is_usable`]).
//!
//! hyper's client still serves what needs a connection task or another protocol: HTTP/2 (gRPC)
//! and upgrades (WebSocket), see [`crate::pool`].

mod body;
pub(crate) mod decode;
pub(crate) mod encode;
mod exchange;
pub(crate) mod server;
mod stream;

use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::BytesMut;
use tokio::time::Sleep;

use crate::error::ProxyError;
use crate::pool::PoolKey;
use crate::proxy::Outgoing;

pub(crate) use body::ResponseBody;
pub(crate) use exchange::{exchange, Failed, Sending};
pub use stream::Stream;

/// Room made in the read buffer before reading a response head.
const HEAD_READ: usize = 8 * 1024;

/// Largest read of a response body at once.
const BODY_READ: usize = 64 * 1024;

/// A read buffer larger than this is not kept by an idle connection.
const KEEP_READ: usize = 16 * 1024;

/// One HTTP/1.1 connection to a node, with the buffers it reuses from request to request.
pub struct Conn {
    io: Stream,
    /// Bytes read from the node and not consumed yet.
    read: BytesMut,
    /// The request head (and small body pieces) on their way out.
    write: Vec<u8>,
    /// Scratch space for parsing response heads.
    spans: Vec<decode::Span>,
    /// The pool the connection belongs to.
    pub(crate) key: PoolKey,
    /// Requests carried so far, the current one included.
    pub(crate) served: u32,
    /// When the connection was last taken for a request (its idle time counts from there).
    pub(crate) taken: Instant,
    /// The current response allows another request after it.
    keep_alive: bool,
    /// The send/read timeouts of its exchanges: one timer for the connection's life, moved
    /// from request to request (cheaper than a new one each time).
    timer: Pin<Box<Sleep>>,
}

impl Conn {
    /// A new connection, about to carry its first request.
    pub fn new(io: Stream, key: PoolKey, now: Instant) -> Box<Conn> {
        Box::new(Conn {
            io,
            read: BytesMut::new(),
            write: Vec::new(),
            spans: Vec::new(),
            key,
            served: 1,
            taken: now,
            keep_alive: false,
            timer: Box::pin(tokio::time::sleep_until(now.into())),
        })
    }

    /// Queues the head of the request `out` (see [`encode::head`]); returns the body's framing.
    pub(crate) fn queue_head(
        &mut self,
        out: &Outgoing,
        host: Option<&str>,
        body: encode::BodySize,
    ) -> Result<encode::Framing, ProxyError> {
        encode::head(&mut self.write, out, host, body)
    }

    /// Appends the headers of `head`, the response head this connection read last, to `map`.
    pub(crate) fn headers_into(&self, head: &decode::Head, map: &mut http::HeaderMap) {
        head.headers_into(&self.spans, map);
    }

    /// Whether the connection may go back to the pool: its response allowed it and ended
    /// cleanly, and nothing unasked for followed.
    pub(crate) fn reusable(&self) -> bool {
        self.keep_alive && self.read.is_empty()
    }

    /// Prepares an idle connection for the pool: no large buffers kept.
    pub(crate) fn idle(&mut self) {
        if self.read.capacity() > KEEP_READ {
            self.read = BytesMut::new();
        }
        if self.write.capacity() > KEEP_READ {
            self.write = Vec::new();
        }
    }

    /// Whether an idle connection can carry a request: the node has not closed it and sent
    /// nothing. Looks at what the reactor last saw (no system call when it saw nothing).
    pub(crate) fn is_usable(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        self.read.reserve(1);
        matches!(read(&mut self.io, &mut cx, &mut self.read), Poll::Pending) && self.read.is_empty()
    }
}

/// Reads what the node sent into the spare room of `buf`.
fn read(io: &mut Stream, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>> {
    let read = tokio::io::AsyncReadExt::read_buf(io, buf);
    pin!(read).poll(cx)
}

/// Makes at least `room` bytes of spare room in `buf` (reusing its allocation when nothing
/// else holds it).
fn make_room(buf: &mut BytesMut, room: usize) {
    if buf.capacity() - buf.len() < room {
        buf.reserve(room);
    }
}
