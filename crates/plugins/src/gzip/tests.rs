//! gzip decisions and streaming on real contexts (cases from APISIX's `t/plugin/gzip.t`).

use std::io::Read;

use super::*;
use crate::response_rewrite::tests::{accepted, refused};
use crate::testing::{ctx_for, get, plugin};
use http::{HeaderMap, HeaderName};

/// A GET with `request` headers answered by `status` with `response` headers.
fn exchange(req: http::request::Builder, status: u16, response: &[(&str, &str)]) -> Ctx {
    let mut ctx = ctx_for(req);
    let mut headers = HeaderMap::new();
    for (n, v) in response {
        headers.append(
            HeaderName::from_bytes(n.as_bytes()).expect("name"),
            HeaderValue::from_str(v).expect("value"),
        );
    }
    ctx.response = Some(ResponseHead {
        status: StatusCode::from_u16(status).expect("status"),
        headers,
    });
    ctx
}

fn accepting() -> http::request::Builder {
    get("/").header("Accept-Encoding", "gzip")
}

fn html(len: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        ("Content-Type", "text/html; charset=utf-8"),
        ("Content-Length", len),
    ]
}

fn header<'a>(ctx: &'a Ctx, name: &str) -> Vec<&'a str> {
    ctx.response
        .as_ref()
        .map(|h| {
            h.headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether gzip compresses this exchange.
fn compresses(
    conf: Value,
    req: http::request::Builder,
    status: u16,
    resp: &[(&str, &str)],
) -> bool {
    let p = plugin(NAME, conf);
    let mut ctx = exchange(req, status, resp);
    p.header_filter(&mut ctx);
    header(&ctx, "content-encoding") == ["gzip"]
}

#[test]
fn schema_like_apisix() {
    accepted(NAME, json!({}));
    accepted(
        NAME,
        json!({"types": "*", "http_version": 1.0, "vary": true, "comp_level": 9}),
    );
    let cases = [
        (json!({"types": []}), "property \"types\" validation failed: object matches none of the required"),
        (json!({"min_length": 0}), "property \"min_length\" validation failed: expected 0 to be at least 1"),
        (json!({"comp_level": 10}), "property \"comp_level\" validation failed: expected 10 to be at most 9"),
        (json!({"http_version": 2}), "property \"http_version\" validation failed: matches none of the enum values"),
        (json!({"buffers": {"number": 0}}), "property \"buffers\" validation failed: property \"number\" validation failed: expected 0 to be at least 1"),
        (json!({"buffers": {"size": 0}}), "property \"buffers\" validation failed: property \"size\" validation failed: expected 0 to be at least 1"),
        (json!({"vary": 0}), "property \"vary\" validation failed: wrong type: expected boolean, got number"),
    ];
    for (conf, msg) in cases {
        assert_eq!(refused(NAME, conf), msg);
    }
}

#[test]
fn compresses_matching_responses_only() {
    let on = json!({});
    assert!(compresses(on.clone(), accepting(), 200, &html("20")));
    // Parameters of the type do not matter; the type and its length do.
    assert!(!compresses(on.clone(), accepting(), 200, &html("19")));
    assert!(compresses(
        on.clone(),
        accepting(),
        200,
        &[("Content-Type", "text/html")]
    ));
    assert!(!compresses(
        on.clone(),
        accepting(),
        200,
        &[("Content-Type", "text/plain")]
    ));
    assert!(!compresses(
        json!({"types": "*"}),
        accepting(),
        200,
        &[("Content-Length", "100")]
    ));
    assert!(compresses(
        json!({"types": "*"}),
        accepting(),
        200,
        &[("Content-Type", "x/y")]
    ));
    assert!(compresses(
        json!({"types": ["text/plain", "text/xml"]}),
        accepting(),
        200,
        &[("Content-Type", "text/xml;charset=utf-8")]
    ));
    // nginx's filter: status, client, encoding, method, proxies.
    for status in [403, 404] {
        assert!(compresses(on.clone(), accepting(), status, &html("100")));
    }
    assert!(!compresses(on.clone(), accepting(), 500, &html("100")));
    assert!(!compresses(on.clone(), get("/"), 200, &html("100")));
    for ae in [
        "deflate, br",
        "gzip;q=0",
        "gzip; q=0.000, br",
        "xgzip",
        "gzipx",
    ] {
        let req = get("/").header("Accept-Encoding", ae);
        assert!(!compresses(on.clone(), req, 200, &html("100")), "{ae}");
    }
    for ae in ["GZIP", "br, gzip", "gzip;q=0.5", "deflate,gzip ;q=1"] {
        let req = get("/").header("Accept-Encoding", ae);
        assert!(compresses(on.clone(), req, 200, &html("100")), "{ae}");
    }
    let mut encoded = html("100");
    encoded.push(("Content-Encoding", "br"));
    assert!(!compresses(on.clone(), accepting(), 200, &encoded));
    let head = http::Request::builder()
        .method("HEAD")
        .uri("/")
        .header("Accept-Encoding", "gzip");
    assert!(!compresses(on.clone(), head, 200, &html("100")));
    let via = accepting().header("Via", "1.1 proxy");
    assert!(!compresses(on.clone(), via, 200, &html("100")));
    // HTTP/1.0 only with http_version 1.0.
    let old = || accepting().version(http::Version::HTTP_10);
    assert!(!compresses(on.clone(), old(), 200, &html("100")));
    assert!(compresses(
        json!({"http_version": 1.0}),
        old(),
        200,
        &html("100")
    ));
    let h2 = accepting().version(http::Version::HTTP_2);
    assert!(compresses(on, h2, 200, &html("100")));
}

#[test]
fn headers_of_a_compressed_response() {
    let p = plugin(NAME, json!({"vary": true}));
    let mut resp = html("100");
    resp.extend([
        ("Vary", "upstream"),
        ("ETag", "\"abc\""),
        ("Accept-Ranges", "bytes"),
    ]);
    let mut ctx = exchange(accepting(), 200, &resp);
    p.header_filter(&mut ctx);
    assert_eq!(header(&ctx, "content-encoding"), ["gzip"]);
    assert!(header(&ctx, "content-length").is_empty());
    assert!(header(&ctx, "accept-ranges").is_empty());
    assert_eq!(header(&ctx, "vary"), ["upstream", "Accept-Encoding"]);
    assert_eq!(header(&ctx, "etag"), ["W/\"abc\""]);
    // Vary goes on whenever the plugin's own checks pass, even for a client without gzip.
    let mut ctx = exchange(get("/"), 200, &html("100"));
    p.header_filter(&mut ctx);
    assert!(header(&ctx, "content-encoding").is_empty());
    assert_eq!(header(&ctx, "vary"), ["Accept-Encoding"]);
}

#[test]
fn streams_a_body_that_decompresses_to_the_original() {
    let p = plugin(
        NAME,
        json!({"comp_level": 6, "buffers": {"number": 4, "size": 1000}}),
    );
    let mut ctx = exchange(accepting(), 200, &html("100"));
    p.header_filter(&mut ctx);
    let body: Vec<u8> = (0..200_000u32)
        .flat_map(|i| (i % 1000).to_string().into_bytes())
        .collect();
    let mut gz = Vec::new();
    for part in body.chunks(4096) {
        let mut chunk = Bytes::copy_from_slice(part);
        p.body_filter(&mut ctx, &mut chunk, false);
        assert_eq!(chunk.len() % 1000, 0, "whole buffers only");
        gz.extend_from_slice(&chunk);
    }
    let mut last = Bytes::new();
    p.body_filter(&mut ctx, &mut last, true);
    gz.extend_from_slice(&last);
    assert!(gz.len() < body.len() / 2);
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut out)
        .expect("gzip");
    assert_eq!(out, body);
}

#[test]
fn one_gzip_per_response() {
    let f = crate::testing::Fixture::new();
    let global = f.chain(json!({"gzip": {"types": "*"}}), "ws/default/global_rules/1");
    let route = f.chain(
        json!({"gzip": {"types": "*"}}),
        "ws/default/plugin_configs/t",
    );
    let mut ctx = exchange(accepting(), 200, &[("Content-Type", "text/plain")]);
    global.header_filter(&mut ctx);
    route.header_filter(&mut ctx);
    assert_eq!(header(&ctx, "content-encoding"), ["gzip"]);
    let mut chunk = Bytes::from_static(b"hello hello hello hello");
    global.body_filter(&mut ctx, &mut chunk, true);
    route.body_filter(&mut ctx, &mut chunk, true);
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&chunk[..])
        .read_to_end(&mut out)
        .expect("compressed once");
    assert_eq!(out, b"hello hello hello hello");
}
