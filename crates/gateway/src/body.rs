//! The one body type of the data plane, both directions: nothing, a buffer, or a stream from the
//! other side (client request body to the upstream, upstream response body to the client).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use crate::pool::Checkin;

/// Errors of a streamed body.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// A request or response body on its way through the gateway.
pub enum GatewayBody {
    /// No body.
    Empty,
    /// A body the gateway produced (error pages, plugin answers); taken on the first poll.
    Full(Option<Bytes>),
    /// A body streamed from the client or the upstream, frame by frame (trailers included).
    Stream(Incoming),
    /// An upstream response body: when it ends cleanly its connection goes back to the pool.
    Pooled(Incoming, Option<Checkin>),
}

impl GatewayBody {
    pub fn full(bytes: impl Into<Bytes>) -> GatewayBody {
        GatewayBody::Full(Some(bytes.into()))
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
            GatewayBody::Pooled(inner, checkin) => {
                let polled = Pin::new(&mut *inner).poll_frame(cx);
                match &polled {
                    Poll::Ready(None) => {
                        if let Some(c) = checkin.take() {
                            c.release();
                        }
                    }
                    Poll::Ready(Some(Err(_))) => drop(checkin.take()),
                    Poll::Ready(Some(Ok(_))) if inner.is_end_stream() => {
                        if let Some(c) = checkin.take() {
                            c.release();
                        }
                    }
                    _ => {}
                }
                polled.map(|f| f.map(|r| r.map_err(Into::into)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            GatewayBody::Empty => true,
            GatewayBody::Full(bytes) => bytes.is_none(),
            GatewayBody::Stream(inner) | GatewayBody::Pooled(inner, _) => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            GatewayBody::Empty => SizeHint::with_exact(0),
            GatewayBody::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            GatewayBody::Stream(inner) | GatewayBody::Pooled(inner, _) => inner.size_hint(),
        }
    }
}
