//! Rule structure (implicit AND, logic operators, nesting) and compile errors.

use std::collections::HashMap;

use portico_expr::Expr;
use serde_json::{json, Value};

fn check(rule: Value, pairs: &[(&str, &str)]) -> bool {
    let vars: HashMap<&str, &str> = pairs.iter().copied().collect();
    match Expr::compile(&rule) {
        Ok(expr) => expr.eval(&vars),
        Err(e) => panic!("{rule} did not compile: {e}"),
    }
}

fn error(rule: Value) -> String {
    match Expr::compile(&rule) {
        Ok(_) => panic!("{rule} compiled"),
        Err(e) => e,
    }
}

const A: (&str, &str) = ("arg_a", "1");
const B: (&str, &str) = ("arg_b", "1");

#[test]
fn empty_rule_always_matches() {
    let expr = Expr::compile(&json!([])).expect("empty rule");
    assert!(expr.is_always_true());
    assert!(expr.eval(&HashMap::<&str, &str>::new()));
}

#[test]
fn a_list_of_expressions_is_an_and() {
    let rule = json!([["arg_a", "==", "1"], ["arg_b", "==", "1"]]);
    assert!(check(rule.clone(), &[A, B]));
    assert!(!check(rule.clone(), &[A]));
    assert!(!check(rule, &[B]));
}

#[test]
fn logic_operators() {
    let two = |op: &str| json!([op, ["arg_a", "==", "1"], ["arg_b", "==", "1"]]);
    let table = [
        ("AND", [true, false, false, false]),
        ("OR", [true, true, true, false]),
        ("!AND", [false, true, true, true]),
        ("!OR", [false, false, false, true]),
    ];
    for (op, expected) in table {
        let got = [
            check(two(op), &[A, B]),
            check(two(op), &[A]),
            check(two(op), &[B]),
            check(two(op), &[]),
        ];
        assert_eq!(got, expected, "{op}");
    }
}

#[test]
fn logic_operator_names_are_case_insensitive() {
    let rule = json!(["or", ["arg_a", "==", "1"], ["arg_b", "==", "1"]]);
    assert!(check(rule, &[B]));
}

#[test]
fn logic_rules_nest() {
    // (a OR b) AND NOT (c AND d), with a list of expressions as an operand.
    let rule = json!([
        "AND",
        ["OR", ["arg_a", "==", "1"], ["arg_b", "==", "1"]],
        [
            "!AND",
            [["arg_c", "==", "1"], ["arg_d", "==", "1"]],
            ["arg_e", "~=", "x"]
        ]
    ]);
    assert!(check(rule.clone(), &[A]));
    assert!(check(rule.clone(), &[B, ("arg_c", "1")]));
    assert!(!check(rule.clone(), &[B, ("arg_c", "1"), ("arg_d", "1")]));
    assert!(!check(rule, &[]));
    // A list of lists is an AND at any depth.
    let nested = json!([[["arg_a", "==", "1"]], ["arg_b", "==", "1"]]);
    assert!(check(nested.clone(), &[A, B]));
    assert!(!check(nested, &[A]));
}

#[test]
fn logic_rule_with_three_operands() {
    let rule = json!([
        "OR",
        ["arg_a", "==", "x"],
        ["arg_b", "==", "x"],
        ["arg_c", "==", "x"]
    ]);
    assert!(check(rule.clone(), &[("arg_c", "x")]));
    assert!(!check(rule, &[("arg_d", "x")]));
}

#[test]
fn extra_elements_after_the_value_are_ignored() {
    assert!(check(json!([["arg_a", "==", "1", "extra", "more"]]), &[A]));
}

#[test]
fn error_messages() {
    assert_eq!(error(json!([["arg_a", "=", "1"]])), "invalid operator '='");
    assert_eq!(
        error(json!([["arg_a", "!", "=", "1"]])),
        "invalid operator '='"
    );
    assert_eq!(error(json!([["arg_a", "!", "1"]])), "invalid operator '!'");
    assert_eq!(
        error(json!([["arg_a", "x", "==", "1"]])),
        "bad 'not' expression"
    );
    assert_eq!(
        error(json!(["arg_a", "==", "1"])),
        "rule should be wrapped inside brackets"
    );
    assert_eq!(error(json!([["arg_a"]])), "invalid expression");
    assert_eq!(error(json!([[]])), "rule too short");
    assert_eq!(error(json!([{}])), "rule too short");
    assert_eq!(
        error(json!(["AND", ["arg_a", "==", "1"]])),
        "rule too short"
    );
    assert_eq!(error(json!(["OR"])), "rule too short");
    assert_eq!(
        error(json!([["arg_a", "==", "1"], "x"])),
        "rule should be wrapped inside brackets"
    );
    assert_eq!(error(json!([[1, "==", "1"]])), "invalid expression");
    assert_eq!(error(json!([["arg_a", null]])), "invalid expression");
    assert_eq!(error(json!(null)), "missing argument rule");
    assert_eq!(error(json!({"a": 1})), "rule should be an array");
}

#[test]
fn nested_errors_surface() {
    let rule = json!([
        "AND",
        ["arg_a", "==", "1"],
        ["OR", ["arg_b", "~", "1"], ["arg_c", "==", "1"]]
    ]);
    assert_eq!(error(rule), "invalid operator '~'");
}

#[test]
fn regexes_are_compiled_up_front() {
    assert_eq!(
        error(json!([["uri", "~~", "(a"]])),
        "invalid regex '(a': unclosed group"
    );
    assert!(error(json!([["uri", "~*", "a{99999999}"]])).starts_with("invalid regex 'a{99999999}'"));
    assert_eq!(
        error(json!([["uri", "~~", null]])),
        "invalid regex for operator '~~': expected a string"
    );
    assert_eq!(
        error(json!([["uri", "~*", ["a"]]])),
        "invalid regex for operator '~*': expected a string"
    );
}

#[test]
fn ip_lists_are_compiled_up_front() {
    assert_eq!(
        error(json!([["remote_addr", "ipmatch", ""]])),
        "invalid ip address"
    );
    assert_eq!(
        error(json!([["remote_addr", "ipmatch", []]])),
        "invalid ip address"
    );
    assert_eq!(
        error(json!([["remote_addr", "ipmatch", null]])),
        "invalid ip address"
    );
    assert_eq!(
        error(json!([["remote_addr", "ipmatch"]])),
        "invalid ip address"
    );
    assert_eq!(
        error(json!([[
            "remote_addr",
            "ipmatch",
            ["10.0.0.0/8", "300.1.1.1"]
        ]])),
        "invalid ip address: 300.1.1.1"
    );
    assert_eq!(
        error(json!([["remote_addr", "ipmatch", "10.0.0.0/40"]])),
        "invalid ip address: 10.0.0.0/40"
    );
}

#[test]
fn compiled_rules_are_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Expr>();
}
