//! request-validation behaviour: headers, JSON and form bodies, messages, codes, re-encoding.

use super::*;
use crate::testing::{ctx_for, plugin};

fn run(
    conf: Value,
    method: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (Option<(u16, String)>, Ctx) {
    let p = plugin(NAME, conf);
    let mut req = http::Request::builder().method(method).uri("/echo");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut ctx = ctx_for(req);
    if p.wants_request_body() {
        ctx.request_body = Some(Bytes::from(body.unwrap_or_default().to_string()));
    }
    let answer = match p.rewrite(&mut ctx) {
        Flow::Respond(r) => Some((
            r.status.as_u16(),
            String::from_utf8_lossy(&r.body).into_owned(),
        )),
        Flow::Continue => None,
        Flow::Wait(_) => unreachable!("request-validation never waits"),
    };
    (answer, ctx)
}

fn body_schema() -> Value {
    json!({"body_schema": {
        "type": "object",
        "required": ["required_payload"],
        "properties": {
            "required_payload": {"type": "string"},
            "boolean_payload": {"type": "boolean"},
            "timeouts": {"type": "integer", "minimum": 1, "maximum": 254, "default": 3}
        }
    }})
}

const JSON: (&str, &str) = ("Content-Type", "application/json");

#[test]
fn json_bodies() {
    let (answer, _) = run(
        body_schema(),
        "POST",
        &[JSON],
        Some(r#"{"boolean_payload": true}"#),
    );
    assert_eq!(
        answer,
        Some((400, "property \"required_payload\" is required".into()))
    );
    let (answer, ctx) = run(
        body_schema(),
        "POST",
        &[JSON],
        Some(r#"{"boolean_payload": true, "required_payload": "a/b"}"#),
    );
    assert_eq!(answer, None);
    // What goes upstream is the checked document, re-encoded by cjson, defaults included.
    assert_eq!(
        ctx.request_body
            .as_deref()
            .map(String::from_utf8_lossy)
            .as_deref(),
        Some(r#"{"boolean_payload":true,"required_payload":"a\/b","timeouts":3}"#)
    );
    let (answer, _) = run(
        body_schema(),
        "POST",
        &[JSON],
        Some(r#"{"required_payload": 1}"#),
    );
    assert_eq!(
        answer,
        Some((400, "property \"required_payload\" validation failed: wrong type: expected string, got number".into()))
    );
    // Without a Content-Type the body is JSON too; decoding errors are cjson's.
    let (answer, _) = run(body_schema(), "POST", &[], Some("{bad"));
    assert_eq!(
        answer,
        Some((
            400,
            "Expected object key string but found invalid token at character 2".into()
        ))
    );
    let (answer, _) = run(body_schema(), "POST", &[JSON], Some("null"));
    assert_eq!(
        answer,
        Some((400, "wrong type: expected object, got userdata".into()))
    );
}

#[test]
fn missing_or_odd_bodies_get_the_page() {
    for body in [None, Some("false")] {
        let (answer, _) = run(body_schema(), "POST", &[JSON], body);
        let (status, page) = answer.expect("rejected");
        assert_eq!(status, 400);
        assert!(page.contains("<title>400 Bad Request</title>"), "{page}");
    }
    let mut conf = body_schema();
    conf["rejected_msg"] = json!("customize reject message for body_schema.required");
    let (answer, _) = run(conf, "GET", &[], None);
    assert_eq!(
        answer,
        Some((
            400,
            "customize reject message for body_schema.required".into()
        ))
    );
    let (answer, _) = run(body_schema(), "POST", &[JSON], Some("[1e999]"));
    assert_eq!(answer.map(|a| a.0), Some(500));
}

#[test]
fn body_size_limit_and_duplicated_content_type() {
    let mut conf = body_schema();
    conf["max_req_body_size"] = json!(10);
    let body = r#"{"required_payload": "this body is well over ten bytes"}"#;
    let (answer, _) = run(conf.clone(), "POST", &[JSON], Some(body));
    assert_eq!(answer.map(|a| a.0), Some(400));
    let (answer, _) = run(
        conf,
        "POST",
        &[JSON, ("Content-Length", "1000")],
        Some("{}"),
    );
    assert_eq!(answer.map(|a| a.0), Some(400));
    let mut conf = body_schema();
    conf["rejected_msg"] = json!("duplicated content-type");
    let (answer, _) = run(
        conf,
        "POST",
        &[("Content-Type", "application/x-www-form-urlencoded"), JSON],
        Some(r#"{"required_payload": "hello"}"#),
    );
    assert_eq!(answer, Some((400, "duplicated content-type".into())));
}

#[test]
fn form_bodies() {
    let form = (
        "Content-Type",
        "Application/X-WWW-Form-Urlencoded; charset=utf-8",
    );
    let body = format!("{}required_payload=101-hello", "a=b&".repeat(101));
    let (answer, ctx) = run(body_schema(), "POST", &[form], Some(&body));
    assert_eq!(answer, None);
    // Form bodies go upstream as they came.
    assert_eq!(ctx.request_body.as_deref(), Some(body.as_bytes()));
    let (answer, _) = run(body_schema(), "POST", &[form], Some("required_payload"));
    assert_eq!(
        answer,
        Some((400, "property \"required_payload\" validation failed: wrong type: expected string, got boolean".into()))
    );
    assert_eq!(
        form_table(b"a=1&a=2&b&=x&c=%41+b&&d="),
        json!({"a": ["1", "2"], "b": true, "c": "A b", "d": ""})
    );
}

#[test]
fn headers() {
    let conf = json!({"header_schema": {
        "type": "object",
        "required": ["required_payload", "Content-Type"],
        "properties": {"required_payload": {"type": "string", "enum": ["a", "b"]}, "x_multi": {"type": "array"}}
    }, "rejected_code": 505});
    let (answer, _) = run(conf.clone(), "GET", &[JSON], None);
    assert_eq!(
        answer,
        Some((505, "property \"required_payload\" is required".into()))
    );
    let (answer, _) = run(conf.clone(), "GET", &[("required_payload", "a")], None);
    assert_eq!(
        answer,
        Some((505, "property \"Content-Type\" is required".into()))
    );
    let (answer, _) = run(
        conf.clone(),
        "GET",
        &[JSON, ("required_payload", "c")],
        None,
    );
    assert_eq!(
        answer,
        Some((
            505,
            "property \"required_payload\" validation failed: matches none of the enum values"
                .into()
        ))
    );
    let multi = [
        JSON,
        ("required_payload", "a"),
        ("x-multi", "1"),
        ("x-multi", "2"),
    ];
    assert_eq!(run(conf.clone(), "GET", &multi, None).0, None);
    let single = [JSON, ("required_payload", "a"), ("x-multi", "1")];
    assert_eq!(
        run(conf, "GET", &single, None).0,
        Some((
            505,
            "property \"x_multi\" validation failed: wrong type: expected array, got string".into()
        ))
    );
}

#[test]
fn only_body_schemas_read_the_body() {
    assert!(!plugin(NAME, json!({"header_schema": {"type": "object"}})).wants_request_body());
    assert!(plugin(NAME, body_schema()).wants_request_body());
}

#[test]
fn schemas_are_checked_when_written() {
    assert_eq!(
        check(&json!({"body_schema": {"type": "test"}})),
        Err("invalid JSON type: test".into())
    );
    assert_eq!(
        check(&json!({"header_schema": {"required": "x"}})),
        Err("bad argument #1 to 'ipairs' (table expected, got string)".into())
    );
    assert_eq!(check(&body_schema()), Ok(()));
}
