//! A client's request body on the gateway's own HTTP/1.x connection, read on demand.
//!
//! The connection's stream and read buffer sit in a [`Wire`] that the connection and the body of
//! its current request share. The body reads from the stream only when it is polled (by the
//! upstream exchange, or by a plugin reading it whole), so the upstream's pace is the
//! back-pressure and an upload of any size takes one read buffer. An `Expect: 100-continue`
//! request gets its `100 Continue` when its body is first polled, as from hyper. Chunked framing
//! is decoded by the upstream client's decoder ([`crate::h1::decode::Decoder`]); trailers are
//! read and dropped.
//!
//! Once the response is written the connection detaches the body (a body still held somewhere
//! then ends in an error instead of reading the next request's bytes).

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use hyper::body::{Frame, SizeHint};
use tokio::io::AsyncWrite;

use super::io::Io;
use crate::body::BodyError;
use crate::h1::decode::{Decoder, Step};

/// Largest read of a request body at once.
const BODY_READ: usize = 64 * 1024;

/// What an `Expect: 100-continue` request is sent before its body is read.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// A connection's stream with what was read from it, shared with its current request's body.
pub(crate) struct Wire(Mutex<WireState>);

pub(crate) struct WireState {
    pub io: Io,
    /// Bytes read from the client and not consumed yet.
    pub read: BytesMut,
    /// The current request's body (`Decoder::Done` when it has none or it ended).
    pub body: Decoder,
    /// Bytes of `100 Continue` written, while it is owed.
    pub continue_sent: Option<usize>,
    /// The client shut its sending side.
    pub eof: bool,
    /// Counts the bodies handed out; a body of an earlier count is detached.
    pub generation: u32,
}

impl Wire {
    pub fn new(io: Io, read: BytesMut) -> Arc<Wire> {
        Arc::new(Wire(Mutex::new(WireState {
            io,
            read,
            body: Decoder::Done,
            continue_sent: None,
            eof: false,
            generation: 0,
        })))
    }

    pub fn lock(&self) -> MutexGuard<'_, WireState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl WireState {
    /// Reads what the client sent into the spare room of `read` (at least `room` bytes made).
    pub fn poll_fill(&mut self, cx: &mut Context<'_>, room: usize) -> Poll<io::Result<usize>> {
        if self.read.capacity() - self.read.len() < room {
            self.read.reserve(room);
        }
        let read = tokio::io::AsyncReadExt::read_buf(&mut self.io, &mut self.read);
        std::pin::pin!(read).poll(cx)
    }

    /// Takes what the body needs from the bytes already read, without reading more; whether
    /// the body is complete afterwards (its data is dropped).
    pub fn drain_buffered(&mut self) -> bool {
        while !self.body.is_done() {
            match self.body.step(&mut self.read) {
                Ok(Step::Data(_) | Step::Trailers(_)) => {}
                Ok(Step::End) => break,
                Ok(Step::More) | Err(_) => return false,
            }
        }
        true
    }
}

/// The body of a request on an own HTTP/1.x connection.
pub struct RequestBody {
    wire: Arc<Wire>,
    generation: u32,
}

impl RequestBody {
    /// Starts the body of the request just read: `decoder` frames it; `expect_continue` owes
    /// the client a `100 Continue` before it is read.
    pub(crate) fn start(wire: &Arc<Wire>, decoder: Decoder, expect_continue: bool) -> RequestBody {
        let mut w = wire.lock();
        w.generation = w.generation.wrapping_add(1);
        w.body = decoder;
        w.continue_sent = expect_continue.then_some(0);
        RequestBody {
            wire: wire.clone(),
            generation: w.generation,
        }
    }

