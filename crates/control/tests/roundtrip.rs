//! Every resource kind: write, read back, list, delete — with APISIX v3's envelopes.

mod common;

use common::{upstream, Admin};
use serde_json::json;

const CERT: &str = include_str!("fixtures/test.crt");
const KEY: &str = include_str!("fixtures/test.key");

#[tokio::test]
async fn upstream_put_get_list_delete() {
    let admin = Admin::start().await;
    let put = admin
        .put("/apisix/admin/upstreams/1", upstream())
        .await
        .expect(201);
    let body = put.json();
    assert_eq!(body["key"], "/apisix/upstreams/1");
    assert_eq!(body["value"]["id"], "1");
    assert_eq!(body["value"]["nodes"], json!({"127.0.0.1:1980": 1}));
    assert!(body["value"]["create_time"].is_u64());
    assert_eq!(body["value"]["create_time"], body["value"]["update_time"]);
    // Defaults are not injected into what is stored.
    assert!(body["value"].get("pass_host").is_none());
    assert!(body.get("createdIndex").is_none());

    let got = admin
        .get("/apisix/admin/upstreams/1")
        .await
        .expect(200)
        .json();
    assert_eq!(got["key"], "/apisix/upstreams/1");
    assert_eq!(got["value"], body["value"]);
    assert!(got["createdIndex"].as_i64().unwrap() > 0);
    assert_eq!(got["createdIndex"], got["modifiedIndex"]);

    let list = admin
        .get("/apisix/admin/upstreams")
        .await
        .expect(200)
        .json();
    assert_eq!(list["total"], 1);
    assert_eq!(list["list"][0]["value"]["id"], "1");

    let del = admin
        .delete("/apisix/admin/upstreams/1")
        .await
        .expect(200)
        .json();
    assert_eq!(del, json!({"deleted": "1", "key": "/apisix/upstreams/1"}));
    let missing = admin
        .get("/apisix/admin/upstreams/1")
        .await
        .expect(404)
        .json();
    assert_eq!(missing, json!({"message": "Key not found"}));
    let empty = admin
        .get("/apisix/admin/upstreams")
        .await
        .expect(200)
        .json();
    assert_eq!(empty, json!({"list": [], "total": 0}));
}

#[tokio::test]
async fn route_with_upstream_id_and_plugin_template() {
    let admin = Admin::start().await;
    admin
        .put("/apisix/admin/upstreams/u1", upstream())
        .await
        .expect(201);
    admin
        .put(
            "/apisix/admin/plugin_configs/auth",
            json!({"name": "auth", "plugins": {"key-auth": {}}}),
        )
        .await
        .expect(201);
    let route = admin
        .put(
            "/apisix/admin/routes/r1",
            json!({"uri": "/hello", "methods": ["GET"], "upstream_id": "u1", "plugin_config_id": "auth"}),
        )
        .await
        .expect(201)
        .json();
    assert_eq!(route["value"]["plugin_config_id"], "auth");
    let got = admin
        .get("/apisix/admin/routes/r1")
        .await
        .expect(200)
        .json();
    assert_eq!(got["value"]["uri"], "/hello");
}

