//! Message grammar of §1.8, one keyword at a time.

use super::*;
use serde_json::json;

fn err(schema: Value, value: Value) -> String {
    validate(&schema, &value).expect_err("should fail")
}

#[test]
fn type_messages_use_lua_names() {
    assert_eq!(
        err(json!({"type": "string"}), json!(1)),
        "wrong type: expected string, got number"
    );
    assert_eq!(
        err(json!({"type": "string"}), json!({"a": 1})),
        "wrong type: expected string, got table"
    );
    assert_eq!(
        err(json!({"type": "string"}), json!(null)),
        "wrong type: expected string, got userdata"
    );
    assert_eq!(
        err(json!({"type": "integer"}), json!(1.5)),
        "wrong type: expected integer, got number"
    );
    assert!(validate(&json!({"type": "integer"}), &json!(2.0)).is_ok());
    assert_eq!(
        err(json!({"type": ["string", "array"]}), json!(true)),
        "wrong type: expected one of string, array, got boolean"
    );
    assert_eq!(
        err(json!({"type": "object"}), json!([1])),
        "wrong type: expected object, got table"
    );
}

#[test]
fn empty_containers_are_both_object_and_array() {
    assert!(validate(&json!({"type": "object"}), &json!([])).is_ok());
    assert!(validate(&json!({"type": "array"}), &json!({})).is_ok());
    assert_eq!(
        err(json!({"type": "array", "minItems": 1}), json!({})),
        "expect array to have at least 1 items"
    );
}

