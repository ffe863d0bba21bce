//! jwt-auth, hmac-auth and consumer-restriction through the real gateway: configurations the
//! registry accepts and refuses, requests allowed and rejected with APISIX's exact bodies, the
//! consumer headers the upstream receives, anonymous consumers, and consumer or template edits
//! taking effect while requests keep coming.
//!
//! Tokens and signatures are made in `plugins_auth/signing.rs` with `ring`; the RSA key by the
//! `openssl` command line.

mod common;
#[path = "plugins_auth/signing.rs"]
mod signing;
#[path = "plugins_auth/traffic.rs"]
mod traffic;

use bytes::Bytes;
use common::{upstream, Harness, Reply};
use http::{Method, Request};
use http_body_util::Full;
use portico_model::Kind;
use portico_testkit::upstream::{handlers, Upstream};
use serde_json::{json, Value};
use signing::{
    hmac_authorization, http_date, jwt, now, p256, rsa_from_openssl, sha256_digest, Signer,
};
use traffic::{until, TapHeader, Traffic};

fn route(uri: &str, node: &str, template: &str) -> Value {
    json!({"uri": uri, "upstream": upstream(&[(node, 1)], json!({})), "plugin_config_id": template})
}

fn message(msg: &str) -> String {
    format!("{{\"message\":\"{msg}\"}}\n")
}

/// Asserts an answer's status and body.
#[track_caller]
fn assert_answer(reply: &Reply, status: u16, msg: &str) {
    assert_eq!(
        (reply.status.as_u16(), reply.text()),
        (status, message(msg))
    );
}

/// Whether the registry accepts a plugin configuration in a plugin template (`Route` schema) or
/// on a consumer — the same check the Admin API runs on writes and the data plane on loads.
fn accepted(kind: Kind, plugin: &str, conf: Value) -> Result<(), String> {
    let obj = match kind {
        Kind::Consumer => json!({"username": "jack", "plugins": {plugin: conf}}),
        _ => json!({"id": "t", "plugins": {plugin: conf}}),
    };
    portico_model::check(kind, &obj, &portico_plugins::registry())
}

fn request(gw: &Harness, method: Method, path: &str) -> http::request::Builder {
    gw.request(method, path)
}

fn bearer(gw: &Harness, path: &str, token: &str) -> Request<Full<Bytes>> {
    request(gw, Method::GET, path)
        .header("Authorization", format!("Bearer {token}"))
        .body(Full::default())
        .expect("request")
}

// ---------------------------------------------------------------------------------------------
// jwt-auth

#[test]
fn jwt_auth_configurations_are_checked() {
    assert_eq!(accepted(Kind::PluginConfig, "jwt-auth", json!({})), Ok(()));
    assert_eq!(
        accepted(
            Kind::PluginConfig,
            "jwt-auth",
            json!({"header": "x-jwt", "query": "t", "cookie": "c", "hide_credentials": true,
                "key_claim_name": "iss", "realm": "api", "anonymous_consumer": "anon",
                "claims_to_verify": ["exp"]})
        ),
        Ok(())
    );
    assert!(accepted(
        Kind::PluginConfig,
        "jwt-auth",
        json!({"claims_to_verify": ["iat"]})
    )
    .is_err());
    let err = |conf: Value| accepted(Kind::Consumer, "jwt-auth", conf).unwrap_err();
    let prefix =
        "invalid plugins configuration: failed to check the configuration of plugin jwt-auth err: ";
    assert_eq!(
        err(json!({"key": "k"})),
        format!("{prefix}property \"secret\" is required when using HS based algorithms")
    );
    assert_eq!(
        err(json!({"key": "k", "secret": "%%%", "base64_secret": true})),
        format!("{prefix}base64_secret required but the secret is not in base64 format")
    );
    assert_eq!(
        err(json!({"key": "k", "algorithm": "HS1"})),
        format!(
            "{prefix}property \"algorithm\" validation failed: matches none of the enum values"
        )
    );
    let (_, p256_pem) = p256();
    assert_eq!(
        err(json!({"key": "k", "algorithm": "ES512", "public_key": p256_pem})),
        format!("{prefix}algorithm ES512 (ECDSA P-521) is not supported by Portico")
    );
    assert_eq!(
        err(json!({"key": "k", "algorithm": "RS256", "public_key": p256_pem})),
        format!("{prefix}public_key is an EC P-256 key, not a key for RS256")
    );
    assert_eq!(
        accepted(
            Kind::Consumer,
            "jwt-auth",
            json!({"key": "k", "algorithm": "ES256", "public_key": p256_pem})
        ),
        Ok(())
    );
}

