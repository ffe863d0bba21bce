//! traffic-split and proxy-mirror through the real gateway: the plugins that send requests
//! somewhere other than the route's upstream.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{upstream, Harness};
use http::Method;
use http_body_util::{BodyExt, Full};
use portico_testkit::upstream::{handlers, Handler, Upstream};
use serde_json::{json, Value};

fn route(uri: &str, node: &str, template: &str) -> Value {
    json!({"uri": uri, "upstream": upstream(&[(node, 1)], json!({})), "plugin_config_id": template})
}

/// An echo upstream that also keeps `{method, uri, body, host}` of every request it got.
fn recording() -> (Handler, Arc<Mutex<Vec<Value>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let handler: Handler = Arc::new(move |req: http::Request<hyper::body::Incoming>| {
        let log = log.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let body = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            log.lock().unwrap().push(json!({
                "method": parts.method.as_str(),
                "uri": parts.uri.to_string(),
                "body": String::from_utf8_lossy(&body),
                "host": parts.headers.get("host").and_then(|h| h.to_str().ok()),
                "x-real-ip": parts.headers.get("x-real-ip").and_then(|h| h.to_str().ok()),
            }));
            handlers::status(http::StatusCode::OK, "mirrored")
        })
    });
    (handler, seen)
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn traffic_split_spreads_by_weight_and_follows_template_edits() {
    let main = Upstream::start("main", handlers::echo()).await;
    let canary = Upstream::start("canary", handlers::echo()).await;
    let inline = Upstream::start("inline", handlers::echo()).await;
    let split = |w_canary: u32, w_main: u32| {
        json!({"plugins": {"traffic-split": {"rules": [
            {"match": [{"vars": [["http_x_user", "==", "beta"]]}],
             "weighted_upstreams": [{"upstream": {"nodes": {inline.node(): 1}}}]},
            {"weighted_upstreams": [
                {"upstream_id": "canary", "weight": w_canary},
                {"weight": w_main}
            ]}
        ]}}})
    };
    let gw = Harness::start(vec![
        (
            "ws/default/upstreams/canary",
            upstream(&[(&canary.node(), 1)], json!({})),
        ),
        ("ws/default/plugin_configs/split", split(1, 3)),
        ("ws/default/routes/1", route("/s", &main.node(), "split")),
    ])
    .await;
    for _ in 0..400 {
        let r = gw.get("/s").await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(canary.hits(), 100, "1:3 sends exactly every fourth request");
    assert_eq!(main.hits(), 300);
    // A matching rule wins; its inline upstream is used.
    let beta = gw
        .send(
            gw.request(Method::GET, "/s")
                .header("x-user", "beta")
                .body(Full::default())
                .unwrap(),
        )
        .await;
    assert_eq!(beta.json()["server"], "inline");
    // The template edit applies at once: everything to the canary.
    gw.put(vec![("ws/default/plugin_configs/split", split(1, 0))]);
    for _ in 0..20 {
        assert_eq!(gw.get("/s").await.json()["server"], "canary");
    }
    assert_eq!(main.hits(), 300);
}

#[tokio::test]
async fn traffic_split_to_a_missing_upstream_answers_500() {
    let main = Upstream::start("main", handlers::echo()).await;
    let gw = Harness::start(vec![
        (
            "ws/default/plugin_configs/split",
            json!({"plugins": {"traffic-split": {"rules": [
                {"weighted_upstreams": [{"upstream_id": "gone"}]}]}}}),
        ),
        ("ws/default/routes/1", route("/s", &main.node(), "split")),
    ])
    .await;
    let r = gw.get("/s").await;
    assert_eq!(r.status, 500);
    assert_eq!(
        r.text(),
        "failed to fetch upstream info by upstream id: gone"
    );
    assert_eq!(main.hits(), 0);
}

#[tokio::test]
async fn proxy_mirror_copies_requests_with_their_bodies() {
    let main = Upstream::start("main", handlers::echo()).await;
    let (handler, seen) = recording();
    let mirror = Upstream::start("mirror", handler).await;
    let mirror_host = format!("http://{}", mirror.node());
    let gw = Harness::start(vec![
        (
            "ws/default/plugin_configs/m",
            json!({"plugins": {"proxy-mirror": {"host": mirror_host}}}),
        ),
        ("ws/default/routes/1", route("/m/*", &main.node(), "m")),
    ])
    .await;
    let r = gw
        .send(
            gw.request(Method::POST, "/m/a?x=1")
                .header("host", "api.example.com")
                .body(Full::from("payload"))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json()["server"],
        "main",
        "the client gets the upstream's answer"
    );
    assert_eq!(r.json()["body"], "payload");
    wait_for("the mirrored request", || seen.lock().unwrap().len() == 1).await;
    let copy = seen.lock().unwrap()[0].clone();
    assert_eq!(copy["method"], "POST");
    assert_eq!(copy["uri"], "/m/a?x=1");
    assert_eq!(copy["body"], "payload");
    assert_eq!(copy["host"], "api.example.com");
    assert_eq!(copy["x-real-ip"], "127.0.0.1");

    // path with replace and prefix modes.
    gw.put(vec![(
        "ws/default/plugin_configs/m",
        json!({"plugins": {"proxy-mirror": {"host": mirror_host, "path": "/copy"}}}),
    )]);
    assert_eq!(gw.get("/m/b?y=2").await.status, 200);
    wait_for("the second copy", || seen.lock().unwrap().len() == 2).await;
    assert_eq!(seen.lock().unwrap()[1]["uri"], "/copy?y=2");
    gw.put(vec![(
        "ws/default/plugin_configs/m",
        json!({"plugins": {"proxy-mirror": {"host": mirror_host, "path": "/copy",
            "path_concat_mode": "prefix"}}}),
    )]);
    assert_eq!(gw.get("/m/c?z=3").await.status, 200);
    wait_for("the third copy", || seen.lock().unwrap().len() == 3).await;
    assert_eq!(seen.lock().unwrap()[2]["uri"], "/copy/m/c?z=3");

    // A sample ratio mirrors about that share.
    gw.put(vec![(
        "ws/default/plugin_configs/m",
        json!({"plugins": {"proxy-mirror": {"host": mirror_host, "sample_ratio": 0.25}}}),
    )]);
    for _ in 0..400 {
        assert_eq!(gw.get("/m/d").await.status, 200);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sampled = seen.lock().unwrap().len() - 3;
    assert!(
        (60..=140).contains(&sampled),
        "25% of 400 mirrored, got {sampled}"
    );
}

#[tokio::test]
async fn a_dead_mirror_does_not_touch_the_client_s_answer() {
    let main = Upstream::start("main", handlers::echo()).await;
    let closed = portico_testkit::upstream::ClosedPort::new();
    let gw = Harness::start(vec![
        (
            "ws/default/plugin_configs/m",
            json!({"plugins": {"proxy-mirror": {"host": format!("http://{}", closed.node())}}}),
        ),
        ("ws/default/routes/1", route("/m", &main.node(), "m")),
    ])
    .await;
    for _ in 0..5 {
        let r = gw.get("/m").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["server"], "main");
    }
}
