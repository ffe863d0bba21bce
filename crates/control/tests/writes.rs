//! The write pipeline: ids, timestamps, POST ids, PATCH, DELETE, deletion protection, ttl.

mod common;

use common::{upstream, Admin};
use http::Method;
use serde_json::json;

#[tokio::test]
async fn put_twice_keeps_create_time_and_answers_200() {
    let admin = Admin::start().await;
    let first = admin
        .put("/apisix/admin/upstreams/1", upstream())
        .await
        .expect(201)
        .json();
    let second = admin
        .put("/apisix/admin/upstreams/1", upstream())
        .await
        .expect(200)
        .json();
    assert_eq!(
        first["value"]["create_time"],
        second["value"]["create_time"]
    );
    let got = admin.get("/apisix/admin/upstreams/1").await.json();
    assert!(got["modifiedIndex"].as_i64() > got["createdIndex"].as_i64());
}

#[tokio::test]
async fn put_id_rules() {
    let admin = Admin::start().await;
    // Body id only: kept as given (a number stays a number).
    let r = admin
        .put(
            "/apisix/admin/upstreams",
            json!({"id": 7, "nodes": {"127.0.0.1:80": 1}}),
        )
        .await
        .expect(201)
        .json();
    assert_eq!(r["key"], "/apisix/upstreams/7");
    assert_eq!(r["value"]["id"], 7);
    let e = admin
        .put(
            "/apisix/admin/upstreams/1",
            json!({"id": "2", "nodes": {"127.0.0.1:80": 1}}),
        )
        .await
        .expect(400);
    assert_eq!(e.error(), "wrong upstream id");
    let e = admin
        .put(
            "/apisix/admin/routes",
            json!({"uri": "/a", "upstream": upstream()}),
        )
        .await
        .expect(400);
    assert_eq!(e.error(), "missing route id");
    let e = admin
        .put(
            "/apisix/admin/routes/a*b",
            json!({"uri": "/a", "upstream": upstream()}),
        )
        .await
        .expect(400);
    assert_eq!(
        e.error(),
        "invalid configuration: property \"id\" validation failed: object matches none of the required"
    );
    let e = admin
        .put("/apisix/admin/consumers/jack", json!({"username": "bob"}))
        .await
        .expect(400);
    assert_eq!(e.error(), "wrong username");
}

#[tokio::test]
async fn post_generates_twenty_digit_ids() {
    let admin = Admin::start().await;
    let a = admin
        .post(
            "/apisix/admin/routes",
            json!({"uri": "/a", "upstream": upstream()}),
        )
        .await
        .expect(201)
        .json();
    let b = admin
        .post(
            "/apisix/admin/routes",
            json!({"uri": "/b", "upstream": upstream()}),
        )
        .await
        .expect(201)
        .json();
    let id_a = a["value"]["id"].as_str().unwrap().to_string();
    let id_b = b["value"]["id"].as_str().unwrap().to_string();
    assert_eq!(id_a.len(), 20);
    assert!(id_a.chars().all(|c| c.is_ascii_digit()));
    assert!(id_b > id_a);
    assert_eq!(a["key"], format!("/apisix/routes/{id_a}"));
    let e = admin
        .post(
            "/apisix/admin/routes",
            json!({"id": "1", "uri": "/a", "upstream": upstream()}),
        )
        .await
        .expect(400);
    assert_eq!(e.error(), "wrong route id, do not need it");
    let e = admin
        .post(
            "/apisix/admin/routes/1",
            json!({"uri": "/a", "upstream": upstream()}),
        )
        .await
        .expect(400);
    assert_eq!(e.error(), "wrong route id, do not need it");
}

#[tokio::test]
async fn create_time_is_forbidden_on_put_and_post() {
    let admin = Admin::start().await;
    let before = admin.revision().await;
    let e = admin
        .put(
            "/apisix/admin/routes/1",
            json!({"uri": "/x", "upstream": {"nodes": {"127.0.0.1:80": 1}}, "create_time": 1}),
        )
        .await
        .expect(400);
    assert_eq!(e.error(), "the property is forbidden:  create_time");
    let e = admin
        .put(
            "/apisix/admin/routes/1",
            json!({"uri": "/x", "upstream": {"nodes": {"127.0.0.1:80": 1}, "update_time": 1}}),
        )
        .await
        .expect(400);
    assert_eq!(
        e.error(),
        "the property is forbidden:  upstream.update_time"
    );
    assert_eq!(admin.revision().await, before);
}