#[test]
fn object_keywords() {
    let s =
        json!({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a", "b"]});
    assert_eq!(err(s.clone(), json!({})), "property \"a\" is required");
    assert_eq!(
        err(s.clone(), json!({"a": "x"})),
        "property \"b\" is required"
    );
    assert_eq!(
        err(s, json!({"a": 1, "b": 1})),
        "property \"a\" validation failed: wrong type: expected string, got number"
    );
    let closed = json!({"type": "object", "properties": {"a": {}}, "additionalProperties": false});
    assert_eq!(
        err(closed, json!({"a": 1, "foo": 2})),
        "additional properties forbidden, found foo"
    );
    let labels = json!({"type": "object", "patternProperties": {".*": {"type": "string", "pattern": "^\\S+$"}}});
    assert_eq!(
        err(labels.clone(), json!({"env": {}})),
        "failed to validate env (matching \".*\"): wrong type: expected string, got table"
    );
    assert_eq!(
        err(labels, json!({"env": "a b"})),
        "failed to validate env (matching \".*\"): failed to match pattern \"^\\\\S+$\" with \"a b\""
    );
    assert_eq!(
        err(json!({"maxProperties": 1}), json!({"a": 1, "b": 2})),
        "expect object to have at most 1 properties"
    );
    assert_eq!(
        err(
            json!({"additionalProperties": {"type": "integer"}}),
            json!({"x": "1"})
        ),
        "failed to validate additional property x: wrong type: expected integer, got string"
    );
}

#[test]
fn defaults_are_injected_before_counting() {
    let s = json!({"type": "object", "properties": {"flag": {"type": "boolean", "default": false}}, "minProperties": 1});
    let mut v = json!({});
    assert!(validate_in_place(&s, &mut v).is_ok());
    assert_eq!(v, json!({"flag": false}));
    let mut arr = json!([]);
    assert!(validate_in_place(&s, &mut arr).is_ok());
    assert_eq!(arr, json!({"flag": false}));
}

#[test]
fn dependencies() {
    let s =
        json!({"properties": {"a": {}}, "dependencies": {"a": ["b"], "c": {"required": ["d"]}}});
    assert_eq!(
        err(s.clone(), json!({"a": 1})),
        "property \"b\" is required when \"a\" is set"
    );
    assert_eq!(
        err(s, json!({"c": 1})),
        "failed to validate dependent schema for \"c\": property \"d\" is required"
    );
}

#[test]
fn array_keywords() {
    let methods = json!({"type": "array", "items": {"type": "string", "enum": ["GET", "POST"]}, "uniqueItems": true});
    assert_eq!(
        err(methods.clone(), json!(["get"])),
        "failed to validate item 1: matches none of the enum values"
    );
    assert_eq!(
        err(methods, json!(["GET", "GET"])),
        "expected unique items but items 1 and 2 are equal"
    );
    assert_eq!(
        err(json!({"maxItems": 1}), json!([1, 2])),
        "expect array to have at most 1 items"
    );
    assert_eq!(
        err(
            json!({"items": [{"type": "string"}], "additionalItems": false}),
            json!(["a", "b"])
        ),
        "found unexpected extra items in array"
    );
}

#[test]
fn string_and_number_keywords() {
    assert_eq!(
        err(json!({"minLength": 1}), json!("")),
        "string too short, expected at least 1, got 0"
    );
    assert_eq!(
        err(json!({"maxLength": 2}), json!("héé")),
        "string too long, expected at most 2, got 3"
    );
    assert_eq!(
        err(json!({"pattern": "^\\/.*"}), json!("home")),
        "failed to match pattern \"^\\\\/.*\" with \"home\""
    );
    assert_eq!(
        err(json!({"minimum": 1}), json!(0)),
        "expected 0 to be at least 1"
    );
    assert_eq!(
        err(json!({"maximum": 254}), json!(255)),
        "expected 255 to be at most 254"
    );
    assert_eq!(
        err(json!({"exclusiveMinimum": 0}), json!(0)),
        "expected 0 to be greater than 0"
    );
    assert_eq!(
        err(json!({"exclusiveMaximum": 1}), json!(1.5)),
        "expected 1.5 to be smaller than 1"
    );
    assert_eq!(
        err(json!({"multipleOf": 2}), json!(3)),
        "expected 3 to be a multiple of 2"
    );
    assert!(validate(&json!({"multipleOf": 0.01}), &json!(1.13)).is_ok());
}

#[test]
fn combinators() {
    let id = json!({"anyOf": [{"type": "string"}, {"type": "integer", "minimum": 1}]});
    assert_eq!(err(id, json!(0)), "object matches none of the required");
    let checks = json!({"anyOf": [{"required": ["active"]}, {"required": ["active", "passive"]}]});
    assert_eq!(
        err(checks, json!({"passive": {}})),
        "object matches none of the required: [\"active\"] or [\"active\",\"passive\"]"
    );
    let one = json!({"oneOf": [{"required": ["a"]}, {"required": ["b"]}]});
    assert_eq!(
        err(one.clone(), json!({})),
        "value should match only one schema, but matches none"
    );
    assert_eq!(
        err(one, json!({"a": 1, "b": 1})),
        "value should match only one schema, but matches both schemas 1 and 2"
    );
    assert_eq!(
        err(json!({"allOf": [{}, {"type": "string"}]}), json!(1)),
        "allOf 2 failed: wrong type: expected string, got number"
    );
    assert_eq!(
        err(json!({"not": {"required": ["a"]}}), json!({"a": 1})),
        "value wasn't supposed to match schema"
    );
    let cond = json!({"if": {"properties": {"t": {"enum": ["s"]}}}, "then": {"required": ["x"]}, "else": {"required": ["y"]}});
    assert_eq!(
        err(cond.clone(), json!({"t": "s"})),
        "then clause did not match"
    );
    assert_eq!(err(cond, json!({"t": "c"})), "else clause did not match");
}

#[test]
fn enum_const_and_format() {
    assert_eq!(
        err(json!({"enum": [1, 0]}), json!(2)),
        "matches none of the enum values"
    );
    assert!(validate(&json!({"enum": [1, 0]}), &json!(1.0)).is_ok());
    assert_eq!(
        err(json!({"const": {"a": 1}}), json!({"a": 2})),
        "failed to check const value"
    );
    assert_eq!(
        err(json!({"format": "ipv4"}), json!("1.2.3")),
        "expect valid ipv4 format but got: 1.2.3"
    );
    assert!(validate(&json!({"format": "ipv6"}), &json!("::1")).is_ok());
    assert!(validate(&json!({"format": "unknown"}), &json!("x")).is_ok());
}

#[test]
fn empty_required_list_demands_an_empty_table() {
    assert_eq!(
        err(json!({"required": []}), json!({"a": 1})),
        "the input data should be an empty table"
    );
    assert!(validate(&json!({"required": []}), &json!({})).is_ok());
}
