//! The first reader of every client connection ([`ClientIo`]): each HTTP/1.x request head is
//! read whole and judged ([`crate::head`]) before hyper sees a byte of it.
//!
//! * A refused head never reaches hyper. In its place hyper reads a fixed stand-in request
//!   (`GET /` with `Connection: close`), so the refusal is answered in order after any earlier
//!   pipelined requests; the service recognises it through [`Verdicts`] and answers with the
//!   status and nginx page. Nothing after a refused head is read.
//! * A head must arrive within `header_timeout` of its first byte (of the connection's start for
//!   the first request); otherwise the connection is closed without an answer, as nginx does.
//! * Closing a connection whose client may still be sending (an unread body) lingers: the write
//!   side is shut and incoming bytes are read and dropped for a while, so the client reads the
//!   answer instead of a reset.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use crate::head::{HeadLimits, HeadStep, Scanner, State};

/// What hyper reads instead of a refused head.
const STAND_IN: &[u8] = b"GET / HTTP/1.1\r\nhost: refused.invalid\r\nconnection: close\r\n\r\n";

/// Room made in the input buffer before each read of a head.
const READ_CHUNK: usize = 8192;

/// How long a closing connection keeps draining a client that is still sending.
const LINGER: Duration = Duration::from_secs(5);

/// Refused heads of one connection, shared between its [`ClientIo`] and its service.
#[derive(Debug, Default)]
pub struct Verdicts {
    refused: Mutex<Option<(u64, StatusCode)>>,
    served: AtomicU64,
}

impl Verdicts {
    /// Called by the service once per request, in order: the status to answer with when this
    /// request is the stand-in of a refused head.
    pub fn next_request(&self) -> Option<StatusCode> {
        let index = self.served.fetch_add(1, Ordering::AcqRel);
        let refused = *self.refused.lock().ok()?;
        refused.filter(|(i, _)| *i == index).map(|(_, s)| s)
    }

    fn refuse(&self, index: u64, status: StatusCode) {
        if let Ok(mut r) = self.refused.lock() {
            *r = Some((index, status));
        }
    }
}

enum Linger {
    Open,
    Draining(Pin<Box<Sleep>>),
    Closed,
}

/// A client connection as hyper reads it: heads judged, bodies and HTTP/2 passed through.
pub struct ClientIo<I> {
    io: I,
    scan: Scanner,
    /// Bytes read from the client and not yet judged (a head in the making).
    input: BytesMut,
    /// Judged bytes hyper has not taken yet.
    out: BytesMut,
    header_timeout: Duration,
    timer: Option<Pin<Box<Sleep>>>,
    verdicts: Arc<Verdicts>,
    /// Heads handed to hyper (stand-ins included).
    heads: u64,
    /// hyper's read, parked while an upgrade is undecided.
    parked: Option<Waker>,
    linger: Linger,
}

impl<I> ClientIo<I> {
    /// Wraps a freshly accepted connection; the header timeout starts now.
    pub fn new(
        io: I,
        limits: HeadLimits,
        header_timeout: Duration,
        verdicts: Arc<Verdicts>,
    ) -> Self {
        ClientIo {
            io,
            scan: Scanner::new(limits),
            input: BytesMut::new(),
            out: BytesMut::new(),
            header_timeout,
            timer: Some(Box::pin(tokio::time::sleep(header_timeout))),
            verdicts,
            heads: 0,
            parked: None,
            linger: Linger::Open,
        }
    }

    fn refuse(&mut self, status: StatusCode) {
        tracing::debug!("refusing a request head: {status}");
        self.verdicts.refuse(self.heads, status);
        self.heads += 1;
        self.out.extend_from_slice(STAND_IN);
        self.input.clear();
        self.scan.set_rejected();
        self.timer = None;
    }

    /// Watches what the gateway writes for the status that decides a pending upgrade.
    fn observe(&mut self, data: &[u8]) {
        let decided = self.scan.upgrade_pending()
            && data.starts_with(b"HTTP/1.")
            && data.len() >= 12
            && self.scan.response_started(&data[9..12]);
        if decided {
            if let Some(w) = self.parked.take() {
                w.wake();
            }
        }
    }

    /// Whether the client may still be sending bytes nobody read.
    fn may_have_unread(&self) -> bool {
        !self.input.is_empty()
            || matches!(
                self.scan.state(),
                State::Length(_) | State::Chunked(_) | State::Rejected
            )
    }
}

