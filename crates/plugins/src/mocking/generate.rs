//! Example data from a JSON schema, the way APISIX's mocking plugin makes it (`gen_object` and
//! friends), and its XML rendering.
//!
//! By `type` (case-insensitive): `object` → every `properties` entry (none: `{}`); `array` → one
//! to three `items` (no `items`: the field is left out); `string` → `example` if it is a string,
//! else 1–10 random lowercase letters; `number` → `example` if a number, else a random float
//! below 10000; `integer` → `example` rounded down, else 1–10000; `boolean` → `example` if a
//! boolean, else random. Any other or missing type leaves the field out.

use serde_json::{Map, Number, Value};

/// A small non-cryptographic generator (splitmix64), one per response.
pub struct Rng(u64);

impl Default for Rng {
    /// A generator with a fresh seed.
    fn default() -> Rng {
        Rng(crate::random::u64())
    }
}

impl Rng {
    /// A generator with a fixed seed (tests).
    pub fn seeded(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `lo..=hi`.
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    /// A float in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `gen_object`: the properties of an object schema.
pub fn object(schema: &Value, rng: &mut Rng) -> Value {
    let mut out = Map::new();
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, prop) in props {
            if let Some(v) = property(prop, rng) {
                out.insert(name.clone(), v);
            }
        }
    }
    Value::Object(out)
}

/// `gen_by_property`: one value, `None` for what APISIX leaves out.
fn property(prop: &Value, rng: &mut Rng) -> Option<Value> {
    let ty = prop.get("type")?.as_str()?.to_ascii_lowercase();
    let example = prop.get("example");
    Some(match ty.as_str() {
        "object" => object(prop, rng),
        "array" => {
            let items = prop.get("items")?;
            let n = rng.between(1, 3);
            Value::Array((0..n).filter_map(|_| property(items, rng)).collect())
        }
        "string" => match example {
            Some(Value::String(s)) => Value::String(s.clone()),
            _ => {
                let n = rng.between(1, 10);
                Value::String(
                    (0..n)
                        .map(|_| char::from(b'a' + rng.between(0, 25) as u8))
                        .collect(),
                )
            }
        },
        "number" => match example {
            Some(Value::Number(n)) => Value::Number(n.clone()),
            _ => Number::from_f64(rng.unit() * 10000.0).map_or(Value::Null, Value::Number),
        },
        "integer" => match example.and_then(Value::as_f64) {
            Some(x) => Number::from_f64(x.floor()).map_or(Value::Null, Value::Number),
            None => Value::from(rng.between(1, 10000)),
        },
        "boolean" => match example {
            Some(Value::Bool(b)) => Value::Bool(*b),
            _ => Value::Bool(rng.between(0, 1) == 1),
        },
        _ => return None,
    })
}

/// The value as XML under a root element `data`, two spaces of indentation per level: a field
/// is `<name>value</name>`, an object field holds its fields, an array field repeats its element
/// name once per item. Text is escaped.
pub fn to_xml(value: &Value) -> String {
    let mut out = String::from("<data>\n");
    if let Value::Object(fields) = value {
        for (name, v) in fields {
            element(name, v, 1, &mut out);
        }
    }
    out.push_str("</data>\n");
    out
}

fn element(name: &str, value: &Value, level: usize, out: &mut String) {
    let pad = "  ".repeat(level);
    match value {
        Value::Array(items) => {
            for item in items {
                element(name, item, level, out);
            }
        }
        Value::Object(fields) => {
            out.push_str(&format!("{pad}<{name}>\n"));
            for (k, v) in fields {
                element(k, v, level + 1, out);
            }
            out.push_str(&format!("{pad}</{name}>\n"));
        }
        Value::String(s) => out.push_str(&format!("{pad}<{name}>{}</{name}>\n", escape(s))),
        other => {
            let text = match other {
                Value::Number(n) => {
                    portico_model::schema::format_number(n.as_f64().unwrap_or_default())
                }
                v => v.to_string(),
            };
            out.push_str(&format!("{pad}<{name}>{text}</{name}>\n"));
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
