//! Path matching: exact paths, prefixes, `*` in the middle, literal `:param`, ordering.

mod common;

use common::{route, router, Req, Tweak};

#[test]
fn exact_paths_match_only_themselves() {
    let r = router(vec![route("a", "/a"), route("ab", "/a/b")]);
    assert_eq!(Req::get("/a").on(&r), Some("a"));
    assert_eq!(Req::get("/a/b").on(&r), Some("ab"));
    assert_eq!(Req::get("/a/").on(&r), None);
    assert_eq!(Req::get("/a/b/c").on(&r), None);
    assert_eq!(Req::get("/A").on(&r), None);
    assert_eq!(Req::get("").on(&r), None);
}

#[test]
fn star_without_slash_is_a_plain_prefix() {
    let r = router(vec![route("foo", "/foo*")]);
    for path in ["/foo", "/foobar", "/foo/", "/foo/x/y"] {
        assert_eq!(Req::get(path).on(&r), Some("foo"), "{path}");
    }
    assert_eq!(Req::get("/fo").on(&r), None);
}

#[test]
fn star_after_slash_needs_the_slash() {
    let r = router(vec![route("foo", "/foo/*")]);
    assert_eq!(Req::get("/foo/").on(&r), Some("foo"));
    assert_eq!(Req::get("/foo/x").on(&r), Some("foo"));
    assert_eq!(Req::get("/foo").on(&r), None);
    assert_eq!(Req::get("/foobar").on(&r), None);
}

#[test]
fn catch_all_routes() {
    let r = router(vec![route("root", "/*"), route("any", "*")]);
    assert_eq!(Req::get("/").on(&r), Some("root"));
    assert_eq!(Req::get("/x/y").on(&r), Some("root"));
    assert_eq!(Req::get("x").on(&r), Some("any"));
    assert_eq!(Req::get("").on(&r), Some("any"));
}

#[test]
fn longer_stored_prefix_wins_and_falls_back_to_shorter() {
    let r = router(vec![
        route("api", "/api/*").priority(50),
        route("v1", "/api/v1/*").methods(&["POST"]),
        route("v1-users", "/api/v1/users*"),
    ]);
    assert_eq!(Req::get("/api/v1/users/7").on(&r), Some("v1-users"));
    assert_eq!(Req::get("/api/v1/usersx").on(&r), Some("v1-users"));
    assert_eq!(Req::new("POST", "/api/v1/x").on(&r), Some("v1"));
    // v1's method fails, so the walk goes up to the shorter prefix.
    assert_eq!(Req::get("/api/v1/x").on(&r), Some("api"));
}

#[test]
fn exact_path_falls_back_to_prefixes_when_its_routes_fail() {
    let r = router(vec![
        route("exact", "/a/b").methods(&["PUT"]),
        route("prefix", "/a/*"),
    ]);
    assert_eq!(Req::new("PUT", "/a/b").on(&r), Some("exact"));
    assert_eq!(Req::get("/a/b").on(&r), Some("prefix"));
}

#[test]
fn star_in_the_middle_checks_the_rest_of_the_path() {
    let r = router(vec![
        route("users", "/api/*/users"),
        route("api", "/api/*").priority(-1),
    ]);
    assert_eq!(Req::get("/api/v1/users").on(&r), Some("users"));
    assert_eq!(Req::get("/api/v1/beta/users").on(&r), Some("users"));
    assert_eq!(Req::get("/api/v1/users/1").on(&r), Some("api"));
    assert_eq!(Req::get("/api/v1/groups").on(&r), Some("api"));
}

#[test]
fn star_inside_a_segment_is_prefix_only() {
    // lua-resty-radixtree only builds the check from segments starting with `:` or `*`.
    let r = router(vec![route("ab", "/a*b")]);
    assert_eq!(Req::get("/a").on(&r), Some("ab"));
    assert_eq!(Req::get("/axyz").on(&r), Some("ab"));
}

#[test]
fn colon_params_are_literal_in_the_default_router() {
    let r = router(vec![
        route("literal", "/user/:id"),
        route("tail", "/files/:name/*"),
    ]);
    assert_eq!(Req::get("/user/:id").on(&r), Some("literal"));
    assert_eq!(Req::get("/user/42").on(&r), None);
    assert_eq!(Req::get("/files/:name/a").on(&r), Some("tail"));
    assert_eq!(Req::get("/files/x/a").on(&r), None);
}

#[test]
fn param_segment_after_a_star_matches_one_segment() {
    let r = router(vec![route("p", "/a/*/:id")]);
    assert_eq!(Req::get("/a/x/42").on(&r), Some("p"));
    assert_eq!(Req::get("/a/x/").on(&r), None);
}

#[test]
fn priority_orders_routes_with_the_same_stored_path() {
    let r = router(vec![
        route("low", "/p/*").vars(serde_json::json!([])),
        route("high", "/p/*").priority(3),
    ]);
    assert_eq!(Req::get("/p/x").on(&r), Some("high"));
    let r = router(vec![route("low", "/h").priority(-1), route("zero", "/h")]);
    assert_eq!(Req::get("/h").on(&r), Some("zero"));
}

#[test]
fn longer_pattern_wins_under_the_same_prefix() {
    // Both are stored under prefix `/p`; the longer pattern is tried first.
    let r = router(vec![route("short", "/p*"), route("long", "/p*/*")]);
    assert_eq!(Req::get("/p*/z").on(&r), Some("long"));
    assert_eq!(Req::get("/pz").on(&r), Some("short"));
}

#[test]
fn full_ties_keep_route_list_order() {
    let r = router(vec![route("first", "/t"), route("second", "/t")]);
    assert_eq!(Req::get("/t").on(&r), Some("first"));
    let r = router(vec![route("first", "/t/*"), route("second", "/t/*")]);
    assert_eq!(Req::get("/t/1").on(&r), Some("first"));
}

#[test]
fn a_route_with_several_uris_matches_each() {
    let r = router(vec![route("multi", "/unused").uris(&["/a", "/b/*"])]);
    let req = Req::get("/b/c");
    let m = r.find(&req.request()).expect("matches /b/*");
    assert_eq!((*m.route, m.matched_uri), ("multi", "/b/*"));
    assert_eq!(Req::get("/a").on(&r), Some("multi"));
    assert_eq!(Req::get("/unused").on(&r), None);
}

#[test]
fn a_route_without_uris_never_matches() {
    let r = router(vec![route("none", "/").uris(&[])]);
    assert_eq!(Req::get("/").on(&r), None);
    assert_eq!(r.len(), 1);
}

#[test]
fn empty_router_misses() {
    let r = router(vec![]);
    assert!(r.is_empty());
    assert_eq!(Req::get("/").on(&r), None);
}
