//! redirect behaviour on real contexts (cases from APISIX's `t/plugin/redirect.t`).

use super::*;
use crate::response_rewrite::tests::{accepted, refused};
use crate::testing::{ctx_for, get, plugin, Fixture};
use crate::Conf;

/// The answer to `req`: status and `Location`, or `None` when the request goes on.
fn answer(conf: Value, req: http::request::Builder) -> Option<(u16, String, Reply)> {
    let p = plugin(NAME, conf);
    let mut ctx = ctx_for(req);
    match p.rewrite(&mut ctx) {
        Flow::Respond(r) => Some((
            r.status.as_u16(),
            r.headers
                .get("location")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string(),
            r,
        )),
        _ => None,
    }
}

fn location(conf: Value, uri: &str) -> (u16, String) {
    let req = get(uri).header("Host", "foo.com");
    let (status, loc, _) = answer(conf, req).expect("redirected");
    (status, loc)
}

#[test]
fn checks_like_apisix() {
    accepted(NAME, json!({"uri": "/test/add"}));
    accepted(
        NAME,
        json!({"regex_uri": ["^/a/(.*)", "/b/$1"], "ret_code": 301}),
    );
    accepted(NAME, json!({"http_to_https": true, "encode_uri": true}));
    let both = refused(NAME, json!({"http_to_https": true, "uri": "/hello"}));
    assert_eq!(
        both,
        "value should match only one schema, but matches both schemas 1 and 3"
    );
    assert_eq!(
        refused(
            NAME,
            json!({"http_to_https": true, "append_query_string": true})
        ),
        "only one of `http_to_https` and `append_query_string` can be configured."
    );
    assert!(refused(NAME, json!({"regex_uri": ["(", "/x"]}))
        .starts_with("invalid regex_uri ((, /x), err:"));
    assert!(refused(NAME, json!({"regex_uri": ["^/a", "/$x"]}))
        .starts_with("invalid regex_uri (^/a, /$x), err:"));
    assert_eq!(
        refused(NAME, json!({"uri": "/a", "ret_code": 199})),
        "property \"ret_code\" validation failed: expected 199 to be at least 200"
    );
    assert!(refused(NAME, json!({"uri": "/a", "ret_code": 1000})).contains("ret_code"));
    assert!(refused(NAME, json!({"uri": "/"})).contains("\"uri\""));
    assert_eq!(
        refused(NAME, json!({"regex_uri": ["a"]})),
        "property \"regex_uri\" validation failed: expect array to have at least 2 items"
    );
}

#[test]
fn uri_templates() {
    assert_eq!(
        location(json!({"uri": "/test/add", "ret_code": 301}), "/hello"),
        (301, "/test/add".to_string())
    );
    assert_eq!(
        location(json!({"uri": "$uri/test/add", "ret_code": 301}), "/hello"),
        (301, "/hello/test/add".to_string())
    );
    assert_eq!(
        location(
            json!({"uri": "$uri/test/a${arg_name}c"}),
            "/hello?name=json"
        ),
        (302, "/hello/test/ajsonc".to_string())
    );
    assert_eq!(
        location(json!({"uri": "/foo$$uri"}), "/hello").1,
        "/foo$/hello"
    );
    assert_eq!(
        location(json!({"uri": "\\$uri/foo$uri\\$uri/bar"}), "/hello").1,
        "\\$uri/foo/hello\\$uri/bar"
    );
    assert_eq!(
        location(json!({"uri": "$uri/$bad_var/bar"}), "/hello").1,
        "/hello//bar"
    );
    assert_eq!(
        location(json!({"uri": "https://$host$request_uri"}), "/hello?a=1").1,
        "https://foo.com/hello?a=1"
    );
    // A backslash not before `$name` is dropped, as APISIX's gmatch skips it.
    assert_eq!(location(json!({"uri": "/a\\b\\$/c"}), "/").1, "/ab$/c");
}

#[test]
fn answers_with_the_nginx_page() {
    let (_, _, reply) = answer(json!({"uri": "/x", "ret_code": 301}), get("/")).expect("redirect");
    let body = String::from_utf8_lossy(&reply.body).into_owned();
    assert!(
        body.contains("<title>301 Moved Permanently</title>"),
        "{body}"
    );
    assert_eq!(reply.headers["content-type"], "text/html");
    let (_, _, reply) = answer(json!({"uri": "/x", "ret_code": 200}), get("/")).expect("answer");
    assert!(reply.body.is_empty());
}

