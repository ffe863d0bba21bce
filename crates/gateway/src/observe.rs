//! One request observed from its head to the end of its response body, for the request
//! counters ([`crate::metrics`]) and the access log ([`crate::access_log`]).
//!
//! When the head arrives, [`serve`] notes the time and, when the access log is on, takes the
//! few request headers the log prints (reference-counted, not copied). The proxy notes the
//! route and the upstream tries in the request's [`Trace`]. The response body is wrapped in an
//! [`ObservedBody`] that counts the bytes it hands on; when it ends — completely, in an error,
//! or dropped because the client went away — the request is counted and its record sent to the
//! log writer. A request abandoned before its response head (the client closed) is counted and
//! logged with nginx's 499.

use std::future::Future;
use std::net::IpAddr;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::{Body, Frame, SizeHint};

use crate::access_log::AccessRecord;
use crate::body::{BodyError, GatewayBody, Inbound};
use crate::proxy::ConnInfo;
use crate::trace::{self, Trace};
use crate::{forward, Gateway};

/// Answers one request ([`crate::server::answer`]) and returns the response with its body
/// observed. The future is large (every await point of the proxy keeps its room): callers
/// construct it where it stays (pinned in the connection's task, or written straight into its
/// own allocation) so that it is never copied.
pub(crate) async fn serve(
    gateway: Arc<Gateway>,
    req: Request<Inbound>,
    info: &ConnInfo,
    refused: Option<StatusCode>,
) -> Response<ObservedBody> {
    let pending = Pending::begin(&gateway, &req, info, refused.is_some());
    let (resp, pending, trace) = {
        // Pinned where it is made: handed to the trace's scope by reference, never moved.
        let answer = pin!(crate::server::answer(&gateway, req, info, refused));
        let handling = pin!(trace::scope(gateway.access_log.is_on(), answer));
        let mut guard = Abandoned {
            handling,
            pending: Some(pending),
            gateway: &gateway,
        };
        let resp = guard.handling.as_mut().await;
        let trace = guard.handling.take_trace();
        (resp, guard.pending.take(), trace)
    };
    match pending {
        Some(pending) => pending.respond(gateway, resp, trace),
        None => resp.map(|inner| ObservedBody { inner, ended: None }),
    }
}

/// The answer to a request head refused before it became a request (see
/// [`crate::server::refusal`]), observed: the access log has the client and the status.
pub(crate) fn refused(
    gateway: &Arc<Gateway>,
    info: &ConnInfo,
    status: StatusCode,
) -> Response<ObservedBody> {
    let pending = Pending::begin(gateway, &Request::new(()), info, true);
    let mut resp = crate::server::refusal(status);
    resp.headers_mut()
        .insert(header::SERVER, gateway.server_header.clone());
    pending.respond(gateway.clone(), resp, None)
}

/// Counts and logs a request whose handling was dropped before it had a response.
struct Abandoned<'a, F: Future> {
    handling: Pin<&'a mut trace::Scope<'a, F>>,
    pending: Option<Pending>,
    gateway: &'a Gateway,
}

impl<F: Future> Drop for Abandoned<'_, F> {
    fn drop(&mut self) {
        if let Some(pending) = self.pending.take() {
            let trace = self.handling.take_trace();
            pending.finish(self.gateway, trace, 499, 0);
        }
    }
}

/// What is known of a request before it is answered.
pub(crate) struct Pending {
    start: Instant,
    /// What the access log prints; `None` when the log is off (boxed: the response that
    /// carries it is moved a few times on its way out).
    facts: Option<Box<Facts>>,
}

struct Facts {
    remote_addr: IpAddr,
    request: Option<(Method, Uri, Version)>,
    http_host: Option<HeaderValue>,
    authorization: Option<HeaderValue>,
    http_referer: Option<HeaderValue>,
    http_user_agent: Option<HeaderValue>,
    request_id: Option<HeaderValue>,
}