#[tokio::test]
async fn jwt_auth_admits_signed_tokens_and_follows_consumer_edits() {
    let up = Upstream::start("echo", handlers::echo()).await;
    let node = up.node();
    let gw = Harness::start(vec![
        (
            "ws/default/plugin_configs/jwt",
            json!({"plugins": {"jwt-auth": {}}}),
        ),
        ("ws/default/routes/1", route("/jwt", &node, "jwt")),
        (
            "ws/default/consumers/jack",
            json!({"username": "jack", "labels": {"custom_id": "c-7"},
                "plugins": {"jwt-auth": {"key": "jack-key", "secret": "old-secret"}}}),
        ),
        (
            "ws/default/consumers/jack/credentials/mobile",
            json!({"plugins": {"jwt-auth": {"key": "jack-mobile", "secret": "mobile-secret"}}}),
        ),
        ("ws/default/consumers/anon", json!({"username": "anon"})),
    ])
    .await;

    let missing = gw.get("/jwt").await;
    assert_answer(&missing, 401, "Missing JWT token in request");
    assert_eq!(
        missing.header("www-authenticate"),
        Some("Bearer realm=\"jwt\"")
    );
    assert_answer(
        &gw.send(bearer(&gw, "/jwt", "not.a.token")).await,
        401,
        "JWT token invalid",
    );
    let stranger = jwt(
        "HS256",
        json!({"key": "nobody"}),
        &Signer::Hmac("old-secret"),
    );
    assert_answer(
        &gw.send(bearer(&gw, "/jwt", &stranger)).await,
        401,
        "Invalid user key in JWT token",
    );
    let keyless = jwt("HS256", json!({"sub": "jack"}), &Signer::Hmac("old-secret"));
    assert_answer(
        &gw.send(bearer(&gw, "/jwt", &keyless)).await,
        401,
        "missing user key in JWT token",
    );
    let expired = jwt(
        "HS256",
        json!({"key": "jack-key", "exp": now() - 60}),
        &Signer::Hmac("old-secret"),
    );
    assert_answer(
        &gw.send(bearer(&gw, "/jwt", &expired)).await,
        401,
        "failed to verify jwt",
    );

    let old = jwt(
        "HS256",
        json!({"key": "jack-key", "exp": now() + 3600}),
        &Signer::Hmac("old-secret"),
    );
    let ok = gw
        .send(bearer(&gw, "/jwt", &old).tap_header("X-Credential-Identifier", "forged"))
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.echoed("x-consumer-username").as_deref(), Some("jack"));
    assert_eq!(ok.echoed("x-consumer-custom-id").as_deref(), Some("c-7"));
    assert_eq!(ok.echoed("x-credential-identifier"), None);
    assert_eq!(
        ok.echoed("authorization"),
        Some(format!("Bearer {old}")),
        "not hidden by default"
    );
    // The same token as a query argument and as a cookie.
    let by_query = gw.get(&format!("/jwt?jwt={old}")).await;
    assert_eq!(by_query.status, 200);
    let by_cookie = request(&gw, Method::GET, "/jwt")
        .header("Cookie", format!("theme=dark; jwt={old}"))
        .body(Full::default())
        .expect("request");
    assert_eq!(gw.send(by_cookie).await.status, 200);
    // A credential authenticates as its consumer.
    let mobile = jwt(
        "HS256",
        json!({"key": "jack-mobile"}),
        &Signer::Hmac("mobile-secret"),
    );
    let r = gw.send(bearer(&gw, "/jwt", &mobile)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.echoed("x-consumer-username").as_deref(), Some("jack"));
    assert_eq!(
        r.echoed("x-credential-identifier").as_deref(),
        Some("mobile")
    );

    // Rotate jack's secret while requests with the old token keep coming.
    let token = old.clone();
    let traffic = Traffic::start(&gw, move |base| {
        Request::get(format!("{base}/jwt"))
            .header("Authorization", format!("Bearer {token}"))
            .body(Full::default())
            .expect("request")
    })
    .await;
    gw.put(vec![(
        "ws/default/consumers/jack",
        json!({"username": "jack", "plugins": {"jwt-auth": {"key": "jack-key", "secret": "new-secret"}}}),
    )]);
    let refused = until(&gw, || bearer(&gw, "/jwt", &old), |r| r.status == 401).await;
    assert_answer(&refused, 401, "failed to verify jwt");
    traffic.switched_once(200, 401).await;
    let new = jwt(
        "HS256",
        json!({"key": "jack-key"}),
        &Signer::Hmac("new-secret"),
    );
    assert_eq!(gw.send(bearer(&gw, "/jwt", &new)).await.status, 200);

    // Template edits: hide the token from the upstream, then let anonymous requests in.
    gw.put(vec![(
        "ws/default/plugin_configs/jwt",
        json!({"plugins": {"jwt-auth": {"hide_credentials": true, "anonymous_consumer": "anon"}}}),
    )]);
    let hidden = gw.send(bearer(&gw, "/jwt", &new)).await;
    assert_eq!(hidden.status, 200);
    assert_eq!(hidden.echoed("authorization"), None);
    let anonymous = gw.get("/jwt").await;
    assert_eq!(anonymous.status, 200);
    assert_eq!(
        anonymous.echoed("x-consumer-username").as_deref(),
        Some("anon")
    );
    // The old token is not jack's any more: anonymous too, not refused.
    let with_old = gw.send(bearer(&gw, "/jwt", &old)).await;
    assert_eq!(
        with_old.echoed("x-consumer-username").as_deref(),
        Some("anon")
    );
    // An anonymous consumer that does not exist.
    gw.put(vec![(
        "ws/default/plugin_configs/jwt",
        json!({"plugins": {"jwt-auth": {"anonymous_consumer": "ghost", "realm": "api"}}}),
    )]);
    let ghost = gw.get("/jwt").await;
    assert_answer(&ghost, 401, "Invalid user authorization");
    assert_eq!(
        ghost.header("www-authenticate"),
        Some("Bearer realm=\"api\"")
    );
}

