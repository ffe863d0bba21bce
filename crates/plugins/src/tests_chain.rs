//! Chains: order, `_meta`, global rules, the consumer merge and the route phases.

use std::sync::Arc;

use http::{HeaderMap, StatusCode};
use serde_json::json;

use crate::testing::{block_on, consumer, ctx_for, get, Fixture};
use crate::{
    Chain, Consumer, ConsumerGroup, ConsumerIndex, Ctx, Entry, Flow, GroupLink, Phases, Plugin,
    Reply, RoutePlugins,
};

/// Records `label:phase` into the context; may attach a consumer or answer.
#[derive(Debug)]
struct Recorder {
    name: &'static str,
    label: &'static str,
    priority: i32,
    attach: Option<Arc<Consumer>>,
    answer_in: Option<&'static str>,
    phases: Phases,
}

#[derive(Debug, Default, Clone)]
struct Log(Vec<String>);

fn record(ctx: &mut Ctx, label: &str, phase: &str) {
    let entry = format!("{label}:{phase}");
    match ctx.data.get_mut::<Log>() {
        Some(log) => log.0.push(entry),
        None => {
            ctx.data.insert(Log(vec![entry]));
        }
    }
}

impl Recorder {
    fn answer(&self, phase: &str) -> Flow {
        match self.answer_in {
            Some(p) if p == phase => Flow::Respond(Reply::page(StatusCode::FORBIDDEN)),
            _ => Flow::Continue,
        }
    }
}

impl Plugin for Recorder {
    fn name(&self) -> &'static str {
        self.name
    }
    fn priority(&self) -> i32 {
        self.priority
    }
    fn is_auth(&self) -> bool {
        self.attach.is_some()
    }
    fn rewrite(&self, ctx: &mut Ctx) -> Flow {
        record(ctx, self.label, "rewrite");
        if let Some(c) = &self.attach {
            ctx.attach_consumer(c.clone());
        }
        self.answer("rewrite")
    }
    fn access(&self, ctx: &mut Ctx) -> Flow {
        record(ctx, self.label, "access");
        self.answer("access")
    }
    fn header_filter(&self, ctx: &mut Ctx) {
        record(ctx, self.label, "header_filter");
    }
    fn phases(&self) -> Phases {
        self.phases
    }
}

fn rec(name: &'static str, label: &'static str, priority: i32) -> Recorder {
    Recorder {
        name,
        label,
        priority,
        attach: None,
        answer_in: None,
        phases: Phases::ALL,
    }
}

fn entry(r: Recorder) -> Entry {
    Entry::new(Arc::new(r), None, None, None)
}

fn chain(recorders: Vec<Recorder>) -> Arc<Chain> {
    Arc::new(Chain::new(recorders.into_iter().map(entry).collect()))
}

fn route(global: Arc<Chain>, route: Arc<Chain>) -> RoutePlugins {
    RoutePlugins {
        global,
        route: Ok(route),
        ..RoutePlugins::none("r1")
    }
}

/// access + header_filter; the recorded phases and the answer's status, if any.
fn run(plugins: &RoutePlugins) -> (Vec<String>, Option<u16>) {
    let mut ctx = ctx_for(get("/"));
    let flow = block_on(plugins.access_phase(&mut ctx));
    let (mut status, mut headers) = (StatusCode::OK, HeaderMap::new());
    let answered = match flow {
        Flow::Respond(r) => {
            status = r.status;
            Some(r.status.as_u16())
        }
        Flow::Continue => None,
        Flow::Wait(_) => unreachable!("this plugin never waits"),
    };
    plugins.header_filter_phase(&mut ctx, &mut status, &mut headers);
    let log = ctx.data.get::<Log>().cloned().unwrap_or_default().0;
    (log, answered)
}

