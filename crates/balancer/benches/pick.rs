//! Picks per second of each algorithm over 10 nodes, std only.
//!
//! `cargo bench -p portico-balancer --bench pick` (release profile). Each case runs for about a
//! second after a short warm-up; the figure is single-threaded throughput of `Balancer::pick`
//! including the request bookkeeping the data plane does around it.

use std::hint::black_box;
use std::time::{Duration, Instant};

use portico_balancer::{Balancer, HealthConfig, Kind, Node, Tried};

const NODES: usize = 10;
const RUN: Duration = Duration::from_millis(1000);

fn nodes() -> Vec<Node> {
    (0..NODES)
        .map(|i| Node::new(format!("10.0.0.{}", i + 1), 8080, 1 + i as u32 % 4))
        .collect()
}

/// Runs `op` in batches until `RUN` has elapsed; returns operations per second.
fn measure(mut op: impl FnMut(u64)) -> f64 {
    let warm = Instant::now();
    let mut i = 0u64;
    while warm.elapsed() < RUN / 10 {
        op(i);
        i += 1;
    }
    let start = Instant::now();
    let mut n = 0u64;
    loop {
        for _ in 0..1024 {
            op(n);
            n += 1;
        }
        let elapsed = start.elapsed();
        if elapsed >= RUN {
            return n as f64 / elapsed.as_secs_f64();
        }
    }
}

fn report(name: &str, per_sec: f64) {
    println!(
        "{name:<34} {:>8.2} M picks/s  ({:>6.1} ns/pick)",
        per_sec / 1e6,
        1e9 / per_sec
    );
}

fn main() {
    let keys: Vec<String> = (0..1024).map(|i| format!("user-{i}")).collect();
    let tried = Tried::new();
    println!("portico-balancer pick benchmark, {NODES} nodes, single thread");

    for kind in Kind::ALL {
        for checks in [false, true] {
            let mut builder = Balancer::builder(kind, nodes()).seed(42);
            if checks {
                builder = builder.checks(HealthConfig::default());
            }
            let Ok(b) = builder.build() else {
                eprintln!("{kind}: failed to build");
                continue;
            };
            let now = Instant::now();
            if kind == Kind::Ewma {
                for (i, _) in b.nodes().iter().enumerate() {
                    if let Some(n) = portico_balancer::NodeIndex::new(i) {
                        b.on_response(n, Duration::from_millis(5 + i as u64), now);
                    }
                }
            }
            let per_sec = measure(|i| {
                let key = &keys[(i % 1024) as usize];
                let picked = b.pick(Some(key), &tried, now);
                if kind == Kind::LeastConn {
                    if let Some(n) = picked {
                        b.on_start(n);
                        b.on_finish(n);
                    }
                }
                black_box(picked);
            });
            let label = format!("{kind}{}", if checks { " + health table" } else { "" });
            report(&label, per_sec);
        }
    }

    // A retry: one node already tried, through the exclusion path.
    let b = Balancer::builder(Kind::RoundRobin, nodes())
        .seed(42)
        .build();
    if let Ok(b) = b {
        let mut tried = Tried::new();
        if let Some(n) = portico_balancer::NodeIndex::new(3) {
            tried.insert(n);
        }
        let now = Instant::now();
        report(
            "roundrobin retry (1 tried)",
            measure(|_| {
                black_box(b.pick(None, &tried, now));
            }),
        );
    }
}
