//! End to end: the real binary in each role. `portico up` proxies what its Admin API stores;
//! `portico cp` and `portico dp` share one real etcd: a route written through the control plane
//! serves on the data-plane node.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use portico_testkit::http;
use portico_testkit::portico::Portico;
use portico_testkit::EtcdServer;

mod support;

use support::upstream;

const BIN: &str = env!("CARGO_BIN_EXE_portico");

/// Polls `path` on `proxy` until it answers 200 with `want` in the body.
fn wait_for_body(proxy: SocketAddr, path: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(r) = http::request(proxy, "GET", path, &[], b"") {
            if r.status == 200 && r.text().contains(want) {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{path} never answered {want:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn put(p: &Portico, path: &str, body: String) {
    let r = p.admin("PUT", path, &body);
    assert!(
        r.status == 200 || r.status == 201,
        "{path}: {} {}",
        r.status,
        r.text()
    );
}

#[test]
fn up_proxies_what_the_admin_api_stores() {
    let backend = upstream("one");
    let dir = tempfile::tempdir().unwrap();
    let p = Portico::up(Path::new(BIN), dir.path(), &[]);
    let proxy = p.proxy.expect("up prints its proxy address");
    assert!(p.proxy_tls.is_some());
    let nothing = http::request(proxy, "GET", "/hello", &[], b"").unwrap();
    assert_eq!(nothing.status, 404);
    assert_eq!(nothing.text(), "{\"error_msg\":\"404 Route Not Found\"}\n");
    put(
        &p,
        "/apisix/admin/upstreams/1",
        format!(r#"{{"nodes":{{"{backend}":1}}}}"#),
    );
    put(
        &p,
        "/apisix/admin/routes/1",
        r#"{"uri":"/hello/*","upstream_id":"1"}"#.into(),
    );
    wait_for_body(proxy, "/hello/x?a=1", "hello from one /hello/x?a=1");
    // Disabling the route takes it out of the router.
    let r = p.admin("PATCH", "/apisix/admin/routes/1", r#"{"status":0}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    let deadline = Instant::now() + Duration::from_secs(10);
    while http::request(proxy, "GET", "/hello/x", &[], b"")
        .unwrap()
        .status
        != 404
    {
        assert!(Instant::now() < deadline, "disabled route still served");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_route_written_through_cp_serves_on_dp() {
    let etcd = EtcdServer::start();
    let endpoint = etcd.endpoint();
    let backend = upstream("etcd-cluster");
    let cp_dir = tempfile::tempdir().unwrap();
    let dp_dir = tempfile::tempdir().unwrap();
    let shared = [("PORTICO_KEYRING", "shared-keyring-entry")];
    let cp = Portico::start_role(
        Path::new(BIN),
        &["cp", "--etcd-endpoints", &endpoint],
        cp_dir.path(),
        &shared,
    );
    assert!(cp.proxy.is_none(), "cp runs no gateway");
    let dp = Portico::start_role(
        Path::new(BIN),
        &["dp", "--etcd-endpoints", &endpoint],
        dp_dir.path(),
        &shared,
    );
    let proxy = dp.proxy.expect("dp prints its proxy address");
    put(
        &cp,
        "/apisix/admin/upstreams/u",
        format!(r#"{{"nodes":{{"{backend}":1}}}}"#),
    );
    put(
        &cp,
        "/apisix/admin/routes/r",
        r#"{"uri":"/api","upstream_id":"u"}"#.into(),
    );
    wait_for_body(proxy, "/api", "hello from etcd-cluster /api");
    // A second data-plane node started later loads the same config.
    let dp2_dir = tempfile::tempdir().unwrap();
    let dp2 = Portico::start_role(
        Path::new(BIN),
        &["dp", "--etcd-endpoints", &endpoint],
        dp2_dir.path(),
        &shared,
    );
    wait_for_body(dp2.proxy.unwrap(), "/api", "hello from etcd-cluster");
}

#[test]
fn dp_needs_etcd() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(BIN)
        .arg("dp")
        .env("PORTICO_DATA", dir.path())
        .env_remove("PORTICO_ETCD_ENDPOINTS")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--etcd-endpoints"));
}