#[test]
fn plugins_run_only_in_the_phases_they_declare() {
    let only = |name, phases| Recorder {
        phases,
        ..rec(name, name, 1)
    };
    let p = route(
        chain(vec![only("g", Phases::HEADER_FILTER)]),
        chain(vec![
            only("a", Phases::ACCESS),
            only("r", Phases::REWRITE.with(Phases::HEADER_FILTER)),
        ]),
    );
    let (log, answered) = run(&p);
    assert_eq!(answered, None);
    assert_eq!(
        log,
        [
            "r:rewrite",
            "a:access",
            "g:header_filter",
            "r:header_filter"
        ]
    );
    let mut ctx = ctx_for(get("/"));
    block_on(p.access_phase(&mut ctx));
    assert!(p.has(&ctx, Phases::HEADER_FILTER) && p.has(&ctx, Phases::ACCESS));
    assert!(!p.has(&ctx, Phases::BODY_FILTER) && !p.has(&ctx, Phases::LOG));

    // An entry's `_meta.filter` is still evaluated in the first phase it could run in (here
    // `rewrite`, before the URI changes), though the plugin has no work there.
    let filtered = Entry::new(
        Arc::new(only("f", Phases::ACCESS)),
        None,
        Some(portico_expr::Expr::compile(&json!([["uri", "==", "/"]])).unwrap()),
        None,
    );
    let rewriter = Entry::new(Arc::new(Rewriter), None, None, None);
    let p = route(
        Arc::new(Chain::empty()),
        Arc::new(Chain::new(vec![filtered, rewriter])),
    );
    let (log, _) = run(&p);
    assert_eq!(log, ["f:access"]);
}

/// Changes the URI in `rewrite` (after every other plugin of the tests: priority -1).
#[derive(Debug)]
struct Rewriter;

impl Plugin for Rewriter {
    fn name(&self) -> &'static str {
        "rewriter"
    }
    fn priority(&self) -> i32 {
        -1
    }
    fn rewrite(&self, ctx: &mut Ctx) -> Flow {
        ctx.uri = "/elsewhere".parse().unwrap();
        ctx.path = "/elsewhere".into();
        Flow::Continue
    }
    fn phases(&self) -> Phases {
        Phases::REWRITE
    }
}

#[test]
fn global_rewrite_first_global_access_after_route_rewrite() {
    let p = route(
        chain(vec![rec("g", "g", 1)]),
        chain(vec![rec("low", "r2", 1), rec("high", "r1", 10)]),
    );
    let (log, answered) = run(&p);
    assert_eq!(answered, None);
    assert_eq!(
        log,
        [
            "g:rewrite",
            "r1:rewrite",
            "r2:rewrite",
            "g:access",
            "r1:access",
            "r2:access",
            "g:header_filter",
            "r1:header_filter",
            "r2:header_filter"
        ]
    );
}

#[test]
fn an_early_answer_stops_rewrite_and_access_but_not_header_filter() {
    let mut stop = rec("stop", "s", 5);
    stop.answer_in = Some("rewrite");
    let p = route(
        chain(vec![rec("g", "g", 1)]),
        chain(vec![stop, rec("after", "a", 1)]),
    );
    let (log, answered) = run(&p);
    assert_eq!(answered, Some(403));
    assert_eq!(
        log,
        [
            "g:rewrite",
            "s:rewrite",
            "g:header_filter",
            "s:header_filter",
            "a:header_filter"
        ]
    );
}

fn group(plugins: Arc<Chain>, revision: i64) -> GroupLink {
    GroupLink::Ready(Arc::new(ConsumerGroup {
        id: "gold".into(),
        key: "ws/default/consumer_groups/gold".into(),
        revision,
        plugins,
    }))
}

#[test]
fn consumer_merge_precedence_and_consumer_rewrite_pass() {
    let mut c = consumer("jack");
    c.group = Some(group(
        chain(vec![rec("grp", "g1", 20), rec("shared", "g-shared", 2)]),
        1,
    ));
    c.plugins = chain(vec![rec("mine", "c1", 5), rec("shared", "c-shared", 2)]);
    let mut auth = rec("auth", "auth", 100);
    auth.attach = Some(Arc::new(c));
    let p = route(
        Arc::new(Chain::empty()),
        chain(vec![auth, rec("shared", "r-shared", 2)]),
    );
    let (log, _) = run(&p);
    assert_eq!(
        log,
        [
            "auth:rewrite",
            "r-shared:rewrite",
            // rewrite of what the group and consumer brought (not auth, not replaced ones)
            "g1:rewrite",
            "c1:rewrite",
            // the consumer's `shared` beats the group's and the route's
            "auth:access",
            "g1:access",
            "c1:access",
            "c-shared:access",
            "auth:header_filter",
            "g1:header_filter",
            "c1:header_filter",
            "c-shared:header_filter"
        ]
    );
}

