//! The security plugins through the real gateway: ua-restriction, referer-restriction, cors,
//! csrf, uri-blocker and request-validation. For each: what the Admin API accepts and refuses
//! (the registry's schema and semantic checks, with APISIX's messages), the answers requests
//! get, and a template edit while requests are running.

mod common;

mod plugins_security {
    pub mod access;
    pub mod cors;
    pub mod csrf;
    pub mod validation;
}

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{upstream, Harness, Reply};
use http::{Method, Request};
use http_body_util::Full;
use portico_model::{check, Kind};
use serde_json::{json, Value};

fn route(uri: &str, node: &str, template: &str) -> Value {
    json!({"uri": uri, "upstream": upstream(&[(node, 1)], json!({})), "plugin_config_id": template})
}

/// What the Admin API answers to a plugin template holding `name: conf`.
fn admin_check(name: &str, conf: Value) -> Result<(), String> {
    check(
        Kind::PluginConfig,
        &json!({"id": "t", "plugins": {name: conf}}),
        &portico_plugins::registry(),
    )
}

fn refused(name: &str, conf: Value) -> String {
    admin_check(name, conf.clone()).expect_err(&format!("{name} {conf} is refused"))
}

fn accepted(name: &str, conf: Value) {
    assert_eq!(admin_check(name, conf.clone()), Ok(()), "{name} {conf}");
}

/// A request to `url` with headers and a body.
fn request(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Request<Full<Bytes>> {
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.body(Full::new(Bytes::from(body.to_string())))
        .expect("valid request")
}

async fn send(
    gw: &Harness,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    gw.send(request(method, &gw.url(path), headers, body)).await
}

/// Requests sent one after another from a background task while a test edits the
/// configuration; each answer is summed up by `summary` and recorded.
struct Traffic {
    seen: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Traffic {
    fn start(
        gw: &Harness,
        make: impl Fn(&str) -> Request<Full<Bytes>> + Send + 'static,
        summary: fn(&Reply) -> String,
    ) -> Traffic {
        let (client, url) = (gw.client(), gw.url(""));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen2, stop2) = (seen.clone(), stop.clone());
        let task = tokio::spawn(async move {
            while !stop2.load(Ordering::SeqCst) {
                let resp = client.request(make(&url)).await.expect("gateway answers");
                let reply = Reply::read(resp).await;
                seen2.lock().expect("seen").push(summary(&reply));
            }
        });
        Traffic { seen, stop, task }
    }

    /// Waits until an answer summed up as `what` has been seen.
    async fn wait_for(&self, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.seen.lock().expect("seen").iter().any(|s| s == what) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "never saw {what}: {:?}",
                self.seen.lock().expect("seen").last()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Stops the traffic; every answer it got.
    async fn stop(self) -> Vec<String> {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.expect("traffic task");
        Arc::try_unwrap(self.seen)
            .map(|m| m.into_inner().expect("seen"))
            .unwrap_or_default()
    }
}

/// Runs `edit` while `traffic` flows: the answers go from `before` to `after` and are never
/// anything else.
async fn edit_under_traffic(traffic: Traffic, before: &str, after: &str, edit: impl FnOnce()) {
    traffic.wait_for(before).await;
    edit();
    traffic.wait_for(after).await;
    let seen = traffic.stop().await;
    let stray: Vec<&String> = seen
        .iter()
        .filter(|s| *s != before && *s != after)
        .collect();
    assert!(stray.is_empty(), "unexpected answers: {stray:?}");
    // Once the new configuration answered, the old one never does again.
    let first_new = seen.iter().position(|s| s == after).unwrap_or(seen.len());
    assert!(seen[first_new..].iter().all(|s| s == after), "{seen:?}");
}

/// A refusal as `<status> <body>`; a success (the echo upstream's answer) as its status.
fn status_and_body(r: &Reply) -> String {
    match r.status.as_u16() {
        s @ 200..=299 => s.to_string(),
        s => format!("{s} {}", r.text().trim_end()),
    }
}
