//! mocking answers on real contexts (cases from APISIX's `t/plugin/mocking.t`).

use super::*;
use crate::response_rewrite::tests::{accepted, refused};
use crate::testing::{ctx_for, get, plugin};

/// The answer to a GET of `uri` (the plugin must answer at once).
fn answer(conf: Value, uri: &str) -> Reply {
    let p = plugin(NAME, conf);
    let mut ctx = ctx_for(get(uri));
    ctx.route_id = "1".into();
    match p.access(&mut ctx) {
        Flow::Respond(r) => r,
        other => panic!("expected an answer, got {other:?}"),
    }
}

fn text(r: &Reply) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

#[test]
fn checks_like_apisix() {
    accepted(NAME, json!({"response_example": "x"}));
    accepted(
        NAME,
        json!({"response_schema": {"type": "object"}, "content_type": "application/xml"}),
    );
    assert_eq!(
        refused(NAME, json!({"delay": 1})),
        "object matches none of the required: [\"response_example\"] or [\"response_schema\"]"
    );
    assert_eq!(
        refused(
            NAME,
            json!({"response_example": "x", "content_type": "image/png"})
        ),
        "unsupported content type!"
    );
    assert_eq!(
        refused(
            NAME,
            json!({"response_example": "x", "content_type": "text/plain ;charset=utf8"})
        ),
        "unsupported content type!"
    );
    // The media type is what precedes the last `;`.
    assert_eq!(
        refused(
            NAME,
            json!({"response_example": "x", "content_type": "text/plain;a=b;charset=utf8"})
        ),
        "unsupported content type!"
    );
    accepted(
        NAME,
        json!({"response_example": "x", "content_type": "text/xml; charset=utf-8"}),
    );
    assert_eq!(
        refused(
            NAME,
            json!({"response_example": "x", "response_status": 99})
        ),
        "property \"response_status\" validation failed: expected 99 to be at least 100"
    );
    assert!(refused(
        NAME,
        json!({"response_example": "x", "response_status": 101})
    )
    .contains("200–999"));
    assert!(refused(
        NAME,
        json!({"response_schema": {}, "content_type": "text/html"})
    )
    .contains("response_schema"));
    assert!(refused(
        NAME,
        json!({"response_example": "x", "response_headers": {"a b": "1"}})
    )
    .contains("invalid header name"));
}

#[test]
fn example_with_variables_and_headers() {
    let r = answer(
        json!({
            "content_type": "text/plain",
            "response_status": 201,
            "response_example": "remote_addr:$remote_addr empty:$foo",
            "response_headers": {"X-Route-Id": "$route_id", "X-Apisix": "is, cool", "X-N": 2}
        }),
        "/hello",
    );
    assert_eq!(r.status, 201);
    assert_eq!(text(&r), "remote_addr:127.0.0.1 empty:");
    assert_eq!(r.headers["content-type"], "text/plain");
    assert_eq!(r.headers["x-mock-by"], MOCK_BY);
    assert!(MOCK_BY.starts_with("Portico/"));
    assert_eq!(r.headers["x-route-id"], "1");
    assert_eq!(r.headers["x-apisix"], "is, cool");
    assert_eq!(r.headers["x-n"], "2");
}

#[test]
fn defaults_and_no_mock_header() {
    let r = answer(
        json!({"response_example": "{\"a\":1}", "with_mock_header": false}),
        "/",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["content-type"], "application/json;charset=utf8");
    assert!(r.headers.get("x-mock-by").is_none());
    assert_eq!(text(&r), "{\"a\":1}");
}

#[test]
fn schema_examples_as_json() {
    let schema = |props: Value| json!({"content_type": "text/plain", "response_schema": {"type": "object", "properties": props}});
    let cases = [
        (
            json!({"field1": {"type": "string", "example": "hello"}}),
            "{\"field1\":\"hello\"}",
        ),
        (
            json!({"field1": {"type": "integer", "example": 4}}),
            "{\"field1\":4}",
        ),
        (
            json!({"field1": {"type": "integer", "example": 4.7}}),
            "{\"field1\":4}",
        ),
        (
            json!({"field1": {"type": "number", "example": 5.5}}),
            "{\"field1\":5.5}",
        ),
        (
            json!({"field1": {"type": "boolean", "example": true}}),
            "{\"field1\":true}",
        ),
        (json!({"field1": {"type": "object"}}), "{\"field1\":{}}"),
        (
            json!({"field1": {"type": "array"}, "f2": {"type": "Null"}}),
            "{}",
        ),
    ];
    for (props, body) in cases {
        assert_eq!(text(&answer(schema(props), "/")), body);
    }
}

#[test]
fn random_values_have_the_schema_s_shape() {
    let s = json!({"type": "object", "properties": {
        "s": {"type": "string"}, "n": {"type": "number"}, "i": {"type": "integer"},
        "b": {"type": "boolean"}, "a": {"type": "array", "items": {"type": "integer"}},
        "o": {"type": "object", "properties": {"x": {"type": "STRING"}}}
    }});
    for seed in 0..50 {
        let v = generate::object(&s, &mut Rng::seeded(seed));
        let st = v["s"].as_str().expect("string");
        assert!((1..=10).contains(&st.len()) && st.bytes().all(|b| b.is_ascii_lowercase()));
        let n = v["n"].as_f64().expect("number");
        assert!((0.0..10000.0).contains(&n));
        let i = v["i"].as_u64().expect("integer");
        assert!((1..=10000).contains(&i));
        assert!(v["b"].is_boolean());
        let a = v["a"].as_array().expect("array");
        assert!((1..=3).contains(&a.len()) && a.iter().all(Value::is_u64));
        assert!(v["o"]["x"].is_string());
    }
    // Each response gets new values.
    let conf =
        json!({"response_schema": {"type": "object", "properties": {"i": {"type": "integer"}}}});
    let bodies: std::collections::HashSet<String> =
        (0..20).map(|_| text(&answer(conf.clone(), "/"))).collect();
    assert!(bodies.len() > 1);
}

#[test]
fn schema_examples_as_xml() {
    let r = answer(
        json!({"content_type": "application/xml", "response_schema": {"type": "object", "properties": {
            "name": {"type": "string", "example": "a<b"},
            "tags": {"type": "array", "items": {"type": "string", "example": "t"}},
            "inner": {"type": "object", "properties": {"n": {"type": "integer", "example": 3}}}
        }}}),
        "/",
    );
    let body = text(&r);
    assert!(
        body.starts_with("<data>\n  <name>a&lt;b</name>\n"),
        "{body}"
    );
    assert!(body.contains("  <tags>t</tags>\n"), "{body}");
    assert!(
        body.ends_with("  <inner>\n    <n>3</n>\n  </inner>\n</data>\n"),
        "{body}"
    );
}

#[tokio::test]
async fn delay_waits_then_answers() {
    let p = plugin(NAME, json!({"response_example": "late", "delay": 1}));
    let mut ctx = ctx_for(get("/"));
    let Flow::Wait(pending) = p.access(&mut ctx) else {
        panic!("a delay waits");
    };
    let started = std::time::Instant::now();
    let resume = pending.await;
    assert!(started.elapsed() >= Duration::from_secs(1));
    let flow = resume(&mut ctx);
    assert_eq!(flow.reply().map(|r| r.body.clone()), Some(b"late".to_vec()));
}
