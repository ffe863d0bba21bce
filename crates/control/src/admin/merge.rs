//! PATCH semantics of the Admin API: JSON merge (objects merged key by key, arrays replaced whole,
//! `null` deletes) and sub-path replacement.

use serde_json::{Map, Value};

/// Merges `patch` into `target` the way APISIX's `core.table.merge` does.
pub fn merge(target: &mut Value, patch: Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(&key);
                } else if let Some(existing) = target.get_mut(&key) {
                    if existing.is_object() && value.is_object() {
                        merge(existing, value);
                    } else {
                        *existing = value;
                    }
                } else {
                    target.insert(key, value);
                }
            }
        }
        (target, patch) => *target = patch,
    }
}

/// Replaces the attribute at `path` (segments) with `value`, creating intermediate objects.
/// Fails with the sub-path when a segment crosses something that is not an object.
pub fn set_sub_path(target: &mut Value, path: &[String], value: Value) -> Result<(), String> {
    let invalid = || format!("invalid sub-path: /{}", path.join("/"));
    let Some((last, parents)) = path.split_last() else {
        return Err(invalid());
    };
    let mut node = target;
    for segment in parents {
        let Value::Object(map) = node else {
            return Err(invalid());
        };
        node = map
            .entry(segment.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    let Value::Object(map) = node else {
        return Err(invalid());
    };
    map.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_replaces_arrays_and_null_deletes() {
        let mut v = json!({"uri": "/a", "methods": ["GET", "POST"], "desc": "d",
            "upstream": {"nodes": {"127.0.0.1:1980": 1, "127.0.0.1:1981": 1}, "type": "roundrobin"}});
        merge(
            &mut v,
            json!({"methods": ["PUT"], "desc": null,
                "upstream": {"nodes": {"127.0.0.1:1980": null}}}),
        );
        assert_eq!(
            v,
            json!({"uri": "/a", "methods": ["PUT"],
                "upstream": {"nodes": {"127.0.0.1:1981": 1}, "type": "roundrobin"}})
        );
    }

    #[test]
    fn sub_path_creates_parents_and_refuses_non_objects() {
        let mut v = json!({"uri": "/a"});
        set_sub_path(&mut v, &["upstream".into(), "type".into()], json!("chash")).unwrap();
        assert_eq!(v, json!({"uri": "/a", "upstream": {"type": "chash"}}));
        let err = set_sub_path(&mut v, &["uri".into(), "x".into()], json!(1)).unwrap_err();
        assert_eq!(err, "invalid sub-path: /uri/x");
    }
}
