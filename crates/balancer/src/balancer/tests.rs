use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::health::Outcome;

fn nodes(weights: &[u32]) -> Vec<Node> {
    weights
        .iter()
        .enumerate()
        .map(|(i, &w)| Node::new(format!("10.0.0.{}", i + 1), 8080, w))
        .collect()
}

fn build(kind: Kind, nodes: Vec<Node>) -> Balancer {
    Balancer::builder(kind, nodes)
        .seed(7)
        .build()
        .expect("valid upstream")
}

fn idx(i: usize) -> NodeIndex {
    NodeIndex::new(i).expect("small index")
}

fn counts(b: &Balancer, picks: usize, key: impl Fn(usize) -> String) -> Vec<usize> {
    let mut counts = vec![0; b.nodes().len()];
    let now = Instant::now();
    for i in 0..picks {
        let k = key(i);
        if let Some(n) = b.pick(Some(&k), &Tried::new(), now) {
            counts[n.get()] += 1;
        }
    }
    counts
}

#[test]
fn balancers_are_shareable() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Balancer>();
    assert_send_sync::<HealthTable>();
}

#[test]
fn roundrobin_spreads_by_weight_within_5_percent() {
    let weights = [5, 3, 2, 1, 9];
    let b = build(Kind::RoundRobin, nodes(&weights));
    let total: u32 = weights.iter().sum();
    let got = counts(&b, 10_000, |_| String::new());
    for (w, c) in weights.iter().zip(&got) {
        let expected = 10_000.0 * f64::from(*w) / f64::from(total);
        assert!(((*c as f64) - expected).abs() <= expected * 0.05, "{got:?}");
    }
}

#[test]
fn weight_zero_nodes_take_no_traffic_unless_alone() {
    let b = build(Kind::RoundRobin, nodes(&[0, 4, 0]));
    assert_eq!(counts(&b, 300, |_| String::new()), vec![0, 300, 0]);
    // The weighted node tried: the retry lands on a weight-0 node rather than failing.
    let mut tried = Tried::new();
    tried.insert(idx(1));
    let retry = b.pick(None, &tried, Instant::now());
    assert!(matches!(retry.map(NodeIndex::get), Some(0 | 2)));
    // A single node is always picked, weight 0 or not (APISIX's single-node shortcut).
    let single = build(Kind::RoundRobin, nodes(&[0]));
    assert_eq!(single.pick(None, &tried, Instant::now()), Some(idx(0)));
}

#[test]
fn every_kind_walks_all_nodes_on_retries() {
    for kind in Kind::ALL {
        let b = build(kind, nodes(&[1, 2, 3, 4]));
        let mut tried = Tried::new();
        for _ in 0..4 {
            let n = b
                .pick(Some("user-1"), &tried, Instant::now())
                .expect("untried node left");
            assert!(tried.insert(n), "{kind}: {n:?} picked twice");
        }
        assert_eq!(
            b.pick(Some("user-1"), &tried, Instant::now()),
            None,
            "{kind}"
        );
        assert_eq!(b.default_retries(), 3);
    }
}

#[test]
fn lower_priority_only_when_higher_groups_are_excluded() {
    let mut list = nodes(&[1, 1, 1, 1]);
    list[0].priority = 10;
    list[1].priority = 10;
    list[2].priority = 5;
    list[3].priority = -1;
    for kind in Kind::ALL {
        let b = Balancer::builder(kind, list.clone())
            .checks(HealthConfig::default())
            .seed(1)
            .build()
            .expect("valid upstream");
        let health = b.health().expect("checks configured");
        let now = Instant::now();
        for _ in 0..20 {
            let n = b.pick(Some("k"), &Tried::new(), now).expect("nodes");
            assert!(n.get() < 2, "{kind}: {n:?}");
        }
        // Node 0 unhealthy, node 1 tried: the priority-5 group takes over.
        health.set_healthy(idx(0), false);
        let mut tried = Tried::new();
        tried.insert(idx(1));
        assert_eq!(b.pick(Some("k"), &tried, now), Some(idx(2)), "{kind}");
        tried.insert(idx(2));
        assert_eq!(b.pick(Some("k"), &tried, now), Some(idx(3)), "{kind}");
        // Back to health: the top group is used again.
        health.set_healthy(idx(0), true);
        assert_eq!(b.pick(Some("k"), &tried, now), Some(idx(0)), "{kind}");
    }
}

