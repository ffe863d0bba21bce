use std::time::Duration;

use super::*;

fn obs(route: &str, status: u16, total_ms: u64, upstream_ms: Option<u64>) -> Observation<'_> {
    Observation {
        workspace: "default",
        route,
        matched_uri: "/hello",
        matched_host: "",
        consumer: "",
        node: Some("127.0.0.1".parse().unwrap()),
        status,
        total: Duration::from_millis(total_ms),
        upstream: upstream_ms.map(Duration::from_millis),
        ingress: 100,
        egress: 200,
    }
}

#[test]
fn requests_are_counted_per_route_and_status() {
    let m = Metrics::with_stripes(4);
    for _ in 0..3 {
        m.observe(&obs("1", 200, 3, Some(1)));
    }
    m.observe(&obs("1", 502, 3, Some(1)));
    m.observe(&obs("2", 200, 3, None));
    let mut counts: Vec<(String, u16, u64)> = m
        .series()
        .iter()
        .map(|s| (s.key.route.to_string(), s.key.code, s.count()))
        .collect();
    counts.sort();
    assert_eq!(
        counts,
        vec![
            ("1".into(), 200, 3),
            ("1".into(), 502, 1),
            ("2".into(), 200, 1)
        ]
    );
}

#[test]
fn latencies_land_in_apisix_buckets() {
    let m = Metrics::with_stripes(2);
    // Request 0.5 ms, 1 ms (le=1 is inclusive), 7 ms, 70 s (+Inf only).
    for (total_us, upstream_us) in [(500, 400), (1000, 0), (7000, 2000), (70_000_000, 0)] {
        m.observe(&Observation {
            total: Duration::from_micros(total_us),
            upstream: Some(Duration::from_micros(upstream_us)),
            ..obs("1", 200, 0, None)
        });
    }
    let series = m.series();
    let (request, sum) = series[0].histogram(series::REQUEST);
    assert_eq!(request[0], 2, "le=1");
    assert_eq!(request[2], 2, "le=5");
    assert_eq!(request[3], 3, "le=10");
    assert_eq!(request[14], 3, "le=60000");
    assert_eq!(request[15], 4, "+Inf");
    assert_eq!(sum, 500 + 1000 + 7000 + 70_000_000);
    let (own, _) = series[0].histogram(series::APISIX);
    assert_eq!(own[0], 2, "0.1 ms and 1 ms of the gateway's own time");
    assert_eq!(own[2], 3, "5 ms of it for the 7 ms request");
}

#[test]
fn each_label_value_makes_its_own_series() {
    let m = Metrics::with_stripes(1);
    let base = obs("1", 200, 1, None);
    m.observe(&base);
    m.observe(&Observation {
        consumer: "jack",
        ..obs("1", 200, 1, None)
    });
    m.observe(&Observation {
        matched_host: "a.com",
        ..obs("1", 200, 1, None)
    });
    m.observe(&Observation {
        workspace: "other",
        ..obs("1", 200, 1, None)
    });
    m.observe(&Observation {
        node: None,
        ..obs("1", 200, 1, None)
    });
    m.observe(&base);
    assert_eq!(m.series().len(), 5);
    assert_eq!(m.series().iter().map(|s| s.count()).sum::<u64>(), 6);
}

#[test]
fn matched_hosts_are_one_series_whatever_their_case() {
    let m = Metrics::with_stripes(1);
    m.observe(&Observation {
        matched_host: "API.test",
        ..obs("1", 200, 1, None)
    });
    m.observe(&Observation {
        matched_host: "api.TEST",
        ..obs("1", 200, 1, None)
    });
    let series = m.series();
    assert_eq!(series.len(), 1);
    assert_eq!(&*series[0].key.matched_host, "api.test");
    assert_eq!(series[0].count(), 2);
}

#[test]
fn counting_from_many_threads_loses_nothing() {
    let m = Arc::new(Metrics::with_stripes(4));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let m = m.clone();
            std::thread::spawn(move || {
                for i in 0..10_000u64 {
                    let route = if (i + t) % 2 == 0 { "a" } else { "b" };
                    m.observe(&obs(route, 200, 1, Some(1)));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let total: u64 = m.series().iter().map(|s| s.count()).sum();
    assert_eq!(total, 40_000);
    assert_eq!(m.series().len(), 2);
}

/// This thread's time on a CPU (Linux `schedstat`), so that a loaded machine does not inflate
/// the measurement the way wall-clock time would.
fn cpu_time() -> Duration {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let ns = text
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Duration::from_nanos(ns)
}

/// CPU time per call of `f`, over `n` calls.
fn per_call(n: u32, mut f: impl FnMut()) -> Duration {
    let start = cpu_time();
    for _ in 0..n {
        f();
    }
    (cpu_time() - start) / n
}

/// `cargo test -p portico-gateway --release --lib metrics::tests::cost -- --ignored --nocapture`
#[test]
#[ignore = "a measurement, not a check"]
fn cost() {
    const N: u32 = 2_000_000;
    let m = Arc::new(Metrics::new());
    let o = obs("1", 200, 3, Some(1));
    m.observe(&o);
    let hash = per_call(N, || {
        std::hint::black_box(series::hash(std::hint::black_box(&o)));
    });
    let lookup = per_call(N, || {
        let h = series::hash(std::hint::black_box(&o));
        let list = m.shards[(h >> 60) as usize % SHARDS].list.load();
        std::hint::black_box(find(&list, h, &o).is_some());
    });
    let one = per_call(N, || m.observe(std::hint::black_box(&o)));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let m = m.clone();
            std::thread::spawn(move || {
                let o = obs("1", 200, 3, Some(1));
                per_call(N, || m.observe(std::hint::black_box(&o)))
            })
        })
        .collect();
    let two: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    println!(
        "CPU time per request: hash {hash:?}, hash+lookup {lookup:?}, observe {one:?} on one \
         thread, {two:?} on two threads counting the same series"
    );
}
