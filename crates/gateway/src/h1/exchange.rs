//! One request on one connection, up to the response head: the queued head and the body go out
//! while the connection is watched for the answer (a node may answer before the body is all
//! sent); the send timeout applies while the body streams, the read timeout once it is sent.

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use bytes::{Buf, Bytes};
use hyper::body::Body;
use portico_snapshot::Timeouts;
use tokio::io::AsyncWrite;

use super::decode::{self, Head};
use super::encode::{self, Framing};
use super::{make_room, read, Conn, HEAD_READ};
use crate::body::{BodyState, BodyWatch, GatewayBody};

/// How an exchange failed.
pub(crate) enum Failed {
    /// Nothing of the request reached the node, or a reused connection turned out closed before
    /// any of the body was taken: the request may go again as it is, with this body.
    Unsent(Option<GatewayBody>),
    /// The request (or part of it) was sent, then the exchange failed.
    Sent(String),
    /// No response head within the send/read timeouts.
    TimedOut,
}

/// What goes with a queued request head.
pub(crate) struct Sending {
    pub body: Option<GatewayBody>,
    /// The body's framing as the head announced it.
    pub framing: Framing,
    /// A `HEAD` request (its response has no body, whatever its headers say).
    pub head_request: bool,
    /// When the try began: the timeouts count from it.
    pub since: Instant,
}

/// Sends the request whose head is queued in `conn` (see [`encode::head`]), and reads the
/// response head. A node may answer before the body is all sent; the connection is then not
/// reused. The caller owns `conn` throughout; after an error it is not reusable.
pub(crate) async fn exchange(
    conn: &mut Conn,
    sending: Sending,
    watch: &BodyWatch,
    timeouts: Timeouts,
) -> Result<Head, Failed> {
    let Sending {
        body,
        framing,
        head_request,
        since,
    } = sending;
    conn.keep_alive = false;
    let mut ex = Exchange {
        conn,
        body,
        framing,
        head_request,
        sent: 0,
        pos: 0,
        big: Bytes::new(),
        tail: b"",
        wrote_any: false,
        body_taken: false,
        queued_all: false,
        flushed: false,
    };
    let deadline = || {
        let limit = match watch.state() {
            BodyState::Streaming => timeouts.send,
            _ => timeouts.read,
        };
        tokio::time::Instant::from_std(watch.last_moved().max(since) + limit)
    };
    std::future::poll_fn(|cx| loop {
        if let Poll::Ready(result) = ex.poll(cx) {
            return Poll::Ready(result);
        }
        // The connection's own timer, armed only when the exchange has to wait. Moving a
        // registered deadline later is one atomic update; the timer is registered anew only
        // after it fired.
        let due = deadline();
        let timer = &mut ex.conn.timer;
        if timer.deadline() != due {
            timer.as_mut().reset(due);
        }
        if timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        // The timer fired; the deadline may have moved on meanwhile (the body moved).
        if tokio::time::Instant::now() >= deadline() {
            return Poll::Ready(Err(Failed::TimedOut));
        }
    })
    .await
}

struct Exchange<'c> {
    conn: &'c mut Conn,
    body: Option<GatewayBody>,
    framing: Framing,
    head_request: bool,
    /// Body bytes queued so far (checked against a `Content-Length`).
    sent: u64,
    /// Bytes of `conn.write` already written.
    pos: usize,
    /// A large body frame written from its own buffer after `conn.write`.
    big: Bytes,
    /// What follows `big` (a chunk's CRLF).
    tail: &'static [u8],
    wrote_any: bool,
    body_taken: bool,
    /// The whole request is queued.
    queued_all: bool,
    /// ... and written.
    flushed: bool,
}