    pub fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let mut guard = self.wire.lock();
        let w = &mut *guard;
        if w.generation != self.generation {
            return Poll::Ready(Some(Err(
                "the request was answered before its body was read".into(),
            )));
        }
        loop {
            if w.body.is_done() {
                return Poll::Ready(None);
            }
            if let Some(sent) = w.continue_sent {
                if let Err(e) = ready!(poll_continue(&mut w.io, cx, sent, &mut w.continue_sent)) {
                    return Poll::Ready(Some(Err(e.into())));
                }
            }
            if !w.read.is_empty() {
                match w.body.step(&mut w.read) {
                    Ok(Step::Data(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                    Ok(Step::Trailers(_)) => continue,
                    Ok(Step::End) => return Poll::Ready(None),
                    Ok(Step::More) => {}
                    Err(e) => {
                        // Nothing after a broken body can be framed: the connection closes.
                        w.eof = true;
                        w.body = Decoder::Done;
                        return Poll::Ready(Some(Err(e.into())));
                    }
                }
            }
            if w.eof {
                // An error once; the body then ends (the connection closes after the answer).
                w.body = Decoder::Done;
                return Poll::Ready(Some(Err(
                    "the client closed the connection before the request body ended".into(),
                )));
            }
            let room = match w.body.remaining() {
                Some(n) => (n as usize).clamp(1, BODY_READ),
                None => BODY_READ,
            };
            match ready!(w.poll_fill(cx, room)) {
                Ok(0) => w.eof = true,
                Ok(_) => {}
                Err(e) => {
                    w.eof = true;
                    w.body = Decoder::Done;
                    return Poll::Ready(Some(Err(e.into())));
                }
            }
        }
    }

    pub fn is_end_stream(&self) -> bool {
        let w = self.wire.lock();
        w.generation == self.generation && w.body.is_done()
    }

    pub fn size_hint(&self) -> SizeHint {
        match self.wire.lock().body.remaining() {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

/// Writes (the rest of) `100 Continue`; clears `owed` once it is written.
fn poll_continue(
    io: &mut Io,
    cx: &mut Context<'_>,
    mut sent: usize,
    owed: &mut Option<usize>,
) -> Poll<io::Result<()>> {
    while sent < CONTINUE.len() {
        let n = match Pin::new(&mut *io).poll_write(cx, &CONTINUE[sent..]) {
            Poll::Ready(r) => r?,
            Poll::Pending => {
                *owed = Some(sent);
                return Poll::Pending;
            }
        };
        if n == 0 {
            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
        }
        sent += n;
    }
    *owed = Some(sent);
    ready!(Pin::new(io).poll_flush(cx))?;
    *owed = None;
    Poll::Ready(Ok(()))
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;
    use crate::h1::decode::Chunked;

    /// A connected pair: the client's end, and the gateway's as a [`Wire`].
    async fn pair() -> (TcpStream, Arc<Wire>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, Wire::new(Io::Tcp(server), BytesMut::new()))
    }

    async fn next(body: &mut RequestBody) -> Option<Result<Bytes, String>> {
        poll_fn(|cx| body.poll_frame(cx)).await.map(|r| {
            r.map(|f| f.into_data().unwrap_or_default())
                .map_err(|e| e.to_string())
        })
    }

    #[tokio::test]
    async fn a_chunked_body_is_read_across_reads_and_the_next_head_stays() {
        let (mut client, wire) = pair().await;
        let mut body = RequestBody::start(&wire, Decoder::Chunked(Chunked::Size), true);
        assert_eq!(body.size_hint().exact(), None);
        let writer = tokio::spawn(async move {
            // The 100 Continue comes when the body is first read.
            let mut interim = [0u8; CONTINUE.len()];
            client.read_exact(&mut interim).await.unwrap();
            assert_eq!(&interim, CONTINUE);
            for piece in [
                &b"5;ext=1\r\nhel"[..],
                b"lo\r\n",
                b"6\r\n world\r",
                b"\n0\r\nX-Trailer: t\r\n",
                b"\r\nGET /next HTTP/1.1\r\n",
            ] {
                client.write_all(piece).await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            client
        });
        let mut data = Vec::new();
        while let Some(frame) = next(&mut body).await {
            data.extend_from_slice(&frame.unwrap());
        }
        assert_eq!(data, b"hello world");
        assert!(body.is_end_stream());
        let _client = writer.await.unwrap();
        // Bytes after the body are the next request's; read on until they all came.
        let rest = poll_fn(|cx| {
            let mut w = wire.lock();
            while !w.read.ends_with(b"\r\n") {
                match w.poll_fill(cx, 64) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(0) | Err(_)) => break,
                    Poll::Ready(Ok(_)) => {}
                }
            }
            Poll::Ready(w.read.split().freeze())
        })
        .await;
        assert_eq!(&rest[..], b"GET /next HTTP/1.1\r\n");
    }

    #[tokio::test]
    async fn a_sized_body_ends_at_its_length_and_a_short_one_fails() {
        let (mut client, wire) = pair().await;
        let mut body = RequestBody::start(&wire, Decoder::Length(5), false);
        assert_eq!(body.size_hint().exact(), Some(5));
        client.write_all(b"abcdeGET").await.unwrap();
        let mut data = Vec::new();
        while let Some(frame) = next(&mut body).await {
            data.extend_from_slice(&frame.unwrap());
        }
        assert_eq!(data, b"abcde");

        let mut body = RequestBody::start(&wire, Decoder::Length(10), false);
        drop(client);
        assert_eq!(next(&mut body).await, Some(Ok(Bytes::from_static(b"GET"))));
        assert!(matches!(next(&mut body).await, Some(Err(_))), "cut short");
        assert_eq!(next(&mut body).await, None, "then it ends");
        assert!(wire.lock().eof);
    }

    #[tokio::test]
    async fn a_detached_body_reads_nothing_more() {
        let (_client, wire) = pair().await;
        let mut body = RequestBody::start(&wire, Decoder::Length(3), false);
        wire.lock().generation += 1;
        assert!(matches!(next(&mut body).await, Some(Err(_))));
    }
}
