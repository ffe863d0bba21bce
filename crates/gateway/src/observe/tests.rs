use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use portico_model::types::Scheme;
use portico_snapshot::Snapshot;

use super::*;
use crate::access_log::{AccessLog, AccessLogConfig, Destination, Format};
use crate::trace::{Try, TryAddr};
use crate::ClientLimits;

fn request() -> Request<()> {
    Request::builder()
        .uri("/hello?x=1")
        .header("host", "example.com")
        .header("user-agent", "curl/8.5.0")
        .header("accept", "*/*")
        .body(())
        .unwrap()
}

fn conn() -> ConnInfo {
    ConnInfo {
        remote: "127.0.0.1:5555".parse().unwrap(),
        local_port: 9080,
        scheme: "http",
        tls: None,
        head_bytes: 0,
    }
}

const NODE: &str = "10.0.0.1:80";

#[test]
fn a_request_abandoned_before_its_answer_is_counted_as_finished() {
    let gw = Gateway::new(Snapshot::empty(), ClientLimits::default());
    let pending = Pending::begin(&gw, &request(), &conn(), false);
    let answer = pin!(async move {
        let node: SocketAddr = NODE.parse().unwrap();
        trace::failed(TryAddr::Socket(node), 502, Instant::now());
        std::future::pending::<Response<GatewayBody>>().await
    });
    let handling = pin!(trace::scope(true, answer));
    let mut guard = Abandoned {
        handling,
        pending: Some(pending),
        gateway: &gw,
    };
    let polled = guard
        .handling
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()));
    assert!(polled.is_pending());
    drop(guard);
    // Counted as finished: nothing is left in progress.
    assert_eq!(gw.metrics().requests_total(), 1);
    assert_eq!(gw.metrics().connections().writing, 0);
}

#[test]
fn notes_reach_the_trace_of_the_request_being_polled_only() {
    let node: SocketAddr = NODE.parse().unwrap();
    let mut cx = Context::from_waker(Waker::noop());
    // Two requests polled in turn on one thread: each note lands in its own request's trace.
    let mut first_turn = 0;
    let first = pin!(std::future::poll_fn(|_| {
        first_turn += 1;
        trace::upstream(Scheme::Https, &format!("/first/{first_turn}"));
        match first_turn {
            1 => Poll::Pending,
            _ => Poll::Ready(()),
        }
    }));
    let second = pin!(async {
        trace::answered(node, 204, Instant::now(), Some("example.com"));
    });
    let mut first = pin!(trace::scope(true, first));
    let mut second = pin!(trace::scope(true, second));
    assert!(first.as_mut().poll(&mut cx).is_pending());
    assert!(second.as_mut().poll(&mut cx).is_ready());
    // Outside any scope: nothing to note into, nothing changes.
    trace::upstream(Scheme::Grpc, "/nowhere");
    assert!(first.as_mut().poll(&mut cx).is_ready());
    let first = first.take_trace().expect("a trace");
    let second = second.take_trace().expect("a trace");
    assert_eq!(
        (first.upstream_scheme, first.upstream_uri.as_deref()),
        (Some("https"), Some("/first/2"))
    );
    assert!(first.tries.is_empty());
    assert_eq!(second.upstream_scheme, None);
    assert_eq!(second.tries.len(), 1);
    assert_eq!(second.tries[0].status, 204);
    assert_eq!(second.upstream_host.as_deref(), Some("example.com"));
    // With the access log off there is no trace at all.
    let off = pin!(async { trace::upstream(Scheme::Http, "/x") });
    let mut off = pin!(trace::scope(false, off));
    assert!(off.as_mut().poll(&mut cx).is_ready());
    assert!(off.take_trace().is_none());
}

fn cpu_time() -> Duration {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    Duration::from_nanos(
        text.split(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
    )
}

fn per_call(n: u32, mut f: impl FnMut()) -> Duration {
    let start = cpu_time();
    for _ in 0..n {
        f();
    }
    (cpu_time() - start) / n
}

/// What observing adds to one proxied request, in CPU time on the request's thread.
/// `cargo test -p portico-gateway --release --lib observe::tests::cost -- --ignored --nocapture`
#[test]
#[ignore = "a measurement, not a check"]
fn cost() {
    const N: u32 = 500_000;
    let node: SocketAddr = NODE.parse().unwrap();
    let response = || {
        Response::builder()
            .header("content-type", "text/plain")
            .header("content-length", "5")
            .body(GatewayBody::full(Bytes::from_static(b"hello")))
            .unwrap()
    };
    let req = request();
    let info = conn();
    let baseline = per_call(N, || drop(std::hint::black_box(response())));
    let notes = per_call(N, || {
        let notes = pin!(async {
            trace::upstream(Scheme::Http, "/hello?x=1");
            trace::answered(node, 200, Instant::now(), None);
        });
        let mut fut = pin!(trace::scope(true, notes));
        let _ = fut.as_mut().poll(&mut Context::from_waker(Waker::noop()));
        std::hint::black_box(fut.take_trace());
    });
    let instant = per_call(N, || {
        std::hint::black_box(Instant::now());
    });
    let system = per_call(N, || {
        std::hint::black_box(std::time::SystemTime::now());
    });
    println!(
        "trace scope and notes: {notes:?}; Instant::now {instant:?}, SystemTime::now {system:?}"
    );
    for log_on in [false, true] {
        let log = match log_on {
            true => {
                let sink = Destination::Writer(Box::new(std::io::sink()));
                AccessLog::start(AccessLogConfig::new(sink, Format::Default)).unwrap()
            }
            false => AccessLog::off(),
        };
        let gw = Gateway::with_access_log(Snapshot::empty(), ClientLimits::default(), log);
        let observed = per_call(N, || {
            let pending = Pending::begin(&gw, &req, &info, false);
            let mut trace = Trace::default();
            trace.tries.push(Try {
                addr: TryAddr::Socket(node),
                status: 200,
                started: pending.start,
                took: None,
            });
            drop(pending.respond(gw.clone(), response(), Some(trace)));
        });
        println!(
            "log {}: {:?} per request added ({observed:?} with building the response), {} records dropped",
            if log_on { "on" } else { "off" },
            observed.saturating_sub(baseline),
            gw.access_log().dropped(),
        );
    }
}
