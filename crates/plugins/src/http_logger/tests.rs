use serde_json::json;

use super::*;

fn target(conf: Value) -> Target {
    let c: Config = typed(&conf).unwrap();
    Target::new(&c).unwrap()
}

#[test]
fn batches_are_encoded_as_apisix_does() {
    let entries = [json!({"a": 1}), json!({"b": 2})];
    let t = target(json!({"uri": "http://127.0.0.1:1/logs?x=1"}));
    assert_eq!(t.path_and_query, "/logs?x=1");
    assert_eq!(t.encode(&entries, 1000), r#"[{"a":1},{"b":2}]"#);
    assert_eq!(t.encode(&entries[..1], 1), r#"{"a":1}"#);
    let t = target(json!({"uri": "https://logs.test", "concat_method": "new_line"}));
    assert_eq!((t.port, t.path_and_query.as_str()), (443, "/"));
    assert!(t.tls.is_some());
    assert_eq!(t.encode(&entries, 1000), "{\"a\":1}\n{\"b\":2}");
}

#[test]
fn the_schema_has_apisix_s_defaults_and_checks() {
    let registry = crate::registry();
    let schema = registry
        .schema_for(NAME, portico_model::SchemaType::Route)
        .unwrap();
    let mut conf = json!({"uri": "http://127.0.0.1:9/x"});
    portico_model::schema::validate_in_place(schema, &mut conf).unwrap();
    assert_eq!(conf["timeout"], 3);
    assert_eq!(conf["concat_method"], "json");
    assert_eq!(conf["batch_max_size"], 1000);
    assert_eq!(conf["inactive_timeout"], 5);
    assert_eq!(conf["buffer_duration"], 60);
    assert_eq!(conf["name"], "http logger");
    assert_eq!(conf["max_req_body_bytes"], 524288);
    for bad in [
        json!({}),
        json!({"uri": "not a uri"}),
        json!({"uri": "http://h", "concat_method": "csv"}),
        json!({"uri": "http://h", "timeout": 0}),
    ] {
        assert!(
            portico_model::schema::validate(schema, &bad).is_err(),
            "{bad}"
        );
    }
}
