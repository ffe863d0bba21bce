//! response-rewrite behaviour on real contexts: checks, headers, bodies streamed through
//! `body_filter`.

use std::io::{Read, Write};

use super::*;
use crate::testing::{ctx_for, get, plugin};
use crate::ResponseHead;
use http::HeaderMap;
use serde_json::json;

/// The message a configuration is refused with (without the `failed to check` prefix).
pub(crate) fn refused(name: &str, conf: Value) -> String {
    let obj = json!({"id": "1", "plugins": {name: conf}});
    let err = portico_model::check(portico_model::Kind::PluginConfig, &obj, &crate::registry())
        .expect_err("refused");
    let prefix = format!("failed to check the configuration of plugin {name} err: ");
    err.strip_prefix(&prefix).unwrap_or(&err).to_string()
}

pub(crate) fn accepted(name: &str, conf: Value) {
    let obj = json!({"id": "1", "plugins": {name: conf}});
    if let Err(e) =
        portico_model::check(portico_model::Kind::PluginConfig, &obj, &crate::registry())
    {
        panic!("refused: {e}");
    }
}

/// A context whose response head is `status` with `headers`.
fn responding(uri: &str, status: u16, headers: &[(&str, &str)]) -> Ctx {
    let mut ctx = ctx_for(get(uri));
    let mut map = HeaderMap::new();
    for (n, v) in headers {
        map.append(
            HeaderName::from_bytes(n.as_bytes()).expect("name"),
            HeaderValue::from_str(v).expect("value"),
        );
    }
    ctx.response = Some(ResponseHead {
        status: StatusCode::from_u16(status).expect("status"),
        headers: map,
    });
    ctx
}

/// Streams `chunks` through `body_filter`, then the `eof` call; returns what went out.
fn stream(p: &Arc<dyn Plugin>, ctx: &mut Ctx, chunks: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in chunks {
        let mut chunk = Bytes::copy_from_slice(c);
        p.body_filter(ctx, &mut chunk, false);
        out.extend_from_slice(&chunk);
    }
    let mut last = Bytes::new();
    p.body_filter(ctx, &mut last, true);
    out.extend_from_slice(&last);
    out
}

fn head(ctx: &Ctx) -> &ResponseHead {
    ctx.response.as_ref().expect("response")
}

fn header<'a>(ctx: &'a Ctx, name: &str) -> Vec<&'a str> {
    head(ctx)
        .headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect()
}

#[test]
fn schema_and_checks_like_apisix() {
    accepted(NAME, json!({"status_code": 200, "body": "x"}));
    accepted(NAME, json!({"headers": {"add": ["X-Server-test:a"]}}));
    assert_eq!(
        refused(NAME, json!({"status_code": 599})),
        "property \"status_code\" validation failed: expected 599 to be at most 598"
    );
    assert_eq!(
        refused(NAME, json!({"body": 1})),
        "property \"body\" validation failed: wrong type: expected string, got number"
    );
    assert_eq!(
        refused(NAME, json!({"headers": {"": 2}})),
        "invalid field length in header"
    );
    assert_eq!(
        refused(NAME, json!({"headers": {"X-Name": {}}})),
        "invalid type as header value"
    );
    for conf in [
        json!({"body": "1", "body_base64": true}),
        json!({"body": "", "body_base64": true}),
        json!({"body_base64": true}),
    ] {
        assert_eq!(refused(NAME, conf), "invalid base64 content");
    }
    assert_eq!(
        refused(NAME, json!({"vars": [[]]})),
        "failed to validate the 'vars' expression: rule too short"
    );
    assert_eq!(
        refused(NAME, json!({"filters": []})),
        "property \"filters\" validation failed: expect array to have at least 1 items"
    );
    assert_eq!(
        refused(NAME, json!({"filters": [{"regex": "l"}]})),
        "property \"filters\" validation failed: failed to validate item 1: property \"replace\" is required"
    );
    assert_eq!(
        refused(NAME, json!({"filters": [{"regex": "l", "replace": "x", "scope": "all"}]})),
        "property \"filters\" validation failed: failed to validate item 1: property \"scope\" validation failed: matches none of the enum values"
    );
    assert_eq!(
        refused(
            NAME,
            json!({"filters": [{"regex": "hello", "replace": "x", "options": "h"}]})
        ),
        "regex \"hello\" validation failed: unknown flag \"h\" (flags \"h\")"
    );
    // body and filters exclude each other.
    assert_eq!(
        refused(
            NAME,
            json!({"body": "x", "filters": [{"regex": "a", "replace": "b"}]})
        ),
        "failed to validate dependent schema for \"body\": value wasn't supposed to match schema"
    );
    for headers in [
        json!({"add": ["X-A"]}),
        json!({"add": ["X-A: http://x/"]}),
        json!({"set": {}}),
        json!({"remove": ["X:A"]}),
        json!({"add": []}),
    ] {
        assert_eq!(
            refused(NAME, json!({"headers": headers})),
            "property \"headers\" validation failed: object matches none of the required"
        );
    }
    // Portico's own: what APISIX would fail on at run time.
    assert!(
        refused(NAME, json!({"headers": {"add": ["X A: b"]}})).contains("invalid header to add")
    );
    assert!(refused(NAME, json!({"headers": {"X Y": "1"}})).contains("invalid header name"));
    assert!(
        refused(NAME, json!({"filters": [{"regex": "a", "replace": "$x"}]}))
            .contains("invalid capturing variable name")
    );
}