impl<I: AsyncRead + Unpin> ClientIo<I> {
    /// Reads more of a head into `input`; `Ready(Ok(0))` at end of stream.
    fn fill_input(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        // Straight into the spare room of `input` (no zeroed scratch buffer per read); the
        // room is reclaimed once the bytes before it were handed on.
        if self.input.capacity() - self.input.len() < READ_CHUNK {
            self.input.reserve(READ_CHUNK);
        }
        let read = tokio::io::AsyncReadExt::read_buf(&mut self.io, &mut self.input);
        std::pin::pin!(read).poll(cx)
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for ClientIo<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            if !this.out.is_empty() {
                let n = this.out.len().min(buf.remaining());
                buf.put_slice(&this.out[..n]);
                this.out.advance(n);
                return Poll::Ready(Ok(()));
            }
            match this.scan.state() {
                State::Rejected => return Poll::Ready(Ok(())),
                State::AwaitUpgrade => {
                    this.parked = Some(cx.waker().clone());
                    return Poll::Pending;
                }
                State::Start | State::Head => {
                    if !this.input.is_empty() {
                        match this.scan.head(&this.input) {
                            HeadStep::Released(len) => {
                                this.out.extend_from_slice(&this.input[..len]);
                                this.input.advance(len);
                                this.heads += u64::from(len > 0);
                                this.timer = None;
                                continue;
                            }
                            HeadStep::Reject(status) => {
                                this.refuse(status);
                                continue;
                            }
                            HeadStep::NeedMore => {}
                        }
                        if this.timer.is_none() {
                            this.timer = Some(Box::pin(tokio::time::sleep(this.header_timeout)));
                        }
                    }
                    match this.fill_input(cx) {
                        Poll::Ready(Ok(0)) => return Poll::Ready(Ok(())),
                        Poll::Ready(Ok(_)) => continue,
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Pending => {
                            let expired = this
                                .timer
                                .as_mut()
                                .is_some_and(|t| t.as_mut().poll(cx).is_ready());
                            if expired {
                                return Poll::Ready(Err(io::Error::new(
                                    io::ErrorKind::TimedOut,
                                    "client did not send its request head in time",
                                )));
                            }
                            return Poll::Pending;
                        }
                    }
                }
                State::Length(_) | State::Chunked(_) | State::Passthrough => {
                    if !this.input.is_empty() {
                        let k = this.scan.pass(&this.input);
                        this.out.extend_from_slice(&this.input[..k]);
                        this.input.advance(k);
                        continue;
                    }
                    // Body bytes go straight into hyper's buffer; a following head is taken back.
                    let before = buf.filled().len();
                    std::task::ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
                    let after = buf.filled().len();
                    if after == before {
                        return Poll::Ready(Ok(()));
                    }
                    let k = this.scan.pass(&buf.filled()[before..after]);
                    if before + k < after {
                        this.input
                            .extend_from_slice(&buf.filled()[before + k..after]);
                        buf.set_filled(before + k);
                    }
                    if k > 0 {
                        return Poll::Ready(Ok(()));
                    }
                }
            }
        }
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin> AsyncWrite for ClientIo<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.observe(data);
        Pin::new(&mut this.io).poll_write(cx, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(first) = bufs.iter().find(|b| !b.is_empty()) {
            this.observe(first);
        }
        Pin::new(&mut this.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match &mut this.linger {
                Linger::Open => {
                    std::task::ready!(Pin::new(&mut this.io).poll_shutdown(cx))?;
                    this.linger = if this.may_have_unread() {
                        Linger::Draining(Box::pin(tokio::time::sleep(LINGER)))
                    } else {
                        Linger::Closed
                    };
                }
                Linger::Draining(timer) => {
                    if timer.as_mut().poll(cx).is_ready() {
                        this.linger = Linger::Closed;
                        continue;
                    }
                    let mut scratch = [0u8; 8192];
                    let mut buf = ReadBuf::new(&mut scratch);
                    match Pin::new(&mut this.io).poll_read(cx, &mut buf) {
                        Poll::Ready(Ok(())) if !buf.filled().is_empty() => {}
                        Poll::Ready(_) => this.linger = Linger::Closed,
                        Poll::Pending => return Poll::Pending,
                    }
                }
                Linger::Closed => return Poll::Ready(Ok(())),
            }
        }
    }
}
