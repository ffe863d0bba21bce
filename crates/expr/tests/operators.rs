//! Every operator of lua-resty-expr v1, with the numeric coercion and nil rules.

use std::borrow::Cow;
use std::collections::HashMap;

use portico_expr::{Expr, Vars};
use serde_json::{json, Value};

fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Evaluates the rule against the variables; a compile error fails the test with its message.
fn check(rule: Value, pairs: &[(&str, &str)]) -> bool {
    match Expr::compile(&rule) {
        Ok(expr) => expr.eval(&vars(pairs)),
        Err(e) => panic!("{rule} did not compile: {e}"),
    }
}

#[test]
fn eq_compares_strings_exactly() {
    assert!(check(json!([["arg_k", "==", "v"]]), &[("arg_k", "v")]));
    assert!(!check(json!([["arg_k", "==", "v"]]), &[("arg_k", "V")]));
    assert!(!check(json!([["arg_k", "==", "v"]]), &[]));
    // A numeric-looking string on the right is still a string comparison.
    assert!(!check(json!([["arg_k", "==", "1"]]), &[("arg_k", "1.0")]));
}

#[test]
fn eq_with_a_number_converts_the_variable() {
    assert!(check(json!([["arg_k", "==", 1]]), &[("arg_k", "1.0")]));
    assert!(check(json!([["arg_k", "==", 16]]), &[("arg_k", " 0x10 ")]));
    assert!(check(json!([["arg_k", "==", 1.5]]), &[("arg_k", "1.5")]));
    assert!(!check(json!([["arg_k", "==", 1]]), &[("arg_k", "one")]));
    assert!(!check(json!([["arg_k", "==", 1]]), &[]));
}

#[test]
fn ne_is_the_negation_of_eq() {
    assert!(check(json!([["arg_k", "~=", "v"]]), &[("arg_k", "w")]));
    assert!(!check(json!([["arg_k", "~=", "v"]]), &[("arg_k", "v")]));
    assert!(check(json!([["arg_k", "~=", "v"]]), &[]));
    assert!(check(json!([["arg_k", "~=", 1]]), &[("arg_k", "2")]));
    assert!(!check(json!([["arg_k", "~=", 1]]), &[("arg_k", "1")]));
    // A non-numeric variable is "not equal" to any number.
    assert!(check(json!([["arg_k", "~=", 1]]), &[("arg_k", "x")]));
    assert!(check(json!([["arg_k", "~=", 1]]), &[]));
}

#[test]
fn null_and_missing_values_mean_nil() {
    assert!(check(json!([["arg_k", "==", null]]), &[]));
    assert!(!check(json!([["arg_k", "==", null]]), &[("arg_k", "")]));
    assert!(check(json!([["arg_k", "~=", null]]), &[("arg_k", "")]));
    assert!(!check(json!([["arg_k", "~=", null]]), &[]));
    assert!(check(json!([["arg_k", "=="]]), &[]));
}

#[test]
fn eq_against_booleans_and_tables_never_holds() {
    assert!(!check(json!([["arg_k", "==", true]]), &[("arg_k", "true")]));
    assert!(!check(json!([["arg_k", "==", ["a"]]]), &[("arg_k", "a")]));
    assert!(check(json!([["arg_k", "~=", true]]), &[("arg_k", "true")]));
}

#[test]
fn ordering_operators_are_numeric_on_both_sides() {
    let k = |v| [("arg_k", v)];
    assert!(check(json!([["arg_k", ">", 10]]), &k("10.5")));
    assert!(!check(json!([["arg_k", ">", 10]]), &k("10")));
    assert!(check(json!([["arg_k", ">=", 10]]), &k("10")));
    assert!(check(json!([["arg_k", "<", 10]]), &k("9")));
    assert!(!check(json!([["arg_k", "<", 10]]), &k("10")));
    assert!(check(json!([["arg_k", "<=", 10]]), &k("1e1")));
    // Numeric strings on the right are converted too ("9" < "10" as numbers, not as text).
    assert!(check(json!([["arg_k", ">", "9"]]), &k("10")));
    // Either side non-numeric, or the variable unset: false.
    assert!(!check(json!([["arg_k", ">", 1]]), &k("abc")));
    assert!(!check(json!([["arg_k", ">", "abc"]]), &k("5")));
    assert!(!check(json!([["arg_k", "<", 1]]), &[]));
    assert!(!check(json!([["arg_k", "<=", null]]), &k("1")));
}

#[test]
fn regex_match_is_an_unanchored_search() {
    assert!(check(
        json!([["uri", "~~", "^/api/v[0-9]+"]]),
        &[("uri", "/api/v2/x")]
    ));
    assert!(check(
        json!([["uri", "~~", "v[0-9]"]]),
        &[("uri", "/api/v2/x")]
    ));
    assert!(!check(
        json!([["uri", "~~", "^/api"]]),
        &[("uri", "/API/v2")]
    ));
    assert!(!check(json!([["uri", "~~", ".*"]]), &[]));
    assert!(check(json!([["arg_n", "~~", 12]]), &[("arg_n", "x12y")]));
}

