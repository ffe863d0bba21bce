//! cors behaviour: preflight answers, origin resolution in every mode, headers on responses.

use super::*;
use crate::testing::{ctx_for, Fixture};
use crate::{Conf, ResponseHead};
use http::HeaderMap;
use serde_json::json;

fn cors(conf: Value, metadata: Option<Value>) -> Arc<dyn Plugin> {
    let mut f = Fixture::new();
    if let Some(m) = metadata {
        f.metadata.insert(NAME.to_string(), m);
    }
    let entry = f
        .compiler()
        .entry(Conf {
            name: NAME,
            conf: &conf,
            owner: "ws/default/plugin_configs/t",
        })
        .expect("cors builds")
        .expect("enabled");
    entry.plugin().clone()
}

/// Runs rewrite then header_filter on an upstream response carrying `upstream` headers; the
/// early answer (if any) and the response headers.
fn run(
    p: &Arc<dyn Plugin>,
    method: &str,
    origin: Option<&str>,
    extra: &[(&str, &str)],
) -> (Option<Reply>, HeaderMap) {
    let mut req = http::Request::builder().method(method).uri("/hello");
    if let Some(o) = origin {
        req = req.header("Origin", o);
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let mut ctx = ctx_for(req);
    let early = match p.rewrite(&mut ctx) {
        Flow::Respond(r) => Some(r),
        _ => None,
    };
    if early.is_none() {
        // The gateway hands the request headers to the upstream before header_filter.
        ctx.headers = HeaderMap::new();
    }
    ctx.response = Some(ResponseHead {
        status: early.as_ref().map_or(StatusCode::OK, |r| r.status),
        headers: early
            .as_ref()
            .map(|r| r.headers.clone())
            .unwrap_or_default(),
    });
    p.header_filter(&mut ctx);
    (early, ctx.response.map(|r| r.headers).unwrap_or_default())
}

fn h<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn acao(headers: &HeaderMap) -> Option<&str> {
    h(headers, "access-control-allow-origin")
}

#[test]
fn defaults_and_preflight() {
    let p = cors(json!({}), None);
    let (early, headers) = run(&p, "OPTIONS", Some("http://x.com"), &[]);
    let early = early.expect("OPTIONS is answered");
    assert_eq!(early.status, StatusCode::OK);
    assert!(early.body.is_empty());
    assert_eq!(acao(&headers), Some("*"));
    assert_eq!(h(&headers, "access-control-allow-methods"), Some("*"));
    assert_eq!(h(&headers, "access-control-allow-headers"), Some("*"));
    assert_eq!(h(&headers, "access-control-max-age"), Some("5"));
    assert_eq!(h(&headers, "access-control-expose-headers"), None);
    assert_eq!(h(&headers, "access-control-allow-credentials"), None);
    assert_eq!(h(&headers, "vary"), None);
    // A GET passes to the upstream and gets the same headers, with or without Origin.
    let (early, headers) = run(&p, "GET", None, &[]);
    assert!(early.is_none());
    assert_eq!(acao(&headers), Some("*"));
}

#[test]
fn origin_lists() {
    let p = cors(
        json!({"allow_origins": "http://a.com,https://b.com:8443", "allow_methods": "GET,POST",
            "allow_headers": "x-a", "expose_headers": "x-b", "max_age": 600}),
        None,
    );
    let (_, headers) = run(&p, "GET", Some("https://b.com:8443"), &[]);
    assert_eq!(acao(&headers), Some("https://b.com:8443"));
    assert_eq!(
        h(&headers, "access-control-allow-methods"),
        Some("GET,POST")
    );
    assert_eq!(h(&headers, "access-control-allow-headers"), Some("x-a"));
    assert_eq!(h(&headers, "access-control-expose-headers"), Some("x-b"));
    assert_eq!(h(&headers, "access-control-max-age"), Some("600"));
    assert_eq!(h(&headers, "vary"), Some("Origin"));
    let (_, headers) = run(&p, "GET", Some("http://b.com"), &[]);
    assert_eq!(acao(&headers), None);
    assert_eq!(h(&headers, "access-control-allow-methods"), None);
    assert_eq!(h(&headers, "vary"), Some("Origin"));
    let (_, headers) = run(&p, "GET", None, &[]);
    assert_eq!(acao(&headers), None);
    // One origin: only that origin.
    let one = cors(json!({"allow_origins": "http://a.com"}), None);
    assert_eq!(
        acao(&run(&one, "GET", Some("http://a.com"), &[]).1),
        Some("http://a.com")
    );
    assert_eq!(acao(&run(&one, "GET", Some("http://c.com"), &[]).1), None);
    assert_eq!(acao(&run(&one, "GET", None, &[]).1), None);
}

#[test]
fn forced_wildcards_with_credentials() {
    let p = cors(
        json!({"allow_origins": "**", "allow_methods": "**", "allow_headers": "**",
            "expose_headers": "x-e", "allow_credential": true}),
        None,
    );
    let (_, headers) = run(
        &p,
        "GET",
        Some("http://any.org"),
        &[("Access-Control-Request-Headers", "x-one,x-two")],
    );
    assert_eq!(acao(&headers), Some("http://any.org"));
    assert_eq!(
        h(&headers, "access-control-allow-methods"),
        Some(ALL_METHODS)
    );
    assert_eq!(
        h(&headers, "access-control-allow-headers"),
        Some("x-one,x-two")
    );
    assert_eq!(
        h(&headers, "access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(h(&headers, "vary"), Some("Origin"));
    // Without an Origin, `**` allows `*`; without requested headers none are echoed.
    let (_, headers) = run(&p, "GET", None, &[]);
    assert_eq!(acao(&headers), Some("*"));
    assert_eq!(h(&headers, "access-control-allow-headers"), None);
}

#[test]
fn upstream_headers_are_replaced_and_vary_appended() {
    let p = cors(json!({"allow_origins": "http://a.com"}), None);
    let mut ctx = ctx_for(
        http::Request::builder()
            .uri("/")
            .header("Origin", "http://a.com"),
    );
    assert!(p.rewrite(&mut ctx).is_continue());
    let mut upstream = HeaderMap::new();
    upstream.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    upstream.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
    ctx.response = Some(ResponseHead {
        status: StatusCode::OK,
        headers: upstream,
    });
    // A later plugin changing the request's Origin does not change the answer.
    ctx.headers
        .insert(ORIGIN, HeaderValue::from_static("http://evil.com"));
    p.header_filter(&mut ctx);
    let headers = ctx.response.expect("response").headers;
    assert_eq!(acao(&headers), Some("http://a.com"));
    let vary: Vec<_> = headers.get_all(VARY).iter().collect();
    assert_eq!(vary, ["Accept-Encoding", "Origin"]);
}

#[test]
fn regex_origins() {
    let p = cors(
        json!({"allow_origins_by_regex": [".*\\.test\\.com$", "^http://exact\\.org$"],
            "allow_origins": "http://listed.com"}),
        None,
    );
    assert_eq!(
        acao(&run(&p, "GET", Some("http://a.test.com"), &[]).1),
        Some("http://a.test.com")
    );
    assert_eq!(
        acao(&run(&p, "GET", Some("http://exact.org"), &[]).1),
        Some("http://exact.org")
    );
    assert_eq!(
        acao(&run(&p, "GET", Some("http://a.test.com.evil"), &[]).1),
        None
    );
    // The regexes replace allow_origins.
    assert_eq!(
        acao(&run(&p, "GET", Some("http://listed.com"), &[]).1),
        None
    );
    assert_eq!(acao(&run(&p, "GET", None, &[]).1), None);
}

#[test]
fn metadata_origins() {
    let metadata = json!({"allow_origins": {
        "company": "https://company.com,https://www.company.com",
        "partner": "http://partner.net",
        "all": "*"
    }});
    let p = cors(
        json!({"allow_origins_by_metadata": ["company", "partner"]}),
        Some(metadata.clone()),
    );
    assert_eq!(
        acao(&run(&p, "GET", Some("https://www.company.com"), &[]).1),
        Some("https://www.company.com")
    );
    assert_eq!(
        acao(&run(&p, "GET", Some("http://partner.net"), &[]).1),
        Some("http://partner.net")
    );
    // allow_origins stays `*` by default, so the metadata alone decides.
    assert_eq!(acao(&run(&p, "GET", Some("http://other.org"), &[]).1), None);
    // With allow_origins set, it is tried when the metadata does not allow the origin.
    let p = cors(
        json!({"allow_origins_by_metadata": ["partner"], "allow_origins": "http://own.io"}),
        Some(metadata.clone()),
    );
    assert_eq!(
        acao(&run(&p, "GET", Some("http://own.io"), &[]).1),
        Some("http://own.io")
    );
    assert_eq!(
        acao(&run(&p, "GET", Some("http://partner.net"), &[]).1),
        Some("http://partner.net")
    );
    assert_eq!(acao(&run(&p, "GET", Some("http://nope.io"), &[]).1), None);
    // A `*` entry allows any origin, echoed back.
    let p = cors(
        json!({"allow_origins_by_metadata": ["all"]}),
        Some(metadata.clone()),
    );
    assert_eq!(
        acao(&run(&p, "GET", Some("http://x.y"), &[]).1),
        Some("http://x.y")
    );
    // Without metadata nothing is allowed; a key the metadata lacks fails the header filter.
    let p = cors(json!({"allow_origins_by_metadata": ["company"]}), None);
    assert_eq!(
        acao(&run(&p, "GET", Some("https://company.com"), &[]).1),
        None
    );
    let p = cors(
        json!({"allow_origins_by_metadata": ["missing", "all"], "allow_origins": "http://own.io"}),
        Some(metadata),
    );
    let (_, headers) = run(&p, "GET", Some("http://own.io"), &[]);
    assert!(headers.is_empty(), "{headers:?}");
}

#[test]
fn timing_allow_origin() {
    let p = cors(
        json!({"timing_allow_origins": "http://a.com,http://b.com"}),
        None,
    );
    let (_, headers) = run(&p, "GET", Some("http://b.com"), &[]);
    assert_eq!(h(&headers, "timing-allow-origin"), Some("http://b.com"));
    assert_eq!(acao(&headers), Some("*"));
    let (_, headers) = run(&p, "GET", Some("http://c.com"), &[]);
    assert_eq!(h(&headers, "timing-allow-origin"), None);
    let p = cors(json!({"timing_allow_origins": "*"}), None);
    assert_eq!(
        h(
            &run(&p, "GET", Some("http://c.com"), &[]).1,
            "timing-allow-origin"
        ),
        Some("*")
    );
    let p = cors(
        json!({"timing_allow_origins": "http://a.com", "timing_allow_origins_by_regex": ["\\.org$"]}),
        None,
    );
    assert_eq!(
        h(
            &run(&p, "GET", Some("http://x.org"), &[]).1,
            "timing-allow-origin"
        ),
        Some("http://x.org")
    );
    assert_eq!(
        h(
            &run(&p, "GET", Some("http://a.com"), &[]).1,
            "timing-allow-origin"
        ),
        None
    );
}

#[test]
fn checks() {
    let err = |conf: Value| check(&conf).expect_err("refused");
    for conf in [
        json!({"allow_credential": true, "allow_origins": "*", "allow_methods": "GET", "allow_headers": "x"}),
        json!({"allow_credential": true, "allow_origins": "http://a.com", "allow_methods": "*", "allow_headers": "x"}),
        json!({"allow_credential": true, "allow_origins": "http://a.com", "allow_methods": "GET", "allow_headers": "*"}),
        json!({"allow_credential": true, "allow_origins": "**", "allow_methods": "**", "allow_headers": "**", "expose_headers": "*"}),
        json!({"allow_credential": true, "allow_origins": "**", "allow_methods": "**", "allow_headers": "**", "timing_allow_origins": "*"}),
    ] {
        assert_eq!(err(conf), CREDENTIAL_STAR);
    }
    assert_eq!(
        check(
            &json!({"allow_credential": true, "allow_origins": "**", "allow_methods": "**", "allow_headers": "**"})
        ),
        Ok(())
    );
    assert_eq!(
        err(json!({"allow_origins_by_regex": ["(bad"]})),
        "pcre_compile() failed: missing ) in \"(bad\""
    );
    assert!(err(json!({"timing_allow_origins_by_regex": ["(?<=x)y"]})).contains("look-around"));
}
