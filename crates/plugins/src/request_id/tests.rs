//! request-id on real contexts, and the shape of every algorithm's ids.

use std::collections::HashSet;

use http::StatusCode;

use super::*;
use crate::testing::{ctx_for, get, plugin};
use crate::ResponseHead;

/// Runs rewrite, then header_filter on a response with `upstream_headers`; the id the upstream
/// got and the response headers.
fn run(
    p: &Arc<dyn Plugin>,
    req: http::request::Builder,
    upstream_headers: &[(&str, &str)],
) -> (Option<String>, http::HeaderMap, Ctx) {
    let mut ctx = ctx_for(req);
    assert_eq!(p.rewrite(&mut ctx), Flow::Continue);
    let sent = ctx.header("x-request-id").map(str::to_string);
    let mut headers = http::HeaderMap::new();
    for (n, v) in upstream_headers {
        headers.append(
            HeaderName::from_bytes(n.as_bytes()).expect("name"),
            HeaderValue::from_str(v).expect("value"),
        );
    }
    ctx.response = Some(ResponseHead {
        status: StatusCode::OK,
        headers,
    });
    p.header_filter(&mut ctx);
    let head = ctx.response.take().unwrap_or_default();
    (sent, head.headers, ctx)
}

fn is_uuid(id: &str, version: char) -> bool {
    let parts: Vec<&str> = id.split('-').collect();
    let lens: Vec<usize> = parts.iter().map(|p| p.len()).collect();
    lens == [8, 4, 4, 4, 12]
        && id
            .chars()
            .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c))
        && parts[2].starts_with(version)
        && parts[3].starts_with(['8', '9', 'a', 'b'])
}

#[test]
fn generates_sets_upstream_and_answers_with_it() {
    let p = plugin(NAME, json!({}));
    let (sent, resp, _) = run(&p, get("/"), &[]);
    let id = sent.expect("an id upstream");
    assert!(is_uuid(&id, '4'), "{id}");
    assert_eq!(resp["x-request-id"], id.as_str());
    // Unique ids.
    let ids: HashSet<String> = (0..100).filter_map(|_| run(&p, get("/"), &[]).0).collect();
    assert_eq!(ids.len(), 100);
}

#[test]
fn keeps_the_client_id_and_the_upstream_response_s() {
    let p = plugin(NAME, json!({}));
    let (sent, resp, _) = run(&p, get("/").header("X-Request-Id", "client-1"), &[]);
    assert_eq!(sent.as_deref(), Some("client-1"));
    assert_eq!(resp["x-request-id"], "client-1");
    // An empty client header is replaced.
    let (sent, _, _) = run(&p, get("/").header("X-Request-Id", ""), &[]);
    assert!(sent.is_some_and(|s| is_uuid(&s, '4')));
    // The upstream's own non-empty header stays; an empty one is replaced.
    let (_, resp, _) = run(&p, get("/"), &[("x-request-id", "from-upstream")]);
    assert_eq!(resp["x-request-id"], "from-upstream");
    let (sent, resp, _) = run(&p, get("/"), &[("x-request-id", "")]);
    assert_eq!(resp["x-request-id"], sent.unwrap_or_default().as_str());
}

#[test]
fn header_name_and_no_response_header() {
    let p = plugin(
        NAME,
        json!({"header_name": "X-Trace", "include_in_response": false}),
    );
    let (_, resp, ctx) = run(&p, get("/"), &[]);
    assert!(ctx.header("x-trace").is_some());
    assert!(resp.is_empty());
}

#[test]
fn algorithms() {
    let id = |conf: Value| {
        run(&plugin(NAME, conf), get("/"), &[])
            .0
            .expect("generated")
    };
    let v7a = id(json!({"algorithm": "uuidv7"}));
    let v7b = id(json!({"algorithm": "uuidv7"}));
    assert!(is_uuid(&v7a, '7') && is_uuid(&v7b, '7'), "{v7a} {v7b}");
    assert!(v7a < v7b, "monotonic: {v7a} {v7b}");
    let nano = id(json!({"algorithm": "nanoid"}));
    assert_eq!(nano.len(), 21);
    assert!(nano.bytes().all(|b| NANOID_ALPHABET.contains(&b)), "{nano}");
    let range = id(json!({"algorithm": "range_id"}));
    assert_eq!(range.len(), 16);
    assert!(range.chars().all(|c| RANGE_CHARS.contains(c)), "{range}");
    let custom =
        id(json!({"algorithm": "range_id", "range_id": {"length": 40, "char_set": "abcdef"}}));
    assert_eq!(custom.len(), 40);
    assert!(custom.chars().all(|c| "abcdef".contains(c)), "{custom}");
    let k = id(json!({"algorithm": "ksuid"}));
    assert_eq!(k.len(), 27);
    assert!(k.bytes().all(|b| b.is_ascii_alphanumeric()), "{k}");
}

#[test]
fn ksuid_encodes_its_timestamp() {
    // Decode the base62 text back to 20 bytes; the first four are seconds since the epoch.
    let k = ksuid();
    let mut n = [0u32; 20];
    for c in k.bytes() {
        let mut carry = BASE62.iter().position(|b| *b == c).expect("base62") as u32;
        for d in n.iter_mut().rev() {
            let acc = *d * 62 + carry;
            *d = acc & 0xff;
            carry = acc >> 8;
        }
    }
    let stamp = u64::from(n[0] << 24 | n[1] << 16 | n[2] << 8 | n[3]);
    let now = unix_ms() / 1000 - KSUID_EPOCH;
    assert!(now.abs_diff(stamp) <= 2, "{stamp} vs {now}");
}

#[test]
fn uuid_v7_counts_within_a_millisecond() {
    let ids: Vec<String> = (0..2000).map(|_| uuid_v7()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, ids);
}

#[test]
fn checks() {
    let registry = crate::registry();
    let check = |conf: Value| {
        portico_model::check(
            portico_model::Kind::PluginConfig,
            &json!({"id": "1", "plugins": {"request-id": conf}}),
            &registry,
        )
    };
    assert_eq!(check(json!({"algorithm": "ksuid"})), Ok(()));
    for bad in [
        json!({"algorithm": "snowflake"}),
        json!({"range_id": {"length": 5}}),
        json!({"range_id": {"char_set": "abc"}}),
        json!({"header_name": "bad name"}),
        json!({"include_in_response": "yes"}),
    ] {
        assert!(check(bad.clone()).is_err(), "{bad}");
    }
}