#[tokio::test]
async fn jwt_auth_verifies_rs256_and_es256_with_public_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (rsa, rsa_pem) = rsa_from_openssl(dir.path());
    let (ec, ec_pem) = p256();
    let (other_ec, _) = p256();
    let up = Upstream::start("echo", handlers::echo()).await;
    let node = up.node();
    let gw = Harness::start(vec![
        (
            "ws/default/plugin_configs/jwt",
            json!({"plugins": {"jwt-auth": {"header": "X-Token", "key_claim_name": "iss"}}}),
        ),
        ("ws/default/routes/1", route("/keys", &node, "jwt")),
        (
            "ws/default/consumers/rsa_user",
            json!({"username": "rsa_user", "plugins": {"jwt-auth": {
                "key": "rsa-iss", "algorithm": "RS256", "public_key": rsa_pem}}}),
        ),
        (
            "ws/default/consumers/ec_user",
            json!({"username": "ec_user", "plugins": {"jwt-auth": {
                "key": "ec-iss", "algorithm": "ES256", "public_key": ec_pem}}}),
        ),
    ])
    .await;
    let send = |token: String| {
        request(&gw, Method::GET, "/keys")
            .header("X-Token", token)
            .body(Full::default())
            .expect("request")
    };
    let r = gw
        .send(send(jwt("RS256", json!({"iss": "rsa-iss"}), &rsa)))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.echoed("x-consumer-username").as_deref(), Some("rsa_user"));
    let r = gw
        .send(send(jwt("ES256", json!({"iss": "ec-iss"}), &ec)))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.echoed("x-consumer-username").as_deref(), Some("ec_user"));
    // Another key, or another algorithm than the consumer's, does not verify.
    let forged = gw
        .send(send(jwt("ES256", json!({"iss": "ec-iss"}), &other_ec)))
        .await;
    assert_answer(&forged, 401, "failed to verify jwt");
    let wrong_alg = gw
        .send(send(jwt("ES256", json!({"iss": "rsa-iss"}), &ec)))
        .await;
    assert_answer(&wrong_alg, 401, "failed to verify jwt");
    let hs = gw
        .send(send(jwt(
            "HS256",
            json!({"iss": "rsa-iss"}),
            &Signer::Hmac("x"),
        )))
        .await;
    assert_answer(&hs, 401, "failed to verify jwt");
}