#[test]
fn merged_chains_are_cached_per_revision() {
    let route_chain = chain(vec![rec("r", "r", 1)]);
    let mut c = consumer("jack");
    c.plugins = chain(vec![rec("c", "c", 2)]);
    let first = route_chain.merged(&c).ok().flatten();
    let again = route_chain.merged(&c).ok().flatten();
    assert!(first.is_some_and(|a| again.is_some_and(|b| Arc::ptr_eq(&a, &b))));
    c.revision = 2;
    assert_eq!(
        route_chain.merged(&c).ok().flatten().map(|m| m.names()),
        Some(vec!["c", "r"])
    );
    assert_eq!(route_chain.merged_cached(), 2);
    // Nothing to merge: the route chain stays.
    assert!(matches!(route_chain.merged(&consumer("bare")), Ok(None)));
}

#[test]
fn missing_group_or_template_answers_503() {
    let mut c = consumer("jack");
    c.group = Some(GroupLink::Missing("gone".into()));
    let mut auth = rec("auth", "auth", 1);
    auth.attach = Some(Arc::new(c));
    let (_, answered) = run(&route(Arc::new(Chain::empty()), chain(vec![auth])));
    assert_eq!(answered, Some(503));

    let p = RoutePlugins {
        route: Err("plugin template 9 not found".into()),
        global: chain(vec![rec("g", "g", 1)]),
        ..RoutePlugins::none("r1")
    };
    let (log, answered) = run(&p);
    assert_eq!(answered, Some(503));
    assert_eq!(log, ["g:header_filter"]);
}

#[test]
fn order_and_meta_from_configurations() {
    let f = Fixture::new();
    let c = f.chain(
        json!({
            "limit-count": {"count": 1, "time_window": 60},
            "key-auth": {},
            "proxy-rewrite": {"uri": "/x", "_meta": {"priority": 5000}},
            "ip-restriction": {"whitelist": ["10.0.0.0/8"], "_meta": {"disable": true}},
            "basic-auth": {"hide_credentials": "not a bool", "_meta": {"disable": true}},
            "unknown-plugin": {}
        }),
        "ws/default/plugin_configs/1",
    );
    assert_eq!(c.names(), ["proxy-rewrite", "key-auth", "limit-count"]);
    let err = f
        .compiler()
        .plugins(
            json!({"key-auth": {"header": 1}})
                .as_object()
                .unwrap_or(&Default::default()),
            "o",
        )
        .expect_err("invalid");
    assert_eq!(
        err,
        "failed to check the configuration of plugin key-auth err: property \"header\" validation failed: wrong type: expected string, got number"
    );
}

#[test]
fn meta_filter_and_error_response() {
    let f = Fixture::new();
    let p = RoutePlugins {
        route: Ok(f.chain(
            json!({
                "ip-restriction": {"whitelist": ["10.0.0.0/8"], "_meta": {"filter": [["arg_check", "==", "yes"]]}},
                "key-auth": {"_meta": {"error_response": {"reason": "auth"}}}
            }),
            "o",
        )),
        consumers: crate::testing::index(
            &[json!({"username": "jack", "plugins": {"key-auth": {"key": "k"}}})],
            &[],
        ),
        ..RoutePlugins::none("r1")
    };
    let access = |uri: &str| {
        let mut ctx = ctx_for(get(uri).header("apikey", "k"));
        block_on(p.access_phase(&mut ctx))
    };
    assert_eq!(access("/"), Flow::Continue);
    assert!(matches!(access("/?check=yes"), Flow::Respond(r) if r.status == 403));
    let mut ctx = ctx_for(get("/"));
    match block_on(p.access_phase(&mut ctx)) {
        Flow::Respond(r) => {
            assert_eq!(r.status, 401);
            assert_eq!(r.body, b"{\"reason\":\"auth\"}\n");
            assert_eq!(r.headers["www-authenticate"], "apikey realm=\"key\"");
        }
        Flow::Continue => panic!("key-auth should answer"),
        Flow::Wait(_) => unreachable!("this plugin never waits"),
    }
}

