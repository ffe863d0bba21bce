use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use portico_model::types::Scheme;
use portico_router::RouteSpec;
use portico_snapshot::{CompiledRoute, Snapshot};

use super::*;
use crate::access_log::{AccessLog, AccessLogConfig, Destination, Format};
use crate::trace::{Try, TryAddr};
use crate::ClientLimits;

fn route() -> Arc<CompiledRoute> {
    let mut spec = RouteSpec::new(());
    spec.uris = vec!["/hello".into()];
    Arc::new(CompiledRoute {
        key: "ws/default/routes/1".into(),
        workspace: "default".into(),
        id: "1".into(),
        name: None,
        mod_revision: 1,
        timeout: None,
        enable_websocket: false,
        upstream_id: None,
        inline_upstream: None,
        plugin_config_id: None,
        spec,
    })
}

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
    }
}

const NODE: &str = "10.0.0.1:80";

#[test]
fn a_request_abandoned_before_its_answer_is_counted_as_finished() {
    let gw = Gateway::new(Snapshot::empty(), ClientLimits::default());
    let pending = Pending::begin(&gw, &request(), &conn(), false);
    let route = route();
    let handling = pin!(trace::scope(false, async move {
        let node: SocketAddr = NODE.parse().unwrap();
        let found = portico_router::Match {
            route: &Arc::new(portico_snapshot::RouteEntry {
                route,
                upstream: portico_snapshot::RouteUpstream::None,
                plugins: Arc::new(portico_snapshot::runtime::RoutePlugins::none("1")),
            }),
            matched_uri: "/hello",
            matched_host: None,
        };
        trace::matched(&found);
        trace::failed(TryAddr::Socket(node), 502, Instant::now());
        std::future::pending::<Response<GatewayBody>>().await
    }));
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
    let route = route();
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
        let mut fut = pin!(trace::scope(true, async {
            trace::upstream(Scheme::Http, "/hello?x=1");
            trace::answered(node, 200, Instant::now(), None);
        }));
        let _ = fut.as_mut().poll(&mut Context::from_waker(Waker::noop()));
        std::hint::black_box(fut.as_mut().take_value());
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
            let mut trace = Trace {
                wants_target: log_on,
                route: Some(route.clone()),
                matched_uri: Some(0),
                ..Trace::default()
            };
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
