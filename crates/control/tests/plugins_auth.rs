//! jwt-auth, hmac-auth and consumer-restriction through the Admin API: unique auth keys per
//! workspace (APISIX's duplicate-key message), consumer-side checks, secrets encrypted at rest,
//! and configurations Portico cannot run refused on write.

mod common;

use common::Admin;
use serde_json::json;

#[tokio::test]
async fn a_jwt_key_belongs_to_one_consumer_or_credential() {
    let admin = Admin::start().await;
    admin
        .put(
            "/apisix/admin/consumers/bob",
            json!({"plugins": {"jwt-auth": {"key": "bob-key", "secret": "s1"}}}),
        )
        .await
        .expect(201);
    let e = admin
        .put(
            "/apisix/admin/consumers/alice",
            json!({"plugins": {"jwt-auth": {"key": "bob-key", "secret": "s2"}}}),
        )
        .await
        .expect(400);
    assert_eq!(
        e.error(),
        "duplicate key of plugin jwt-auth found with consumer: bob"
    );
    admin
        .put("/apisix/admin/consumers/alex", json!({}))
        .await
        .expect(201);
    admin
        .put(
            "/apisix/admin/consumers/alex/credentials/cred-alex-a",
            json!({"plugins": {"jwt-auth": {"key": "alex-key", "secret": "s3"}}}),
        )
        .await
        .expect(201);
    let e = admin
        .put(
            "/apisix/admin/consumers/carol",
            json!({"plugins": {"jwt-auth": {"key": "alex-key", "secret": "s4"}}}),
        )
        .await
        .expect(400);
    assert_eq!(
        e.error(),
        "duplicate key of plugin jwt-auth found with credential: cred-alex-a of consumer: alex"
    );
    let e = admin
        .put(
            "/apisix/admin/consumers/alex/credentials/cred-alex-b",
            json!({"plugins": {"jwt-auth": {"key": "bob-key", "secret": "s5"}}}),
        )
        .await
        .expect(400);
    assert_eq!(
        e.error(),
        "duplicate key of plugin jwt-auth found with consumer: bob"
    );
    // Rewriting the holder itself (a secret rotation) is fine; so is the same key for another
    // auth plugin.
    admin
        .put(
            "/apisix/admin/consumers/bob",
            json!({"plugins": {"jwt-auth": {"key": "bob-key", "secret": "rotated"}}}),
        )
        .await
        .expect(200);
    admin
        .put(
            "/apisix/admin/consumers/dave",
            json!({"plugins": {"key-auth": {"key": "bob-key"}}}),
        )
        .await
        .expect(201);
}

#[tokio::test]
async fn an_hmac_key_id_belongs_to_one_consumer_or_credential() {
    let admin = Admin::start().await;
    admin
        .put(
            "/apisix/admin/consumers/bob",
            json!({"plugins": {"hmac-auth": {"key_id": "bob-id", "secret_key": "s1"}}}),
        )
        .await
        .expect(201);
    let e = admin
        .put(
            "/apisix/admin/consumers/alice",
            json!({"plugins": {"hmac-auth": {"key_id": "bob-id", "secret_key": "s2"}}}),
        )
        .await
        .expect(400);
    assert_eq!(
        e.error(),
        "duplicate key of plugin hmac-auth found with consumer: bob"
    );
    admin
        .put("/apisix/admin/consumers/alex", json!({}))
        .await
        .expect(201);
    admin
        .put(
            "/apisix/admin/consumers/alex/credentials/ci",
            json!({"plugins": {"hmac-auth": {"key_id": "alex-id", "secret_key": "s3"}}}),
        )
        .await
        .expect(201);
    let e = admin
        .put(
            "/apisix/admin/consumers/carol",
            json!({"plugins": {"hmac-auth": {"key_id": "alex-id", "secret_key": "s4"}}}),
        )
        .await
        .expect(400);
    assert_eq!(
        e.error(),
        "duplicate key of plugin hmac-auth found with credential: ci of consumer: alex"
    );
}

