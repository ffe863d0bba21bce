//! The one body type of the data plane, both directions: nothing, a buffer, or a stream from the
//! other side. A client's request body streams to the upstream counted against the size limit
//! ([`RequestBody`]); an upstream's response body streams to the client under the read timeout
//! ([`UpstreamBody`]). Neither is ever held whole.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::sync::Notify;

use crate::call::InFlight;
use crate::filtered::FilteredBody;
use crate::h1::ResponseBody;

/// Errors of a streamed body.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// A request or response body on its way through the gateway.
pub enum GatewayBody {
    /// No body.
    Empty,
    /// A body the gateway produced (error pages, plugin answers); taken on the first poll.
    Full(Option<Bytes>),
    /// A body passed through frame by frame (trailers included), unobserved.
    Stream(Incoming),
    /// A client's request body on its way to the upstream.
    Request(RequestBody),
    /// An upstream's response body on its way to the client.
    Upstream(UpstreamBody),
    /// A response body passing the plugins' `body_filter`, then their `log`.
    Filtered(Box<FilteredBody>),
}

impl GatewayBody {
    /// A body the gateway made, sent in one frame.
    pub fn full(bytes: impl Into<Bytes>) -> GatewayBody {
        GatewayBody::Full(Some(bytes.into()))
    }
}

/// Where a request body stands, as the proxy sees it while waiting for the response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyState {
    /// Frames are still being sent.
    Streaming,
    /// The last frame was handed to the upstream connection.
    Done,
    /// The body grew past `max_body_bytes`; it was cut off (413 for the client).
    TooLarge,
    /// Reading it from the client failed (the client went away or sent bad framing).
    ClientError,
}

/// Shared between a [`RequestBody`] and the proxy: how far the body got and when it last moved,
/// so that the proxy can apply the send timeout while it streams and the read timeout once it
/// is done, and tell a refused body from an upstream failure.
#[derive(Debug)]
pub struct BodyWatch {
    base: Instant,
    /// Nanoseconds after `base` of the last frame handed on (or of the start, or of the end).
    moved: AtomicU64,
    state: AtomicU8,
    changed: Notify,
}

impl BodyWatch {
    /// A watch for a body about to stream.
    pub fn new() -> Arc<BodyWatch> {
        Arc::new(BodyWatch {
            base: Instant::now(),
            moved: AtomicU64::new(0),
            state: AtomicU8::new(0),
            changed: Notify::new(),
        })
    }

    /// The watch of every request without a body (or with one the plugins read whole): done
    /// from the start, never moving.
    pub fn done() -> &'static BodyWatch {
        static DONE: LazyLock<BodyWatch> = LazyLock::new(|| BodyWatch {
            base: Instant::now(),
            moved: AtomicU64::new(0),
            state: AtomicU8::new(1),
            changed: Notify::new(),
        });
        &DONE
    }

    pub fn state(&self) -> BodyState {
        match self.state.load(Ordering::Acquire) {
            0 => BodyState::Streaming,
            1 => BodyState::Done,
            2 => BodyState::TooLarge,
            _ => BodyState::ClientError,
        }
    }

    /// When the body last moved (a frame, or its end).
    pub fn last_moved(&self) -> Instant {
        self.base + Duration::from_nanos(self.moved.load(Ordering::Acquire))
    }

    /// Resolves after the state changes (or spuriously); re-check [`state`](Self::state).
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    fn moved_now(&self) {
        let nanos = u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.moved.store(nanos, Ordering::Release);
    }

    fn set(&self, state: BodyState) {
        let code = match state {
            BodyState::Streaming => 0,
            BodyState::Done => 1,
            BodyState::TooLarge => 2,
            BodyState::ClientError => 3,
        };
        self.moved_now();
        if self
            .state
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.changed.notify_one();
        }
    }
}

/// A client's request body as it arrives: from the gateway's own HTTP/1.x connection, or from
/// hyper's HTTP/2 server.
pub enum Inbound {
    /// The request has no body.
    Empty,
    H1(crate::h1::server::RequestBody),
    Hyper(Incoming),
}

impl Body for Inbound {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            Inbound::Empty => Poll::Ready(None),
            Inbound::H1(b) => b.poll_frame(cx),
            Inbound::Hyper(b) => Pin::new(b)
                .poll_frame(cx)
                .map(|f| f.map(|r| r.map_err(Into::into))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Inbound::Empty => true,
            Inbound::H1(b) => b.is_end_stream(),
            Inbound::Hyper(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Inbound::Empty => SizeHint::with_exact(0),
            Inbound::H1(b) => b.size_hint(),
            Inbound::Hyper(b) => b.size_hint(),
        }
    }
}

/// A client's request body, counted against `max_body_bytes`: past the limit it ends in an
/// error, so the upstream sees an aborted body and never a complete oversized request.
pub struct RequestBody {
    inner: Inbound,
    limit: Option<u64>,
    seen: u64,
    watch: Arc<BodyWatch>,
}

impl RequestBody {
    pub fn new(inner: Inbound, limit: Option<u64>, watch: Arc<BodyWatch>) -> RequestBody {
        RequestBody {
            inner,
            limit,
            seen: 0,
            watch,
        }
    }
}

/// The error a [`RequestBody`] ends with past the limit.
#[derive(Debug, thiserror::Error)]
#[error("request body larger than {0} bytes")]
pub struct TooLarge(pub u64);

