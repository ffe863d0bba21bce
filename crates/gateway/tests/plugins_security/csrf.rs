//! csrf: the token cookie, the checks on unsafe methods, the key at rest.

use http::Method;
use portico_model::{decrypt_secrets, encrypt_secrets, Keyring, Kind, SchemaType};
use portico_testkit::upstream::{handlers, Upstream};
use serde_json::json;

use crate::common::{Harness, Reply};
use crate::{accepted, edit_under_traffic, refused, request, route, status_and_body, Traffic};

#[test]
fn csrf_config_on_write_and_key_at_rest() {
    accepted(
        "csrf",
        json!({"key": "userkey", "expires": 1000000000, "name": "x-csrf"}),
    );
    assert_eq!(
        refused("csrf", json!({})),
        "failed to check the configuration of plugin csrf err: property \"key\" is required"
    );
    assert_eq!(
        refused("csrf", json!({"key": "k", "expires": "1h"})),
        "failed to check the configuration of plugin csrf err: property \"expires\" validation failed: wrong type: expected integer, got string"
    );
    let registry = portico_plugins::registry();
    assert_eq!(registry.get("csrf").map(|s| s.priority), Some(2980));
    assert_eq!(registry.encrypt_fields("csrf", SchemaType::Route), ["key"]);
    assert_eq!(
        registry
            .injected_schema("csrf")
            .map(|s| s["encrypt_fields"].clone()),
        Some(json!(["key"]))
    );
    let ring = Keyring::new(vec!["qeddd145sfvddff3".into()]).expect("keyring");
    let mut tpl = json!({"id": "t", "plugins": {"csrf": {"key": "userkey"}}});
    encrypt_secrets(Kind::PluginConfig, &mut tpl, &registry, &ring).expect("encrypt");
    assert_ne!(tpl["plugins"]["csrf"]["key"], "userkey");
    decrypt_secrets(Kind::PluginConfig, &mut tpl, &registry, &ring, true);
    assert_eq!(tpl["plugins"]["csrf"]["key"], "userkey");
}

/// The token of a `Set-Cookie: apisix-csrf-token=…` header.
fn csrf_token(r: &Reply) -> String {
    let cookie = r.header("set-cookie").expect("a csrf cookie");
    cookie
        .strip_prefix("apisix-csrf-token=")
        .and_then(|c| c.split(';').next())
        .expect("the token")
        .to_string()
}

#[tokio::test]
async fn csrf_on_requests() {
    let up = Upstream::start("echo", handlers::echo()).await;
    let gw = Harness::start(vec![
        (
            "ws/default/plugin_configs/csrf",
            json!({"plugins": {"csrf": {"key": "userkey", "expires": 1000000000}}}),
        ),
        ("ws/default/routes/1", route("/hello", &up.node(), "csrf")),
    ])
    .await;
    let get = gw.get("/hello").await;
    assert_eq!(get.status, 200);
    let cookie = get.header("set-cookie").expect("cookie").to_string();
    assert!(cookie.contains(";path=/;SameSite=Lax;Expires="), "{cookie}");
    assert!(cookie.ends_with(" GMT"), "{cookie}");
    let token = csrf_token(&get);
    let error = |msg: &str| format!("401 {{\"error_msg\":\"{msg}\"}}");
    let cookie_header = format!("apisix-csrf-token={token}");
    let post = |headers: Vec<(&'static str, String)>| {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        request(Method::POST, &gw.url("/hello"), &headers, "")
    };
    let r = gw.send(post(vec![])).await;
    assert_eq!(status_and_body(&r), error("no csrf token in headers"));
    // Rejections get a fresh cookie too.
    assert!(r.header("set-cookie").is_some());
    let r = gw
        .send(post(vec![("apisix-csrf-token", token.clone())]))
        .await;
    assert_eq!(status_and_body(&r), error("no csrf cookie"));
    let r = gw
        .send(post(vec![
            ("apisix-csrf-token", "other".into()),
            ("Cookie", cookie_header.clone()),
        ]))
        .await;
    assert_eq!(status_and_body(&r), error("csrf token mismatch"));
    let r = gw
        .send(post(vec![
            ("apisix-csrf-token", token.clone()),
            ("Cookie", cookie_header.clone()),
        ]))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // A token signed with another key.
    let forged = "eyJyYW5kb20iOjAuNSwiZXhwaXJlcyI6MTcwMDAwMDAwMCwic2lnbiI6IngifQ==";
    let r = gw
        .send(post(vec![
            ("apisix-csrf-token", forged.into()),
            ("Cookie", format!("apisix-csrf-token={forged}")),
        ]))
        .await;
    assert_eq!(
        status_and_body(&r),
        error("Failed to verify the csrf token signature")
    );

    // Changing the key invalidates the tokens issued with the old one.
    let url = gw.url("/hello");
    let traffic = Traffic::start(
        &gw,
        move |_| {
            request(
                Method::POST,
                &url,
                &[
                    ("apisix-csrf-token", token.as_str()),
                    ("Cookie", cookie_header.as_str()),
                ],
                "",
            )
        },
        status_and_body,
    );
    edit_under_traffic(
        traffic,
        "200",
        &error("Failed to verify the csrf token signature"),
        || {
            gw.put(vec![(
                "ws/default/plugin_configs/csrf",
                json!({"plugins": {"csrf": {"key": "new-key"}}}),
            )]);
        },
    )
    .await;
    gw.put(vec![(
        "ws/default/plugin_configs/csrf",
        json!({"plugins": {"csrf": {"key": "new-key", "name": "x-csrf"}}}),
    )]);
    let get = gw.get("/hello").await;
    assert!(get
        .header("set-cookie")
        .is_some_and(|c| c.starts_with("x-csrf=")));
}
