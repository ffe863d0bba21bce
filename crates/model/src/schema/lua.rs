//! Lua/cjson behaviour that leaks into APISIX's messages: type names, number formatting, `%q`
//! quoting, cjson encoding and table equality.

use serde_json::Value;

/// Lua's `type()` of a decoded JSON value: objects and arrays are both `table`, JSON `null`
/// (cjson's lightuserdata) is `userdata`.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "userdata",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) | Value::Object(_) => "table",
    }
}

/// Lua can not tell `{}` from `[]`: an empty container is both an object and an array.
pub(crate) fn is_empty_table(v: &Value) -> bool {
    match v {
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// `object` in api7/jsonschema: a JSON object or an empty array.
pub(crate) fn is_object_like(v: &Value) -> bool {
    matches!(v, Value::Object(_)) || is_empty_table(v)
}

/// `array` in api7/jsonschema: a JSON array or an empty object.
pub(crate) fn is_array_like(v: &Value) -> bool {
    matches!(v, Value::Array(_)) || is_empty_table(v)
}

/// A JSON number as the `f64` Lua holds.
pub(crate) fn num(v: &Value) -> Option<f64> {
    v.as_f64()
}

/// LuaJIT's `tostring(number)`, i.e. C's `%.14g`.
pub fn format_number(x: f64) -> String {
    if x.is_nan() {
        return "nan".to_string();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    let sci = format!("{x:.13e}");
    let (mantissa, exp) = match sci.split_once('e') {
        Some((m, e)) => (m.to_string(), e.parse::<i32>().unwrap_or(0)),
        None => return sci,
    };
    if !(-4..14).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim_zeros(&mantissa), exp.abs())
    } else {
        let decimals = usize::try_from(13 - exp).unwrap_or(0);
        trim_zeros(&format!("{x:.decimals$}")).to_string()
    }
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// The number of a JSON value formatted as Lua would print it.
pub(crate) fn format_value_number(v: &Value) -> String {
    num(v).map(format_number).unwrap_or_default()
}

/// Lua's `string.format("%q", s)` (LuaJIT flavour).
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\\n"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let next_is_digit = chars.peek().is_some_and(|n| n.is_ascii_digit());
                if next_is_digit {
                    out.push_str(&format!("\\{:03}", c as u32));
                } else {
                    out.push_str(&format!("\\{}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `cjson.encode` of a value: numbers as `%.14g`, `/` escaped, empty containers as `{}`.
pub fn cjson_encode(v: &Value) -> String {
    let mut out = String::new();
    encode_into(v, &mut out);
    out
}

fn encode_into(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(_) => out.push_str(&format_value_number(v)),
        Value::String(s) => encode_str(s, out),
        Value::Array(a) if a.is_empty() => out.push_str("{}"),
        Value::Array(a) => {
            out.push('[');
            for (i, item) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                encode_into(item, out);
            }
            out.push(']');
        }
        Value::Object(o) => {
            out.push('{');
            for (i, (k, item)) in o.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                encode_str(k, out);
                out.push(':');
                encode_into(item, out);
            }
            out.push('}');
        }
    }
}

fn encode_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' => out.push_str("\\/"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Table equality of api7/jsonschema's `deepeq`: numbers compare by value, empty containers are
/// equal whatever their JSON kind.
pub(crate) fn deep_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => num(a) == num(b),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| deep_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, p)| y.get(k).is_some_and(|q| deep_eq(p, q)))
        }
        _ if is_empty_table(a) && is_empty_table(b) => true,
        _ => a == b,
    }
}

/// Where `uniqueItems` finds the first two equal items (1-based), as api7/jsonschema does: scalars
/// are compared while scanning, tables pairwise afterwards.
pub(crate) fn first_duplicate(items: &[Value]) -> Option<(usize, usize)> {
    let mut tables = Vec::new();
    for (i, item) in items.iter().enumerate() {
        if matches!(item, Value::Array(_) | Value::Object(_)) {
            tables.push(i);
            continue;
        }
        if let Some(j) = items[..i].iter().rposition(|prev| {
            !matches!(prev, Value::Array(_) | Value::Object(_)) && deep_eq(prev, item)
        }) {
            return Some((j + 1, i + 1));
        }
    }
    for (n, &i) in tables.iter().enumerate() {
        for &j in &tables[n + 1..] {
            if deep_eq(&items[i], &items[j]) {
                return Some((i + 1, j + 1));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_print_like_luajit() {
        assert_eq!(format_number(0.0), "0");
        assert_eq!(format_number(1.0), "1");
        assert_eq!(format_number(-1.0), "-1");
        assert_eq!(format_number(0.1), "0.1");
        assert_eq!(format_number(65536.0), "65536");
        assert_eq!(format_number(1e20), "1e+20");
        assert_eq!(format_number(123456789012345678.0), "1.2345678901235e+17");
        assert_eq!(format_number(0.00001), "1e-05");
        assert_eq!(format_number(2.5), "2.5");
    }

    #[test]
    fn quote_escapes_like_lua() {
        assert_eq!(quote(r"^\/.*"), r#""^\\/.*""#);
        assert_eq!(quote("a\"b"), r#""a\"b""#);
    }

    #[test]
    fn cjson_escapes_slash_and_prints_arrays() {
        assert_eq!(
            cjson_encode(&json!(["active", "passive"])),
            r#"["active","passive"]"#
        );
        assert_eq!(cjson_encode(&json!("a/b")), r#""a\/b""#);
        assert_eq!(cjson_encode(&json!(1.5)), "1.5");
    }

    #[test]
    fn duplicates_are_found_in_lua_order() {
        assert_eq!(
            first_duplicate(&[json!(1), json!(2), json!(1)]),
            Some((1, 3))
        );
        assert_eq!(first_duplicate(&[json!("a"), json!("a")]), Some((1, 2)));
        assert_eq!(
            first_duplicate(&[json!({"a": 1}), json!(3), json!({"a": 1})]),
            Some((1, 3))
        );
        assert_eq!(first_duplicate(&[json!(1), json!("1")]), None);
    }
}