#[test]
fn base64_like_nginx() {
    assert_eq!(decode_base64("aGVsbG8="), Some(b"hello".to_vec()));
    assert_eq!(decode_base64("aGVsbG8"), Some(b"hello".to_vec()));
    assert_eq!(decode_base64("aGVsbG8=garbage!"), Some(b"hello".to_vec()));
    assert_eq!(decode_base64("aGVsbA"), Some(b"hell".to_vec()));
    assert_eq!(decode_base64("a"), None);
    assert_eq!(decode_base64("a*bc"), None);
    assert_eq!(decode_base64(""), Some(Vec::new()));
}

#[test]
fn status_headers_and_variables() {
    let p = plugin(
        NAME,
        json!({
            "status_code": 403,
            "headers": {
                "add": ["Set-Cookie: a=1; Max-Age=10", "X-Route: $uri-$status"],
                "set": {"X-Server": "$arg_s", "X-Num": 3, "X-Gone": ""},
                "remove": ["X-Internal"]
            }
        }),
    );
    let mut ctx = responding(
        "/p?s=one",
        200,
        &[
            ("Set-Cookie", "b=2"),
            ("X-Gone", "x"),
            ("X-Internal", "secret"),
            ("Content-Length", "5"),
        ],
    );
    p.header_filter(&mut ctx);
    assert_eq!(head(&ctx).status, 403);
    assert_eq!(header(&ctx, "set-cookie"), ["b=2", "a=1; Max-Age=10"]);
    assert_eq!(header(&ctx, "x-route"), ["/p-403"]);
    assert_eq!(header(&ctx, "x-server"), ["one"]);
    assert_eq!(header(&ctx, "x-num"), ["3"]);
    assert!(header(&ctx, "x-gone").is_empty());
    assert!(header(&ctx, "x-internal").is_empty());
    // The body is not changed: its length stands, chunks pass.
    assert_eq!(header(&ctx, "content-length"), ["5"]);
    assert_eq!(stream(&p, &mut ctx, &[b"hello"]), b"hello");
}

#[test]
fn flat_headers_are_set() {
    let p = plugin(
        NAME,
        json!({"headers": {"X-Server-id": 3, "X-Server-status": "on"}}),
    );
    let mut ctx = responding("/", 200, &[("X-Server-status", "off")]);
    p.header_filter(&mut ctx);
    assert_eq!(header(&ctx, "x-server-id"), ["3"]);
    assert_eq!(header(&ctx, "x-server-status"), ["on"]);
}

