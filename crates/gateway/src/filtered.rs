//! A response body on its way through the plugins' `body_filter` phase, ending in their `log`
//! phase.
//!
//! Every chunk passes `body_filter` (global rules, then the route's chain) before the client gets
//! it; once the inner body ends, `body_filter` runs once more with `eof` (what it returns is sent
//! last), and `log` runs. A client that goes away mid-body drops the body: `log` still runs, once.
//!
//! While `Content-Length` survives `header_filter` the body keeps its size hint; a plugin that
//! changes the body removes that header, and the body is then sent chunked.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use portico_snapshot::runtime::Ctx;
use portico_snapshot::RouteEntry;

use crate::body::{BodyError, GatewayBody};

/// See the module documentation.
pub struct FilteredBody {
    inner: GatewayBody,
    ctx: Box<Ctx>,
    entry: Arc<RouteEntry>,
    /// A plugin of the request's chains has a `body_filter`; without one the chunks pass as
    /// they are.
    filters: bool,
    /// The body's length does not change (no `body_filter`, or `Content-Length` was kept).
    keeps_length: bool,
    /// Trailers held back while the `eof` chunk goes out first.
    trailers: Option<http::HeaderMap>,
    state: State,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Streaming,
    /// The `eof` filter ran; only held trailers are left.
    Flushed,
    /// `log` ran.
    Logged,
}

impl FilteredBody {
    pub fn new(
        inner: GatewayBody,
        ctx: Box<Ctx>,
        entry: Arc<RouteEntry>,
        filters: bool,
        keeps_length: bool,
    ) -> Self {
        FilteredBody {
            inner,
            ctx,
            entry,
            filters,
            keeps_length,
            trailers: None,
            state: State::Streaming,
        }
    }

    /// Headers the plugins left for the writer of the response head.
    pub(crate) fn take_late_headers(
        &mut self,
    ) -> Option<portico_snapshot::runtime::limit_count::QuotaNote> {
        self.ctx.take_late_headers()
    }

    /// The response head went out in `bytes` bytes (the `log` phase reads it).
    pub(crate) fn head_written(&mut self, bytes: u64) {
        self.ctx.log.response_head_bytes = bytes;
    }

    fn filter(&mut self, mut chunk: Bytes, eof: bool) -> Bytes {
        if self.filters {
            self.entry
                .plugins
                .body_filter_phase(&mut self.ctx, &mut chunk, eof);
        }
        self.ctx.log.body_bytes_sent += chunk.len() as u64;
        chunk
    }

    fn log(&mut self) {
        if self.state != State::Logged {
            self.state = State::Logged;
            self.entry.plugins.log_phase(&mut self.ctx);
            // Done with: its room holds the next plugin request's response headers.
            crate::call::recycle_headers(std::mem::take(&mut self.ctx.headers));
        }
    }

    /// Runs the `eof` filter; what it yields goes out before anything held back.
    fn flush(&mut self) -> Option<Bytes> {
        self.state = State::Flushed;
        let last = self.filter(Bytes::new(), true);
        (!last.is_empty()).then_some(last)
    }

    pub(crate) fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        loop {
            if self.state != State::Streaming {
                if let Some(t) = self.trailers.take() {
                    return Poll::Ready(Some(Ok(Frame::trailers(t))));
                }
                self.log();
                return Poll::Ready(None);
            }
            match std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx)) {
                None => {
                    if let Some(last) = self.flush() {
                        return Poll::Ready(Some(Ok(Frame::data(last))));
                    }
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        let mut out = self.filter(data, false);
                        // A body of known length may not be polled again after its last byte
                        // (hyper stops at `Content-Length`): the `eof` filter runs now.
                        if self.inner.is_end_stream() {
                            if let Some(last) = self.flush() {
                                let mut joined = bytes::BytesMut::from(&out[..]);
                                joined.extend_from_slice(&last);
                                out = joined.freeze();
                            }
                        }
                        if !out.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(out))));
                        }
                    }
                    Err(frame) => {
                        if let Ok(t) = frame.into_trailers() {
                            self.trailers = Some(t);
                            if let Some(last) = self.flush() {
                                return Poll::Ready(Some(Ok(Frame::data(last))));
                            }
                        }
                    }
                },
                Some(Err(e)) => {
                    self.state = State::Flushed;
                    self.log();
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
    }

    pub(crate) fn is_end_stream(&self) -> bool {
        self.state == State::Logged || (self.state == State::Flushed && self.trailers.is_none())
    }

    pub(crate) fn size_hint(&self) -> SizeHint {
        if self.keeps_length {
            self.inner.size_hint()
        } else {
            SizeHint::default()
        }
    }
}

impl Drop for FilteredBody {
    fn drop(&mut self) {
        self.log();
    }
}
