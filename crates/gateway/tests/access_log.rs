//! The access log through the real gateway: one line per request in APISIX's default format or
//! as JSON, written when the response body ends, with every upstream try; requests that match
//! no route are logged too; a writer that cannot keep up loses records, never requests; the file
//! is reopened on SIGUSR1 and when rotation moves it.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use common::{upstream, Harness};
use http::Method;
use http_body_util::Full;
use portico_gateway::access_log::{AccessLog, AccessLogConfig, Destination, Format};
use portico_testkit::upstream::{handlers, ClosedPort, Upstream};
use serde_json::{json, Value};

fn file_log(dir: &tempfile::TempDir, format: Format) -> (AccessLog, PathBuf) {
    let path = dir.path().join("access.log");
    let config = AccessLogConfig::new(Destination::File(path.clone()), format);
    (AccessLog::start(config).expect("open the log"), path)
}

fn route_to(up: Value) -> Vec<(&'static str, Value)> {
    vec![(
        "ws/default/routes/1",
        json!({"uri": "/hello*", "upstream": up}),
    )]
}

/// The log's lines once it has at least `n` (waits up to 5 s).
async fn lines(path: &Path, n: usize) -> Vec<String> {
    for _ in 0..500 {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if lines.len() >= n {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{} has fewer than {n} lines", path.display());
}

#[tokio::test]
async fn a_proxied_request_is_logged_in_apisix_s_default_format() {
    let dir = tempfile::tempdir().unwrap();
    let (log, path) = file_log(&dir, Format::Default);
    let up = Upstream::start("echo", handlers::echo()).await;
    let gw = Harness::start_logged(log, route_to(upstream(&[(&up.node(), 1)], json!({})))).await;
    let req = gw
        .request(Method::GET, "/hello?x=1")
        .header("user-agent", "test/1.0")
        .header("x-request-id", "rid-7")
        .body(Full::default())
        .unwrap();
    let reply = gw.send(req).await;
    assert_eq!(reply.status, 200);
    let line = lines(&path, 1).await.remove(0);
    let host = gw.addr.to_string();
    let expected_start = "127.0.0.1 - - [";
    assert!(line.starts_with(expected_start), "{line}");
    let after_time = line.split_once("] ").map(|(_, rest)| rest).unwrap();
    let expected = format!(
        "{host} \"GET /hello?x=1 HTTP/1.1\" 200 {len} ",
        len = reply.body.len()
    );
    assert!(after_time.starts_with(&expected), "{line}");
    let tail = format!("\"-\" \"test/1.0\" {up} 200 ", up = up.addr());
    assert!(line.contains(&tail), "{line}");
    assert!(
        line.ends_with(&format!("\"http://{host}/hello?x=1\" \"rid-7\"")),
        "{line}"
    );
}

#[tokio::test]
async fn json_lines_carry_the_same_fields() {
    let dir = tempfile::tempdir().unwrap();
    let (log, path) = file_log(&dir, Format::Json);
    let up = Upstream::start("echo", handlers::echo()).await;
    let up_conf = upstream(
        &[(&up.node(), 1)],
        json!({"pass_host": "rewrite", "upstream_host": "inner.test"}),
    );
    let gw = Harness::start_logged(log, route_to(up_conf)).await;
    let reply = gw.get("/hello/json").await;
    assert_eq!(reply.status, 200);
    let line = lines(&path, 1).await.remove(0);
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(v["remote_addr"], "127.0.0.1");
    assert_eq!(v["request"], "GET /hello/json HTTP/1.1");
    assert_eq!(v["status"], 200);
    assert_eq!(v["body_bytes_sent"], reply.body.len());
    assert_eq!(v["http_host"], gw.addr.to_string());
    assert_eq!(v["upstream_addr"], up.addr().to_string());
    assert_eq!(v["upstream_status"], "200");
    assert_eq!(v["upstream_scheme"], "http");
    assert_eq!(v["upstream_host"], "inner.test");
    assert_eq!(v["upstream_uri"], "/hello/json");
    assert!(v["request_time"].as_f64().is_some(), "{line}");
    assert_eq!(v["apisix_request_id"].as_str().map(str::len), Some(32));
}

#[tokio::test]
async fn retries_show_every_try() {
    let dir = tempfile::tempdir().unwrap();
    let (log, path) = file_log(&dir, Format::Default);
    let closed = ClosedPort::new();
    let live = Upstream::start("live", handlers::echo()).await;
    let up = upstream(&[(&closed.node(), 1), (&live.node(), 1)], json!({}));
    let gw = Harness::start_logged(log, route_to(up)).await;
    // Round robin starts on one node or the other: two requests meet the closed one once.
    for _ in 0..2 {
        assert_eq!(gw.get("/hello").await.status, 200);
    }
    let logged = lines(&path, 2).await;
    let retried = format!(" {}, {} 502, 200 ", closed.node(), live.addr());
    let direct = format!(" {} 200 ", live.addr());
    assert!(logged.iter().any(|l| l.contains(&retried)), "{logged:#?}");
    assert!(
        logged
            .iter()
            .all(|l| l.contains(&retried) || l.contains(&direct)),
        "{logged:#?}"
    );
}

#[tokio::test]
async fn a_request_without_route_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    let (log, path) = file_log(&dir, Format::Default);
    let up = Upstream::start("echo", handlers::echo()).await;
    let gw = Harness::start_logged(log, route_to(upstream(&[(&up.node(), 1)], json!({})))).await;
    let reply = gw.get("/nowhere").await;
    assert_eq!(reply.status, 404);
    let line = lines(&path, 1).await.remove(0);
    let expected = format!("\"GET /nowhere HTTP/1.1\" 404 {} ", reply.body.len());
    assert!(line.contains(&expected), "{line}");
    // No upstream: nginx's dashes, and an empty `$upstream_uri`.
    let tail = format!(" - - - \"http://{}\" \"", gw.addr);
    assert!(line.contains(&tail), "{line}");
}

#[tokio::test]
async fn a_body_cut_short_logs_what_was_sent() {
    let dir = tempfile::tempdir().unwrap();
    let (log, path) = file_log(&dir, Format::Json);
    let total: u64 = 64 * 1024 * 1024;
    let up = Upstream::start("big", handlers::download(total)).await;
    let gw = Harness::start_logged(log, route_to(upstream(&[(&up.node(), 1)], json!({})))).await;
    let addr = gw.addr;
    tokio::task::spawn_blocking(move || {
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        conn.write_all(b"GET /hello HTTP/1.1\r\nhost: big\r\n\r\n")
            .unwrap();
        let mut buf = vec![0; 256 * 1024];
        let mut read = 0;
        while read < buf.len() {
            read += conn.read(&mut buf[read..]).unwrap();
        }
    })
    .await
    .unwrap();
    let v: Value = serde_json::from_str(&lines(&path, 1).await[0]).unwrap();
    assert_eq!(v["status"], 200);
    let sent = v["body_bytes_sent"].as_u64().unwrap();
    assert!(sent > 0 && sent < total, "sent {sent} of {total}");
}

/// A writer that blocks until it is let go.
#[derive(Clone, Default)]
struct Held {
    open: Arc<(Mutex<bool>, Condvar)>,
    written: Arc<Mutex<Vec<u8>>>,
}

impl Held {
    fn release(&self) {
        *self.open.0.lock().unwrap() = true;
        self.open.1.notify_all();
    }

    fn lines(&self) -> usize {
        self.written
            .lock()
            .unwrap()
            .iter()
            .filter(|b| **b == b'\n')
            .count()
    }
}

impl Write for Held {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let (open, cv) = &*self.open;
        let mut guard = open.lock().unwrap();
        while !*guard {
            guard = cv.wait(guard).unwrap();
        }
        self.written.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_stuck_writer_never_holds_up_requests() {
    let held = Held::default();
    let mut config =
        AccessLogConfig::new(Destination::Writer(Box::new(held.clone())), Format::Default);
    config.capacity = 4;
    let log = AccessLog::start(config).unwrap();
    let up = Upstream::start("echo", handlers::echo()).await;
    let gw = Harness::start_logged(
        log.clone(),
        route_to(upstream(&[(&up.node(), 1)], json!({}))),
    )
    .await;
    let requests = async {
        for _ in 0..50 {
            assert_eq!(gw.get("/hello").await.status, 200);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), requests)
        .await
        .expect("requests finish while the log writer is stuck");
    // The writer holds a few records, the channel four; the rest were dropped.
    assert!(log.dropped() >= 30, "dropped {}", log.dropped());
    held.release();
    for _ in 0..500 {
        if held.lines() as u64 + log.dropped() == 50 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{} lines written, {} dropped", held.lines(), log.dropped());
}

#[tokio::test]
async fn sigusr1_reopens_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (log, path) = file_log(&dir, Format::Default);
    let _signals = log.reopen_on_sigusr1().expect("signal handler");
    let up = Upstream::start("echo", handlers::echo()).await;
    let gw = Harness::start_logged(log, route_to(upstream(&[(&up.node(), 1)], json!({})))).await;
    assert_eq!(gw.get("/hello/1").await.status, 200);
    lines(&path, 1).await;
    let rotated = dir.path().join("access.log.1");
    std::fs::rename(&path, &rotated).unwrap();
    let status = std::process::Command::new("kill")
        .args(["-USR1", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // Without any request, only the signal makes the writer create the file again.
    for _ in 0..500 {
        if path.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(path.exists(), "the log was not reopened");
    assert_eq!(gw.get("/hello/2").await.status, 200);
    assert!(lines(&path, 1).await[0].contains("/hello/2"));
    assert_eq!(lines(&rotated, 1).await.len(), 1);
}

#[tokio::test]
async fn a_moved_file_is_reopened_without_a_signal() {
    let dir = tempfile::tempdir().unwrap();
    let (log, path) = file_log(&dir, Format::Default);
    let up = Upstream::start("echo", handlers::echo()).await;
    let gw = Harness::start_logged(log, route_to(upstream(&[(&up.node(), 1)], json!({})))).await;
    assert_eq!(gw.get("/hello/1").await.status, 200);
    lines(&path, 1).await;
    std::fs::rename(&path, dir.path().join("access.log.1")).unwrap();
    // The writer checks the path about once a second.
    for _ in 0..300 {
        assert_eq!(gw.get("/hello/again").await.status, 200);
        if path.exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the moved log was not reopened");
}