#[tokio::test]
async fn consumer_and_credentials() {
    let admin = Admin::start().await;
    let c = admin
        .put(
            "/apisix/admin/consumers",
            json!({"username": "jack", "plugins": {"key-auth": {"key": "jack-key"}}}),
        )
        .await
        .expect(201)
        .json();
    assert_eq!(c["key"], "/apisix/consumers/jack");
    assert!(c["value"].get("id").is_none());
    // The write answer shows the secret as stored (encrypted), GET decrypts it.
    assert_ne!(c["value"]["plugins"]["key-auth"]["key"], "jack-key");
    let got = admin
        .get("/apisix/admin/consumers/jack")
        .await
        .expect(200)
        .json();
    assert_eq!(got["value"]["plugins"]["key-auth"]["key"], "jack-key");
    let raw = admin.stored("consumers/jack").await.unwrap();
    assert!(!raw.contains("jack-key"), "secret stored in clear: {raw}");

    let cred = admin
        .put(
            "/apisix/admin/consumers/jack/credentials/c1",
            json!({"plugins": {"basic-auth": {"username": "jack", "password": "pw"}}}),
        )
        .await
        .expect(201)
        .json();
    assert_eq!(cred["key"], "/apisix/consumers/jack/credentials/c1");
    assert_eq!(cred["value"]["id"], "c1");
    let creds = admin
        .get("/apisix/admin/consumers/jack/credentials")
        .await
        .expect(200)
        .json();
    assert_eq!(creds["total"], 1);
    assert_eq!(
        creds["list"][0]["value"]["plugins"]["basic-auth"]["password"],
        "pw"
    );
    // Consumer lists leave credentials out.
    let consumers = admin
        .get("/apisix/admin/consumers")
        .await
        .expect(200)
        .json();
    assert_eq!(consumers["total"], 1);

    // A credential needs its consumer.
    let e = admin
        .put(
            "/apisix/admin/consumers/nobody/credentials/c1",
            json!({"plugins": {"key-auth": {"key": "x"}}}),
        )
        .await
        .expect(404);
    assert_eq!(e.error(), "consumer not found");

    // Deleting the consumer deletes its credentials.
    admin
        .delete("/apisix/admin/consumers/jack")
        .await
        .expect(200);
    assert!(admin
        .stored("consumers/jack/credentials/c1")
        .await
        .is_none());
}

#[tokio::test]
async fn consumer_group_global_rule_and_metadata() {
    let admin = Admin::start().await;
    admin
        .put(
            "/apisix/admin/consumer_groups/g1",
            json!({"plugins": {"limit-count": {"count": 10, "time_window": 60}}}),
        )
        .await
        .expect(201);
    admin
        .put(
            "/apisix/admin/consumers/bob",
            json!({"group_id": "g1", "plugins": {"key-auth": {"key": "bob-key"}}}),
        )
        .await
        .expect(201);
    let g = admin
        .put(
            "/apisix/admin/global_rules/1",
            json!({"plugins": {"ip-restriction": {"blacklist": ["10.0.0.0/8"]}}}),
        )
        .await
        .expect(201)
        .json();
    assert_eq!(g["value"]["id"], "1");
    let m = admin
        .put("/apisix/admin/plugin_metadata/key-auth", json!({}))
        .await
        .expect(201)
        .json();
    assert_eq!(m["key"], "/apisix/plugin_metadata/key-auth");
    assert_eq!(m["value"]["id"], "key-auth");
    assert!(
        m["value"].get("create_time").is_none(),
        "plugin metadata has no timestamps"
    );
    let e = admin
        .put("/apisix/admin/plugin_metadata/nope", json!({}))
        .await
        .expect(400);
    assert_eq!(e.error(), "invalid plugin name");
}

#[tokio::test]
async fn ssl_keys_are_encrypted_and_never_returned() {
    let admin = Admin::start().await;
    let put = admin
        .put(
            "/apisix/admin/ssls/1",
            json!({"cert": CERT, "key": KEY, "snis": ["test.com"]}),
        )
        .await
        .expect(201)
        .json();
    assert!(put["value"].get("key").is_none(), "{put}");
    assert_eq!(put["value"]["cert"], CERT);
    let got = admin.get("/apisix/admin/ssls/1").await.expect(200).json();
    assert!(got["value"].get("key").is_none());
    let list = admin.get("/apisix/admin/ssls").await.expect(200).json();
    assert!(list["list"][0]["value"].get("key").is_none());
    let raw = admin.stored("ssls/1").await.unwrap();
    assert!(!raw.contains("PRIVATE KEY"), "key stored in clear");
    // A PATCH that does not touch the key keeps it.
    admin
        .patch("/apisix/admin/ssls/1", json!({"desc": "x"}))
        .await
        .expect(200);
    let raw2 = admin.stored("ssls/1").await.unwrap();
    let stored: serde_json::Value = serde_json::from_str(&raw2).unwrap();
    assert!(stored["key"].as_str().is_some_and(|k| !k.is_empty()));
}
