//! JSON rule -> [`Node`], following lua-resty-expr v1's `new`, `compile` and `compile_expr`.
//!
//! Lua cannot tell a JSON object from an array (both are tables), so where lua-resty-expr checks
//! "is a table" an object counts too; since it has no array part its length is 0.

use regex::RegexBuilder;
use serde_json::Value;

use crate::eval::{Leaf, LogicOp, Node, Test};
use crate::ip::IpMatcher;
use crate::number::{lua_tonumber, lua_tostring};

const WRAP: &str = "rule should be wrapped inside brackets";
const TOO_SHORT: &str = "rule too short";
const INVALID: &str = "invalid expression";
const OPERATORS: [&str; 11] = [
    "==", "~=", ">", ">=", "<", "<=", "~~", "~*", "in", "has", "ipmatch",
];

/// Compiles a top-level rule; `None` is the empty rule (always true).
pub(crate) fn rule(rule: &Value) -> Result<Option<Node>, String> {
    let items = match rule {
        Value::Array(items) => items,
        Value::Null => return Err("missing argument rule".to_string()),
        _ => return Err("rule should be an array".to_string()),
    };
    let Some(first) = items.first() else {
        return Ok(None);
    };
    if !is_table(first) && logic_op(first).is_none() {
        return Err(WRAP.to_string());
    }
    node(rule).map(Some)
}

/// lua-resty-expr's recursive `compile`: a list of rules (AND), a logic rule, or an expression.
fn node(rule: &Value) -> Result<Node, String> {
    let items = match rule {
        Value::Array(items) => items.as_slice(),
        Value::Object(_) => &[],
        _ => return Err(WRAP.to_string()),
    };
    let Some(first) = items.first() else {
        return Err(TOO_SHORT.to_string());
    };
    if is_table(first) {
        let children = items.iter().map(node).collect::<Result<_, _>>()?;
        return Ok(Node::Logic {
            op: LogicOp::And,
            children,
        });
    }
    if let Some(op) = logic_op(first) {
        if items.len() <= 2 {
            return Err(TOO_SHORT.to_string());
        }
        let children = items[1..].iter().map(node).collect::<Result<_, _>>()?;
        return Ok(Node::Logic { op, children });
    }
    expression(items).map(Node::Leaf)
}

fn is_table(value: &Value) -> bool {
    matches!(value, Value::Array(_) | Value::Object(_))
}

fn logic_op(value: &Value) -> Option<LogicOp> {
    value.as_str().and_then(LogicOp::parse)
}

/// `[var, op, value]`, `[var, "!", op, value]` or `[var, value]`.
fn expression(items: &[Value]) -> Result<Leaf, String> {
    let (negate, op_at) = if items.len() == 4 {
        if items[1].as_str() != Some("!") {
            return Err("bad 'not' expression".to_string());
        }
        (true, 2)
    } else {
        (false, 1)
    };
    // lua-resty-expr lower-cases the operator with `string.lower`, which also accepts numbers.
    let op = match items.get(op_at) {
        None => None,
        Some(Value::String(s)) => Some(s.to_ascii_lowercase()),
        Some(Value::Number(n)) => Some(lua_tostring(n)),
        Some(_) => return Err(INVALID.to_string()),
    };
    let mut rhs = items.get(op_at + 1).cloned();
    let is_operator = |op: &str| OPERATORS.contains(&op);
    let op = match op {
        // Compat form `[var, value]`: the (already lower-cased) operator becomes the value.
        Some(op) if rhs.is_none() && !is_operator(&op) => {
            rhs = Some(Value::String(op));
            "==".to_string()
        }
        Some(op) => op,
        None => return Err(INVALID.to_string()),
    };
    if !is_operator(&op) {
        return Err(format!("invalid operator '{op}'"));
    }
    let Some(Value::String(var)) = items.first() else {
        return Err(INVALID.to_string());
    };
    Ok(Leaf {
        var: var.as_str().into(),
        test: test(&op, rhs.as_ref())?,
        negate,
    })
}

/// Prepares the comparison for a valid operator. `rhs` is `None` when the value is missing; JSON
/// `null` means nil for every operator but `ipmatch`, as in lua-resty-expr's `compare_val`.
fn test(op: &str, rhs: Option<&Value>) -> Result<Test, String> {
    let rhs = rhs.filter(|v| op == "ipmatch" || !v.is_null());
    Ok(match op {
        "==" | "~=" => {
            let eq = op == "==";
            match rhs {
                Some(Value::Number(n)) => {
                    let n = n.as_f64().unwrap_or(f64::NAN);
                    if eq {
                        Test::EqNum(n)
                    } else {
                        Test::NeNum(n)
                    }
                }
                Some(Value::String(s)) if eq => Test::EqStr(s.as_str().into()),
                Some(Value::String(s)) => Test::NeStr(s.as_str().into()),
                None if eq => Test::IsUnset,
                None => Test::IsSet,
                // A boolean or table never equals a string or nil.
                Some(_) => Test::Const(!eq),
            }
        }
        ">" | ">=" | "<" | "<=" => {
            let bound = match rhs {
                Some(Value::Number(n)) => n.as_f64(),
                Some(Value::String(s)) => lua_tonumber(s),
                _ => None,
            };
            match (op, bound) {
                (_, None) => Test::Const(false),
                (">", Some(b)) => Test::Gt(b),
                (">=", Some(b)) => Test::Ge(b),
                ("<", Some(b)) => Test::Lt(b),
                (_, Some(b)) => Test::Le(b),
            }
        }
        "~~" | "~*" => {
            let pattern = match rhs {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => lua_tostring(n),
                _ => {
                    return Err(format!(
                        "invalid regex for operator '{op}': expected a string"
                    ))
                }
            };
            let regex = RegexBuilder::new(&pattern)
                .case_insensitive(op == "~*")
                .build()
                .map_err(|e| format!("invalid regex '{pattern}': {}", regex_reason(&e)))?;
            Test::Regex(regex)
        }
        "in" => match rhs {
            Some(Value::Array(items)) => Test::In(
                items
                    .iter()
                    .filter_map(|v| v.as_str().map(Into::into))
                    .collect(),
            ),
            _ => Test::Const(false),
        },
        "has" => match rhs {
            Some(Value::String(s)) => Test::Has(s.as_str().into()),
            _ => Test::Const(false),
        },
        _ => Test::IpMatch(ip_list(rhs)?),
    })
}

/// The right-hand side of `ipmatch`: one address/CIDR or a non-empty array of them.
fn ip_list(rhs: Option<&Value>) -> Result<IpMatcher, String> {
    const BAD: &str = "invalid ip address";
    let entries: Vec<String> = match rhs {
        None | Some(Value::Null) => return Err(BAD.to_string()),
        Some(Value::String(s)) if s.is_empty() => return Err(BAD.to_string()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(lua_tostring(n)),
                _ => Err(BAD.to_string()),
            })
            .collect::<Result<_, _>>()?,
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Number(n)) => vec![lua_tostring(n)],
        Some(_) => return Err(BAD.to_string()),
    };
    if entries.is_empty() {
        return Err(BAD.to_string());
    }
    IpMatcher::new(&entries)
}

/// The one-line reason of a regex error (the syntax error display spans several lines).
fn regex_reason(err: &regex::Error) -> String {
    let text = err.to_string();
    let last = text.lines().last().unwrap_or_default().trim();
    last.strip_prefix("error: ").unwrap_or(last).to_string()
}
