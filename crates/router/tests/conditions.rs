//! Method, remote address and `vars` conditions, build errors and scale.

mod common;

use std::time::Instant;

use common::{route, router, Req, Tweak};
use portico_router::{RouteSpec, Router, RouterError};
use serde_json::json;

#[test]
fn methods_filter_and_head_is_not_get() {
    let r = router(vec![
        route("get", "/m").methods(&["GET"]),
        route("put-delete", "/m").methods(&["PUT", "DELETE"]),
        route("any", "/m/*"),
    ]);
    assert_eq!(Req::new("GET", "/m").on(&r), Some("get"));
    assert_eq!(Req::new("DELETE", "/m").on(&r), Some("put-delete"));
    assert_eq!(Req::new("HEAD", "/m").on(&r), None);
    assert_eq!(Req::new("PROPFIND", "/m").on(&r), None);
    assert_eq!(Req::new("PROPFIND", "/m/x").on(&r), Some("any"));
}

#[test]
fn remote_addrs_accept_v4_and_v6_addresses_and_cidrs() {
    let r = router(vec![
        route("v4", "/ip").remote_addrs(&["10.0.0.0/8", "192.168.1.1"]),
        route("v6", "/ip").remote_addrs(&["2001:db8::/32", "::1"]),
        route("rest", "/ip").priority(-1),
    ]);
    assert_eq!(Req::get("/ip").from("10.20.30.40").on(&r), Some("v4"));
    assert_eq!(Req::get("/ip").from("192.168.1.1").on(&r), Some("v4"));
    assert_eq!(Req::get("/ip").from("192.168.1.2").on(&r), Some("rest"));
    assert_eq!(Req::get("/ip").from("2001:db8:1::5").on(&r), Some("v6"));
    assert_eq!(Req::get("/ip").from("::1").on(&r), Some("v6"));
    assert_eq!(Req::get("/ip").from("2001:db9::1").on(&r), Some("rest"));
    assert_eq!(Req::get("/ip").from("::ffff:10.0.0.1").on(&r), Some("rest"));
}

#[test]
fn vars_are_checked_last() {
    let r = router(vec![
        route("beta", "/v").vars(json!([["http_x_beta", "==", "1"]])),
        route("admin", "/v").vars(json!([["arg_role", "in", ["admin", "root"]]])),
        route("default", "/v").priority(-1),
    ]);
    assert_eq!(Req::get("/v").var("http_x_beta", "1").on(&r), Some("beta"));
    assert_eq!(Req::get("/v").var("arg_role", "root").on(&r), Some("admin"));
    assert_eq!(
        Req::get("/v").var("arg_role", "guest").on(&r),
        Some("default")
    );
}

#[test]
fn every_condition_must_hold() {
    let r = router(vec![route("all", "/c")
        .methods(&["POST"])
        .remote_addrs(&["10.0.0.0/8"])
        .vars(json!([["arg_k", "==", "v"]]))]);
    let ok = || Req::new("POST", "/c").from("10.1.1.1").var("arg_k", "v");
    assert_eq!(ok().on(&r), Some("all"));
    assert_eq!(ok().from("11.1.1.1").on(&r), None);
    assert_eq!(ok().var("arg_k", "w").on(&r), None);
    let mut get = ok();
    get.method = "GET";
    assert_eq!(get.on(&r), None);
}

#[test]
fn build_errors_name_the_route() {
    let bad_method = Router::build(vec![
        route("ok", "/"),
        route("bad", "/").methods(&["GET", "FETCH"]),
    ]);
    assert_eq!(
        bad_method.err(),
        Some(RouterError::UnknownMethod {
            route: 1,
            method: "FETCH".into()
        })
    );
    let bad_addr = Router::build(vec![route("bad", "/").remote_addrs(&["10.0.0.0/99"])]);
    let err = bad_addr.err().map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some("route #0: invalid IP address: invalid ip address: 10.0.0.0/99")
    );
}

#[test]
fn router_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Router<std::sync::Arc<String>>>();
}

#[test]
fn hundred_thousand_routes_build_and_match() {
    let mut specs = Vec::new();
    for i in 0..100_000u32 {
        let mut spec = RouteSpec::new(i);
        spec.uris = match i % 3 {
            0 => vec![format!("/svc/{i}/items")],
            1 => vec![format!("/pfx/{i}/*")],
            _ => vec!["/api/*".to_string()],
        };
        if i % 3 == 2 {
            spec.hosts = vec![format!("h{i}.example.com")];
        }
        specs.push(spec);
    }
    let started = Instant::now();
    let r = Router::build(specs).unwrap_or_else(|e| panic!("{e}"));
    let took = started.elapsed();
    // Generous for unoptimised test builds; the release benchmark reports the real figure.
    assert!(took.as_secs() < 20, "build took {took:?}");
    let find = |host: &'static str, path: &'static str| {
        let req = Req::get(path).host(host);
        r.find(&req.request()).map(|m| *m.route)
    };
    assert_eq!(find("x.org", "/svc/99999/items"), Some(99_999));
    assert_eq!(find("x.org", "/pfx/40000/a/b"), Some(40_000));
    assert_eq!(find("h50000.example.com", "/api/x"), Some(50_000));
    assert_eq!(find("x.org", "/pfx/40002/a"), None);
    assert_eq!(find("h50000.example.com", "/nope"), None);
}
