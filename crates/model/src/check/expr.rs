//! lua-resty-expr rules (`vars`, `_meta.filter`) are compiled with `portico-expr`.

use serde_json::Value;

/// Compiles a rule to validate it; the error is lua-resty-expr's message, e.g.
/// `invalid operator '='`.
pub(crate) fn validate_rule(rule: &Value) -> Result<(), String> {
    portico_expr::Expr::compile(rule).map(|_| ())
}
