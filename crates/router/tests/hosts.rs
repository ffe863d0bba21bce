//! Host matching of `radixtree_host_uri`.

mod common;

use common::{route, router, Req, Tweak};

#[test]
fn exact_host_only_matches_that_host() {
    let r = router(vec![route("foo", "/").hosts(&["foo.com"])]);
    assert_eq!(Req::get("/").host("foo.com").on(&r), Some("foo"));
    assert_eq!(Req::get("/").host("a.foo.com").on(&r), None);
    assert_eq!(Req::get("/").host("foo.co").on(&r), None);
}

#[test]
fn star_host_matches_every_host_but_still_counts_as_host_bound() {
    let r = router(vec![
        route("no-host", "/x").priority(9),
        route("star", "/*").hosts(&["*"]),
    ]);
    assert_eq!(Req::get("/x").host("anything.net").on(&r), Some("star"));
    assert_eq!(Req::get("/x").host("").on(&r), Some("star"));
}

#[test]
fn route_hosts_are_lower_cased() {
    let r = router(vec![
        route("exact", "/").hosts(&["Foo.COM"]),
        route("wild", "/").hosts(&["*.Bar.Com"]),
    ]);
    assert_eq!(Req::get("/").host("foo.com").on(&r), Some("exact"));
    assert_eq!(Req::get("/").host("x.bar.com").on(&r), Some("wild"));
    let req = Req::get("/").host("x.bar.com");
    assert_eq!(
        r.find(&req.request()).and_then(|m| m.matched_host),
        Some("*.bar.com")
    );
}

#[test]
fn a_host_table_without_a_matching_route_falls_through() {
    let r = router(vec![
        route("exact-host", "/only").hosts(&["a.foo.com"]),
        route("wild-post", "/*")
            .hosts(&["*.foo.com"])
            .methods(&["POST"]),
        route("wild-any", "/*").hosts(&["*.com"]),
        route("no-host", "/*"),
    ]);
    // The exact host's table has no route for `/other`, so the wildcards are tried next.
    assert_eq!(
        Req::get("/other").host("a.foo.com").on(&r),
        Some("wild-any")
    );
    assert_eq!(
        Req::new("POST", "/other").host("a.foo.com").on(&r),
        Some("wild-post")
    );
    assert_eq!(
        Req::get("/only").host("a.foo.com").on(&r),
        Some("exact-host")
    );
    assert_eq!(Req::get("/other").host("a.foo.org").on(&r), Some("no-host"));
}

#[test]
fn exact_host_wins_even_over_a_more_specific_path_elsewhere() {
    let r = router(vec![
        route("wild-exact-path", "/a/b/c").hosts(&["*.foo.com"]),
        route("exact-prefix", "/*").hosts(&["a.foo.com"]),
    ]);
    assert_eq!(
        Req::get("/a/b/c").host("a.foo.com").on(&r),
        Some("exact-prefix")
    );
    assert_eq!(
        Req::get("/a/b/c").host("b.foo.com").on(&r),
        Some("wild-exact-path")
    );
}

#[test]
fn one_route_with_several_hosts() {
    let r = router(vec![route("multi", "/").hosts(&["a.com", "*.b.com"])]);
    let req = Req::get("/").host("x.b.com");
    let m = r.find(&req.request()).expect("matches *.b.com");
    assert_eq!((*m.route, m.matched_host), ("multi", Some("*.b.com")));
    let req = Req::get("/").host("a.com");
    assert_eq!(
        r.find(&req.request()).and_then(|m| m.matched_host),
        Some("a.com")
    );
    assert_eq!(Req::get("/").host("b.com").on(&r), None);
}

#[test]
fn routes_sharing_a_host_share_its_table() {
    let r = router(vec![
        route("one", "/p/*").hosts(&["h.com"]),
        route("two", "/p/q").hosts(&["H.com", "other.com"]),
        route("three", "/p/*").hosts(&["h.com"]).priority(1),
    ]);
    assert_eq!(Req::get("/p/q").host("h.com").on(&r), Some("two"));
    assert_eq!(Req::get("/p/z").host("h.com").on(&r), Some("three"));
}

#[test]
fn host_with_port_never_matches_in_the_host_router() {
    let r = router(vec![route("port", "/").hosts(&["foo.com:8080"])]);
    assert_eq!(Req::get("/").host("foo.com").on(&r), None);
}

#[test]
fn wildcard_without_dot_is_a_suffix_of_the_whole_name() {
    let r = router(vec![route("suffix", "/").hosts(&["*foo.com"])]);
    assert_eq!(Req::get("/").host("foo.com").on(&r), Some("suffix"));
    assert_eq!(Req::get("/").host("barfoo.com").on(&r), Some("suffix"));
    assert_eq!(Req::get("/").host("foo.co").on(&r), None);
}