// ---------------------------------------------------------------------------------------------
// hmac-auth

/// A request signed by `key_id` with `secret`, dated now, with a body and its digest if given.
fn hmac_request(
    gw: &Harness,
    method: Method,
    path: &str,
    key_id: &str,
    secret: &str,
    body: Option<(&'static str, String)>,
) -> Request<Full<Bytes>> {
    let date = http_date(now());
    let digest = body.as_ref().map(|(_, d)| d.as_str());
    let auth = hmac_authorization(key_id, secret, method.as_str(), path, &date, digest);
    let mut req = request(gw, method, path)
        .header("Date", date)
        .header("Authorization", auth);
    let payload = match body {
        Some((text, digest)) => {
            req = req.header("Digest", digest);
            Full::new(Bytes::from_static(text.as_bytes()))
        }
        None => Full::default(),
    };
    req.body(payload).expect("request")
}

#[test]
fn hmac_auth_configurations_are_checked() {
    assert_eq!(accepted(Kind::PluginConfig, "hmac-auth", json!({})), Ok(()));
    assert_eq!(
        accepted(
            Kind::PluginConfig,
            "hmac-auth",
            json!({"allowed_algorithms": ["hmac-sha512"], "clock_skew": 30,
                "signed_headers": ["date", "x-tenant"], "validate_request_body": true,
                "max_req_body_size": 1024, "hide_credentials": true})
        ),
        Ok(())
    );
    let prefix = "failed to check the configuration of plugin hmac-auth err: ";
    assert_eq!(
        accepted(
            Kind::PluginConfig,
            "hmac-auth",
            json!({"allowed_algorithms": ["hmac-md5"]})
        ),
        Err(format!("{prefix}property \"allowed_algorithms\" validation failed: failed to validate item 1: matches none of the enum values"))
    );
    assert_eq!(
        accepted(Kind::PluginConfig, "hmac-auth", json!({"clock_skew": 0})),
        Err(format!(
            "{prefix}property \"clock_skew\" validation failed: expected 0 to be at least 1"
        ))
    );
    assert_eq!(
        accepted(Kind::Consumer, "hmac-auth", json!({"key_id": "k"})),
        Err(format!(
            "invalid plugins configuration: {prefix}property \"secret_key\" is required"
        ))
    );
}

#[tokio::test]
async fn hmac_auth_checks_signatures_dates_and_bodies() {
    let up = Upstream::start("echo", handlers::echo()).await;
    let node = up.node();
    let gw = Harness::start(vec![
        (
            "ws/default/plugin_configs/hmac",
            json!({"plugins": {"hmac-auth": {}}}),
        ),
        ("ws/default/routes/1", route("/h/*", &node, "hmac")),
        (
            "ws/default/consumers/jack",
            json!({"username": "jack", "labels": {"custom_id": "c-9"},
                "plugins": {"hmac-auth": {"key_id": "jack-id", "secret_key": "old-secret"}}}),
        ),
        (
            "ws/default/consumers/jack/credentials/ci",
            json!({"plugins": {"hmac-auth": {"key_id": "ci-id", "secret_key": "ci-secret"}}}),
        ),
        ("ws/default/consumers/anon", json!({"username": "anon"})),
    ])
    .await;

    let missing = gw.get("/h/a").await;
    assert_answer(
        &missing,
        401,
        "client request can't be validated: missing Authorization header",
    );
    assert_eq!(
        missing.header("www-authenticate"),
        Some("hmac realm=\"hmac\"")
    );
    let basic = request(&gw, Method::GET, "/h/a")
        .header("Authorization", "Basic eDp5")
        .body(Full::default())
        .expect("request");
    assert_answer(
        &gw.send(basic).await,
        401,
        "client request can't be validated: Authorization header does not start with 'Signature'",
    );

    let ok = gw
        .send(hmac_request(
            &gw,
            Method::GET,
            "/h/a?x=1",
            "jack-id",
            "old-secret",
            None,
        ))
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.echoed("x-consumer-username").as_deref(), Some("jack"));
    assert_eq!(ok.echoed("x-consumer-custom-id").as_deref(), Some("c-9"));
    assert!(ok.echoed("authorization").is_some());
    let ci = gw
        .send(hmac_request(
            &gw,
            Method::GET,
            "/h/b",
            "ci-id",
            "ci-secret",
            None,
        ))
        .await;
    assert_eq!(ci.status, 200, "{}", ci.text());
    assert_eq!(ci.echoed("x-credential-identifier").as_deref(), Some("ci"));

    // Wrong secret, unknown key, a signature made for another target, a stale date.
    for req in [
        hmac_request(&gw, Method::GET, "/h/a", "jack-id", "guess", None),
        hmac_request(&gw, Method::GET, "/h/a", "nobody", "old-secret", None),
    ] {
        assert_answer(
            &gw.send(req).await,
            401,
            "client request can't be validated",
        );
    }
    let mut moved = hmac_request(&gw, Method::GET, "/h/a", "jack-id", "old-secret", None);
    *moved.uri_mut() = gw.url("/h/other").parse().expect("uri");
    assert_answer(
        &gw.send(moved).await,
        401,
        "client request can't be validated",
    );
    let mut stale = hmac_request(&gw, Method::GET, "/h/a", "jack-id", "old-secret", None);
    stale.headers_mut().insert(
        "date",
        http_date(now() - 3600).parse().expect("header value"),
    );
    assert_answer(
        &gw.send(stale).await,
        401,
        "client request can't be validated",
    );

    // Rotate the secret while signed requests keep coming.
    let traffic = Traffic::start(&gw, |base| {
        let date = http_date(now());
        let auth = hmac_authorization("jack-id", "old-secret", "GET", "/h/loop", &date, None);
        Request::get(format!("{base}/h/loop"))
            .header("Date", date)
            .header("Authorization", auth)
            .body(Full::default())
            .expect("request")
    })
    .await;
    gw.put(vec![(
        "ws/default/consumers/jack",
        json!({"username": "jack", "plugins": {"hmac-auth": {"key_id": "jack-id", "secret_key": "new-secret"}}}),
    )]);
    let refused = until(
        &gw,
        || hmac_request(&gw, Method::GET, "/h/a", "jack-id", "old-secret", None),
        |r| r.status == 401,
    )
    .await;
    assert_answer(&refused, 401, "client request can't be validated");
    traffic.switched_once(200, 401).await;
    let fresh = hmac_request(&gw, Method::GET, "/h/a", "jack-id", "new-secret", None);
    assert_eq!(gw.send(fresh).await.status, 200);

    // Template edit: the body must match its Digest, within max_req_body_size.
    gw.put(vec![(
        "ws/default/plugin_configs/hmac",
        json!({"plugins": {"hmac-auth": {"validate_request_body": true, "max_req_body_size": 16,
            "signed_headers": ["date", "digest"], "hide_credentials": true}}}),
    )]);
    let body = "hello upstream";
    let posted = gw
        .send(hmac_request(
            &gw,
            Method::POST,
            "/h/post",
            "jack-id",
            "new-secret",
            Some((body, sha256_digest(body))),
        ))
        .await;
    assert_eq!(posted.status, 200, "{}", posted.text());
    assert_eq!(posted.json()["body"], body);
    assert_eq!(posted.echoed("authorization"), None, "hidden");
    let tampered = hmac_request(
        &gw,
        Method::POST,
        "/h/post",
        "jack-id",
        "new-secret",
        Some(("hello upstreaM", sha256_digest(body))),
    );
    assert_answer(
        &gw.send(tampered).await,
        401,
        "client request can't be validated",
    );
    let large = "a body of twenty bytes";
    let too_large = gw
        .send(hmac_request(
            &gw,
            Method::POST,
            "/h/post",
            "jack-id",
            "new-secret",
            Some((large, sha256_digest(large))),
        ))
        .await;
    assert_answer(
        &too_large,
        413,
        &format!(
            "request size {} is greater than the maximum size 16 allowed",
            large.len()
        ),
    );
    assert_eq!(too_large.header("www-authenticate"), None);
    // Without a Digest header (so `digest` is not signed, as signed_headers wants) refused.
    let undigested = hmac_request(&gw, Method::GET, "/h/a", "jack-id", "new-secret", None);
    assert_answer(
        &gw.send(undigested).await,
        401,
        "client request can't be validated",
    );

    // Anonymous consumer.
    gw.put(vec![(
        "ws/default/plugin_configs/hmac",
        json!({"plugins": {"hmac-auth": {"anonymous_consumer": "anon"}}}),
    )]);
    let anonymous = gw.get("/h/a").await;
    assert_eq!(anonymous.status, 200);
    assert_eq!(
        anonymous.echoed("x-consumer-username").as_deref(),
        Some("anon")
    );
}

