//! End to end: the real `portico up` binary in a temporary folder on ephemeral ports.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use portico_testkit::portico::Portico;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_portico");

fn up(data: &Path) -> Portico {
    Portico::up(Path::new(BIN), data, &[])
}

#[test]
fn objects_survive_a_restart_and_the_key_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = up(dir.path());
    assert!(
        p.stdout.iter().any(|l| l.contains("generated")),
        "{:?}",
        p.stdout
    );
    assert_eq!(p.admin_key.len(), 64);
    let key_file = std::fs::read_to_string(dir.path().join("admin.key")).unwrap();
    assert_eq!(key_file.trim(), p.admin_key);

    assert_eq!(p.admin("HEAD", "/apisix/admin", "").status, 200);
    // Its own data-plane node is in the default cluster's node list.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let nodes = p.admin("GET", "/api/v1/clusters/default/nodes", "").json();
        if nodes["total"] == 1 && nodes["list"][0]["state"] == "healthy" {
            assert_eq!(nodes["list"][0]["id"].as_str(), p.node_id.as_deref());
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "own node never listed: {nodes}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let r = p.admin(
        "PUT",
        "/apisix/admin/upstreams/1",
        r#"{"type":"roundrobin","nodes":{"127.0.0.1:1980":1}}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("x-api-version"), Some("v3"));
    let r = p.admin(
        "PUT",
        "/apisix/admin/plugin_configs/limits",
        r#"{"plugins":{"limit-count":{"count":100,"time_window":60}}}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let r = p.admin(
        "POST",
        "/apisix/admin/routes",
        r#"{"uri":"/hello","upstream_id":"1","plugin_config_id":"limits"}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let route_id = r.json()["value"]["id"].as_str().unwrap().to_string();
    let r = p.admin(
        "PUT",
        "/apisix/admin/consumers",
        r#"{"username":"jack","plugins":{"key-auth":{"key":"secret-key"}}}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());

    let before: Vec<Value> = [
        "upstreams/1",
        "plugin_configs/limits",
        &format!("routes/{route_id}"),
        "consumers/jack",
    ]
    .iter()
    .map(|p2| p.admin("GET", &format!("/apisix/admin/{p2}"), "").json())
    .collect();

    assert_eq!(p.stop(), Some(0), "SIGTERM must end the process cleanly");
    p.restart();
    assert_eq!(
        p.stdout.iter().filter(|l| l.contains("generated")).count(),
        0
    );
    for (path, old) in [
        "upstreams/1",
        "plugin_configs/limits",
        &format!("routes/{route_id}"),
        "consumers/jack",
    ]
    .iter()
    .zip(&before)
    {
        let now = p.admin("GET", &format!("/apisix/admin/{path}"), "");
        assert_eq!(now.status, 200, "{path}");
        assert_eq!(&now.json(), old, "{path} changed across a restart");
    }
    assert_eq!(
        p.admin("GET", "/apisix/admin/consumers/jack", "").json()["value"]["plugins"]["key-auth"]
            ["key"],
        "secret-key"
    );
}

#[test]
fn kill_9_during_a_burst_keeps_every_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = up(dir.path());
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (addr, key, acked, stop) =
                (p.admin, p.admin_key.clone(), acked.clone(), stop.clone());
            std::thread::spawn(move || {
                for i in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let id = format!("w{w}-{i}");
                    let body = json!({"nodes": {"127.0.0.1:80": 1}, "desc": id}).to_string();
                    match portico_testkit::http::request(
                        addr,
                        "PUT",
                        &format!("/apisix/admin/upstreams/{id}"),
                        &[("X-API-KEY", &key)],
                        body.as_bytes(),
                    ) {
                        Ok(r) if r.status == 201 => acked.lock().unwrap().push(id),
                        _ => break,
                    }
                }
            })
        })
        .collect();
    // Let the burst run, then kill the process in the middle of it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while acked.lock().unwrap().len() < 200 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    p.kill9();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 50,
        "only {} writes before the kill",
        acked.len()
    );

    p.restart();
    let list = p.admin("GET", "/apisix/admin/upstreams", "");
    assert_eq!(list.status, 200);
    let stored: std::collections::HashSet<String> = list.json()["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["value"]["id"].as_str().unwrap().to_string())
        .collect();
    let lost: Vec<&String> = acked.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "acknowledged writes lost after kill -9: {lost:?}"
    );
}

#[test]
fn settings_come_from_env_and_portico_yaml() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("portico.yaml"),
        "viewer_key: viewer-from-file\n",
    )
    .unwrap();
    let p = Portico::up(
        Path::new(BIN),
        dir.path(),
        &[("PORTICO_ADMIN_KEY", "admin-from-env")],
    );
    assert!(
        p.stdout.iter().any(|l| l == "admin key: from the settings"),
        "{:?}",
        p.stdout
    );
    let ok = p.admin("GET", "/apisix/admin/routes", "");
    assert_eq!(ok.status, 200);
    let viewer = portico_testkit::http::request(
        p.admin,
        "PUT",
        "/apisix/admin/upstreams/1",
        &[("X-API-KEY", "viewer-from-file")],
        br#"{"nodes":{"127.0.0.1:80":1}}"#,
    )
    .unwrap();
    assert_eq!(viewer.status, 401);
    assert_eq!(
        viewer.json()["description"],
        "invalid method for role viewer"
    );
}

#[test]
fn bad_settings_stop_the_start_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("portico.yaml"), "admin_adr: 1\n").unwrap();
    let out = std::process::Command::new(BIN)
        .arg("up")
        .current_dir(dir.path())
        .env("PORTICO_DATA", dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("portico.yaml") && err.contains("admin_adr"),
        "{err}"
    );
}
