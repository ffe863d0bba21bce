//! Criterion micro-benchmark of the router: build time and lookup cost at 1,000 and 100,000
//! routes.
//!
//! `CARGO_TARGET_DIR=/work/target-bench cargo bench -p portico-router --bench lookup`
//! (add `-- 100000` to run only the 100,000-route cases, `-- --quick` for a short run).
//!
//! The table is a mix of 40% exact paths, 40% prefixes, 10% exact hosts and 10% wildcard hosts.
//! Each lookup case walks 1,024 requests spread over the routes of its kind (exact, prefix,
//! host, wildcard-host) or matching nothing (miss); criterion reports the time per 1,024
//! lookups and the throughput in lookups/s. Similar numbers at both sizes show that lookup cost
//! does not grow with the number of routes.

use std::borrow::Cow;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use portico_expr::Vars;
use portico_router::{Request, RouteSpec, Router};

const SIZES: [usize; 2] = [1_000, 100_000];
const CASES: [&str; 5] = ["exact", "prefix", "host", "wildcard-host", "miss"];

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

fn specs(n: usize) -> Vec<RouteSpec<usize>> {
    (0..n).map(|i| spec(i, n)).collect()
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

fn build(c: &mut Criterion) {
    let mut group = c.benchmark_group("build");
    group.sample_size(10);
    for n in SIZES {
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter_batched(
                || specs(n),
                |specs| Router::build(specs).expect("router builds"),
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

fn lookup(c: &mut Criterion) {
    for n in SIZES {
        let router = Router::build(specs(n)).expect("router builds");
        let mut group = c.benchmark_group(format!("lookup/{n}"));
        group.throughput(Throughput::Elements(1024));
        group.measurement_time(Duration::from_secs(3));
        for case in CASES {
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
            // The requests of a case must all hit (or, for `miss`, all miss).
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
            group.bench_function(case, |b| {
                b.iter(|| {
                    for req in &reqs {
                        black_box(router.find(black_box(req)));
                    }
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, build, lookup);
criterion_main!(benches);
