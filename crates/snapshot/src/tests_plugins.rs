//! Plugin chains and consumer indexes through `compile`: what a config change recompiles, what
//! it reuses, and what survives a swap.

use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use portico_model::{encrypt_secrets, Keyring, Kind, Registry};
use portico_plugins::{Ctx, Flow};
use serde_json::{json, Value};

use crate::{compile, Config, Item, RouteEntry, Snapshot};

fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

struct World {
    config: Config,
    revision: i64,
    registry: Registry,
    keyring: Keyring,
    snapshot: Option<Snapshot>,
}

impl World {
    fn new() -> World {
        World {
            config: Config::new(),
            revision: 0,
            registry: portico_plugins::registry(),
            keyring: Keyring::disabled(),
            snapshot: None,
        }
    }

    fn put(&mut self, key: &str, value: Value) -> &mut World {
        self.revision += 1;
        self.config.insert(
            key.to_string(),
            Item {
                mod_revision: self.revision,
                value,
            },
        );
        self
    }

    fn route(&mut self, id: &str, template: Option<&str>) -> &mut World {
        let mut route = json!({
            "uri": format!("/{id}"),
            "upstream": {"type": "roundrobin", "nodes": {"127.0.0.1:1980": 1}}
        });
        if let Some(t) = template {
            route["plugin_config_id"] = json!(t);
        }
        self.put(&format!("ws/default/routes/{id}"), route)
    }

    fn compile(&mut self) -> &Snapshot {
        let next = compile(
            &self.config,
            self.revision,
            self.snapshot.as_ref(),
            &self.registry,
            &self.keyring,
        );
        self.snapshot.insert(next)
    }

    fn entry(&self, path: &str) -> Arc<RouteEntry> {
        let vars: HashMap<&str, &str> = HashMap::new();
        let snapshot = self.snapshot.as_ref().expect("compiled");
        let found = snapshot.router.find(&portico_router::Request {
            host: "",
            path,
            method: "GET",
            remote_addr: "127.0.0.1".parse().expect("ip"),
            vars: &vars,
        });
        found.expect("route matches").route.clone()
    }

    fn names(&self, path: &str) -> Vec<&'static str> {
        match &self.entry(path).plugins.route {
            Ok(chain) => chain.names(),
            Err(_) => vec!["<missing>"],
        }
    }

    fn status(&self, path: &str, headers: &[(&str, &str)]) -> u16 {
        let entry = self.entry(path);
        let mut req = http::Request::builder().uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(()).expect("request");
        let mut ctx = Ctx::from_request(&req, "127.0.0.1:9".parse().expect("addr"));
        match block_on(entry.plugins.access_phase(&mut ctx)) {
            Flow::Continue => 200,
            Flow::Wait(_) => unreachable!("access_phase settles every wait"),
            Flow::Respond(r) => r.status.as_u16(),
        }
    }

    fn problems(&self) -> Vec<String> {
        let snapshot = self.snapshot.as_ref().expect("compiled");
        snapshot.problems.iter().map(|p| p.key.clone()).collect()
    }
}

#[test]
fn a_template_edit_recompiles_its_chain_and_only_it() {
    let mut w = World::new();
    w.put(
        "ws/default/plugin_configs/1",
        json!({"id": "1", "plugins": {"proxy-rewrite": {"uri": "/x"}}}),
    )
    .route("a", Some("1"))
    .route("b", None);
    w.compile();
    assert_eq!(w.names("/a"), ["proxy-rewrite"]);
    assert!(w.names("/b").is_empty());
    let before = w.entry("/a").plugins.route.clone().expect("chain");
    // An unrelated change reuses the chain.
    w.route("b", None).compile();
    let after = w.entry("/a").plugins.route.clone().expect("chain");
    assert!(Arc::ptr_eq(&before, &after));
    // Editing the template recompiles it.
    w.put(
        "ws/default/plugin_configs/1",
        json!({"id": "1", "plugins": {"key-auth": {}, "proxy-rewrite": {"uri": "/x"}}}),
    )
    .compile();
    assert_eq!(w.names("/a"), ["key-auth", "proxy-rewrite"]);
    assert_eq!(w.status("/a", &[]), 401);
}