#[tokio::test]
async fn patch_merges_deletes_with_null_and_replaces_arrays() {
    let admin = Admin::start().await;
    admin
        .put(
            "/apisix/admin/routes/1",
            json!({"uri": "/a", "desc": "d", "methods": ["GET", "POST"],
                   "upstream": {"nodes": {"127.0.0.1:1980": 1, "127.0.0.1:1981": 1}}}),
        )
        .await
        .expect(201);
    let r = admin
        .patch(
            "/apisix/admin/routes/1",
            json!({"methods": ["PUT"], "desc": null, "upstream": {"nodes": {"127.0.0.1:1980": null}}}),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(r["key"], "/apisix/routes/1");
    assert_eq!(r["value"]["methods"], json!(["PUT"]));
    assert!(r["value"].get("desc").is_none());
    assert_eq!(
        r["value"]["upstream"]["nodes"],
        json!({"127.0.0.1:1981": 1})
    );
    assert_eq!(r["value"]["id"], "1");

    // Sub-path PATCH replaces one attribute.
    let r = admin
        .raw(
            Method::PATCH,
            "/apisix/admin/routes/1/upstream/nodes",
            r#"{"127.0.0.1:2000": 3}"#,
        )
        .await
        .expect(200)
        .json();
    assert_eq!(
        r["value"]["upstream"]["nodes"],
        json!({"127.0.0.1:2000": 3})
    );
    let r = admin
        .raw(Method::PATCH, "/apisix/admin/routes/1/uri", r#""/b""#)
        .await
        .expect(200)
        .json();
    assert_eq!(r["value"]["uri"], "/b");
    let e = admin
        .raw(Method::PATCH, "/apisix/admin/routes/1/uri/x", "1")
        .await
        .expect(400);
    assert_eq!(e.error(), "invalid sub-path: /uri/x");

    // The merged object is validated again, references included.
    let e = admin
        .raw(
            Method::PATCH,
            "/apisix/admin/routes/1/upstream_id",
            r#""2""#,
        )
        .await
        .expect(400);
    assert_eq!(
        e.error(),
        "failed to fetch upstream info by upstream id [2], response code: 404"
    );
    let e = admin
        .patch("/apisix/admin/routes/1", json!({"uri": 1}))
        .await
        .expect(400);
    assert_eq!(
        e.error(),
        "invalid configuration: property \"uri\" validation failed: wrong type: expected string, got number"
    );
    // Errors on PATCH bodies.
    let e = admin
        .raw(Method::PATCH, "/apisix/admin/routes/1", "")
        .await
        .expect(400);
    assert_eq!(e.error(), "missing new configuration");
    let e = admin
        .raw(Method::PATCH, "/apisix/admin/routes/1", "[1]")
        .await
        .expect(400);
    assert_eq!(e.error(), "invalid configuration");
    let missing = admin
        .patch("/apisix/admin/routes/404", json!({"desc": "x"}))
        .await
        .expect(404)
        .json();
    assert_eq!(missing, json!({"message": "Key not found"}));
}

#[tokio::test]
async fn patch_may_set_update_time() {
    let admin = Admin::start().await;
    admin
        .put("/apisix/admin/upstreams/1", upstream())
        .await
        .expect(201);
    let r = admin
        .patch("/apisix/admin/upstreams/1", json!({"update_time": 1234}))
        .await
        .expect(200)
        .json();
    assert_eq!(r["value"]["update_time"], 1234);
}

#[tokio::test]
async fn deletion_protection_and_force() {
    let admin = Admin::start().await;
    admin
        .put("/apisix/admin/upstreams/1", upstream())
        .await
        .expect(201);
    admin
        .put(
            "/apisix/admin/plugin_configs/p1",
            json!({"plugins": {"key-auth": {}}}),
        )
        .await
        .expect(201);
    admin
        .put(
            "/apisix/admin/routes/42",
            json!({"uri": "/a", "upstream_id": "1", "plugin_config_id": "p1"}),
        )
        .await
        .expect(201);
    let e = admin.delete("/apisix/admin/upstreams/1").await.expect(400);
    assert_eq!(
        e.error(),
        "can not delete this upstream, route [42] is still using it now"
    );
    let e = admin
        .delete("/apisix/admin/plugin_configs/p1")
        .await
        .expect(400);
    assert_eq!(
        e.error(),
        "can not delete this plugin config, route [42] is still using it now"
    );
    admin
        .put(
            "/apisix/admin/consumer_groups/g",
            json!({"plugins": {"limit-count": {"count": 1, "time_window": 1}}}),
        )
        .await
        .expect(201);
    admin
        .put("/apisix/admin/consumers/foobar", json!({"group_id": "g"}))
        .await
        .expect(201);
    let e = admin
        .delete("/apisix/admin/consumer_groups/g")
        .await
        .expect(400);
    assert_eq!(
        e.error(),
        "can not delete this consumer group, consumer [foobar] is still using it now"
    );

    let del = admin
        .raw(Method::DELETE, "/apisix/admin/upstreams/1?force=true", "")
        .await
        .expect(200)
        .json();
    assert_eq!(del, json!({"deleted": "1", "key": "/apisix/upstreams/1"}));
    admin.get("/apisix/admin/upstreams/1").await.expect(404);
    let missing = admin
        .delete("/apisix/admin/upstreams/1")
        .await
        .expect(404)
        .json();
    assert_eq!(missing, json!({"message": "Key not found"}));
}

#[tokio::test]
async fn ttl_binds_the_object_to_a_lease() {
    let admin = Admin::start().await;
    let e = admin
        .raw(
            Method::PUT,
            "/apisix/admin/upstreams/1?ttl=abc",
            &upstream().to_string(),
        )
        .await
        .expect(400);
    assert_eq!(e.error(), "invalid argument ttl: should be a number");
    admin
        .raw(
            Method::PUT,
            "/apisix/admin/upstreams/1?ttl=1",
            &upstream().to_string(),
        )
        .await
        .expect(201);
    admin.get("/apisix/admin/upstreams/1").await.expect(200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if admin.get("/apisix/admin/upstreams/1").await.status == 404 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "object with ttl=1 never expired"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn duplicate_auth_keys_and_global_rule_plugins_are_refused() {
    let admin = Admin::start().await;
    admin
        .put(
            "/apisix/admin/consumers/bob",
            json!({"plugins": {"key-auth": {"key": "k1"}}}),
        )
        .await
        .expect(201);
    let e = admin
        .put(
            "/apisix/admin/consumers/alice",
            json!({"plugins": {"key-auth": {"key": "k1"}}}),
        )
        .await
        .expect(400);
    assert_eq!(
        e.error(),
        "duplicate key of plugin key-auth found with consumer: bob"
    );
    admin
        .put("/apisix/admin/consumers/alex", json!({}))
        .await
        .expect(201);
    admin
        .put(
            "/apisix/admin/consumers/alex/credentials/cred-alex-a",
            json!({"plugins": {"key-auth": {"key": "k2"}}}),
        )
        .await
        .expect(201);
    let e = admin
        .put(
            "/apisix/admin/consumers/carol",
            json!({"plugins": {"key-auth": {"key": "k2"}}}),
        )
        .await
        .expect(400);
    assert_eq!(
        e.error(),
        "duplicate key of plugin key-auth found with credential: cred-alex-a of consumer: alex"
    );
    // Re-putting the same consumer with its own key is fine.
    admin
        .put(
            "/apisix/admin/consumers/bob",
            json!({"plugins": {"key-auth": {"key": "k1"}}}),
        )
        .await
        .expect(200);

    admin
        .put(
            "/apisix/admin/global_rules/1",
            json!({"plugins": {"limit-count": {"count": 1, "time_window": 1}}}),
        )
        .await
        .expect(201);
    let e = admin
        .put(
            "/apisix/admin/global_rules/2",
            json!({"plugins": {"limit-count": {"count": 2, "time_window": 1}}}),
        )
        .await
        .expect(400);
    assert_eq!(
        e.error(),
        "plugin 'limit-count' already exists in global rule with id '1'"
    );
}

#[tokio::test]
async fn concurrent_patches_through_two_control_planes_lose_nothing() {
    let admin = Admin::start().await;
    let other = Admin::api_over(admin.store.clone());
    admin
        .put(
            "/apisix/admin/upstreams/1",
            json!({"nodes": {"127.0.0.1:1": 1}}),
        )
        .await
        .expect(201);
    let mut tasks = Vec::new();
    for i in 0..20u16 {
        let api = if i % 2 == 0 {
            admin.api.clone()
        } else {
            other.clone()
        };
        tasks.push(tokio::spawn(async move {
            let body = json!({"nodes": {format!("127.0.0.2:{}", 1000 + i): 1}}).to_string();
            let req = http::Request::builder()
                .method(Method::PATCH)
                .uri("/apisix/admin/upstreams/1")
                .header("x-api-key", common::KEY)
                .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                .unwrap();
            common::send_to(&api, req).await.expect(200);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let got = admin.get("/apisix/admin/upstreams/1").await.json();
    assert_eq!(
        got["value"]["nodes"].as_object().unwrap().len(),
        21,
        "{got}"
    );
}
