use std::time::Duration;

use serde_json::json;

use super::registry::*;
use super::series;
use crate::testing::{ctx_for, get, Fixture};
use crate::{Conf, ResponseHead};

fn obs(route: &str, status: u16, total_ms: u64, upstream_ms: Option<u64>) -> Observation<'_> {
    Observation {
        workspace: "default",
        route,
        matched_uri: "/hello",
        matched_host: "",
        consumer: "",
        node: Some("127.0.0.1".parse().unwrap()),
        status,
        source: Source::Upstream,
        masks: Masks::default(),
        total: Duration::from_millis(total_ms),
        upstream: upstream_ms.map(Duration::from_millis),
        ingress: 100,
        egress: 200,
    }
}

#[test]
fn requests_are_counted_per_route_and_status() {
    let m = Registry::with_stripes(4);
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
    assert_eq!(m.requests(), 5);
}

#[test]
fn latencies_land_in_apisix_buckets() {
    let m = Registry::with_stripes(2);
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
    assert_eq!(request[2], 0, "(5 ms, 10 ms]");
    assert_eq!(request[3], 1, "le=10");
    assert_eq!(request[15], 1, "+Inf");
    assert_eq!(sum, 500 + 1000 + 7000 + 70_000_000);
    let text = m.render("apisix_").http_latency;
    let line = |le: &str| {
        format!(
            "apisix_http_latency_bucket{{type=\"request\",route=\"1\",service=\"\",consumer=\"\",\
             node=\"127.0.0.1\",request_type=\"traditional_http\",request_llm_model=\"\",\
             llm_model=\"\",workspace=\"default\",le=\"{le}\"}}"
        )
    };
    assert!(text.contains(&format!("{} 2\n", line("1"))), "{text}");
    assert!(text.contains(&format!("{} 3\n", line("10"))), "{text}");
    assert!(text.contains(&format!("{} 3\n", line("60000"))), "{text}");
    assert!(text.contains(&format!("{} 4\n", line("+Inf"))), "{text}");
}

#[test]
fn disabled_labels_are_blank_and_their_series_summed() {
    let m = Registry::with_stripes(1);
    let mut masks = Masks::default();
    masks.disable(Metric::HttpStatus, Label::Node);
    for node in ["10.0.0.1", "10.0.0.2"] {
        m.observe(&Observation {
            node: Some(node.parse().unwrap()),
            masks,
            ..obs("1", 200, 1, None)
        });
    }
    let f = m.render("apisix_");
    assert!(
        f.http_status.contains(
            "apisix_http_status{code=\"200\",route=\"1\",matched_uri=\"/hello\",matched_host=\"\",\
             service=\"\",consumer=\"\",node=\"\",request_type=\"traditional_http\",\
             request_llm_model=\"\",llm_model=\"\",response_source=\"upstream\",\
             workspace=\"default\"} 2\n"
        ),
        "{}",
        f.http_status
    );
    // Latency keeps the node label.
    assert_eq!(
        f.http_latency.matches("le=\"+Inf\"").count(),
        4,
        "{}",
        f.http_latency
    );
}

#[test]
fn the_log_phase_counts_with_the_route_s_labels() {
    let f = Fixture::new();
    let chain = f.chain(
        json!({"prometheus": {"prefer_name": true}}),
        "ws/a/plugin_configs/t",
    );
    let mut ctx = ctx_for(get("/x"));
    ctx.route_id = "r1".into();
    ctx.route_name = Some("named".into());
    ctx.matched = Some(super::MatchedRoute {
        uri: "/x".into(),
        host: "".into(),
    });
    ctx.response = Some(ResponseHead {
        status: http::StatusCode::NOT_FOUND,
        headers: Default::default(),
    });
    chain.entries()[0].plugin().log(&ctx);
    let text = f.state.prometheus.render("apisix_").http_status;
    assert!(
        text.contains("code=\"404\",route=\"named\",matched_uri=\"/x\""),
        "{text}"
    );
    assert!(
        text.contains("response_source=\"apisix\",workspace=\"a\"} 1"),
        "{text}"
    );
}

/// The series of a registry as (route, matched uri, consumer, node, code, workspace) and their
/// request counts, sorted.
fn counts(m: &Registry) -> Vec<(String, String, String, String, u16, String, u64)> {
    let mut counts: Vec<_> = m
        .series()
        .iter()
        .map(|s| {
            let k = &s.key;
            let node = k.node.map(|n| n.to_string()).unwrap_or_default();
            let text = |s: &str| s.to_string();
            (
                text(&k.route),
                text(&k.matched_uri),
                text(&k.consumer),
                node,
                k.code,
                text(&k.workspace),
                s.count(),
            )
        })
        .collect();
    counts.sort();
    counts
}

