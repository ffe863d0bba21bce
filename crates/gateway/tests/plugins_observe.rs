//! The observability plugins through the real gateway: prometheus counts what routes with it
//! served (read from the exporter as a Prometheus server reads it), and the loggers deliver
//! APISIX's entries to a test HTTP server, a TCP listener and a file.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::prometheus::{self, Exposition};
use common::{upstream, Harness};
use http::Method;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use portico_gateway::metrics::server::{self, Exporter};
use portico_testkit::upstream::{handlers, Upstream};
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

fn route(uri: &str, node: &str, template: Option<&str>) -> Value {
    let mut r = json!({"uri": uri, "upstream": upstream(&[(node, 1)], json!({}))});
    if let Some(t) = template {
        r["plugin_config_id"] = json!(t);
    }
    r
}

/// Polls `check` every 10 ms for up to 10 s.
async fn until<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The gateway's exporter on an ephemeral port.
async fn exporter(gw: &Harness) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let exporter = Exporter {
        gateway: gw.gateway.clone(),
        store: None,
        hostname: "test-node".into(),
    };
    tokio::spawn(server::serve(listener, exporter, std::future::pending()));
    addr
}

/// One scrape of the exporter, parsed (the parser panics on anything Prometheus refuses).
async fn scrape(gw: &Harness, at: SocketAddr) -> Exposition {
    let req = http::Request::get(format!("http://{at}{}", server::EXPORT_URI))
        .body(Full::default())
        .unwrap();
    let reply = gw.send(req).await;
    assert_eq!(reply.status, 200);
    assert!(reply
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")));
    prometheus::parse(&reply.text())
}

/// Scrapes until `apisix_http_status` sums to `n` (counted when a body ends, a moment after
/// the client read it).
async fn scrape_counted(gw: &Harness, at: SocketAddr, n: f64) -> Exposition {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = scrape(gw, at).await;
        let counted = m.sum("apisix_http_status", &[]);
        if counted >= n {
            assert_eq!(counted, n, "counted more than sent");
            return m;
        }
        assert!(Instant::now() < deadline, "only {counted} of {n} counted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn prometheus_counts_the_requests_of_routes_that_have_it() {
    let echo = Upstream::start("echo", handlers::echo()).await;
    let missing = Upstream::start("missing", handlers::fixed(404, "no")).await;
    let gw = Harness::start(vec![
        (
            "ws/default/plugin_configs/m",
            json!({"plugins": {"prometheus": {}}}),
        ),
        ("ws/default/routes/a", route("/a", &echo.node(), Some("m"))),
        (
            "ws/default/routes/gone",
            route("/gone", &missing.node(), Some("m")),
        ),
        (
            "ws/default/routes/plain",
            route("/plain", &echo.node(), None),
        ),
    ])
    .await;
    let at = exporter(&gw).await;
    for _ in 0..5 {
        assert_eq!(gw.get("/a").await.status, 200);
    }
    for _ in 0..3 {
        assert_eq!(gw.get("/gone").await.status, 404);
    }
    for _ in 0..2 {
        assert_eq!(gw.get("/plain").await.status, 200);
    }
    let m = scrape_counted(&gw, at, 8.0).await;
    let status = |code: &str, route: &str, uri: &str| {
        m.exact(
            "apisix_http_status",
            &[
                ("code", code),
                ("route", route),
                ("matched_uri", uri),
                ("matched_host", ""),
                ("service", ""),
                ("consumer", ""),
                ("node", "127.0.0.1"),
                ("request_type", "traditional_http"),
                ("request_llm_model", ""),
                ("llm_model", ""),
                ("response_source", "upstream"),
                ("workspace", "default"),
            ],
        )
    };
    assert_eq!(status("200", "a", "/a"), Some(5.0));
    assert_eq!(status("404", "gone", "/gone"), Some(3.0));
    assert_eq!(m.sum("apisix_http_status", &[("route", "plain")]), 0.0);
    // Every request counts towards the node's total, plugin or not.
    assert!(m.sum("apisix_http_requests_total", &[]) >= 10.0);
    for kind in ["request", "upstream", "apisix"] {
        let labels = [("type", kind), ("route", "a")];
        assert_eq!(m.sum("apisix_http_latency_count", &labels), 5.0, "{kind}");
        let inf = [("type", kind), ("route", "a"), ("le", "+Inf")];
        assert_eq!(m.sum("apisix_http_latency_bucket", &inf), 5.0, "{kind}");
    }
    let les: Vec<&str> = m
        .samples
        .iter()
        .filter(|s| s.name == "apisix_http_latency_bucket" && s.labels["type"] == "request")
        .filter(|s| s.labels["route"] == "a")
        .map(|s| s.labels["le"].as_str())
        .collect();
    assert_eq!(
        les,
        [
            "1", "2", "5", "10", "20", "50", "100", "200", "500", "1000", "2000", "5000", "10000",
            "30000", "60000", "+Inf"
        ]
    );
    assert!(m.sum("apisix_bandwidth", &[("type", "egress"), ("route", "a")]) > 5.0 * 20.0);
    assert!(m.sum("apisix_bandwidth", &[("type", "ingress"), ("route", "a")]) > 5.0 * 16.0);
    assert!(
        m.sum(
            "apisix_nginx_http_current_connections",
            &[("state", "accepted")]
        ) >= 1.0
    );
    assert_eq!(
        m.exact(
            "apisix_node_info",
            &[
                ("hostname", "test-node"),
                ("version", env!("CARGO_PKG_VERSION"))
            ]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn removing_prometheus_from_the_template_stops_counting() {
    let echo = Upstream::start("echo", handlers::echo()).await;
    let gw = Harness::start(vec![
        (
            "ws/default/plugin_configs/m",
            json!({"plugins": {"prometheus": {"prefer_name": true}}}),
        ),
        (
            "ws/default/routes/1",
            json!({"uri": "/a", "name": "alpha", "plugin_config_id": "m",
                   "upstream": upstream(&[(&echo.node(), 1)], json!({}))}),
        ),
    ])
    .await;
    let at = exporter(&gw).await;
    for _ in 0..2 {
        assert_eq!(gw.get("/a").await.status, 200);
    }
    let m = scrape_counted(&gw, at, 2.0).await;
    assert_eq!(m.sum("apisix_http_status", &[("route", "alpha")]), 2.0);
    gw.put(vec![(
        "ws/default/plugin_configs/m",
        json!({"plugins": {}}),
    )]);
    for _ in 0..3 {
        assert_eq!(gw.get("/a").await.status, 200);
    }
    // The requests are counted by the node, not by the plugin.
    until("the node counted 5 requests", || {
        (gw.gateway.metrics().requests_total() >= 5
            && gw.gateway.metrics().connections().writing == 0)
            .then_some(())
    })
    .await;
    let m = scrape(&gw, at).await;
    assert_eq!(m.sum("apisix_http_status", &[]), 2.0);
    // Put back, as a global rule this time: counting resumes, once per request.
    gw.put(vec![(
        "ws/default/global_rules/1",
        json!({"plugins": {"prometheus": {}}}),
    )]);
    assert_eq!(gw.get("/a").await.status, 200);
    let m = scrape_counted(&gw, at, 3.0).await;
    assert_eq!(m.sum("apisix_http_status", &[("route", "1")]), 1.0);
}

/// A log server: records the requests it receives; answers 500 to the first `fail_first`.
#[derive(Default)]
struct LogServer {
    received: Mutex<Vec<(http::HeaderMap, String)>>,
    attempts: AtomicUsize,
    fail_first: usize,
}

impl LogServer {
    async fn start(fail_first: usize) -> (Arc<LogServer>, SocketAddr) {
        let server = Arc::new(LogServer {
            fail_first,
            ..LogServer::default()
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let s = server.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let s = s.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: http::Request<Incoming>| {
                        let s = s.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.map(|b| b.to_bytes());
                            let body =
                                String::from_utf8_lossy(&body.unwrap_or_default()).into_owned();
                            let n = s.attempts.fetch_add(1, Ordering::SeqCst);
                            let status = if n < s.fail_first {
                                500
                            } else {
                                s.received.lock().unwrap().push((parts.headers, body));
                                200
                            };
                            let resp = http::Response::builder()
                                .status(status)
                                .body(Full::new(Bytes::from_static(b"ok")))
                                .unwrap();
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (server, addr)
    }

    fn bodies(&self) -> Vec<Value> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .map(|(_, b)| serde_json::from_str(b).unwrap_or_else(|e| panic!("{e}: {b}")))
            .collect()
    }
}

#[tokio::test]
async fn http_logger_posts_batches_by_size_and_after_inactivity() {
    let echo = Upstream::start("echo", handlers::echo()).await;
    let (logs, addr) = LogServer::start(0).await;
    let gw = Harness::start(vec![
        (
            "ws/default/plugin_configs/l",
            json!({"plugins": {"http-logger": {
                "uri": format!("http://{addr}/logs?src=portico"), "auth_header": "Bearer t",
                "batch_max_size": 2, "inactive_timeout": 1
            }}}),
        ),
        ("ws/default/routes/r", route("/a", &echo.node(), Some("l"))),
    ])
    .await;
    for q in ["x=1", "x=2", "x=3"] {
        assert_eq!(gw.get(&format!("/a?{q}")).await.status, 200);
    }
    let first = until("a full batch", || logs.bodies().first().cloned()).await;
    let entries = first.as_array().expect("a JSON array");
    assert_eq!(entries.len(), 2);
    let e = &entries[0];
    assert_eq!(e["request"]["uri"], "/a?x=1");
    assert_eq!(e["request"]["method"], "GET");
    assert_eq!(e["request"]["querystring"], json!({"x": "1"}));
    assert!(e["request"]["headers"]["host"].is_string(), "{e}");
    assert_eq!(e["response"]["status"], 200);
    assert!(e["response"]["headers"]["content-type"].is_string(), "{e}");
    assert_eq!(e["route_id"], "r");
    assert_eq!(e["service_id"], "");
    assert_eq!(e["upstream"], echo.node());
    assert_eq!(e["client_ip"], "127.0.0.1");
    assert!(e["latency"].is_number() && e["start_time"].is_number());
    {
        let received = logs.received.lock().unwrap();
        let headers = &received[0].0;
        assert_eq!(headers["authorization"], "Bearer t");
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(headers["host"], "127.0.0.1");
    }
    let started = Instant::now();
    let second = until("the inactive batch", || logs.bodies().get(1).cloned()).await;
    assert_eq!(second.as_array().map(Vec::len), Some(1));
    assert_eq!(second[0]["request"]["uri"], "/a?x=3");
    assert!(started.elapsed() >= Duration::from_millis(500));
}

#[tokio::test]
async fn http_logger_retries_a_failed_batch() {
    let echo = Upstream::start("echo", handlers::echo()).await;
    let (logs, addr) = LogServer::start(1).await;
    let gw = Harness::start(vec![
        (
            "ws/default/plugin_configs/l",
            json!({"plugins": {"http-logger": {
                "uri": format!("http://{addr}/"), "batch_max_size": 1,
                "max_retry_count": 2, "retry_delay": 0, "concat_method": "new_line"
            }}}),
        ),
        ("ws/default/routes/r", route("/a", &echo.node(), Some("l"))),
    ])
    .await;
    assert_eq!(gw.get("/a").await.status, 200);
    // Batches of one entry go as the entry's object.
    let body = until("the retried batch", || logs.bodies().first().cloned()).await;
    assert_eq!(body["request"]["uri"], "/a");
    assert_eq!(logs.attempts.load(Ordering::SeqCst), 2);
    assert_eq!(
        logs.received.lock().unwrap()[0].0["content-type"],
        "text/plain"
    );
}

#[tokio::test]
async fn plugin_metadata_log_format_changes_the_entries() {
    let echo = Upstream::start("echo", handlers::echo()).await;
    let (logs, addr) = LogServer::start(0).await;
    let gw = Harness::start(vec![
        (
            "ws/default/plugin_configs/l",
            json!({"plugins": {"http-logger": {"uri": format!("http://{addr}/"), "batch_max_size": 1}}}),
        ),
        ("ws/default/routes/r", route("/a", &echo.node(), Some("l"))),
    ])
    .await;
    assert_eq!(gw.get("/a").await.status, 200);
    let first = until("the first entry", || logs.bodies().first().cloned()).await;
    assert!(first.get("request").is_some(), "the default entry: {first}");
    gw.put(vec![(
        "plugin_metadata/http-logger",
        json!({"log_format": {"host": "$host", "status": "$status", "agent": "$http_user_agent",
                              "type": "$sent_http_content_type", "fixed": 1}}),
    )]);
    let req = gw
        .request(Method::GET, "/a")
        .header("user-agent", "observer/1")
        .body(Full::default())
        .unwrap();
    assert_eq!(gw.send(req).await.status, 200);
    let second = until("the second entry", || logs.bodies().get(1).cloned()).await;
    let content_type = second["type"].clone();
    assert!(content_type.is_string(), "{second}");
    assert_eq!(
        second,
        json!({"host": "127.0.0.1", "status": "200", "agent": "observer/1",
               "type": content_type, "fixed": 1, "route_id": "r"})
    );
}

#[tokio::test]
async fn tcp_logger_sends_entries_over_tcp() {
    let echo = Upstream::start("echo", handlers::echo()).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = received.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut text = String::new();
            let _ = stream.read_to_string(&mut text).await;
            sink.lock().unwrap().push(text);
        }
    });
    let gw = Harness::start(vec![
        (
            "ws/default/plugin_configs/l",
            json!({"plugins": {"tcp-logger": {"host": "127.0.0.1", "port": port,
                                              "batch_max_size": 2, "inactive_timeout": 1,
                                              "log_format": {"uri": "$uri", "code": "$status"}}}}),
        ),
        (
            "ws/default/routes/r",
            route("/t/*", &echo.node(), Some("l")),
        ),
    ])
    .await;
    for p in ["/t/1", "/t/2"] {
        assert_eq!(gw.get(p).await.status, 200);
    }
    let text = until("a batch over TCP", || {
        received.lock().unwrap().first().cloned()
    })
    .await;
    let batch: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        batch,
        json!([{"uri": "/t/1", "code": "200", "route_id": "r"},
               {"uri": "/t/2", "code": "200", "route_id": "r"}])
    );
}

#[tokio::test]
async fn file_logger_appends_matching_requests_with_their_bodies() {
    let echo = Upstream::start("echo", handlers::fixed(200, "the body")).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.json");
    let gw = Harness::start(vec![
        (
            "ws/default/plugin_configs/l",
            json!({"plugins": {"file-logger": {
                "path": path.to_str().unwrap(), "include_resp_body": true,
                "match": [[["arg_log", "==", "yes"]]]
            }}}),
        ),
        ("ws/default/routes/r", route("/f", &echo.node(), Some("l"))),
    ])
    .await;
    for q in ["log=yes&n=1", "log=no&n=2", "log=yes&n=3"] {
        assert_eq!(gw.get(&format!("/f?{q}")).await.status, 200);
    }
    let lines = until("two lines", || {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect();
        (lines.len() >= 2).then_some(lines)
    })
    .await;
    assert_eq!(lines.len(), 2);
    let uris: Vec<&str> = lines
        .iter()
        .map(|l| l["request"]["uri"].as_str().unwrap_or_default())
        .collect();
    assert!(
        uris.contains(&"/f?log=yes&n=1") && uris.contains(&"/f?log=yes&n=3"),
        "{uris:?}"
    );
    assert_eq!(lines[0]["response"]["body"], "the body");
    assert_eq!(lines[0]["route_id"], "r");
}

#[tokio::test]
async fn a_file_logger_that_cannot_open_its_file_leaves_the_template_out() {
    let config = [(
        "ws/default/plugin_configs/l".to_string(),
        portico_snapshot::Item {
            mod_revision: 1,
            value: json!({"plugins": {"file-logger": {"path": "/nonexistent-dir/x/log.json"}}}),
        },
    )]
    .into_iter()
    .collect();
    let snapshot = portico_snapshot::compile(
        &config,
        1,
        None,
        &portico_plugins::registry(),
        &portico_model::Keyring::disabled(),
    );
    let problem = &snapshot.problems[0];
    assert_eq!(problem.key, "ws/default/plugin_configs/l");
    assert!(
        problem
            .error
            .contains("failed to open file: /nonexistent-dir/x/log.json, error info: "),
        "{}",
        problem.error
    );
}

#[test]
fn configurations_are_accepted_and_refused_on_write() {
    use portico_model::Kind;
    let registry = portico_plugins::registry();
    let template = |plugins: Value| {
        portico_model::check(
            Kind::PluginConfig,
            &json!({"id": "t", "plugins": plugins}),
            &registry,
        )
    };
    for ok in [
        json!({"prometheus": {"prefer_name": true}}),
        json!({"http-logger": {"uri": "https://logs.test:8443/in", "auth_header": "Bearer x",
                               "concat_method": "new_line", "include_req_body": true,
                               "include_req_body_expr": [["arg_log", "==", "yes"]]}}),
        json!({"tcp-logger": {"host": "127.0.0.1", "port": 5140, "tls": true}}),
        json!({"file-logger": {"path": "/tmp/x.log", "match": [[["arg_a", "==", "1"]]]}}),
        // The path may come from the plugin metadata.
        json!({"file-logger": {}}),
    ] {
        assert_eq!(template(ok.clone()), Ok(()), "{ok}");
    }
    for (bad, message) in [
        (json!({"prometheus": {"prefer_name": "yes"}}), "prefer_name"),
        (json!({"http-logger": {}}), "property \"uri\" is required"),
        (json!({"http-logger": {"uri": "logs"}}), "uri"),
        (
            json!({"http-logger": {"uri": "http://h", "concat_method": "csv"}}),
            "concat_method",
        ),
        (
            json!({"http-logger": {"uri": "http://h", "batch_max_size": 0}}),
            "batch_max_size",
        ),
        (
            json!({"http-logger": {"uri": "http://h", "include_resp_body_expr": [["a", "=", 1]]}}),
            "failed to validate the 'include_resp_body_expr' expression",
        ),
        (
            json!({"tcp-logger": {"host": "h"}}),
            "property \"port\" is required",
        ),
        (json!({"tcp-logger": {"host": "h", "port": 70000}}), "65535"),
        (
            json!({"file-logger": {"path": "/tmp/x", "match": [[["a", "=", "1"]]]}}),
            "failed to validate the 'match' expression",
        ),
    ] {
        let err = template(bad.clone()).expect_err(&bad.to_string());
        assert!(err.contains(message), "{bad}: {err}");
    }
    let metadata = |v: Value| portico_model::check(Kind::PluginMetadata, &v, &registry);
    assert_eq!(
        metadata(json!({"id": "prometheus", "disabled_labels": {"http_status": ["node"]}})),
        Ok(())
    );
    assert!(
        metadata(json!({"id": "prometheus", "disabled_labels": {"http_status": ["code"]}}))
            .is_err()
    );
    assert_eq!(
        metadata(
            json!({"id": "http-logger", "log_format": {"h": "$host"}, "max_pending_entries": 10})
        ),
        Ok(())
    );
    assert!(metadata(json!({"id": "http-logger", "max_pending_entries": 0})).is_err());
    assert_eq!(
        metadata(json!({"id": "file-logger", "path": "/tmp/x"})),
        Ok(())
    );
}

#[tokio::test]
async fn a_client_that_leaves_before_its_answer_is_counted_as_499() {
    let gate = portico_testkit::upstream::Gate::new();
    let slow = Upstream::start("slow", gate.hold(handlers::echo())).await;
    let gw = Harness::start(vec![
        (
            "ws/default/plugin_configs/p",
            json!({"plugins": {"prometheus": {}}}),
        ),
        (
            "ws/default/routes/1",
            route("/slow", &slow.node(), Some("p")),
        ),
    ])
    .await;
    let at = exporter(&gw).await;
    // An HTTP/2 client sends its request and goes away while the upstream holds it (an h2
    // connection that closes cancels its streams).
    let tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    let driver = tokio::spawn(connection);
    let req = http::Request::get(format!("http://{}/slow", gw.addr))
        .body(Full::<Bytes>::default())
        .unwrap();
    let pending = tokio::spawn(async move { sender.send_request(req).await.map(|_| ()) });
    until("the upstream to hold the request", || {
        (gate.waiting() == 1).then_some(())
    })
    .await;
    pending.abort();
    driver.abort();
    let m = scrape_counted(&gw, at, 1.0).await;
    assert_eq!(
        m.sum("apisix_http_status", &[("code", "499"), ("route", "1")]),
        1.0
    );
    gate.open();
}

/// Egress bandwidth is `$bytes_sent`: the response head and body exactly as written.
#[tokio::test]
async fn prometheus_bandwidth_counts_the_bytes_the_client_sent_and_received() {
    let fixed = Upstream::start("fixed", handlers::fixed(200, "hello egress")).await;
    let gw = Harness::start(vec![
        (
            "ws/default/plugin_configs/m",
            json!({"plugins": {"prometheus": {}}}),
        ),
        ("ws/default/routes/e", route("/e", &fixed.node(), Some("m"))),
    ])
    .await;
    let at = exporter(&gw).await;
    let (mut sent, mut received) = (0, 0);
    // A body's declared length counts with its head; the head as sent, extra spaces included.
    let requests: [&[u8]; 3] = [
        b"GET /e HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        b"POST /e HTTP/1.1\r\nHost:   h\r\nContent-Length: 5\r\nConnection: close\r\n\r\nabcde",
        b"GET /e?q=1 HTTP/1.1\r\nHost: h\r\nX-Long: 0123456789\r\nConnection: close\r\n\r\n",
    ];
    for request in requests {
        let mut conn = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut conn, request)
            .await
            .unwrap();
        sent += request.len();
        let mut bytes = Vec::new();
        conn.read_to_end(&mut bytes).await.unwrap();
        assert!(bytes.starts_with(b"HTTP/1.1 200 OK\r\n"));
        assert!(bytes.ends_with(b"\r\n\r\nhello egress"));
        received += bytes.len();
    }
    let m = scrape_counted(&gw, at, 3.0).await;
    assert_eq!(
        m.sum("apisix_bandwidth", &[("type", "egress"), ("route", "e")]),
        received as f64
    );
    assert_eq!(
        m.sum("apisix_bandwidth", &[("type", "ingress"), ("route", "e")]),
        sent as f64
    );
}
