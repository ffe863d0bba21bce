//! proxy-rewrite behaviour through real contexts.

use super::*;
use crate::testing::{ctx_for, get, plugin};
use serde_json::json;

fn rewrite(conf: Value, req: http::request::Builder) -> Ctx {
    let p = plugin(NAME, conf);
    let mut ctx = ctx_for(req);
    assert_eq!(p.rewrite(&mut ctx), Flow::Continue);
    ctx
}

fn upstream_uri(conf: Value, uri: &str) -> String {
    rewrite(conf, get(uri)).upstream_uri.unwrap_or_default()
}

#[test]
fn uri_with_variables_keeps_the_query() {
    assert_eq!(upstream_uri(json!({"uri": "/new"}), "/old?a=1"), "/new?a=1");
    assert_eq!(
        upstream_uri(json!({"uri": "/u/$arg_id/x?y=1"}), "/old?id=7"),
        "/u/7/x?y=1&id=7"
    );
    // `?` in a variable value is escaped; spaces and `%` are escaped by ngx_escape_uri.
    assert_eq!(
        upstream_uri(json!({"uri": "/s/$arg_q"}), "/old?q=a%3Fb%20c"),
        "/s/a%253Fb%20c?q=a%3Fb%20c"
    );
    // Only headers configured: the normalised path is still set (escaped).
    let mut ctx = ctx_for(get("/a%20b"));
    ctx.path = "/a b".to_string();
    let p = plugin(NAME, json!({"headers": {"X-A": "1"}}));
    assert_eq!(p.rewrite(&mut ctx), Flow::Continue);
    assert_eq!(ctx.upstream_uri.as_deref(), Some("/a%20b"));
}

#[test]
fn regex_uri_first_matching_pair() {
    let conf = json!({"regex_uri": ["^/x/(.*)", "/nope/$1", "^/api/(\\w+)/(.*)", "/v2/${1}-$2$$"]});
    assert_eq!(
        upstream_uri(conf.clone(), "/api/users/42?q=1"),
        "/v2/users-42$?q=1"
    );
    // No pattern matches: the URI is unchanged.
    assert_eq!(upstream_uri(conf, "/other"), "/other");
    assert_eq!(
        replacement("a$1${2}$$"),
        Ok(vec![
            Piece::Text("a".into()),
            Piece::Group(1),
            Piece::Group(2),
            Piece::Text("$".into())
        ])
    );
    assert!(replacement("$name").is_err());
    let err = build(&json!({"regex_uri": ["^/a", "/$x"]}), &env()).expect_err("refused");
    assert!(err.contains("invalid capturing variable name"));
}

fn env() -> BuildEnv<'static> {
    static STATE: std::sync::LazyLock<crate::PluginState> =
        std::sync::LazyLock::new(crate::PluginState::default);
    BuildEnv {
        owner: "o",
        state: &STATE,
        metadata: None,
        upstreams: None,
    }
}

#[test]
fn real_request_uri_is_raw() {
    let conf = json!({"use_real_request_uri_unsafe": true});
    assert_eq!(upstream_uri(conf, "/a%2Fb/../c?x=%20"), "/a%2Fb/../c?x=%20");
    let conf = json!({"use_real_request_uri_unsafe": true, "uri": "/n"});
    assert_eq!(upstream_uri(conf, "/o?x=1"), "/n?x=1");
}

#[test]
fn host_and_method() {
    let ctx = rewrite(
        json!({"host": "backend.local:8080", "method": "POST"}),
        get("/"),
    );
    assert_eq!(ctx.upstream_host.as_deref(), Some("backend.local:8080"));
    assert_eq!(ctx.method, Method::POST);
}

#[test]
fn headers_add_set_remove() {
    let conf = json!({
        "regex_uri": ["^/u/(\\d+)", "/user"],
        "headers": {
            "add": {"X-Add": ["a", 1], "X-Id": "$1"},
            "set": {"X-Set": "$uri-${arg_v}", "X-Many": ["m1", "m2"], "X-Num": 1.5},
            "remove": ["X-Drop", "X-Add"]
        }
    });
    let req = get("/u/42?v=9")
        .header("X-Set", "old")
        .header("X-Drop", "x")
        .header("X-Many", "old");
    let ctx = rewrite(conf, req);
    let all = |n: &str| {
        ctx.headers
            .get_all(n)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
    };
    assert_eq!(ctx.upstream_uri.as_deref(), Some("/user?v=9"));
    // add ran, then remove took it away again.
    assert!(all("x-add").is_empty());
    assert_eq!(all("x-id"), ["42"]);
    assert_eq!(all("x-set"), ["/u/42-9"]);
    assert_eq!(all("x-many"), ["m1", "m2"]);
    assert_eq!(all("x-num"), ["1.5"]);
    assert!(all("x-drop").is_empty());
}

#[test]
fn legacy_flat_headers_are_set() {
    let ctx = rewrite(
        json!({"headers": {"X-Api-Version": "v2", "X-Count": 3}}),
        get("/").header("x-api-version", "v1"),
    );
    assert_eq!(ctx.headers["x-api-version"], "v2");
    assert_eq!(ctx.headers["x-count"], "3");
}

#[test]
fn escaping_matches_nginx() {
    assert_eq!(
        uri_safe_encode("/a b#c%d?e\u{7f}é"),
        "/a%20b%23c%25d%3Fe%7F%C3%A9"
    );
    assert_eq!(uri_safe_encode("/ok/~!$&'()*+,;=:@"), "/ok/~!$&'()*+,;=:@");
    assert_eq!(escape_control("?a=\r\n"), "?a=%0D%0A");
}