#[test]
fn http_to_https() {
    let conf = json!({"http_to_https": true, "ret_code": 302});
    assert_eq!(
        location(conf.clone(), "/hello?a=1"),
        (301, "https://foo.com:9443/hello?a=1".to_string())
    );
    let post = http::Request::builder()
        .method("POST")
        .uri("/hello")
        .header("Host", "foo.com");
    assert_eq!(answer(conf.clone(), post).map(|a| a.0), Some(308));
    let head = http::Request::builder()
        .method("HEAD")
        .uri("/hello")
        .header("Host", "foo.com");
    assert_eq!(answer(conf.clone(), head).map(|a| a.0), Some(301));
    // X-Forwarded-Proto decides; anything but https redirects.
    let forwarded = |proto: &str| {
        get("/hello")
            .header("Host", "foo.com")
            .header("X-Forwarded-Proto", proto)
    };
    assert!(answer(conf.clone(), forwarded("https")).is_none());
    assert_eq!(
        answer(conf.clone(), forwarded("any")).map(|a| a.0),
        Some(301)
    );
    // Already on TLS: nothing to do.
    let p = plugin(NAME, conf);
    let mut ctx = ctx_for(get("/hello").header("Host", "foo.com"));
    ctx.scheme = "https";
    assert!(p.rewrite(&mut ctx).is_continue());
}

fn with_port(port: u64) -> Arc<dyn Plugin> {
    let mut f = Fixture::new();
    f.metadata
        .insert(NAME.to_string(), json!({"https_port": port}));
    let entry = f
        .compiler()
        .entry(Conf {
            name: NAME,
            conf: &json!({"http_to_https": true}),
            owner: "ws/default/plugin_configs/t",
        })
        .expect("builds")
        .expect("enabled");
    entry.plugin().clone()
}

#[test]
fn https_port_from_metadata() {
    let location_of = |p: Arc<dyn Plugin>| {
        let mut ctx = ctx_for(get("/hello").header("Host", "foo.com:9080"));
        p.rewrite(&mut ctx)
            .reply()
            .and_then(|r| r.headers.get("location").cloned())
    };
    assert_eq!(
        location_of(with_port(8443)).as_ref().map(|v| v.as_bytes()),
        Some(&b"https://foo.com:8443/hello"[..])
    );
    assert_eq!(
        location_of(with_port(443)).as_ref().map(|v| v.as_bytes()),
        Some(&b"https://foo.com/hello"[..])
    );
}

#[test]
fn regex_uri_encode_and_query() {
    let conf = json!({"regex_uri": ["^/test/(.*)", "http://test.com/${1}"], "ret_code": 301});
    assert_eq!(location(conf.clone(), "/test/1").1, "http://test.com/1");
    assert!(
        answer(conf, get("/hello")).is_none(),
        "no match: no redirect"
    );
    let conf = json!({"regex_uri": ["^/test/(.*)", "http://test.com/${1}"], "encode_uri": true});
    let mut ctx = ctx_for(get("/test/with%20space"));
    ctx.path = "/test/with space".to_string();
    let p = plugin(NAME, conf);
    let loc = p
        .rewrite(&mut ctx)
        .reply()
        .and_then(|r| r.headers.get("location").cloned());
    assert_eq!(
        loc.as_ref().map(|v| v.as_bytes()),
        Some(&b"http://test.com/with%20space"[..])
    );
    let conf = json!({"uri": "$uri", "append_query_string": true});
    assert_eq!(
        location(conf.clone(), "/hello?name=json").1,
        "/hello?name=json"
    );
    assert_eq!(location(conf, "/hello").1, "/hello");
    let conf = json!({"uri": "$uri?type=string", "append_query_string": true});
    assert_eq!(
        location(conf, "/hello?name=json").1,
        "/hello?type=string&name=json"
    );
}

#[test]
fn template_grammar() {
    assert_eq!(
        parse_uri("a${b}$c.d\\$e$"),
        vec![
            Seg::Text("a".into()),
            Seg::Var("b".into()),
            Seg::Var("c".into()),
            Seg::Text(".d\\$e$".into())
        ]
    );
    assert_eq!(parse_uri("${ b }"), vec![Seg::Text("${ b }".into())]);
}
