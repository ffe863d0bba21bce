//! How much a compiled snapshot grows the resident set per route, for the mixed table of
//! `bench/lib.py` (exact paths, prefixes and host routes sharing one upstream). Resident bytes,
//! not heap bytes: what the allocator keeps of the garbage of compiling counts too, as it does
//! in `portico up`. With this example's allocator (the system's), not the binary's.
//!
//! `cargo run --release -p portico-snapshot --example route_memory -- 100000`

use portico_model::Keyring;
use portico_snapshot::{compile, Config, Item};
use serde_json::json;

/// The resident set of this process, in bytes (Linux).
fn rss() -> isize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<isize>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Route `i` of bench/lib.py's mixed table.
fn route(i: usize) -> serde_json::Value {
    match i % 10 {
        0..=3 => json!({"uri": format!("/svc{i}/v1/items/detail"), "upstream_id": "1"}),
        4..=7 => json!({"uri": format!("/pfx{i}/api/*"), "upstream_id": "1"}),
        _ => json!({"uri": "/api/*", "hosts": [format!("h{i}.example.com")], "upstream_id": "1"}),
    }
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let mut config = Config::new();
    let item = |value| Item {
        mod_revision: 1,
        value,
    };
    config.insert(
        "ws/default/upstreams/1".into(),
        item(json!({"nodes": {"127.0.0.1:1980": 1}})),
    );
    for i in 0..n {
        config.insert(format!("ws/default/routes/r{i}"), item(route(i)));
    }
    let registry = portico_plugins::registry();
    let keyring = Keyring::disabled();
    let before = rss();
    let snapshot = compile(&config, 1, None, &registry, &keyring);
    let total = rss() - before;
    assert!(snapshot.problems.is_empty(), "{:?}", snapshot.problems);
    // The router's share: the same routes' match conditions, compiled alone.
    let specs: Vec<_> = snapshot
        .routes
        .values()
        .map(|r| {
            let spec = r.spec.clone();
            portico_router::RouteSpec {
                id: 0u32,
                uris: spec.uris,
                hosts: spec.hosts,
                methods: spec.methods,
                remote_addrs: spec.remote_addrs,
                vars: spec.vars,
                priority: spec.priority,
            }
        })
        .collect::<Vec<_>>();
    let before = rss();
    let router = portico_router::Router::build(specs).expect("routes build");
    let router_bytes = rss() - before;
    drop(router);
    let per = |bytes: isize| bytes as f64 / n as f64;
    println!(
        "{n} routes: snapshot {:.1} MB, {:.0} bytes/route; of which the router {:.0} bytes/route",
        total as f64 / 1e6,
        per(total),
        per(router_bytes)
    );
}
