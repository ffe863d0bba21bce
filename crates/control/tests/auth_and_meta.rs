//! Keys and roles, headers, and the read-only endpoints about plugins and schemas.

mod common;

use bytes::Bytes;
use common::{send_to, upstream, Admin, KEY, VIEWER};
use http::{Method, Request};
use http_body_util::Full;
use serde_json::json;

fn request(method: Method, uri: &str) -> http::request::Builder {
    Request::builder().method(method).uri(uri)
}

#[tokio::test]
async fn keys_roles_and_their_errors() {
    let admin = Admin::start().await;
    let r = admin
        .send(
            request(Method::GET, "/apisix/admin/routes")
                .body(Full::default())
                .unwrap(),
        )
        .await
        .expect(401);
    assert_eq!(
        r.json(),
        json!({"error_msg": "failed to check token", "description": "missing apikey"})
    );
    let r = admin
        .send(
            request(Method::GET, "/apisix/admin/routes")
                .header("x-api-key", "nope")
                .body(Full::default())
                .unwrap(),
        )
        .await
        .expect(401);
    assert_eq!(r.json()["description"], "wrong apikey");
    // The key may come from the query string or a cookie.
    admin
        .send(
            request(Method::GET, &format!("/apisix/admin/routes?api_key={KEY}"))
                .body(Full::default())
                .unwrap(),
        )
        .await
        .expect(200);
    admin
        .send(
            request(Method::GET, "/apisix/admin/routes")
                .header("cookie", format!("a=b; x_api_key={KEY}"))
                .body(Full::default())
                .unwrap(),
        )
        .await
        .expect(200);
    // A viewer reads but does not write.
    admin
        .send(
            request(Method::GET, "/apisix/admin/routes")
                .header("x-api-key", VIEWER)
                .body(Full::default())
                .unwrap(),
        )
        .await
        .expect(200);
    let before = admin.revision().await;
    let r = admin
        .send(
            request(Method::PUT, "/apisix/admin/upstreams/1")
                .header("x-api-key", VIEWER)
                .body(Full::new(Bytes::from(upstream().to_string())))
                .unwrap(),
        )
        .await
        .expect(401);
    assert_eq!(r.json()["description"], "invalid method for role viewer");
    assert_eq!(admin.revision().await, before);
}

#[tokio::test]
async fn headers_head_and_options() {
    let admin = Admin::start().await;
    let r = admin.get("/apisix/admin/routes").await.expect(200);
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(r.headers["x-api-version"], "v3");
    assert_eq!(r.headers["access-control-allow-origin"], "*");
    assert!(r.headers["server"]
        .to_str()
        .unwrap()
        .starts_with("Portico/"));
    let head = send_to(
        &admin.api,
        request(Method::HEAD, "/apisix/admin")
            .body(Full::default())
            .unwrap(),
    )
    .await
    .expect(200);
    assert!(head.text.is_empty());
    let opt = send_to(
        &admin.api,
        request(Method::OPTIONS, "/apisix/admin/routes")
            .body(Full::default())
            .unwrap(),
    )
    .await
    .expect(200);
    assert_eq!(
        opt.headers["access-control-allow-methods"],
        "POST, GET, PUT, OPTIONS, DELETE, PATCH"
    );
}

#[tokio::test]
async fn unknown_resources_paths_and_methods() {
    let admin = Admin::start().await;
    for res in ["routs", "services", "stream_routes", "protos", "secrets"] {
        let e = admin.get(&format!("/apisix/admin/{res}")).await.expect(404);
        assert_eq!(e.error(), format!("Unsupported resource type: {res}"));
    }
    admin.get("/not/admin").await.expect(404);
    admin.get("/apisix/administrator").await.expect(404);
    let e = admin
        .post("/apisix/admin/consumers", json!({"username": "a"}))
        .await
        .expect(405);
    assert_eq!(e.error(), "not supported `POST` method for consumer");
    let e = admin
        .post("/apisix/admin/plugin_configs", json!({"plugins": {}}))
        .await
        .expect(405);
    assert_eq!(e.error(), "not supported `POST` method for plugin config");
    let e = admin
        .patch("/apisix/admin/plugin_metadata/key-auth", json!({}))
        .await
        .expect(405);
    assert_eq!(
        e.error(),
        "not supported `PATCH` method for plugin_metadata"
    );
}

#[tokio::test]
async fn plugin_list_and_schemas() {
    let admin = Admin::start().await;
    let list = admin
        .get("/apisix/admin/plugins/list")
        .await
        .expect(200)
        .json();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"key-auth") && names.contains(&"limit-count"),
        "{names:?}"
    );
    // Sorted by priority, highest first: ip-restriction (3000) before key-auth (2500) before limit-count (1002).
    let pos = |n: &str| names.iter().position(|x| *x == n).unwrap();
    assert!(pos("ip-restriction") < pos("key-auth") && pos("key-auth") < pos("limit-count"));
    let stream = admin
        .get("/apisix/admin/plugins/list?subsystem=stream")
        .await
        .expect(200)
        .json();
    assert_eq!(stream, json!([]));
    let bad = admin
        .get("/apisix/admin/plugins/list?subsystem=x")
        .await
        .expect(400);
    assert_eq!(bad.text, "invalid subsystem passed");

    let schema = admin
        .get("/apisix/admin/plugins/key-auth")
        .await
        .expect(200)
        .json();
    assert_eq!(
        schema["$comment"],
        "this is a mark for our injected plugin schema"
    );
    assert!(schema["properties"]["_meta"].is_object());
    let same = admin
        .get("/apisix/admin/schema/plugins/key-auth")
        .await
        .expect(200)
        .json();
    assert_eq!(schema, same);
    let consumer = admin
        .get("/apisix/admin/plugins/key-auth?schema_type=consumer")
        .await
        .expect(200)
        .json();
    assert!(consumer["properties"]["key"].is_object());
    assert_eq!(consumer["encrypt_fields"], serde_json::json!(["key"]));
    let e = admin.get("/apisix/admin/plugins/nope").await.expect(404);
    assert_eq!(e.error(), "plugin not found in subsystem http");
    let e = admin
        .get("/apisix/admin/plugins/key-auth?subsystem=asdf")
        .await
        .expect(400);
    assert_eq!(e.error(), "unsupported subsystem: asdf");
    let e = admin
        .get("/apisix/admin/plugins/limit-count?schema_type=consumer")
        .await
        .expect(400);
    assert_eq!(e.error(), "not found schema");
    let all = admin
        .get("/apisix/admin/plugins?all=true")
        .await
        .expect(200)
        .json();
    assert_eq!(all["key-auth"]["type"], "auth");

    let route = admin
        .get("/apisix/admin/schema/route")
        .await
        .expect(200)
        .json();
    assert!(route["properties"]["uri"].is_object());
    let e = admin.get("/apisix/admin/schema/xxx").await.expect(400);
    assert_eq!(e.error(), "not found schema: xxx");
    admin
        .raw(
            Method::POST,
            "/apisix/admin/schema/validate/routes",
            r#"{"uri":"/a","upstream_id":"1"}"#,
        )
        .await
        .expect(200);
    let e = admin
        .raw(
            Method::POST,
            "/apisix/admin/schema/validate/routes",
            r#"{"uri":1}"#,
        )
        .await
        .expect(400);
    assert!(
        !e.error().starts_with("invalid configuration"),
        "{}",
        e.error()
    );
}
