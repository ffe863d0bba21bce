//! lua-resty-expr rules (`vars` of routes, `_meta.filter`, traffic-split `match`): compiled once,
//! evaluated per request against a [`Vars`] source.
//!
//! The grammar and the operator semantics follow lua-resty-expr v1 (`lib/resty/expr/v1.lua`), the
//! library APISIX uses:
//!
//! * a rule is a JSON array: `[]` (always true), a list of expressions joined by AND
//!   (`[["arg_a", "==", "1"], ["arg_b", "~~", "^x"]]`), or a logic rule
//!   `["AND" | "OR" | "!AND" | "!OR", operand, operand, ...]` with at least two operands, each of
//!   which is an expression, a list of expressions or another logic rule;
//! * an expression is `[var, op, value]`, `[var, "!", op, value]` (negated) or `[var, value]`
//!   (compat form of `==`; the value is lower-cased like lua-resty-expr does);
//! * operators (case-insensitive): `==` `~=` `>` `>=` `<` `<=` `~~` `~*` `in` `has` `ipmatch`.
//!
//! Deliberate differences, all at compile time: regexes and IP lists are compiled up front, so a
//! bad pattern is a compile error instead of a silent "no match"; regexes use the `regex` crate
//! (no look-around or back-references); a variable name must be a string (lua-resty-expr accepts
//! others and then fails at request time); the top-level rule must be an array.

mod compile;
mod eval;
mod ip;
mod number;

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::BuildHasher;

pub use ip::IpMatcher;

/// Where an expression reads request variables from (`uri`, `arg_x`, `http_x`, `cookie_x`, ...).
pub trait Vars {
    /// The value of one variable, `None` when it is not set.
    fn var(&self, name: &str) -> Option<Cow<'_, str>>;

    /// Whether the list-valued variable `name` (e.g. `graphql_root_fields`) holds `item`; read
    /// only by the `has` operator. The default treats every variable as a scalar, for which `has`
    /// is false, as in lua-resty-expr.
    fn list_contains(&self, _name: &str, _item: &str) -> bool {
        false
    }
}

impl<S: BuildHasher> Vars for HashMap<String, String, S> {
    fn var(&self, name: &str) -> Option<Cow<'_, str>> {
        self.get(name).map(|v| Cow::Borrowed(v.as_str()))
    }
}

impl<S: BuildHasher> Vars for HashMap<&str, &str, S> {
    fn var(&self, name: &str) -> Option<Cow<'_, str>> {
        self.get(name).map(|v| Cow::Borrowed(*v))
    }
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct Expr {
    /// `None` for the empty rule `[]`, which always matches.
    root: Option<eval::Node>,
}

impl Expr {
    /// Compiles a rule given as JSON. The error is lua-resty-expr's message, e.g.
    /// `invalid operator '='` or `rule should be wrapped inside brackets`.
    pub fn compile(rule: &serde_json::Value) -> Result<Expr, String> {
        compile::rule(rule).map(|root| Expr { root })
    }

    /// Evaluates the rule; an evaluation error counts as "no match".
    ///
    /// Runs once per request (or per log entry); it does not allocate beyond what
    /// [`Vars::var`] does.
    pub fn eval(&self, vars: &dyn Vars) -> bool {
        self.root.as_ref().is_none_or(|node| node.eval(vars))
    }

    /// True for the empty rule `[]`, which matches every request.
    pub fn is_always_true(&self) -> bool {
        self.root.is_none()
    }
}
