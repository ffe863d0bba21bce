//! request-validation: header and body schemas, cjson messages, what the upstream receives.

use http::Method;
use portico_testkit::upstream::{handlers, Upstream};
use serde_json::{json, Value};

use crate::common::{self, Harness};
use crate::{
    accepted, edit_under_traffic, refused, request, route, send, status_and_body, Traffic,
};

#[test]
fn request_validation_config_on_write() {
    accepted(
        "request-validation",
        json!({"header_schema": {"type": "object", "required": ["x-a"]}}),
    );
    accepted(
        "request-validation",
        json!({"body_schema": {"type": "object", "properties": {
        "a": {"type": "string", "enum": ["a", "b"]}}, "required": ["a"]}, "rejected_code": 422}),
    );
    let prefix = "failed to check the configuration of plugin request-validation err: ";
    let err = |conf: Value| refused("request-validation", conf).replacen(prefix, "", 1);
    assert_eq!(
        err(json!({})),
        "object matches none of the required: [\"header_schema\"] or [\"body_schema\"]"
    );
    assert_eq!(
        err(json!({"body_schema": {"type": "test"}})),
        "invalid JSON type: test"
    );
    assert_eq!(
        err(
            json!({"header_schema": {"type": "string", "properties": {"test": {"type": "string", "enum": "test-enum"}}}})
        ),
        "bad argument #1 to 'ipairs' (table expected, got string)"
    );
    assert_eq!(
        err(json!({"body_schema": {"type": "object", "required": "test-required"}})),
        "bad argument #1 to 'ipairs' (table expected, got string)"
    );
    assert_eq!(
        err(json!({"body_schema": {"type": "object"}, "rejected_code": 10000})),
        "property \"rejected_code\" validation failed: expected 10000 to be at most 599"
    );
    assert_eq!(
        err(json!({"header_schema": {"type": "object"}, "rejected_msg": "x".repeat(257)})),
        "property \"rejected_msg\" validation failed: string too long, expected at most 256, got 257"
    );
    assert_eq!(
        err(json!({"body_schema": {"$ref": "#/x"}})),
        "$ref is not supported by Portico"
    );
    assert_eq!(
        portico_plugins::registry()
            .get("request-validation")
            .map(|s| s.priority),
        Some(2800)
    );
}

fn validation_template(required: &str) -> Value {
    json!({"plugins": {"request-validation": {
        "body_schema": {
            "type": "object",
            "required": [required],
            "properties": {
                "required_payload": {"type": "string"},
                "timeouts": {"type": "integer", "minimum": 1, "maximum": 254, "default": 3}
            }
        }
    }}})
}

#[tokio::test]
async fn request_validation_on_requests() {
    let up = Upstream::start("echo", handlers::echo()).await;
    let gw = Harness::start(vec![
        (
            "ws/default/plugin_configs/body",
            validation_template("required_payload"),
        ),
        (
            "ws/default/plugin_configs/head",
            json!({"plugins": {"request-validation": {
                "header_schema": {"type": "object", "required": ["X_Api_Version"],
                    "properties": {"x_api_version": {"type": "string", "enum": ["1", "2"]}}},
                "rejected_code": 412
            }}}),
        ),
        ("ws/default/routes/1", route("/body", &up.node(), "body")),
        ("ws/default/routes/2", route("/head", &up.node(), "head")),
    ])
    .await;
    let json_type = [("Content-Type", "application/json")];
    let r = send(
        &gw,
        Method::POST,
        "/body",
        &json_type,
        r#"{"boolean_payload": true}"#,
    )
    .await;
    assert_eq!(
        status_and_body(&r),
        "400 property \"required_payload\" is required"
    );
    let r = send(&gw, Method::POST, "/body", &json_type, "{bad").await;
    assert_eq!(
        status_and_body(&r),
        "400 Expected object key string but found invalid token at character 2"
    );
    // No body: the nginx page.
    common::assert_error_page(
        &send(&gw, Method::POST, "/body", &json_type, "").await,
        400,
        "Bad Request",
    );
    // A valid body goes upstream as cjson encodes it, with the schema's defaults.
    let r = send(
        &gw,
        Method::POST,
        "/body",
        &json_type,
        r#"{ "required_payload" : "a/b" }"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = r.json();
    assert_eq!(seen["body"], r#"{"required_payload":"a\/b","timeouts":3}"#);
    assert_eq!(r.echoed("content-length").as_deref(), Some("40"));
    // Form bodies are checked as arguments and go upstream unchanged.
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let body = format!("{}required_payload=101-hello", "a=b&".repeat(101));
    let r = send(&gw, Method::POST, "/body", &form, &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["body"], body.as_str());
    // Headers, looked up the way ngx.req.get_headers() tables are.
    let r = send(&gw, Method::GET, "/head", &[], "").await;
    assert_eq!(
        status_and_body(&r),
        "412 property \"X_Api_Version\" is required"
    );
    let r = send(&gw, Method::GET, "/head", &[("X-Api-Version", "3")], "").await;
    assert_eq!(
        status_and_body(&r),
        "412 property \"x_api_version\" validation failed: matches none of the enum values"
    );
    assert_eq!(
        send(&gw, Method::GET, "/head", &[("X-Api-Version", "2")], "")
            .await
            .status,
        200
    );

    let traffic = Traffic::start(
        &gw,
        |url| {
            request(
                Method::POST,
                &format!("{url}/body"),
                &[("Content-Type", "application/json")],
                r#"{"required_payload": "x"}"#,
            )
        },
        status_and_body,
    );
    edit_under_traffic(traffic, "200", "400 property \"other\" is required", || {
        gw.put(vec![(
            "ws/default/plugin_configs/body",
            validation_template("other"),
        )]);
    })
    .await;
}
