//! Bad input of every kind gets a 4xx with a clear message and leaves the store unchanged.

mod common;

use common::{upstream, Admin};
use http::Method;
use serde_json::{json, Value};

/// Sends `body` with `method` to `path`, expects `status` and `message`, and checks that the
/// store's revision did not move.
async fn refused(
    admin: &Admin,
    method: Method,
    path: &str,
    body: &str,
    status: u16,
    message: &str,
) {
    let before = admin.revision().await;
    let r = admin.raw(method, path, body).await.expect(status);
    let got = r.error();
    assert_eq!(got, message, "{path} {body}");
    assert_eq!(
        admin.revision().await,
        before,
        "store changed by a refused write to {path}"
    );
}

async fn refused_json(admin: &Admin, path: &str, body: Value, message: &str) {
    refused(admin, Method::PUT, path, &body.to_string(), 400, message).await;
}

#[tokio::test]
async fn malformed_json_echoes_the_body() {
    let admin = Admin::start().await;
    let before = admin.revision().await;
    let r = admin
        .raw(Method::PUT, "/apisix/admin/routes/1", "{\"uri\":")
        .await
        .expect(400);
    let body = r.json();
    assert!(
        body["error_msg"]
            .as_str()
            .unwrap()
            .starts_with("invalid request body: "),
        "{body}"
    );
    assert_eq!(body["req_body"], "{\"uri\":");
    assert_eq!(admin.revision().await, before);
    refused(
        &admin,
        Method::PUT,
        "/apisix/admin/routes/1",
        "",
        400,
        "missing configurations",
    )
    .await;
}

#[tokio::test]
async fn form_content_type_is_read_as_json() {
    let admin = Admin::start().await;
    let req = http::Request::builder()
        .method(Method::PUT)
        .uri("/apisix/admin/upstreams/1")
        .header("x-api-key", common::KEY)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            upstream().to_string(),
        )))
        .unwrap();
    admin.send(req).await.expect(201);
}

#[tokio::test]
async fn oversize_bodies_are_refused() {
    let admin = Admin::start().await;
    let big = format!("{{\"uri\":\"/a\",\"desc\":\"{}\"}}", "x".repeat(1_678_000));
    let len = big.len();
    refused(
        &admin,
        Method::PUT,
        "/apisix/admin/routes/1",
        &big,
        400,
        &format!("invalid request body: request size {len} is greater than the maximum size 1572864 allowed"),
    )
    .await;
}

#[tokio::test]
async fn wrong_types_and_unknown_fields_per_kind() {
    let admin = Admin::start().await;
    let cases: Vec<(&str, Value, &str)> = vec![
        ("/apisix/admin/routes/1", json!({"uri": 1, "upstream_id": "1"}),
         "invalid configuration: property \"uri\" validation failed: wrong type: expected string, got number"),
        ("/apisix/admin/routes/1", json!({"uri": "/a", "upstream": upstream(), "foo": 1}),
         "invalid configuration: additional properties forbidden, found foo"),
        ("/apisix/admin/routes/1", json!({"uri": "/a", "methods": ["GOT"], "upstream": upstream()}),
         "invalid configuration: property \"methods\" validation failed: failed to validate item 1: matches none of the enum values"),
        ("/apisix/admin/upstreams/1", json!({"nodes": {"127.0.0.1:80": 1}, "timeout": {"connect": 1}}),
         "invalid configuration: property \"timeout\" validation failed: property \"send\" is required"),
        ("/apisix/admin/upstreams/1", json!({"nodes": {"127.0.0.1:80": 1}, "scheme": "ftp"}),
         "invalid configuration: property \"scheme\" validation failed: matches none of the enum values"),
        ("/apisix/admin/consumers/jack", json!({"username": "jack", "plugins": {"key-auth": {"key": 1}}}),
         "invalid plugins configuration: failed to check the configuration of plugin key-auth err: property \"key\" validation failed: wrong type: expected string, got number"),
        ("/apisix/admin/consumer_groups/1", json!({"name": "x"}),
         "invalid configuration: property \"plugins\" is required"),
        ("/apisix/admin/plugin_configs/1", json!({"plugins": {"nope": {}}}), "unknown plugin [nope]"),
        ("/apisix/admin/global_rules/1", json!({"plugins": {"limit-count": {"count": -1, "time_window": 1}}}),
         "failed to check the configuration of plugin limit-count err: property \"count\" validation failed: value should match only one schema, but matches none"),
        ("/apisix/admin/ssls/1", json!({"cert": "x".repeat(200), "key": "y".repeat(100), "sni": "a.com", "name": "n"}),
         "invalid configuration: additional properties forbidden, found name"),
    ];
    for (path, body, message) in cases {
        refused_json(&admin, path, body, message).await;
    }
}

#[tokio::test]
async fn references_to_missing_objects() {
    let admin = Admin::start().await;
    refused_json(
        &admin,
        "/apisix/admin/routes/1",
        json!({"uri": "/a", "upstream_id": "99"}),
        "failed to fetch upstream info by upstream id [99], response code: 404",
    )
    .await;
    admin
        .put("/apisix/admin/upstreams/1", upstream())
        .await
        .expect(201);
    refused_json(
        &admin,
        "/apisix/admin/routes/1",
        json!({"uri": "/a", "upstream_id": "1", "plugin_config_id": "x"}),
        "failed to fetch plugin config info by plugin config id [x], response code: 404",
    )
    .await;
    refused_json(
        &admin,
        "/apisix/admin/consumers/jack",
        json!({"username": "jack", "group_id": "g"}),
        "failed to fetch consumer group info by consumer group id [g], response code: 404",
    )
    .await;
}

#[tokio::test]
async fn a_route_never_carries_plugins() {
    let admin = Admin::start().await;
    let before = admin.revision().await;
    let r = admin
        .put(
            "/apisix/admin/routes/1",
            json!({"uri": "/a", "upstream": upstream(), "plugins": {"key-auth": {}}}),
        )
        .await
        .expect(400);
    let msg = r.error();
    assert!(
        msg.contains("plugin template") && msg.contains("plugin_config_id"),
        "{msg}"
    );
    let r = admin
        .post(
            "/apisix/admin/routes",
            json!({"uri": "/a", "upstream": upstream(), "plugins": {}}),
        )
        .await
        .expect(400);
    assert!(r.error().contains("plugin_config_id"));
    assert_eq!(admin.revision().await, before);
}