#[tokio::test]
async fn auth_secrets_are_encrypted_at_rest() {
    let admin = Admin::start().await;
    let written = admin
        .put(
            "/apisix/admin/consumers/jack",
            json!({"plugins": {
                "jwt-auth": {"key": "jack-key", "secret": "jwt-plain-secret"},
                "hmac-auth": {"key_id": "jack-id", "secret_key": "hmac-plain-secret"}
            }}),
        )
        .await
        .expect(201)
        .json();
    let plugins = &written["value"]["plugins"];
    assert_ne!(plugins["jwt-auth"]["secret"], "jwt-plain-secret");
    assert_ne!(plugins["hmac-auth"]["secret_key"], "hmac-plain-secret");
    // The keys that find the consumer stay readable.
    assert_eq!(plugins["jwt-auth"]["key"], "jack-key");
    assert_eq!(plugins["hmac-auth"]["key_id"], "jack-id");
    let raw = admin.stored("consumers/jack").await.expect("stored");
    assert!(
        !raw.contains("plain-secret"),
        "secret stored in clear: {raw}"
    );
    let got = admin
        .get("/apisix/admin/consumers/jack")
        .await
        .expect(200)
        .json();
    assert_eq!(
        got["value"]["plugins"]["jwt-auth"]["secret"],
        "jwt-plain-secret"
    );
    assert_eq!(
        got["value"]["plugins"]["hmac-auth"]["secret_key"],
        "hmac-plain-secret"
    );
}

#[tokio::test]
async fn configurations_that_cannot_work_are_refused_on_write() {
    let admin = Admin::start().await;
    let refused = |path: &'static str, body: serde_json::Value| {
        let admin = &admin;
        async move { admin.put(path, body).await.expect(400).error() }
    };
    assert_eq!(
        refused(
            "/apisix/admin/consumers/jack",
            json!({"plugins": {"jwt-auth": {"key": "k", "algorithm": "HS512"}}})
        )
        .await,
        "invalid plugins configuration: failed to check the configuration of plugin jwt-auth err: property \"secret\" is required when using HS based algorithms"
    );
    admin
        .put("/apisix/admin/consumers/owner", json!({}))
        .await
        .expect(201);
    assert_eq!(
        refused(
            "/apisix/admin/consumers/owner/credentials/c1",
            json!({"plugins": {"jwt-auth": {"key": "k", "algorithm": "ES512", "public_key": "x"}}})
        )
        .await,
        "invalid plugins configuration: failed to check the configuration of plugin jwt-auth err: algorithm ES512 (ECDSA P-521) is not supported by Portico"
    );
    assert_eq!(
        refused(
            "/apisix/admin/consumers/jack",
            json!({"plugins": {"jwt-auth": {"key": "k", "algorithm": "RS256", "public_key": "not a key"}}})
        )
        .await,
        "invalid plugins configuration: failed to check the configuration of plugin jwt-auth err: public_key is not a PEM-encoded key"
    );
    assert_eq!(
        refused(
            "/apisix/admin/consumers/jack",
            json!({"plugins": {"hmac-auth": {"key_id": "k"}}})
        )
        .await,
        "invalid plugins configuration: failed to check the configuration of plugin hmac-auth err: property \"secret_key\" is required"
    );
    assert_eq!(
        refused(
            "/apisix/admin/plugin_configs/t",
            json!({"plugins": {"consumer-restriction": {"type": "service_id", "whitelist": ["s1"]}}})
        )
        .await,
        "failed to check the configuration of plugin consumer-restriction err: type \"service_id\" is not supported: Portico has no services (use route_id, consumer_name or consumer_group_id)"
    );
    assert_eq!(
        refused(
            "/apisix/admin/plugin_configs/t",
            json!({"plugins": {"hmac-auth": {"allowed_algorithms": []}}})
        )
        .await,
        "failed to check the configuration of plugin hmac-auth err: property \"allowed_algorithms\" validation failed: expect array to have at least 1 items"
    );
    admin
        .put(
            "/apisix/admin/plugin_configs/t",
            json!({"plugins": {
                "jwt-auth": {"anonymous_consumer": "anon"},
                "consumer-restriction": {"type": "consumer_group_id", "whitelist": ["gold"]}
            }}),
        )
        .await
        .expect(201);
    // Nothing refused was written.
    assert!(admin.stored("consumers/jack").await.is_none());
    assert!(admin
        .stored("consumers/owner/credentials/c1")
        .await
        .is_none());
}
