//! Load balancing through the real gateway: roundrobin weights, chash stickiness, least_conn and
//! ewma, each observed on real upstream servers.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use common::{upstream, Harness};
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use portico_testkit::upstream::{handlers, Gate, Handler, Upstream};
use serde_json::json;

fn route_to(upstream: serde_json::Value) -> Vec<(&'static str, serde_json::Value)> {
    vec![
        ("ws/default/upstreams/1", upstream),
        (
            "ws/default/routes/1",
            json!({"uri": "/*", "upstream_id": "1"}),
        ),
    ]
}

#[tokio::test]
async fn roundrobin_spreads_10000_requests_by_weight_within_5_percent() {
    let ups = [
        Upstream::start("w1", handlers::fixed(200, "ok")).await,
        Upstream::start("w2", handlers::fixed(200, "ok")).await,
        Upstream::start("w5", handlers::fixed(200, "ok")).await,
    ];
    let weights = [1u32, 2, 5];
    let nodes: Vec<(String, u32)> = ups.iter().map(|u| u.node()).zip(weights).collect();
    let nodes: Vec<(&str, u32)> = nodes.iter().map(|(n, w)| (n.as_str(), *w)).collect();
    let gw = Harness::start(route_to(upstream(&nodes, json!({})))).await;

    const TOTAL: usize = 10_000;
    const WORKERS: usize = 8;
    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        let (client, url) = (gw.client(), gw.url("/rr"));
        workers.push(tokio::spawn(async move {
            for _ in 0..TOTAL / WORKERS {
                let resp = client
                    .request(Request::get(&url).body(Full::default()).unwrap())
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200);
                resp.into_body().collect().await.unwrap();
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    let sum: u32 = weights.iter().sum();
    for (up, weight) in ups.iter().zip(weights) {
        let expected = TOTAL as f64 * f64::from(weight) / f64::from(sum);
        let got = up.hits() as f64;
        assert!(
            (got - expected).abs() <= expected * 0.05,
            "{}: {got} requests, expected {expected} ± 5%",
            up.name()
        );
    }
}

#[tokio::test]
async fn chash_keeps_each_key_on_one_node() {
    let ups = [
        Upstream::start("a", handlers::echo()).await,
        Upstream::start("b", handlers::echo()).await,
        Upstream::start("c", handlers::echo()).await,
    ];
    let nodes: Vec<String> = ups.iter().map(Upstream::node).collect();
    let nodes: Vec<(&str, u32)> = nodes.iter().map(|n| (n.as_str(), 1)).collect();
    let gw = Harness::start(vec![
        (
            "ws/default/routes/h",
            json!({"uri": "/h", "upstream": upstream(&nodes, json!({"type": "chash", "hash_on": "header", "key": "X-User"}))}),
        ),
        (
            "ws/default/routes/a",
            json!({"uri": "/a", "upstream": upstream(&nodes, json!({"type": "chash", "key": "arg_id"}))}),
        ),
    ])
    .await;
    for (path, by_header) in [("/h", true), ("/a", false)] {
        let mut seen: HashMap<String, HashSet<String>> = HashMap::new();
        for round in 0..4 {
            for user in 0..24 {
                let key = format!("user-{user}");
                let req = if by_header {
                    gw.request(Method::GET, &format!("{path}?round={round}"))
                        .header("x-user", &key)
                } else {
                    gw.request(Method::GET, &format!("{path}?id={key}&round={round}"))
                };
                let reply = gw.send(req.body(Full::default()).unwrap()).await;
                seen.entry(key).or_default().insert(reply.server());
            }
        }
        assert!(
            seen.values().all(|servers| servers.len() == 1),
            "{path}: a key went to several nodes: {seen:?}"
        );
        let used: HashSet<_> = seen.values().flatten().collect();
        assert!(used.len() >= 2, "{path}: keys all on {used:?}");
    }
}

/// Holds `/hold` at `gate`, echoes everything else.
fn hold_or_echo(gate: &Gate) -> Handler {
    let (held, echo) = (gate.hold(handlers::echo()), handlers::echo());
    Arc::new(move |req| {
        if req.uri().path() == "/hold" {
            held(req)
        } else {
            echo(req)
        }
    })
}

#[tokio::test]
async fn least_conn_sends_to_the_node_without_requests_in_flight() {
    let gate = Gate::new();
    let ups = [
        Upstream::start("a", hold_or_echo(&gate)).await,
        Upstream::start("b", hold_or_echo(&gate)).await,
    ];
    let (na, nb) = (ups[0].node(), ups[1].node());
    let up = upstream(&[(&na, 1), (&nb, 1)], json!({"type": "least_conn"}));
    let gw = Harness::start(route_to(up)).await;

    let client = gw.client();
    let url = gw.url("/hold");
    let held = tokio::spawn(async move {
        let req = Request::get(url).body(Full::default()).unwrap();
        client.request(req).await.unwrap().status()
    });
    gate.until_waiting(1).await;
    let busy = if ups[0].hits() == 1 { "a" } else { "b" };
    for _ in 0..10 {
        let reply = gw.get("/fast").await;
        assert_ne!(reply.server(), busy, "a request went to the busy node");
    }
    gate.open();
    assert_eq!(held.await.unwrap(), 200);
    // With nothing in flight, both nodes are used again.
    let mut servers = HashSet::new();
    for _ in 0..10 {
        servers.insert(gw.get("/fast").await.server());
    }
    assert_eq!(servers.len(), 2, "{servers:?}");
}

#[tokio::test]
async fn ewma_prefers_the_fast_node() {
    let slow = Upstream::start(
        "slow",
        handlers::delayed(Duration::from_millis(40), handlers::echo()),
    )
    .await;
    let fast = Upstream::start("fast", handlers::echo()).await;
    let up = upstream(
        &[(&slow.node(), 1), (&fast.node(), 1)],
        json!({"type": "ewma"}),
    );
    let gw = Harness::start(route_to(up)).await;
    for _ in 0..40 {
        assert_eq!(gw.get("/e").await.status, 200);
    }
    assert!(
        fast.hits() >= 36 && slow.hits() >= 1,
        "fast {} slow {}",
        fast.hits(),
        slow.hits()
    );
}