#[test]
fn vars_decide_on_the_response() {
    let p = plugin(
        NAME,
        json!({"body": "new body3\n", "status_code": 403, "vars": [["status", "==", 500]]}),
    );
    let mut ctx = responding("/", 500, &[("Content-Length", "3")]);
    p.header_filter(&mut ctx);
    assert_eq!(head(&ctx).status, 403);
    assert!(header(&ctx, "content-length").is_empty());
    assert_eq!(stream(&p, &mut ctx, &[b"a", b"bc"]), b"new body3\n");
    let mut ctx = responding("/", 200, &[("Content-Length", "5")]);
    p.header_filter(&mut ctx);
    assert_eq!(head(&ctx).status, 200);
    assert_eq!(header(&ctx, "content-length"), ["5"]);
    assert_eq!(stream(&p, &mut ctx, &[b"hello"]), b"hello");
}

#[test]
fn body_replaces_and_clears_what_described_the_old_one() {
    let p = plugin(NAME, json!({"body": "bmV3IGJvZHk=", "body_base64": true}));
    let mut ctx = responding(
        "/",
        200,
        &[
            ("Content-Length", "10"),
            ("Content-Encoding", "br"),
            ("ETag", "\"x\""),
            ("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT"),
            ("Content-Type", "text/plain"),
        ],
    );
    p.header_filter(&mut ctx);
    for gone in [
        "content-length",
        "content-encoding",
        "etag",
        "last-modified",
    ] {
        assert!(header(&ctx, gone).is_empty(), "{gone}");
    }
    assert_eq!(header(&ctx, "content-type"), ["text/plain"]);
    // The new body goes out with the first chunk; the rest is dropped.
    let mut first = Bytes::from_static(b"old-1");
    p.body_filter(&mut ctx, &mut first, false);
    assert_eq!(&first[..], b"new body");
    assert_eq!(stream(&p, &mut ctx, &[b"old-2"]), b"");
    // An empty upstream body still gets the new one, at its end.
    let mut ctx = responding("/", 204, &[]);
    p.header_filter(&mut ctx);
    assert_eq!(stream(&p, &mut ctx, &[]), b"new body");
    // An empty body replaces too.
    let p = plugin(NAME, json!({"body": ""}));
    let mut ctx = responding("/", 200, &[]);
    p.header_filter(&mut ctx);
    assert_eq!(stream(&p, &mut ctx, &[b"old"]), b"");
}

#[test]
fn filters_hold_the_body_and_apply_in_order() {
    let p = plugin(
        NAME,
        json!({"filters": [
            {"regex": "l", "replace": "L", "scope": "global"},
            {"regex": "(\\w+) (\\w+)", "replace": "$2 $1"},
            {"regex": "WORLD", "replace": "earth", "options": "i"}
        ]}),
    );
    let mut ctx = responding("/", 200, &[("Content-Length", "12")]);
    p.header_filter(&mut ctx);
    assert!(header(&ctx, "content-length").is_empty());
    let mut chunk = Bytes::from_static(b"hello ");
    p.body_filter(&mut ctx, &mut chunk, false);
    assert!(chunk.is_empty(), "held back until the end");
    assert_eq!(stream(&p, &mut ctx, &[b"world\n"]), b"earth heLLo\n");
    // No match: the body is unchanged.
    let mut ctx = responding("/", 200, &[]);
    p.header_filter(&mut ctx);
    assert_eq!(stream(&p, &mut ctx, &[b"abc"]), b"abc");
}

#[test]
fn filters_truncate_at_the_limit() {
    let p = plugin(
        NAME,
        json!({"max_resp_body_size": 5, "filters": [{"regex": "hello", "replace": "HELLO"}]}),
    );
    let mut ctx = responding("/", 200, &[]);
    p.header_filter(&mut ctx);
    assert_eq!(stream(&p, &mut ctx, &[b"hello world\n"]), b"HELLO");
    let mut ctx = responding("/", 200, &[]);
    p.header_filter(&mut ctx);
    assert_eq!(stream(&p, &mut ctx, &[b"hel", b"lo w", b"orld"]), b"HELLO");
}

fn gzip_bytes(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).expect("write");
    enc.finish().expect("finish")
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .expect("gzip");
    out
}

