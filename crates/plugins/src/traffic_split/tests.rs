use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::testing::{ctx_for, get, plugin};

fn picks(p: &Arc<dyn Plugin>, uri: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let mut ctx = ctx_for(get(uri));
            assert!(p.access(&mut ctx).is_continue());
            match ctx.upstream_pick {
                None => "route".to_string(),
                Some(UpstreamPick::Id(id)) => id,
                Some(UpstreamPick::Built(_)) => "inline".to_string(),
            }
        })
        .collect()
}

#[test]
fn weights_are_spread_smoothly() {
    let p = plugin(
        NAME,
        json!({"rules": [{"weighted_upstreams": [
            {"upstream_id": "a", "weight": 1}, {"weight": 3}
        ]}]}),
    );
    let got = picks(&p, "/", 8);
    assert_eq!(
        got,
        ["route", "a", "route", "route", "route", "a", "route", "route"]
            .map(String::from)
            .to_vec()
    );
}

#[test]
fn first_matching_rule_decides_and_zero_weight_is_never_picked() {
    let p = plugin(
        NAME,
        json!({"rules": [
            {"match": [{"vars": [["arg_name", "==", "jack"]]}, {"vars": [["arg_x", "==", "1"]]}],
             "weighted_upstreams": [{"upstream_id": 7, "weight": 1}, {"weight": 0}]},
            {"weighted_upstreams": [{"upstream_id": "b"}]}
        ]}),
    );
    assert_eq!(picks(&p, "/?name=jack", 3), ["7", "7", "7"]);
    assert_eq!(picks(&p, "/?x=1", 1), ["7"]);
    assert_eq!(picks(&p, "/?name=rose", 2), ["b", "b"]);
}

#[test]
fn no_matching_rule_keeps_the_route_s_upstream() {
    let p = plugin(
        NAME,
        json!({"rules": [{"match": [{"vars": [["arg_name", "==", "jack"]]}],
            "weighted_upstreams": [{"upstream_id": "a"}]}]}),
    );
    assert_eq!(picks(&p, "/", 2), ["route", "route"]);
}

fn checked(registry: &portico_model::Registry, conf: &Value) -> Result<(), String> {
    let template = json!({"id": "1", "plugins": {NAME: conf}});
    portico_model::check(portico_model::Kind::PluginConfig, &template, registry)
}

#[test]
fn configurations_are_checked() {
    let registry = crate::registry();
    let bad_vars = json!({"rules": [{"match": [{"vars": [["arg_a", "=~=", "1"]]}],
        "weighted_upstreams": [{"weight": 1}]}]});
    let err = checked(&registry, &bad_vars).expect_err("refused");
    assert!(
        err.contains("failed to validate the 'vars' expression"),
        "{err}"
    );
    let too_many: Vec<_> = (0..21).map(|_| json!({"weight": 1})).collect();
    let conf = json!({"rules": [{"weighted_upstreams": too_many}]});
    assert!(checked(&registry, &conf).is_err());
    let extra = json!({"rules": [{"weighted_upstreams": [{"upstream": {
        "nodes": {"127.0.0.1:1": 1}, "retries": 2}}]}]});
    let err = checked(&registry, &extra).expect_err("refused");
    assert!(err.contains("additional properties forbidden"), "{err}");
    let ok = json!({"rules": [{"weighted_upstreams": [{"upstream": {
        "type": "chash", "hash_on": "header", "key": "x", "nodes": {"127.0.0.1:1": 1}}}, {"weight": 2}]}]});
    checked(&registry, &ok).expect("accepted");
}

#[test]
fn inline_upstreams_need_a_builder() {
    let conf =
        json!({"rules": [{"weighted_upstreams": [{"upstream": {"nodes": {"127.0.0.1:1": 1}}}]}]});
    let state = crate::PluginState::default();
    let env = BuildEnv {
        owner: "ws/default/plugin_configs/1",
        state: &state,
        metadata: None,
        upstreams: None,
    };
    assert!(build(&conf, &env).is_err());
    let builder = crate::UpstreamBuilder(Box::new(|v: &Value| {
        Ok(Arc::new(v.clone()) as Arc<dyn std::any::Any + Send + Sync>)
    }));
    let env = BuildEnv {
        upstreams: Some(&builder),
        ..env
    };
    let p = build(&conf, &env).expect("built");
    assert_eq!(picks(&p, "/", 1), ["inline"]);
}