#[test]
fn chash_is_sticky_and_removing_a_node_remaps_only_its_keys() {
    let list = nodes(&[1, 1, 1, 1, 1]);
    let full = build(Kind::Chash, list.clone());
    let now = Instant::now();
    let pick = |b: &Balancer, k: &str| {
        b.pick(Some(k), &Tried::new(), now)
            .map(|n| b.nodes()[n.get()].clone())
    };
    let keys: Vec<String> = (0..5_000).map(|i| format!("user-{i}")).collect();
    for k in keys.iter().take(100) {
        assert_eq!(pick(&full, k), pick(&full, k));
    }

    let removed = list[2].clone();
    let smaller = build(
        Kind::Chash,
        list.iter().filter(|n| **n != removed).cloned().collect(),
    );
    let mut moved = 0;
    for k in &keys {
        let before = pick(&full, k).expect("node");
        let after = pick(&smaller, k).expect("node");
        if before == removed {
            moved += 1;
        } else {
            assert_eq!(before, after, "key {k} moved although its node stayed");
        }
    }
    let share = moved as f64 / keys.len() as f64;
    assert!((0.12..0.28).contains(&share), "{share}");
}

#[test]
fn chash_skips_unhealthy_nodes_on_the_ring() {
    let b = Balancer::builder(Kind::Chash, nodes(&[1, 1, 1]))
        .checks(HealthConfig::default())
        .build()
        .expect("valid upstream");
    let now = Instant::now();
    let home = b.pick(Some("alice"), &Tried::new(), now).expect("node");
    b.health().expect("checks").set_healthy(home, false);
    let other = b.pick(Some("alice"), &Tried::new(), now).expect("node");
    assert_ne!(home, other);
    b.health().expect("checks").set_healthy(home, true);
    assert_eq!(b.pick(Some("alice"), &Tried::new(), now), Some(home));
}

#[test]
fn least_conn_prefers_the_idle_node() {
    let b = build(Kind::LeastConn, nodes(&[1, 1, 1]));
    b.on_start(idx(0));
    b.on_start(idx(0));
    b.on_start(idx(2));
    for _ in 0..10 {
        assert_eq!(b.pick(None, &Tried::new(), Instant::now()), Some(idx(1)));
    }
    b.on_start(idx(1));
    b.on_start(idx(1));
    b.on_finish(idx(0));
    b.on_finish(idx(0));
    assert_eq!(b.pick(None, &Tried::new(), Instant::now()), Some(idx(0)));
    b.on_finish(idx(0)); // unmatched: stays at 0
    assert_eq!(b.in_flight(idx(0)), Some(0));
}

#[test]
fn ewma_prefers_the_fast_node_and_recovers_with_decay() {
    let b = build(Kind::Ewma, nodes(&[1, 1]));
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    b.on_response(idx(0), ms(20), t0);
    b.on_response(idx(1), ms(400), t0);
    let picks = |at: Instant| counts_at(&b, at);
    assert_eq!(picks(t0 + ms(500)), [100, 0]);
    // Node 0 slows down: a few seconds of slow samples pull its average above node 1's
    // decayed score, and traffic moves over.
    for s in 1..=10 {
        b.on_response(idx(0), ms(900), t0 + Duration::from_secs(s));
    }
    assert_eq!(picks(t0 + Duration::from_secs(10)), [0, 100]);
    // A minute of silence forgets both: untried-equivalent nodes share traffic again.
    let later = picks(t0 + Duration::from_secs(80));
    assert!(later[0] > 20 && later[1] > 20, "{later:?}");
}

fn counts_at(b: &Balancer, at: Instant) -> [usize; 2] {
    let mut c = [0; 2];
    for _ in 0..100 {
        if let Some(n) = b.pick(None, &Tried::new(), at) {
            c[n.get()] += 1;
        }
    }
    c
}

#[test]
fn ewma_prefers_unmeasured_nodes() {
    let b = build(Kind::Ewma, nodes(&[1, 1]));
    let t0 = Instant::now();
    b.on_response(idx(0), Duration::from_millis(1), t0);
    assert_eq!(counts_at(&b, t0), [0, 100]);
}

#[test]
fn unhealthy_nodes_are_skipped_until_readmitted() {
    let b = Balancer::builder(Kind::RoundRobin, nodes(&[1, 1, 1]))
        .checks(HealthConfig::default())
        .build()
        .expect("valid upstream");
    let health = b.health().expect("checks");
    for _ in 0..5 {
        health.report_active(idx(1), Outcome::Status(500));
    }
    assert_eq!(counts(&b, 60, |_| String::new()), vec![30, 0, 30]);
    health.report_active(idx(1), Outcome::Status(200));
    assert_eq!(
        counts(&b, 60, |_| String::new())[1],
        0,
        "one success is not enough"
    );
    health.report_active(idx(1), Outcome::Status(200));
    assert_eq!(counts(&b, 60, |_| String::new()), vec![20, 20, 20]);
}