#[test]
fn routes_without_a_template_share_one_empty_chain() {
    let mut w = World::new();
    w.route("a", None).route("b", None).compile();
    fn chain(w: &World, path: &str) -> Arc<portico_plugins::Chain> {
        let chain = w.entry(path).plugins.route.clone();
        chain.expect("no template: the empty chain")
    }
    let (a, b) = (chain(&w, "/a"), chain(&w, "/b"));
    assert!(a.is_empty(), "no plugins: {:?}", a.names());
    assert!(Arc::ptr_eq(&a, &b), "one empty chain for every route");
    // It stays shared across compiles, and a route given a template stops using it.
    w.put(
        "ws/default/plugin_configs/t",
        json!({"plugins": {"ip-restriction": {"whitelist": ["127.0.0.1"]}}}),
    )
    .route("b", Some("t"))
    .compile();
    assert!(Arc::ptr_eq(&chain(&w, "/a"), &a));
    assert_eq!(w.names("/b"), ["ip-restriction"]);
}

#[test]
fn a_missing_or_broken_template_answers_503() {
    let mut w = World::new();
    w.route("a", Some("nope"))
        .put(
            "ws/default/plugin_configs/bad",
            json!({"id": "bad", "plugins": {"limit-count": {"count": 1, "time_window": 1, "window_type": "sliding"}}}),
        )
        .route("b", Some("bad"));
    w.compile();
    assert_eq!(w.status("/a", &[]), 503);
    assert_eq!(w.status("/b", &[]), 503);
    assert_eq!(w.problems(), ["ws/default/plugin_configs/bad"]);
    // Reported again by the next snapshot, which reuses the failure.
    w.route("a", None).compile();
    assert_eq!(w.status("/a", &[]), 200);
    assert_eq!(w.problems(), ["ws/default/plugin_configs/bad"]);
}

#[test]
fn a_consumer_edit_changes_the_auth_index() {
    let mut w = World::new();
    w.put(
        "ws/default/plugin_configs/1",
        json!({"id": "1", "plugins": {"key-auth": {}}}),
    )
    .route("a", Some("1"))
    .put(
        "ws/default/consumers/jack",
        json!({"username": "jack", "plugins": {"key-auth": {"key": "k1"}}}),
    );
    w.compile();
    assert_eq!(w.status("/a", &[("apikey", "k1")]), 200);
    let index = w.entry("/a").plugins.consumers.clone();
    assert!(index.find("key-auth", "k1").is_some());
    // A route change keeps the index.
    w.route("a", Some("1")).compile();
    assert!(Arc::ptr_eq(&index, &w.entry("/a").plugins.consumers));
    // A consumer change rebuilds it.
    w.put(
        "ws/default/consumers/jack",
        json!({"username": "jack", "plugins": {"key-auth": {"key": "k2"}}}),
    )
    .compile();
    let index = w.entry("/a").plugins.consumers.clone();
    assert!(index.find("key-auth", "k1").is_none());
    assert_eq!(w.status("/a", &[("apikey", "k1")]), 401);
    assert_eq!(w.status("/a", &[("apikey", "k2")]), 200);
    // A credential authenticates as its consumer.
    w.put(
        "ws/default/consumers/jack/credentials/c1",
        json!({"id": "c1", "plugins": {"key-auth": {"key": "k3"}}}),
    )
    .compile();
    let found = w
        .entry("/a")
        .plugins
        .consumers
        .find("key-auth", "k3")
        .cloned();
    assert_eq!(
        found.map(|m| (
            m.consumer.username.clone(),
            m.consumer.credential_id.clone()
        )),
        Some(("jack".to_string(), Some("c1".to_string())))
    );
}

#[test]
fn secrets_are_decrypted_for_the_index() {
    let mut w = World::new();
    w.keyring = Keyring::new(vec!["edd1c9f0985e76a2".into()]).expect("keyring");
    let mut jack = json!({"username": "jack", "plugins": {"basic-auth": {"username": "jack", "password": "pw"}}});
    encrypt_secrets(Kind::Consumer, &mut jack, &w.registry, &w.keyring).expect("encrypt");
    assert_ne!(jack["plugins"]["basic-auth"]["password"], "pw");
    w.put(
        "ws/default/plugin_configs/1",
        json!({"id": "1", "plugins": {"basic-auth": {}}}),
    )
    .route("a", Some("1"))
    .put("ws/default/consumers/jack", jack);
    w.compile();
    // jack:pw
    assert_eq!(
        w.status("/a", &[("authorization", "Basic amFjazpwdw==")]),
        200
    );
}