impl Exchange<'_> {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<Head, Failed>> {
        if !self.flushed {
            match self.poll_send(cx) {
                Poll::Ready(Ok(())) => self.flushed = true,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {}
            }
        }
        self.poll_head(cx)
    }

    /// Writes the queue, then the body frame by frame, until all is written.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Failed>> {
        loop {
            ready!(self.poll_write(cx))?;
            if self.queued_all {
                return Pin::new(&mut self.conn.io)
                    .poll_flush(cx)
                    .map_err(|e| self.failed(&e));
            }
            let Some(body) = self.body.as_mut() else {
                self.end_body()?;
                continue;
            };
            self.body_taken = true;
            match Pin::new(body).poll_frame(cx) {
                Poll::Pending => {
                    // What is written so far goes out while the client sends more.
                    ready!(Pin::new(&mut self.conn.io).poll_flush(cx))
                        .map_err(|e| self.failed(&e))?;
                    return Poll::Pending;
                }
                Poll::Ready(None) => {
                    self.body = None;
                    self.end_body()?;
                }
                Poll::Ready(Some(Ok(frame))) => self.queue(frame)?,
                Poll::Ready(Some(Err(e))) => {
                    self.body = None;
                    return Poll::Ready(Err(Failed::Sent(format!(
                        "reading the request body failed: {e}"
                    ))));
                }
            }
        }
    }

    fn queue(&mut self, frame: hyper::body::Frame<Bytes>) -> Result<(), Failed> {
        let data = match frame.into_data() {
            Ok(data) => data,
            Err(frame) => {
                if let (Ok(trailers), Framing::Chunked) = (frame.into_trailers(), self.framing) {
                    encode::last_chunk(&mut self.conn.write, Some(&trailers));
                    self.body = None;
                    self.queued_all = true;
                }
                return Ok(());
            }
        };
        if data.is_empty() {
            return Ok(());
        }
        self.sent += data.len() as u64;
        match self.framing {
            Framing::Length(len) if self.sent > len => Err(Failed::Sent(
                "the request body is longer than its Content-Length".into(),
            )),
            Framing::Length(_) => {
                self.push(data, b"");
                Ok(())
            }
            Framing::Chunked => {
                let mut line = [0; 18];
                let line = encode::chunk_line(data.len(), &mut line);
                self.conn.write.extend_from_slice(line);
                self.push(data, b"\r\n");
                Ok(())
            }
            Framing::Empty => Err(Failed::Sent("a request body where none was framed".into())),
        }
    }

    fn push(&mut self, data: Bytes, tail: &'static [u8]) {
        if encode::copy(&data) {
            self.conn.write.extend_from_slice(&data);
            self.conn.write.extend_from_slice(tail);
        } else {
            self.big = data;
            self.tail = tail;
        }
    }

    fn end_body(&mut self) -> Result<(), Failed> {
        match self.framing {
            Framing::Chunked => encode::last_chunk(&mut self.conn.write, None),
            Framing::Length(len) if self.sent != len => {
                return Err(Failed::Sent(
                    "the request body is shorter than its Content-Length".into(),
                ))
            }
            _ => {}
        }
        self.queued_all = true;
        Ok(())
    }

    /// Writes what is queued: the buffer, then a large frame and its tail.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Failed>> {
        loop {
            let conn = &mut *self.conn;
            let queued = &conn.write[self.pos..];
            if queued.is_empty() && self.big.is_empty() && self.tail.is_empty() {
                conn.write.clear();
                self.pos = 0;
                return Poll::Ready(Ok(()));
            }
            let io = Pin::new(&mut conn.io);
            let written = if self.big.is_empty() && self.tail.is_empty() {
                io.poll_write(cx, queued)
            } else {
                let slices = [
                    IoSlice::new(queued),
                    IoSlice::new(&self.big),
                    IoSlice::new(self.tail),
                ];
                io.poll_write_vectored(cx, &slices)
            };
            let mut n = match ready!(written) {
                Ok(0) => {
                    let e = io::Error::from(io::ErrorKind::WriteZero);
                    return Poll::Ready(Err(self.failed(&e)));
                }
                Ok(n) => n,
                Err(e) => return Poll::Ready(Err(self.failed(&e))),
            };
            self.wrote_any = true;
            let k = queued.len().min(n);
            self.pos += k;
            n -= k;
            let k = self.big.len().min(n);
            self.big.advance(k);
            n -= k;
            self.tail = &self.tail[n.min(self.tail.len())..];
        }
    }

    /// Reads until a final response head is complete (1xx heads are skipped).
    fn poll_head(&mut self, cx: &mut Context<'_>) -> Poll<Result<Head, Failed>> {
        loop {
            let conn = &mut *self.conn;
            if !conn.read.is_empty() {
                match decode::head(&mut conn.read, &mut conn.spans, self.head_request) {
                    Ok(Some(head)) if head.status.is_informational() && head.status != 101 => {
                        continue
                    }
                    Ok(Some(head)) => {
                        // A node that answered before the whole request was sent (or switched
                        // protocols) leaves the connection unfit for another request.
                        conn.keep_alive = head.keep_alive && self.flushed && head.status != 101;
                        return Poll::Ready(Ok(head));
                    }
                    Ok(None) => {}
                    Err(e) => return Poll::Ready(Err(Failed::Sent(e.to_string()))),
                }
            }
            make_room(&mut conn.read, HEAD_READ);
            let got = conn.read.len();
            match ready!(read(&mut conn.io, cx, &mut conn.read)) {
                Ok(0) => {
                    let e = io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "upstream closed the connection before answering",
                    );
                    return Poll::Ready(Err(self.closed(got == 0, &e)));
                }
                Ok(_) => {}
                Err(e) => return Poll::Ready(Err(self.closed(got == 0, &e))),
            }
        }
    }

    /// The node closed (or reset) the connection; `nothing`: before any byte of an answer.
    /// A reused connection that closed unanswered before the body was touched was closed by
    /// the node while idle: the request may go again on a new connection.
    fn closed(&mut self, nothing: bool, e: &io::Error) -> Failed {
        if nothing && self.conn.served > 1 && !self.body_taken {
            return Failed::Unsent(self.body.take());
        }
        self.failed(e)
    }

    fn failed(&mut self, e: &io::Error) -> Failed {
        if self.wrote_any {
            Failed::Sent(e.to_string())
        } else {
            Failed::Unsent(self.body.take())
        }
    }
}