#[test]
fn when_every_node_is_unhealthy_all_are_used() {
    let b = Balancer::builder(Kind::RoundRobin, nodes(&[1, 1]))
        .checks(HealthConfig::default())
        .build()
        .expect("valid upstream");
    let health = b.health().expect("checks");
    health.set_healthy(idx(0), false);
    assert_eq!(counts(&b, 10, |_| String::new()), vec![0, 10]);
    health.set_healthy(idx(1), false);
    assert_eq!(counts(&b, 10, |_| String::new()), vec![5, 5]);
    // Tried nodes stay excluded even then.
    let mut tried = Tried::new();
    tried.insert(idx(0));
    assert_eq!(b.pick(None, &tried, Instant::now()), Some(idx(1)));
    // The raw entry point applies no such rule.
    assert_eq!(
        b.pick_excluding(None, Instant::now(), &|n| !health.is_healthy(n)),
        None
    );
}

#[test]
fn state_carries_over_to_the_next_snapshot() {
    let list = nodes(&[1, 1]);
    let old = Balancer::builder(Kind::LeastConn, list.clone())
        .checks(HealthConfig::default())
        .build()
        .expect("valid upstream");
    old.health().expect("checks").set_healthy(idx(1), false);
    old.on_start(idx(0));

    let same = Balancer::builder(Kind::LeastConn, list.clone())
        .checks(HealthConfig::default())
        .previous(&old)
        .build()
        .expect("valid upstream");
    let (a, b) = (
        old.health().expect("checks"),
        same.health().expect("checks"),
    );
    assert!(Arc::ptr_eq(a, b), "unchanged nodes share one table");
    assert_eq!(same.in_flight(idx(0)), Some(1));
    old.on_finish(idx(0)); // a request of the old snapshot ends
    assert_eq!(same.in_flight(idx(0)), Some(0));

    let mut grown = list.clone();
    grown.insert(0, Node::new("10.0.0.9", 8080, 1));
    let next = Balancer::builder(Kind::RoundRobin, grown)
        .checks(HealthConfig::default())
        .previous(&same)
        .build()
        .expect("valid upstream");
    assert!(
        !next.health().expect("checks").is_healthy(idx(2)),
        "follows the address"
    );

    let other = HealthTable::new(&list[..1], HealthConfig::default());
    let err = Balancer::builder(Kind::RoundRobin, list)
        .health_table(other)
        .build();
    assert_eq!(err.err(), Some(BuildError::HealthTableMismatch));
}

#[test]
fn empty_upstreams_pick_nothing() {
    for kind in Kind::ALL {
        let b = build(kind, Vec::new());
        assert_eq!(b.pick(Some("k"), &Tried::new(), Instant::now()), None);
        assert_eq!(b.default_retries(), 0);
    }
}

#[test]
fn concurrent_picks_and_reports_smoke_test() {
    for kind in Kind::ALL {
        let b = Arc::new(
            Balancer::builder(kind, nodes(&[1, 2, 3, 4]))
                .checks(HealthConfig::default())
                .build()
                .expect("valid upstream"),
        );
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let b = Arc::clone(&b);
                std::thread::spawn(move || {
                    let mut picked = 0;
                    for i in 0..5_000 {
                        let key = format!("{t}-{i}");
                        let Some(n) = b.pick(Some(&key), &Tried::new(), Instant::now()) else {
                            continue;
                        };
                        picked += 1;
                        b.on_start(n);
                        b.on_response(n, Duration::from_micros(i % 500), Instant::now());
                        if let Some(h) = b.health() {
                            let outcome = if i % 7 == 0 {
                                Outcome::Timeout
                            } else {
                                Outcome::Status(200)
                            };
                            h.report_passive(n, outcome);
                        }
                        b.on_finish(n);
                    }
                    picked
                })
            })
            .collect();
        let picked: usize = threads.into_iter().map(|t| t.join().unwrap_or(0)).sum();
        assert_eq!(picked, 20_000, "{kind}");
        assert!((0..4).all(|i| b.in_flight(idx(i)) == Some(0)), "{kind}");
    }
}
