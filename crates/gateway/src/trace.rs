//! What the proxy learns about one request while it handles it — the matched route, the
//! consumer, every upstream try — kept where the access log and the request counters read it
//! once the response has ended.
//!
//! The trace is in scope while its request's future is polled ([`scope`]: the thread holds it
//! during each poll, as a task-local) so that the places that learn these facts (the retry loop
//! in `call.rs`) note them with one call and no extra parameters. Only the access log reads a
//! trace: with the log off there is none, and every note is a no-op, as it is outside a scope
//! (a `Gateway::handle` called directly).

use std::cell::RefCell;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use portico_model::types::Scheme;
use portico_snapshot::runtime::Consumer;

thread_local! {
    /// The trace of the request being polled on this thread.
    static CURRENT: RefCell<Option<Box<Trace>>> = const { RefCell::new(None) };
}

/// Facts about one request that only the proxy knows.
#[derive(Debug, Default)]
pub(crate) struct Trace {
    /// The consumer the auth plugins attached.
    pub consumer: Option<Arc<Consumer>>,
    /// Every try, in order (nginx's `$upstream_addr`, `$upstream_status`, ...).
    pub tries: Vec<Try>,
    /// `$upstream_scheme`; `None` before an upstream was chosen.
    pub upstream_scheme: Option<&'static str>,
    /// `$upstream_host`: the `Host` sent upstream; `None` = the client's.
    pub upstream_host: Option<String>,
    /// `$upstream_uri`: the request target sent upstream.
    pub upstream_uri: Option<String>,
}

/// One exchange with one node.
#[derive(Debug, Clone)]
pub(crate) struct Try {
    pub addr: TryAddr,
    /// The node's status, or nginx's stand-in for a failed try (502, 504).
    pub status: u16,
    pub started: Instant,
    /// Time to the end of the try; `None` for the answering try until its body has ended.
    pub took: Option<Duration>,
}

/// Where a try went: an address, or a node name that did not resolve.
#[derive(Debug, Clone)]
pub(crate) enum TryAddr {
    Socket(SocketAddr),
    Name(String),
}

impl Trace {
    /// Ends the answering try at `end`, and returns the time spent in all tries.
    pub fn close_tries(&mut self, end: Instant) -> Option<Duration> {
        let mut total = None::<Duration>;
        for t in &mut self.tries {
            let took = *t
                .took
                .get_or_insert_with(|| end.saturating_duration_since(t.started));
            total = Some(total.unwrap_or_default() + took);
        }
        total
    }
}

/// Runs `fut` with a fresh trace when `on` (the access log is on), else without one; take it
/// back with [`Scope::take_trace`].
pub(crate) fn scope<F: Future>(on: bool, fut: Pin<&mut F>) -> Scope<'_, F> {
    Scope {
        trace: on.then(Box::default),
        fut,
    }
}

/// The future of [`scope`].
pub(crate) struct Scope<'a, F> {
    /// The trace, while no poll holds it.
    trace: Option<Box<Trace>>,
    fut: Pin<&'a mut F>,
}

impl<F> Scope<'_, F> {
    /// The trace, once the future has been polled for the last time.
    pub(crate) fn take_trace(&mut self) -> Option<Trace> {
        self.trace.take().map(|t| *t)
    }
}

impl<F: Future> Future for Scope<'_, F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let Some(trace) = this.trace.take() else {
            return this.fut.as_mut().poll(cx);
        };
        let outer = CURRENT.with_borrow_mut(|c| c.replace(trace));
        // Takes the trace back after the poll, also when it panics.
        let back = Back {
            slot: &mut this.trace,
            outer,
        };
        let out = this.fut.as_mut().poll(cx);
        drop(back);
        out
    }
}

/// Puts a scope's trace back into its future and the enclosing one into the thread.
struct Back<'a> {
    slot: &'a mut Option<Box<Trace>>,
    outer: Option<Box<Trace>>,
}

impl Drop for Back<'_> {
    fn drop(&mut self) {
        *self.slot = CURRENT.with_borrow_mut(|c| std::mem::replace(c, self.outer.take()));
    }
}

fn with(f: impl FnOnce(&mut Trace)) {
    CURRENT.with(|c| {
        if let Ok(mut c) = c.try_borrow_mut() {
            if let Some(t) = c.as_mut() {
                f(t);
            }
        }
    });
}

/// Notes the consumer the access phase attached, if any.
pub(crate) fn consumer(consumer: Option<&Arc<Consumer>>) {
    if let Some(c) = consumer {
        with(|t| t.consumer = Some(c.clone()));
    }
}

/// Notes the upstream request: its scheme, and (when the access log wants them) the target and
/// the `Host` it carries (`None` = the client's).
pub(crate) fn upstream(scheme: Scheme, path_and_query: &str) {
    with(|t| {
        t.upstream_scheme = Some(match scheme {
            Scheme::Https => "https",
            Scheme::Grpc => "grpc",
            Scheme::Grpcs => "grpcs",
            _ => "http",
        });
        t.upstream_uri = Some(path_and_query.to_string());
    });
}

/// Notes a try that ended now with `status` (a failure: nginx's 502 or 504).
pub(crate) fn failed(addr: TryAddr, status: u16, started: Instant) {
    with(|t| {
        t.tries.push(Try {
            addr,
            status,
            started,
            took: Some(portico_clock::now().saturating_duration_since(started)),
        });
    });
}

/// Notes the try whose response goes to the client; its time runs until the body ends.
pub(crate) fn answered(addr: SocketAddr, status: u16, started: Instant, host: Option<&str>) {
    with(|t| {
        t.tries.push(Try {
            addr: TryAddr::Socket(addr),
            status,
            started,
            took: None,
        });
        t.upstream_host = host.map(str::to_string);
    });
}