#[test]
fn case_insensitive_regex() {
    assert!(check(
        json!([["uri", "~*", "^/api"]]),
        &[("uri", "/API/v2")]
    ));
    assert!(check(
        json!([["http_x", "~*", "CHROME"]]),
        &[("http_x", "chrome/1")]
    ));
    assert!(!check(
        json!([["http_x", "~*", "firefox"]]),
        &[("http_x", "chrome/1")]
    ));
    assert!(!check(json!([["http_x", "~*", ".*"]]), &[]));
}

#[test]
fn in_compares_with_string_elements() {
    let rule = json!([["arg_k", "in", ["a", "b"]]]);
    assert!(check(rule.clone(), &[("arg_k", "b")]));
    assert!(!check(rule.clone(), &[("arg_k", "c")]));
    assert!(!check(rule, &[]));
    // Lua's `==` never equals a number and a string, and a non-array holds nothing.
    assert!(!check(json!([["arg_k", "in", [1, 2]]]), &[("arg_k", "1")]));
    assert!(!check(json!([["arg_k", "in", "abc"]]), &[("arg_k", "abc")]));
    assert!(!check(
        json!([["arg_k", "in", {"a": 1}]]),
        &[("arg_k", "a")]
    ));
}

/// A variable source with one list-valued variable, like APISIX's `graphql_root_fields`.
struct Graphql;

impl Vars for Graphql {
    fn var(&self, name: &str) -> Option<Cow<'_, str>> {
        (name == "graphql_name").then_some(Cow::Borrowed("repo"))
    }

    fn list_contains(&self, name: &str, item: &str) -> bool {
        name == "graphql_root_fields" && ["owner", "repo"].contains(&item)
    }
}

#[test]
fn has_looks_inside_list_variables() {
    let eval = |rule: Value| Expr::compile(&rule).map(|e| e.eval(&Graphql));
    assert_eq!(
        eval(json!([["graphql_root_fields", "has", "owner"]])),
        Ok(true)
    );
    assert_eq!(
        eval(json!([["graphql_root_fields", "has", "x"]])),
        Ok(false)
    );
    assert_eq!(eval(json!([["graphql_root_fields", "has", 1]])), Ok(false));
    // A scalar variable is not a list.
    assert_eq!(eval(json!([["graphql_name", "has", "repo"]])), Ok(false));
    assert_eq!(
        eval(json!([["graphql_root_fields", "!", "has", "x"]])),
        Ok(true)
    );
}

#[test]
fn ipmatch_accepts_one_address_or_a_list_of_cidrs() {
    let single = json!([["remote_addr", "ipmatch", "10.0.0.1"]]);
    assert!(check(single.clone(), &[("remote_addr", "10.0.0.1")]));
    assert!(!check(single, &[("remote_addr", "10.0.0.2")]));
    let list = json!([[
        "remote_addr",
        "ipmatch",
        ["192.168.0.0/16", "2001:db8::/32"]
    ]]);
    assert!(check(list.clone(), &[("remote_addr", "192.168.3.4")]));
    assert!(check(list.clone(), &[("remote_addr", "2001:db8::7")]));
    assert!(!check(list.clone(), &[("remote_addr", "10.0.0.1")]));
    assert!(!check(list.clone(), &[("remote_addr", "not-an-ip")]));
    assert!(!check(list, &[]));
}

#[test]
fn operator_names_are_case_insensitive() {
    assert!(check(json!([["arg_k", "IN", ["a"]]]), &[("arg_k", "a")]));
    assert!(check(
        json!([["ip", "IPMatch", "1.1.1.1"]]),
        &[("ip", "1.1.1.1")]
    ));
    assert!(check(
        json!([["arg_k", "!", "In", ["b"]]]),
        &[("arg_k", "a")]
    ));
}

#[test]
fn negation_inverts_every_operator() {
    let k = |v| [("arg_k", v)];
    assert!(check(json!([["arg_k", "!", "==", "v"]]), &k("w")));
    assert!(!check(json!([["arg_k", "!", "==", "v"]]), &k("v")));
    assert!(check(json!([["arg_k", "!", "~=", "v"]]), &k("v")));
    assert!(check(json!([["arg_k", "!", ">", 5]]), &k("abc")));
    assert!(check(json!([["arg_k", "!", "~~", "^a"]]), &[]));
    assert!(check(json!([["arg_k", "!", "in", ["a"]]]), &k("b")));
    assert!(check(
        json!([["arg_k", "!", "ipmatch", "1.1.1.1"]]),
        &k("bad")
    ));
    assert!(check(json!([["arg_k", "!", "IN", ["a"]]]), &[]));
}

#[test]
fn two_element_form_is_a_lower_cased_equality() {
    assert!(check(json!([["arg_k", "v"]]), &[("arg_k", "v")]));
    // lua-resty-expr lower-cases the operator slot before treating it as the value.
    assert!(check(json!([["arg_k", "Tom"]]), &[("arg_k", "tom")]));
    assert!(!check(json!([["arg_k", "Tom"]]), &[("arg_k", "Tom")]));
    assert!(check(json!([["arg_k", 5]]), &[("arg_k", "5")]));
}
