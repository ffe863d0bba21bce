//! Router build time and lookup throughput, std only (no criterion).
//!
//! `CARGO_TARGET_DIR=/work/target-router cargo bench -p portico-router`
//!
//! Builds routers of 1,000 and 100,000 routes (40% exact paths, 40% prefixes, 10% exact hosts,
//! 10% wildcard hosts) and reports lookups per second for exact, prefix, exact-host,
//! wildcard-host and miss requests. Similar numbers at both sizes show that lookup cost does not
//! grow with the number of routes.

use std::borrow::Cow;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use portico_expr::Vars;
use portico_router::{Request, RouteSpec, Router};

struct NoVars;

impl Vars for NoVars {
    fn var(&self, _name: &str) -> Option<Cow<'_, str>> {
        None
    }
}

/// Route `i` of a mix of `n` routes.
fn spec(i: usize, n: usize) -> RouteSpec<usize> {
    let mut spec = RouteSpec::new(i);
    match i * 10 / n {
        0..=3 => spec.uris = vec![format!("/svc{i}/v1/items/detail")],
        4..=7 => spec.uris = vec![format!("/pfx{i}/api/*")],
        8 => {
            spec.uris = vec!["/api/*".into()];
            spec.hosts = vec![format!("h{i}.example.com")];
        }
        _ => {
            spec.uris = vec!["/api/*".into()];
            spec.hosts = vec![format!("*.t{i}.example.net")];
        }
    }
    if i % 7 == 3 {
        spec.methods = vec!["GET".into(), "POST".into()];
    }
    spec
}

/// (host, path) request lines for one case, spread over the routes of that case.
fn requests(case: &str, n: usize) -> Vec<(String, String)> {
    let pick = |k: usize, from: usize, to: usize| from + (k * 7919) % (to - from);
    (0..1024)
        .map(|k| match case {
            "exact" => (
                "x.org".into(),
                format!("/svc{}/v1/items/detail", pick(k, 0, n * 4 / 10)),
            ),
            "prefix" => {
                let i = pick(k, n * 4 / 10, n * 8 / 10);
                ("x.org".into(), format!("/pfx{i}/api/users/42/orders"))
            }
            "host" => {
                let i = pick(k, n * 8 / 10, n * 9 / 10);
                (format!("h{i}.example.com"), "/api/users/42".into())
            }
            "wildcard-host" => {
                let i = pick(k, n * 9 / 10, n);
                (format!("a.b.t{i}.example.net"), "/api/users/42".into())
            }
            _ => (format!("u{k}.example.org"), format!("/nope/{k}/items")),
        })
        .collect()
}

fn run(router: &Router<usize>, case: &str, n: usize) {
    let lines = requests(case, n);
    let reqs: Vec<Request<'_>> = lines
        .iter()
        .map(|(host, path)| Request {
            host,
            path,
            method: "GET",
            remote_addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
            vars: &NoVars,
        })
        .collect();
    let expect_hit = case != "miss";
    for req in &reqs {
        assert_eq!(
            router.find(req).is_some(),
            expect_hit,
            "{case}: {}{}",
            req.host,
            req.path
        );
    }
    // Run for at least half a second, in rounds over the request set.
    let mut lookups = 0u64;
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(500) {
        for _ in 0..100 {
            for req in &reqs {
                black_box(router.find(black_box(req)));
            }
        }
        lookups += 100 * reqs.len() as u64;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "  {case:<14} {:>12.0} lookups/s  {:>7.1} ns/lookup",
        lookups as f64 / secs,
        secs * 1e9 / lookups as f64
    );
}

fn main() {
    for n in [1_000, 100_000] {
        let specs: Vec<RouteSpec<usize>> = (0..n).map(|i| spec(i, n)).collect();
        let started = Instant::now();
        let router = match Router::build(specs) {
            Ok(router) => router,
            Err(e) => {
                eprintln!("build failed: {e}");
                std::process::exit(1);
            }
        };
        println!(
            "{n} routes: built in {:.1} ms",
            started.elapsed().as_secs_f64() * 1e3
        );
        for case in ["exact", "prefix", "host", "wildcard-host", "miss"] {
            run(&router, case, n);
        }
    }
}