/// The error an [`UpstreamBody`] ends with when the upstream stalls.
#[derive(Debug, thiserror::Error)]
#[error("upstream sent nothing for {0:?} while sending the response body")]
pub struct ReadTimeout(pub Duration);

/// An upstream's response body. Each time the client asks for more, the upstream has the read
/// timeout (nginx's `proxy_read_timeout`) to deliver it; past it the body ends in an error. Time
/// the client takes to ask (back-pressure) does not count. An HTTP/1.1 connection goes back to
/// the pool when the body ends cleanly; however it ends, `in_flight` (the node's in-flight
/// count) is dropped.
pub struct UpstreamBody {
    inner: Source,
    read_timeout: Duration,
    /// Since when the client has been waiting for the next frame.
    waiting_since: Option<Instant>,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    in_flight: Option<InFlight>,
}

/// Where an upstream body comes from.
pub(crate) enum Source {
    /// The gateway's own HTTP/1.1 connection.
    H1(ResponseBody),
    /// A hyper connection (HTTP/2, or an upgrade request's HTTP/1.1).
    Hyper(Incoming),
}

impl UpstreamBody {
    pub(crate) fn new(inner: Source, read_timeout: Duration, in_flight: InFlight) -> UpstreamBody {
        UpstreamBody {
            inner,
            read_timeout,
            waiting_since: None,
            timer: None,
            in_flight: Some(in_flight),
        }
    }

    fn finish(&mut self) {
        self.in_flight = None;
        self.timer = None;
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Source::H1(b) => b.is_end_stream(),
            Source::Hyper(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Source::H1(b) => b.size_hint(),
            Source::Hyper(b) => b.size_hint(),
        }
    }

    /// Whether the read timeout ran out while the client waits; arms the timer otherwise.
    fn timed_out(&mut self, cx: &mut Context<'_>) -> bool {
        let since = *self.waiting_since.get_or_insert_with(Instant::now);
        loop {
            let deadline = since + self.read_timeout;
            if Instant::now() >= deadline {
                return true;
            }
            let deadline = tokio::time::Instant::from_std(deadline);
            let timer = self
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            if timer.deadline() != deadline {
                timer.as_mut().reset(deadline);
            }
            if timer.as_mut().poll(cx).is_pending() {
                return false;
            }
        }
    }
}

impl Body for GatewayBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            GatewayBody::Empty => Poll::Ready(None),
            GatewayBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            GatewayBody::Stream(inner) => Pin::new(inner)
                .poll_frame(cx)
                .map(|f| f.map(|r| r.map_err(Into::into))),
            GatewayBody::Request(b) => poll_request(b, cx),
            GatewayBody::Upstream(b) => poll_upstream(b, cx),
            GatewayBody::Filtered(b) => b.poll(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            GatewayBody::Empty => true,
            GatewayBody::Full(bytes) => bytes.is_none(),
            GatewayBody::Stream(inner) => inner.is_end_stream(),
            GatewayBody::Request(b) => b.inner.is_end_stream(),
            GatewayBody::Upstream(b) => b.is_end_stream(),
            GatewayBody::Filtered(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            GatewayBody::Empty => SizeHint::with_exact(0),
            GatewayBody::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            GatewayBody::Stream(inner) => inner.size_hint(),
            GatewayBody::Request(b) => b.inner.size_hint(),
            GatewayBody::Upstream(b) => b.size_hint(),
            GatewayBody::Filtered(b) => b.size_hint(),
        }
    }
}

fn poll_request(
    b: &mut RequestBody,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
    let polled = std::task::ready!(Pin::new(&mut b.inner).poll_frame(cx));
    Poll::Ready(match polled {
        None => {
            b.watch.set(BodyState::Done);
            None
        }
        Some(Ok(frame)) => {
            if let Some(data) = frame.data_ref() {
                b.seen += data.len() as u64;
                if let Some(limit) = b.limit.filter(|l| b.seen > *l) {
                    b.watch.set(BodyState::TooLarge);
                    return Poll::Ready(Some(Err(TooLarge(limit).into())));
                }
            }
            if b.inner.is_end_stream() {
                b.watch.set(BodyState::Done);
            } else {
                b.watch.moved_now();
            }
            Some(Ok(frame))
        }
        Some(Err(e)) => {
            b.watch.set(BodyState::ClientError);
            Some(Err(e))
        }
    })
}

fn poll_upstream(
    b: &mut UpstreamBody,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
    let polled = match &mut b.inner {
        Source::H1(inner) => inner.poll_frame(cx),
        Source::Hyper(inner) => Pin::new(inner)
            .poll_frame(cx)
            .map(|f| f.map(|r| r.map_err(Into::into))),
    };
    match polled {
        Poll::Ready(None) => {
            b.finish();
            Poll::Ready(None)
        }
        Poll::Ready(Some(Ok(frame))) => {
            b.waiting_since = None;
            if b.is_end_stream() {
                b.finish();
            }
            Poll::Ready(Some(Ok(frame)))
        }
        Poll::Ready(Some(Err(e))) => {
            b.finish();
            Poll::Ready(Some(Err(e)))
        }
        Poll::Pending if b.in_flight.is_some() && b.timed_out(cx) => {
            b.finish();
            if let Source::H1(inner) = &mut b.inner {
                // Mid-body, the connection cannot carry another request.
                inner.abort();
            }
            Poll::Ready(Some(Err(ReadTimeout(b.read_timeout).into())))
        }
        Poll::Pending => Poll::Pending,
    }
}