impl Pending {
    fn begin<B>(gateway: &Gateway, req: &Request<B>, info: &ConnInfo, refused: bool) -> Self {
        let start = portico_clock::now();
        gateway.metrics.request_begun();
        // A refused head's request is a stand-in: log the client and the status only.
        let mut facts = gateway.access_log.is_on().then(|| {
            Box::new(Facts {
                remote_addr: match refused {
                    true => info.remote.ip(),
                    false => forward::client_ip(info.remote.ip(), req.headers()),
                },
                request: (!refused)
                    .then(|| (req.method().clone(), detach_uri(req.uri()), req.version())),
                http_host: None,
                authorization: None,
                http_referer: None,
                http_user_agent: None,
                request_id: None,
            })
        });
        for (name, value) in req.headers() {
            let Some(f) = facts.as_mut().filter(|_| !refused) else {
                break;
            };
            let slot = match *name {
                header::HOST => &mut f.http_host,
                header::AUTHORIZATION => &mut f.authorization,
                header::REFERER => &mut f.http_referer,
                header::USER_AGENT => &mut f.http_user_agent,
                _ if name.as_str() == "x-request-id" => &mut f.request_id,
                _ => continue,
            };
            slot.get_or_insert_with(|| detach(value));
        }
        if let Some(f) = facts.as_mut().filter(|f| f.http_host.is_none() && !refused) {
            // HTTP/2 carries the host as `:authority`.
            f.http_host = req
                .uri()
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok());
        }
        Pending { start, facts }
    }

    fn respond(
        self,
        gateway: Arc<Gateway>,
        resp: Response<GatewayBody>,
        trace: Option<Trace>,
    ) -> Response<ObservedBody> {
        let (parts, inner) = resp.into_parts();
        // Only the access log reads the trace.
        let trace = trace.filter(|_| self.facts.is_some()).map(Box::new);
        let ended = Ended {
            gateway,
            pending: self,
            trace,
            status: parts.status.as_u16(),
            sent: 0,
        };
        Response::from_parts(
            parts,
            ObservedBody {
                inner,
                ended: Some(ended),
            },
        )
    }

    /// Counts the request and sends its record (`sent`: bytes of the response body; the
    /// per-route byte counts are the prometheus plugin's).
    fn finish(self, gateway: &Gateway, trace: Option<Trace>, status: u16, sent: u64) {
        gateway.metrics.request_finished();
        let Some(f) = self.facts else { return };
        let end = portico_clock::now();
        let mut trace = trace.unwrap_or_default();
        trace.close_tries(end);
        let total = end.saturating_duration_since(self.start);
        gateway.access_log.send(AccessRecord {
            remote_addr: f.remote_addr,
            authorization: f.authorization,
            time: SystemTime::now(),
            http_host: f.http_host,
            request: f.request,
            status,
            body_bytes_sent: sent,
            request_time: total,
            http_referer: f.http_referer,
            http_user_agent: f.http_user_agent,
            tries: std::mem::take(&mut trace.tries),
            upstream_scheme: trace.upstream_scheme.unwrap_or("http"),
            upstream_host: trace.upstream_host.take(),
            upstream_uri: trace.upstream_uri.take(),
            request_id: f.request_id,
        });
    }
}

/// A copy of a request header value for the log record. A clone would share the connection's
/// read buffer and keep all of it alive until the record is written; the connection would then
/// need a new buffer for its next request.
fn detach(value: &HeaderValue) -> HeaderValue {
    HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| value.clone())
}

/// [`detach`] for the request target (an origin-form one; others do not share the buffer).
fn detach_uri(uri: &Uri) -> Uri {
    match uri.path_and_query() {
        Some(pq) if uri.authority().is_none() => {
            Uri::try_from(pq.as_str()).unwrap_or_else(|_| uri.clone())
        }
        _ => uri.clone(),
    }
}

/// A response body that counts what it hands on and reports the request when it ends.
pub(crate) struct ObservedBody {
    inner: GatewayBody,
    ended: Option<Ended>,
}

/// What the end of the body needs.
struct Ended {
    gateway: Arc<Gateway>,
    pending: Pending,
    trace: Option<Box<Trace>>,
    status: u16,
    sent: u64,
}

impl ObservedBody {
    /// Headers the plugins left for the writer of the response head (see
    /// `Ctx::take_late_headers`).
    pub(crate) fn take_late_headers(
        &mut self,
    ) -> Option<portico_snapshot::runtime::limit_count::QuotaNote> {
        match &mut self.inner {
            GatewayBody::Filtered(filtered) => filtered.take_late_headers(),
            _ => None,
        }
    }

    /// The response head went out in `bytes` bytes (HTTP/1.x).
    pub(crate) fn head_written(&mut self, bytes: u64) {
        if let GatewayBody::Filtered(filtered) = &mut self.inner {
            filtered.head_written(bytes);
        }
    }

    fn end(&mut self) {
        if let Some(e) = self.ended.take() {
            let Ended {
                gateway,
                pending,
                trace,
                status,
                sent,
            } = e;
            pending.finish(&gateway, trace.map(|t| *t), status, sent);
        }
    }
}

impl Drop for ObservedBody {
    fn drop(&mut self) {
        self.end();
    }
}

impl Body for ObservedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(e)) = (frame.data_ref(), this.ended.as_mut()) {
                    e.sent += data.len() as u64;
                }
            }
            Poll::Ready(_) => this.end(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests;