#[test]
fn global_rules_drop_plugins_configured_twice() {
    let f = Fixture::new();
    let a = json!({"ip-restriction": {"blacklist": ["1.1.1.1"]}, "key-auth": {}});
    let b = json!({"ip-restriction": {"blacklist": ["2.2.2.2"]}, "limit-count": {"count": "x", "policy": "redis"}});
    let c = json!({"proxy-rewrite": {"uri": "/g"}});
    let empty = serde_json::Map::new();
    let map = |v: &serde_json::Value| v.as_object().cloned().unwrap_or_else(|| empty.clone());
    let (ma, mb, mc) = (map(&a), map(&b), map(&c));
    let (chain, problems) = f.compiler().global_rules(&[
        ("ws/default/global_rules/a", &ma),
        ("ws/default/global_rules/b", &mb),
        ("ws/default/global_rules/c", &mc),
    ]);
    // Rule b is left out, so ip-restriction is configured once among the loaded rules.
    assert_eq!(
        chain.names(),
        ["ip-restriction", "key-auth", "proxy-rewrite"]
    );
    let d = json!({"proxy-rewrite": {"uri": "/d", "_meta": {"disable": true}}});
    let md = map(&d);
    let (chain, _) = f
        .compiler()
        .global_rules(&[("a", &ma), ("c", &mc), ("d", &md)]);
    // Configured twice (even disabled once): dropped from both.
    assert_eq!(chain.names(), ["ip-restriction", "key-auth"]);
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].0, "ws/default/global_rules/b");
}

#[test]
fn the_reference_precedence_example() {
    // §10.3 without services: template limit-count{count:5} + key-auth, consumer limit-count
    // {count:1}, global limit-count{count:1000}; the consumer's wins on the route, the global
    // instance counts separately.
    let f = Fixture::new();
    let global = f.chain(
        json!({"limit-count": {"count": 1000, "time_window": 60}}),
        "ws/d/global_rules/1",
    );
    let template = f.chain(
        json!({"key-auth": {}, "limit-count": {"count": 5, "time_window": 60}}),
        "ws/d/plugin_configs/p",
    );
    let mut jack = consumer("jack");
    jack.plugins = Arc::new(
        f.compiler()
            .consumer_plugins(
                json!({"key-auth": {"key": "k"}, "limit-count": {"count": 1, "time_window": 60}})
                    .as_object()
                    .unwrap_or(&Default::default()),
                "ws/d/consumers/jack",
            )
            .expect("compiles"),
    );
    assert_eq!(jack.plugins.names(), ["limit-count"]);
    let mut index = ConsumerIndex::new();
    let plugins = json!({"key-auth": {"key": "k"}});
    index.add_consumer(
        Arc::new(jack),
        plugins.as_object().unwrap_or(&Default::default()),
        &f.registry,
    );
    let p = RoutePlugins {
        global,
        route: Ok(template),
        consumers: Arc::new(index),
        ..RoutePlugins::none("r")
    };
    let access = || {
        let mut ctx = ctx_for(get("/").header("apikey", "k"));
        let flow = block_on(p.access_phase(&mut ctx));
        (flow, ctx.response_headers.get("x-ratelimit-limit").cloned())
    };
    let (flow, limit) = access();
    assert_eq!(flow, Flow::Continue);
    assert_eq!(limit.as_ref().map(|v| v.as_bytes()), Some(&b"1"[..]));
    assert!(matches!(access().0, Flow::Respond(r) if r.status == 503));
    // The global instance counted both requests.
    assert_eq!(f.state.counters.len(), 2);
}
