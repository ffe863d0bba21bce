//! The routing test vectors of the APISIX reference (§10.2) and of APISIX's
//! `docs/en/latest/router-radixtree.md`.

mod common;

use common::{route, router, Req, Tweak};

/// Routes A, B, C, D, H and X of §10.2.
fn section_10_2() -> portico_router::Router<&'static str> {
    router(vec![
        route("A", "/api/*").priority(10),
        route("B", "/api/users/*"),
        route("C", "/api/users/me"),
        route("D", "/api/users/me").methods(&["POST"]).priority(5),
        route("H", "/*").hosts(&["*.example.com"]),
        route("X", "/foo").priority(100),
    ])
}

#[test]
fn exact_list_is_sorted_by_priority_and_conditions_filter_it() {
    let r = section_10_2();
    assert_eq!(Req::get("/api/users/me").host("x.org").on(&r), Some("C"));
    assert_eq!(
        Req::new("POST", "/api/users/me").host("x.org").on(&r),
        Some("D")
    );
}

#[test]
fn longest_prefix_beats_priority() {
    let r = section_10_2();
    assert_eq!(Req::get("/api/users/42").on(&r), Some("B"));
    assert_eq!(Req::get("/api/other").on(&r), Some("A"));
}

#[test]
fn prefix_with_trailing_slash_needs_the_slash() {
    assert_eq!(Req::get("/api").on(&section_10_2()), None);
}

#[test]
fn host_bound_routes_win_before_host_less_ones() {
    let r = section_10_2();
    assert_eq!(Req::get("/foo").host("a.example.com").on(&r), Some("H"));
    assert_eq!(Req::get("/foo").host("a.b.example.com").on(&r), Some("H"));
    assert_eq!(Req::get("/foo").host("example.com").on(&r), Some("X"));
    // Even an exact host-less path loses to a host-bound prefix.
    assert_eq!(
        Req::get("/api/users/me").host("a.example.com").on(&r),
        Some("H")
    );
}

#[test]
fn matched_uri_and_host_are_the_patterns() {
    let r = section_10_2();
    let req = Req::get("/foo").host("a.b.example.com");
    let m = r.find(&req.request()).expect("H matches");
    assert_eq!(m.matched_uri, "/*");
    assert_eq!(m.matched_host, Some("*.example.com"));
    let req = Req::get("/api/users/42");
    let m = r.find(&req.request()).expect("B matches");
    assert_eq!((m.matched_uri, m.matched_host), ("/api/users/*", None));
    let req = Req::get("/api/users/me");
    let m = r.find(&req.request()).expect("C matches");
    assert_eq!(m.matched_uri, "/api/users/me");
}

/// "Full match has a higher priority than deep prefix matching."
#[test]
fn router_radixtree_doc_example() {
    let r = router(vec![
        route("1", "/blog/foo/*"),
        route("2", "/blog/foo/a/*"),
        route("3", "/blog/foo/c/*"),
        route("4", "/blog/foo/bar"),
    ]);
    assert_eq!(Req::get("/blog/foo/bar").on(&r), Some("4"));
    assert_eq!(Req::get("/blog/foo/a/b/c").on(&r), Some("2"));
    assert_eq!(Req::get("/blog/foo/gloo").on(&r), Some("1"));
    assert_eq!(Req::get("/blog/bar").on(&r), None);
}

/// Reference §0 item 4: exact beats prefix even with lower priority.
#[test]
fn exact_beats_prefix_regardless_of_priority() {
    let r = router(vec![
        route("prefix", "/a/*").priority(100),
        route("exact", "/a/b").priority(-100),
    ]);
    assert_eq!(Req::get("/a/b").on(&r), Some("exact"));
    assert_eq!(Req::get("/a/c").on(&r), Some("prefix"));
}

/// Reference §0 item 5: a host-bound route wins over a host-less one regardless of priority;
/// exact host beats wildcard; longer wildcard suffix beats shorter.
#[test]
fn host_precedence_regardless_of_priority() {
    let r = router(vec![
        route("none", "/x").priority(1000),
        route("short", "/x").hosts(&["*.com"]).priority(100),
        route("long", "/x").hosts(&["*.foo.com"]).priority(10),
        route("exact", "/x").hosts(&["a.foo.com"]),
    ]);
    assert_eq!(Req::get("/x").host("a.foo.com").on(&r), Some("exact"));
    assert_eq!(Req::get("/x").host("b.foo.com").on(&r), Some("long"));
    assert_eq!(Req::get("/x").host("bar.com").on(&r), Some("short"));
    assert_eq!(Req::get("/x").host("bar.org").on(&r), Some("none"));
}

/// Reference §0 item 17: wildcard route hosts match any depth.
#[test]
fn wildcard_host_matches_any_depth() {
    let r = router(vec![route("w", "/").hosts(&["*.foo.com"])]);
    for host in ["a.foo.com", "a.b.foo.com", "a.b.c.d.foo.com"] {
        assert_eq!(Req::get("/").host(host).on(&r), Some("w"), "{host}");
    }
    for host in ["foo.com", "afoo.com", "foo.com.evil", "oo.com"] {
        assert_eq!(Req::get("/").host(host).on(&r), None, "{host}");
    }
}