// ---------------------------------------------------------------------------------------------
// consumer-restriction

#[test]
fn consumer_restriction_configurations_are_checked() {
    let ok = |conf: Value| accepted(Kind::PluginConfig, "consumer-restriction", conf);
    assert_eq!(ok(json!({"whitelist": ["jack"]})), Ok(()));
    assert_eq!(
        ok(json!({"type": "consumer_group_id", "blacklist": ["bronze"], "rejected_code": 401})),
        Ok(())
    );
    let prefix = "failed to check the configuration of plugin consumer-restriction err: ";
    assert_eq!(
        ok(json!({"rejected_code": 403})),
        Err(format!("{prefix}object matches none of the required: [\"blacklist\"] or [\"whitelist\"] or [\"allowed_by_methods\"]"))
    );
    assert_eq!(
        ok(json!({"type": "service_id", "whitelist": ["1"]})),
        Err(format!("{prefix}type \"service_id\" is not supported: Portico has no services (use route_id, consumer_name or consumer_group_id)"))
    );
    assert!(ok(json!({"whitelist": ["a"], "rejected_code": 100})).is_err());
}

#[tokio::test]
async fn consumer_restriction_by_name_group_route_and_method() {
    let up = Upstream::start("echo", handlers::echo()).await;
    let node = up.node();
    let gw = Harness::start(vec![
        (
            "ws/default/plugin_configs/only_jack",
            json!({"plugins": {"key-auth": {}, "consumer-restriction": {"whitelist": ["jack"]}}}),
        ),
        (
            "ws/default/plugin_configs/gold",
            json!({"plugins": {"key-auth": {}, "consumer-restriction": {
                "type": "consumer_group_id", "whitelist": ["gold"],
                "rejected_code": 401, "rejected_msg": "gold members only"}}}),
        ),
        (
            "ws/default/plugin_configs/no_auth",
            json!({"plugins": {"consumer-restriction": {"blacklist": ["jack"]}}}),
        ),
        (
            "ws/default/plugin_configs/by_route",
            json!({"plugins": {"consumer-restriction": {"type": "route_id", "blacklist": ["closed"]}}}),
        ),
        ("ws/default/routes/1", route("/jack", &node, "only_jack")),
        ("ws/default/routes/2", route("/gold", &node, "gold")),
        ("ws/default/routes/3", route("/open", &node, "no_auth")),
        ("ws/default/routes/closed", route("/closed", &node, "by_route")),
        ("ws/default/routes/open2", route("/open2", &node, "by_route")),
        (
            "ws/default/consumer_groups/gold",
            json!({"id": "gold", "plugins": {}}),
        ),
        (
            "ws/default/consumers/jack",
            json!({"username": "jack", "plugins": {"key-auth": {"key": "jack-key"}}}),
        ),
        (
            "ws/default/consumers/rose",
            json!({"username": "rose", "group_id": "gold",
                "plugins": {"key-auth": {"key": "rose-key"}}}),
        ),
    ])
    .await;
    let as_user = |method: Method, path: &str, key: &str| {
        request(&gw, method, path)
            .header("apikey", key)
            .body(Full::default())
            .expect("request")
    };
    assert_eq!(
        gw.send(as_user(Method::GET, "/jack", "jack-key"))
            .await
            .status,
        200
    );
    assert_answer(
        &gw.send(as_user(Method::GET, "/jack", "rose-key")).await,
        403,
        "The consumer_name is forbidden.",
    );
    // Groups.
    assert_eq!(
        gw.send(as_user(Method::GET, "/gold", "rose-key"))
            .await
            .status,
        200
    );
    assert_answer(
        &gw.send(as_user(Method::GET, "/gold", "jack-key")).await,
        401,
        "The request is rejected, please check the consumer_group_id for this request",
    );
    // No auth plugin: no consumer to check.
    assert_answer(
        &gw.get("/open").await,
        401,
        "The request is rejected, please check the consumer_name for this request",
    );
    // Route ids.
    assert_answer(&gw.get("/closed").await, 403, "The route_id is forbidden.");
    assert_eq!(gw.get("/open2").await.status, 200);

    // Edit the template while jack's requests keep coming: jack is shut out.
    let traffic = Traffic::start(&gw, |base| {
        Request::get(format!("{base}/jack"))
            .header("apikey", "jack-key")
            .body(Full::default())
            .expect("request")
    })
    .await;
    gw.put(vec![(
        "ws/default/plugin_configs/only_jack",
        json!({"plugins": {"key-auth": {}, "consumer-restriction": {
            "whitelist": ["rose"],
            "allowed_by_methods": [{"user": "jack", "methods": ["POST"]}]}}}),
    )]);
    let refused = until(
        &gw,
        || as_user(Method::GET, "/jack", "jack-key"),
        |r| r.status == 403,
    )
    .await;
    assert_answer(&refused, 403, "The consumer_name is forbidden.");
    traffic.switched_once(200, 403).await;
    assert_eq!(
        gw.send(as_user(Method::GET, "/jack", "rose-key"))
            .await
            .status,
        200
    );
    // Not whitelisted: blocked whatever the method rules say.
    assert_eq!(
        gw.send(as_user(Method::POST, "/jack", "jack-key"))
            .await
            .status,
        403
    );
    // Method rules alone.
    gw.put(vec![(
        "ws/default/plugin_configs/only_jack",
        json!({"plugins": {"key-auth": {}, "consumer-restriction": {
            "allowed_by_methods": [{"user": "jack", "methods": ["POST"]}]}}}),
    )]);
    assert_eq!(
        gw.send(as_user(Method::POST, "/jack", "jack-key"))
            .await
            .status,
        200
    );
    assert_eq!(
        gw.send(as_user(Method::GET, "/jack", "jack-key"))
            .await
            .status,
        403
    );
    assert_eq!(
        gw.send(as_user(Method::GET, "/jack", "rose-key"))
            .await
            .status,
        200
    );
}
