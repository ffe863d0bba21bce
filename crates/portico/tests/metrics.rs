//! End to end: `portico up` serves APISIX's metrics on its metrics address, with the
//! prometheus plugin's counters for a route that has it.

mod support;

use std::net::SocketAddr;
use std::path::Path;

use portico_testkit::http;
use portico_testkit::portico::Portico;

const BIN: &str = env!("CARGO_BIN_EXE_portico");

/// The metrics address from the banner line `metrics: http://ADDR/apisix/prometheus/metrics`.
fn metrics_addr(p: &Portico) -> SocketAddr {
    let line = p
        .stdout
        .iter()
        .find_map(|l| l.strip_prefix("metrics: http://"))
        .unwrap_or_else(|| panic!("no metrics line in {:?}", p.stdout));
    let addr = line
        .strip_suffix("/apisix/prometheus/metrics")
        .unwrap_or_else(|| panic!("metrics line {line:?}"));
    addr.parse().expect("metrics address")
}

/// The value of the sample line that starts with `prefix` (labels included), if any.
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn up_serves_the_metrics_on_its_metrics_address() {
    let dir = tempfile::tempdir().unwrap();
    let p = Portico::up(Path::new(BIN), dir.path(), &[]);
    let ready = p.stdout.iter().position(|l| l == "ready");
    let banner = p.stdout.iter().position(|l| l.starts_with("metrics: "));
    assert!(banner < ready, "{:?}", p.stdout);
    let metrics = metrics_addr(&p);
    let proxy = p.proxy.expect("proxy address");
    let up = support::upstream("a");

    let r = p.admin(
        "PUT",
        "/apisix/admin/plugin_configs/observed",
        r#"{"plugins":{"prometheus":{}}}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let route = format!(
        r#"{{"uri":"/counted","plugin_config_id":"observed","upstream":{{"nodes":{{"{up}":1}}}}}}"#
    );
    assert_eq!(p.admin("PUT", "/apisix/admin/routes/1", &route).status, 201);
    support::wait_until("the route is served", || {
        http::request(proxy, "GET", "/counted", &[], b"").is_ok_and(|r| r.status == 200)
    });
    for _ in 0..3 {
        let r = http::request(proxy, "GET", "/counted", &[], b"").unwrap();
        assert_eq!(r.status, 200);
    }

    let status_line = format!(
        "apisix_http_status{{code=\"200\",route=\"1\",matched_uri=\"/counted\",matched_host=\"\",\
         service=\"\",consumer=\"\",node=\"{}\"",
        up.ip()
    );
    let mut text = String::new();
    support::wait_until("4 requests counted", || {
        let r = http::request(metrics, "GET", "/apisix/prometheus/metrics", &[], b"").unwrap();
        assert_eq!(r.status, 200);
        assert!(r
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/plain")));
        text = r.text();
        sample(&text, &status_line).is_some_and(|n| n >= 4.0)
    });
    assert!(text.contains("apisix_etcd_reachable 1\n"), "{text}");
    assert!(text.contains("apisix_node_info{hostname=\""), "{text}");
    assert!(
        sample(&text, "apisix_http_requests_total").is_some_and(|n| n >= 4.0),
        "{text}"
    );
    assert!(
        sample(
            &text,
            "apisix_nginx_http_current_connections{state=\"accepted\"}"
        )
        .is_some_and(|n| n >= 4.0),
        "{text}"
    );
    let r = http::request(metrics, "GET", "/elsewhere", &[], b"").unwrap();
    assert_eq!(r.status, 404);
}