#[test]
fn filters_decode_gzip_and_leave_other_encodings_alone() {
    let p = plugin(
        NAME,
        json!({"filters": [{"regex": "world", "replace": "there"}]}),
    );
    let gz = gzip_bytes(b"hello world");
    let mut ctx = responding("/", 200, &[("Content-Encoding", "gzip")]);
    p.header_filter(&mut ctx);
    assert!(header(&ctx, "content-encoding").is_empty());
    let (a, b) = gz.split_at(7);
    assert_eq!(stream(&p, &mut ctx, &[a, b]), b"hello there");
    // A corrupt gzip body: APISIX logs and sends nothing.
    let mut ctx = responding("/", 200, &[("Content-Encoding", "gzip")]);
    p.header_filter(&mut ctx);
    assert_eq!(stream(&p, &mut ctx, &[b"not gzip"]), b"");
    // br cannot be decoded here: body and headers pass unchanged.
    let mut ctx = responding(
        "/",
        200,
        &[("Content-Encoding", "br"), ("Content-Length", "3")],
    );
    p.header_filter(&mut ctx);
    assert_eq!(header(&ctx, "content-encoding"), ["br"]);
    assert_eq!(header(&ctx, "content-length"), ["3"]);
    assert_eq!(stream(&p, &mut ctx, &[b"\x01\x02\x03"]), b"\x01\x02\x03");
}

#[test]
fn gzip_compresses_what_response_rewrite_made() {
    let f = crate::testing::Fixture::new();
    let chain = f.chain(
        json!({
            "gzip": {"types": "*", "min_length": 1},
            "response-rewrite": {"filters": [{"regex": "world", "replace": "gateway", "scope": "global"}]}
        }),
        "ws/default/plugin_configs/t",
    );
    let mut ctx = responding(
        "/",
        200,
        &[("Content-Type", "text/plain"), ("Content-Length", "22")],
    );
    ctx.headers
        .insert("accept-encoding", HeaderValue::from_static("gzip"));
    chain.header_filter(&mut ctx);
    assert_eq!(header(&ctx, "content-encoding"), ["gzip"]);
    assert!(header(&ctx, "content-length").is_empty());
    let mut out = Vec::new();
    for (c, eof) in [
        (&b"hello world, "[..], false),
        (b"world!!!", false),
        (b"", true),
    ] {
        let mut chunk = Bytes::copy_from_slice(c);
        chain.body_filter(&mut ctx, &mut chunk, eof);
        out.extend_from_slice(&chunk);
    }
    assert_eq!(gunzip(&out), b"hello gateway, gateway!!!");
    // A status nginx does not compress cancels gzip.
    let chain = f.chain(
        json!({
            "gzip": {"types": "*", "min_length": 1},
            "response-rewrite": {"status_code": 500}
        }),
        "ws/default/plugin_configs/t",
    );
    let mut ctx = responding("/", 200, &[("Content-Type", "text/plain")]);
    ctx.headers
        .insert("accept-encoding", HeaderValue::from_static("gzip"));
    chain.header_filter(&mut ctx);
    assert!(header(&ctx, "content-encoding").is_empty());
    let mut chunk = Bytes::from_static(b"plain");
    chain.body_filter(&mut ctx, &mut chunk, true);
    assert_eq!(&chunk[..], b"plain");
}

#[test]
fn response_variables() {
    let p = plugin(
        NAME,
        json!({
            "vars": [["sent_http_x_kind", "==", "page"]],
            "headers": {"set": {"X-Kind-Was": "$upstream_http_x_kind/$upstream_status"}}
        }),
    );
    let mut ctx = responding("/", 200, &[("X-Kind", "page")]);
    ctx.log.upstream_status = Some(200);
    p.header_filter(&mut ctx);
    assert_eq!(header(&ctx, "x-kind-was"), ["page/200"]);
    let mut ctx = responding("/", 200, &[("X-Kind", "api")]);
    p.header_filter(&mut ctx);
    assert!(header(&ctx, "x-kind-was").is_empty());
}