#[test]
fn recent_label_sets_find_their_own_series() {
    let f = Fixture::new();
    let a = f.chain(json!({"prometheus": {}}), "ws/a/plugin_configs/t");
    let b = f.chain(json!({"prometheus": {}}), "ws/b/plugin_configs/t");
    let (a, b) = (a.entries()[0].plugin(), b.entries()[0].plugin());
    let consumers = crate::testing::index(
        &[json!({"username": "jack"}), json!({"username": "rose"})],
        &[],
    );
    let consumer = |name: &str| consumers.consumer(name).cloned();
    let mut ctx = ctx_for(get("/x"));
    ctx.route_id = "r1".into();
    ctx.matched = Some(super::MatchedRoute {
        uri: "/x".into(),
        host: "".into(),
    });
    let node = |ip: &str| Some(std::net::SocketAddr::new(ip.parse().unwrap(), 80));
    ctx.log.upstream_addr = node("10.0.0.1");
    let status = |ctx: &mut crate::Ctx, code: u16| {
        ctx.response = Some(ResponseHead {
            status: http::StatusCode::from_u16(code).unwrap(),
            headers: Default::default(),
        });
    };
    status(&mut ctx, 200);
    // More label sets than the cache holds, each seen again after others.
    for _ in 0..2 {
        a.log(&ctx);
        a.log(&ctx);
        status(&mut ctx, 500);
        a.log(&ctx);
        ctx.log.upstream_addr = node("10.0.0.2");
        a.log(&ctx);
        ctx.consumer = consumer("jack");
        a.log(&ctx);
        ctx.consumer = consumer("rose");
        a.log(&ctx);
        // Another instance (workspace b), same labels otherwise.
        b.log(&ctx);
        // The same route id in another string; then another route.
        ctx.route_id = "r1".into();
        a.log(&ctx);
        ctx.route_id = "r2".into();
        a.log(&ctx);
        ctx.matched = Some(super::MatchedRoute {
            uri: "/y".into(),
            host: "".into(),
        });
        a.log(&ctx);
        // Back to the first label set.
        ctx.route_id = "r1".into();
        ctx.matched = Some(super::MatchedRoute {
            uri: "/x".into(),
            host: "".into(),
        });
        ctx.consumer = None;
        ctx.log.upstream_addr = node("10.0.0.1");
        status(&mut ctx, 200);
    }
    let s = |s: &str| s.to_string();
    let row = |route, uri, consumer, node, code, ws, n| {
        (s(route), s(uri), s(consumer), s(node), code, s(ws), n)
    };
    assert_eq!(
        counts(&f.state.prometheus),
        vec![
            row("r1", "/x", "", "10.0.0.1", 200, "a", 4),
            row("r1", "/x", "", "10.0.0.1", 500, "a", 2),
            row("r1", "/x", "", "10.0.0.2", 500, "a", 2),
            row("r1", "/x", "jack", "10.0.0.2", 500, "a", 2),
            row("r1", "/x", "rose", "10.0.0.2", 500, "a", 4),
            row("r1", "/x", "rose", "10.0.0.2", 500, "b", 2),
            row("r2", "/x", "rose", "10.0.0.2", 500, "a", 2),
            row("r2", "/y", "rose", "10.0.0.2", 500, "a", 2),
        ]
    );
}

#[test]
fn metadata_refuses_structural_and_unknown_labels() {
    let registry = crate::registry();
    let schema = registry
        .metadata_schema(super::NAME)
        .expect("metadata schema");
    let ok = json!({"disabled_labels": {"http_status": ["node", "consumer"]}});
    assert!(portico_model::schema::validate(schema, &ok).is_ok());
    for bad in [
        json!({"disabled_labels": {"http_status": ["code"]}}),
        json!({"disabled_labels": {"http_latency": ["type"]}}),
        json!({"disabled_labels": {"nope": ["node"]}}),
    ] {
        assert!(
            portico_model::schema::validate(schema, &bad).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn a_global_instance_yields_to_the_route_s_own() {
    let f = Fixture::new();
    let global = f
        .compiler()
        .entry(Conf {
            name: "prometheus",
            conf: &json!({}),
            owner: "ws/a/global_rules/1",
        })
        .expect("builds")
        .expect("enabled");
    let route = f.chain(json!({"prometheus": {}}), "ws/a/plugin_configs/t");
    let mut ctx = ctx_for(get("/x"));
    ctx.route_id = "1".into();
    ctx.response = Some(ResponseHead::default());
    global.plugin().log(&ctx);
    assert_eq!(
        f.state.prometheus.requests(),
        1,
        "no route chain: the global one counts"
    );
    ctx.route_chain = Some(route.clone());
    global.plugin().log(&ctx);
    route.entries()[0].plugin().log(&ctx);
    assert_eq!(
        f.state.prometheus.requests(),
        2,
        "counted once, by the route's"
    );
}

#[test]
fn matched_hosts_are_one_series_whatever_their_case() {
    let m = Registry::with_stripes(1);
    for host in ["API.test", "api.TEST"] {
        m.observe(&Observation {
            matched_host: host,
            ..obs("1", 200, 1, None)
        });
    }
    let series = m.series();
    assert_eq!(series.len(), 1);
    assert_eq!(&*series[0].key.matched_host, "api.test");
}

#[test]
fn counting_from_many_threads_loses_nothing() {
    let m = std::sync::Arc::new(Registry::with_stripes(4));
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
    assert_eq!(m.requests(), 40_000);
    assert_eq!(m.series().len(), 2);
}

/// This thread's time on a CPU (Linux `schedstat`).
fn cpu_time() -> Duration {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let ns = text
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Duration::from_nanos(ns)
}

/// `cargo test -p portico-plugins --release --lib prometheus::tests::cost -- --ignored --nocapture`
#[test]
#[ignore = "a measurement, not a check"]
fn cost() {
    const N: u32 = 2_000_000;
    let m = Registry::new();
    let o = obs("1", 200, 3, Some(1));
    m.observe(&o);
    let start = cpu_time();
    for _ in 0..N {
        m.observe(std::hint::black_box(&o));
    }
    println!(
        "Registry::observe: {:?} CPU time per request",
        (cpu_time() - start) / N
    );
}