#[test]
fn groups_merge_and_missing_groups_answer_503() {
    let mut w = World::new();
    w.put("ws/default/plugin_configs/1", json!({"id": "1", "plugins": {"key-auth": {}}}))
        .route("a", Some("1"))
        .put(
            "ws/default/consumer_groups/gold",
            json!({"id": "gold", "plugins": {"limit-count": {"count": 1, "time_window": 60, "rejected_code": 429}}}),
        )
        .put(
            "ws/default/consumers/jack",
            json!({"username": "jack", "group_id": "gold", "plugins": {"key-auth": {"key": "k"}}}),
        )
        .put(
            "ws/default/consumers/rose",
            json!({"username": "rose", "group_id": "gone", "plugins": {"key-auth": {"key": "r"}}}),
        );
    w.compile();
    assert_eq!(w.status("/a", &[("apikey", "k")]), 200);
    // The group's limit applies to its consumers.
    assert_eq!(w.status("/a", &[("apikey", "k")]), 429);
    assert_eq!(w.status("/a", &[("apikey", "r")]), 503);
}

#[test]
fn counters_survive_swaps_and_reset_on_template_edit() {
    let mut w = World::new();
    let limited = json!({"id": "1", "plugins": {"limit-count": {"count": 1, "time_window": 60, "rejected_code": 429}}});
    w.put("ws/default/plugin_configs/1", limited)
        .route("a", Some("1"));
    w.compile();
    assert_eq!(w.status("/a", &[]), 200);
    w.route("a", Some("1")).compile();
    assert_eq!(w.status("/a", &[]), 429);
    w.put(
        "ws/default/plugin_configs/1",
        json!({"id": "1", "plugins": {"limit-count": {"count": 2, "time_window": 60, "rejected_code": 429}}}),
    )
    .compile();
    assert_eq!(w.status("/a", &[]), 200);
}

#[test]
fn global_rules_belong_to_their_workspace() {
    let mut w = World::new();
    w.put(
        "ws/default/global_rules/1",
        json!({"id": "1", "plugins": {"ip-restriction": {"blacklist": ["127.0.0.1"]}}}),
    )
    .route("a", None)
    .put(
        "ws/other/routes/o",
        json!({"uri": "/o", "upstream": {"type": "roundrobin", "nodes": {"127.0.0.1:1980": 1}}}),
    );
    w.compile();
    assert_eq!(w.status("/a", &[]), 403);
    assert_eq!(w.status("/o", &[]), 200);
    let global = w.entry("/a").plugins.global.clone();
    w.route("a", None).compile();
    assert!(Arc::ptr_eq(&global, &w.entry("/a").plugins.global));
}

#[test]
fn plugin_metadata_changes_recompile() {
    let mut w = World::new();
    w.put(
        "ws/default/plugin_configs/1",
        json!({"id": "1", "plugins": {"limit-count": {"count": 5, "time_window": 60}}}),
    )
    .route("a", Some("1"));
    w.compile();
    let header = |w: &World| {
        let entry = w.entry("/a");
        let req = http::Request::builder()
            .uri("/a")
            .body(())
            .expect("request");
        let mut ctx = Ctx::from_request(&req, "127.0.0.1:9".parse().expect("addr"));
        block_on(entry.plugins.access_phase(&mut ctx));
        // The quota headers are written into the response head by the header filter.
        let mut status = http::StatusCode::OK;
        let mut head = http::HeaderMap::new();
        entry
            .plugins
            .header_filter_phase(&mut ctx, &mut status, &mut head);
        let mut names: Vec<String> = head.keys().map(|k| k.to_string()).collect();
        names.sort();
        names
    };
    assert_eq!(
        header(&w),
        [
            "x-ratelimit-limit",
            "x-ratelimit-remaining",
            "x-ratelimit-reset"
        ]
    );
    let before = w.entry("/a").plugins.route.clone().expect("chain");
    w.put(
        "ws/default/plugin_metadata/limit-count",
        json!({"id": "limit-count", "limit_header": "X-Quota"}),
    )
    .compile();
    assert!(!Arc::ptr_eq(
        &before,
        &w.entry("/a").plugins.route.clone().expect("chain")
    ));
    assert_eq!(
        header(&w),
        ["x-quota", "x-ratelimit-remaining", "x-ratelimit-reset"]
    );
}
