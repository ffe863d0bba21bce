use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use http::StatusCode;
use serde_json::json;

use super::vars::{iso8601, time_local};
use super::*;
use crate::testing::{ctx_for, get};
use crate::ResponseHead;

fn finished(ctx: &mut Ctx, opts: &LogOptions) {
    opts.access(ctx);
    // The proxy takes the request headers.
    ctx.headers.clear();
    let mut headers = HeaderMap::new();
    headers.insert("content-type", "text/plain".parse().unwrap());
    ctx.response = Some(ResponseHead {
        status: StatusCode::OK,
        headers,
    });
    opts.header_filter(ctx);
    for (chunk, eof) in [(&b"hello "[..], false), (b"world", false), (b"", true)] {
        opts.body_filter(ctx, &Bytes::from_static(chunk), eof);
        ctx.log.body_bytes_sent += chunk.len() as u64;
    }
}

#[test]
fn the_default_entry_has_apisix_s_fields() {
    let opts = LogOptions::new(&json!({"include_resp_body": true}), None).unwrap();
    let mut ctx = ctx_for(
        get("/p?a=1&a=2&flag&b=x%20y")
            .header("host", "example.com")
            .header("x-a", "1"),
    );
    ctx.route_id = "r".into();
    ctx.server_port = 9080;
    ctx.log.upstream_addr = Some("10.0.0.1:80".parse().unwrap());
    ctx.log.upstream_latency = Some(Duration::from_millis(3));
    ctx.log.request_length = 77;
    finished(&mut ctx, &opts);
    let e = Value::Object(opts.entry(&ctx));
    assert_eq!(
        e["request"]["url"],
        "http://example.com:9080/p?a=1&a=2&flag&b=x%20y"
    );
    assert_eq!(e["request"]["uri"], "/p?a=1&a=2&flag&b=x%20y");
    assert_eq!(e["request"]["method"], "GET");
    assert_eq!(e["request"]["headers"]["x-a"], "1");
    assert_eq!(e["request"]["size"], 77);
    assert_eq!(
        e["request"]["querystring"],
        json!({"a": ["1", "2"], "flag": true, "b": "x y"})
    );
    assert_eq!(e["response"]["status"], 200);
    assert_eq!(e["response"]["headers"]["content-type"], "text/plain");
    assert_eq!(e["response"]["body"], "hello world");
    assert!(e["response"]["size"].as_u64().unwrap() > 11);
    assert_eq!(e["upstream"], "10.0.0.1:80");
    assert_eq!(e["route_id"], "r");
    assert_eq!(e["service_id"], "");
    assert_eq!(e["client_ip"], "127.0.0.1");
    assert_eq!(e["upstream_latency"], 3);
    assert!(e["latency"].is_number() && e["apisix_latency"].is_number());
    assert!(e.get("consumer").is_none());
    assert_eq!(e["server"]["hostname"], hostname());
    assert!(e["start_time"].as_u64().unwrap() > 1_600_000_000_000);
}

#[test]
fn a_custom_format_reads_variables_and_keeps_constants() {
    let meta = json!({"log_format": {"host": "$host", "never": "$nope"}});
    let conf = json!({"log_format": {
        "host": "$host", "status": "$status", "agent": "$http_user_agent",
        "ctype": "$sent_http_content_type", "fixed": 5, "text": "plain",
        "nested": {"uri": "$uri", "deep": {"a": {"b": {"c": {"d": "$uri"}}}}},
        "missing": "$http_nothing"
    }});
    let opts = LogOptions::new(&conf, Some(&meta)).unwrap();
    let mut ctx = ctx_for(
        get("/p")
            .header("host", "h.test")
            .header("user-agent", "ua"),
    );
    ctx.route_id = "9".into();
    finished(&mut ctx, &opts);
    let e = Value::Object(opts.entry(&ctx));
    assert_eq!(
        e,
        json!({"host": "h.test", "status": "200", "agent": "ua", "ctype": "text/plain",
               "fixed": 5, "text": "plain",
               "nested": {"uri": "/p", "deep": {"a": {"b": {"c": {}}}}}, "route_id": "9"})
    );
    // Without its own format the configuration takes the metadata's.
    let opts = LogOptions::new(&json!({}), Some(&meta)).unwrap();
    assert_eq!(
        Value::Object(opts.entry(&ctx)),
        json!({"host": "h.test", "route_id": "9"})
    );
    // An empty metadata format does not apply.
    let opts = LogOptions::new(&json!({}), Some(&json!({"log_format": {}}))).unwrap();
    assert!(opts.entry(&ctx).contains_key("request"));
}

#[test]
fn bodies_follow_their_rules_and_limits() {
    let conf = json!({
        "include_req_body": true, "include_req_body_expr": [["arg_log", "==", "yes"]],
        "include_resp_body": true, "max_resp_body_bytes": 5, "max_req_body_bytes": 3
    });
    let opts = LogOptions::new(&conf, None).unwrap();
    assert!(opts.wants_request_body());
    for (uri, logged) in [("/p?log=yes", true), ("/p", false)] {
        let mut ctx = ctx_for(get(uri));
        ctx.request_body = Some(Bytes::from_static(b"abcdef"));
        finished(&mut ctx, &opts);
        ctx.request_body = None;
        let e = Value::Object(opts.entry(&ctx));
        assert_eq!(e["request"].get("body").is_some(), logged, "{uri}");
        if logged {
            assert_eq!(e["request"]["body"], "abc");
        }
        assert_eq!(e["response"]["body"], "hello");
    }
    let extra = LogOptions::new(
        &json!({"log_format_extra": {"route_id": "$uri", "extra": "$uri"}}),
        None,
    )
    .unwrap();
    let mut ctx = ctx_for(get("/x"));
    ctx.route_id = "1".into();
    finished(&mut ctx, &extra);
    let e = extra.entry(&ctx);
    assert_eq!(
        e["route_id"], "1",
        "extra fields never replace default ones"
    );
    assert_eq!(e["extra"], "/x");
}

#[test]
fn rules_are_checked() {
    assert!(check(&json!({"include_req_body_expr": [["arg_a", "==", "1"]]})).is_ok());
    let err = check(&json!({"include_resp_body_expr": [["arg_a", "=", "1"]]})).unwrap_err();
    assert!(
        err.starts_with("failed to validate the 'include_resp_body_expr' expression: "),
        "{err}"
    );
}

#[test]
fn times_are_formatted_as_nginx_does() {
    let t = UNIX_EPOCH + Duration::from_secs(1_718_291_974);
    assert_eq!(iso8601(t), "2024-06-13T15:19:34+00:00");
    assert_eq!(time_local(t), "13/Jun/2024:15:19:34 +0000");
    assert_eq!(
        iso8601(UNIX_EPOCH + Duration::from_secs(951_782_400)),
        "2000-02-29T00:00:00+00:00"
    );
}
