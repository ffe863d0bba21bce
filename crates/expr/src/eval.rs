//! The compiled form of a rule and its evaluation.
//!
//! Every operator is resolved at compile time into a [`Test`] whose right-hand side is already in
//! the shape the comparison needs (a number, a string, a regex, an IP matcher), so evaluation is a
//! variable lookup plus one comparison, without allocating.

use std::net::IpAddr;

use regex::Regex;

use crate::ip::IpMatcher;
use crate::number::lua_tonumber;
use crate::Vars;

/// A node of a compiled rule.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    /// One `[var, op, value]` expression.
    Leaf(Leaf),
    /// A logic rule (a plain list of expressions is an [`LogicOp::And`]).
    Logic { op: LogicOp, children: Box<[Node]> },
}

/// The logic operators of lua-resty-expr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogicOp {
    And,
    Or,
    NotAnd,
    NotOr,
}

impl LogicOp {
    /// Parses a logic operator name the way lua-resty-expr does (`string.upper`, so any case).
    pub(crate) fn parse(name: &str) -> Option<LogicOp> {
        if name.eq_ignore_ascii_case("AND") {
            Some(LogicOp::And)
        } else if name.eq_ignore_ascii_case("OR") {
            Some(LogicOp::Or)
        } else if name.eq_ignore_ascii_case("!AND") {
            Some(LogicOp::NotAnd)
        } else if name.eq_ignore_ascii_case("!OR") {
            Some(LogicOp::NotOr)
        } else {
            None
        }
    }
}

/// One expression: the variable it reads, the test, and whether the result is negated (`!`).
#[derive(Debug, Clone)]
pub(crate) struct Leaf {
    pub(crate) var: Box<str>,
    pub(crate) test: Test,
    pub(crate) negate: bool,
}

/// A comparison with its right-hand side prepared at compile time.
#[derive(Debug, Clone)]
pub(crate) enum Test {
    /// A result that does not depend on the variable (e.g. `==` against a boolean, `>` against a
    /// non-numeric value, `in` against a non-array).
    Const(bool),
    /// `==` / `~=` against a JSON number: the variable is converted with Lua's `tonumber`.
    EqNum(f64),
    NeNum(f64),
    /// `==` / `~=` against a string: plain string equality (an unset variable is not equal).
    EqStr(Box<str>),
    NeStr(Box<str>),
    /// `==` / `~=` against `null` or a missing value: whether the variable is unset / set.
    IsUnset,
    IsSet,
    /// `>` `>=` `<` `<=`: both sides numeric, a non-numeric variable fails.
    Gt(f64),
    Ge(f64),
    Lt(f64),
    Le(f64),
    /// `~~` / `~*`: unanchored regex search, an unset variable fails.
    Regex(Regex),
    /// `in`: the variable equals one of the string elements (numbers never equal a string in Lua).
    In(Box<[Box<str>]>),
    /// `has`: the list-valued variable contains the string.
    Has(Box<str>),
    /// `ipmatch`: the variable parses as an IP inside one of the addresses or CIDRs.
    IpMatch(IpMatcher),
}

impl Node {
    /// Evaluates the node; logic operators short-circuit like lua-resty-expr's `eval_and`/`eval_or`.
    pub(crate) fn eval(&self, vars: &dyn Vars) -> bool {
        match self {
            Node::Leaf(leaf) => leaf.test.holds(&leaf.var, vars) != leaf.negate,
            Node::Logic { op, children } => match op {
                LogicOp::And => children.iter().all(|c| c.eval(vars)),
                LogicOp::Or => children.iter().any(|c| c.eval(vars)),
                LogicOp::NotAnd => !children.iter().all(|c| c.eval(vars)),
                LogicOp::NotOr => !children.iter().any(|c| c.eval(vars)),
            },
        }
    }
}

impl Test {
    /// Whether the comparison holds for variable `name` (before negation).
    fn holds(&self, name: &str, vars: &dyn Vars) -> bool {
        let number = || vars.var(name).and_then(|v| lua_tonumber(&v));
        match self {
            Test::Const(result) => *result,
            Test::EqNum(rhs) => number() == Some(*rhs),
            Test::NeNum(rhs) => number().is_none_or(|lhs| lhs != *rhs),
            Test::EqStr(rhs) => vars.var(name).is_some_and(|lhs| *lhs == **rhs),
            Test::NeStr(rhs) => vars.var(name).is_none_or(|lhs| *lhs != **rhs),
            Test::IsUnset => vars.var(name).is_none(),
            Test::IsSet => vars.var(name).is_some(),
            Test::Gt(rhs) => number().is_some_and(|lhs| lhs > *rhs),
            Test::Ge(rhs) => number().is_some_and(|lhs| lhs >= *rhs),
            Test::Lt(rhs) => number().is_some_and(|lhs| lhs < *rhs),
            Test::Le(rhs) => number().is_some_and(|lhs| lhs <= *rhs),
            Test::Regex(re) => vars.var(name).is_some_and(|lhs| re.is_match(&lhs)),
            Test::In(set) => vars
                .var(name)
                .is_some_and(|lhs| set.iter().any(|item| **item == *lhs)),
            Test::Has(item) => vars.list_contains(name, item),
            Test::IpMatch(matcher) => vars
                .var(name)
                .and_then(|lhs| lhs.parse::<IpAddr>().ok())
                .is_some_and(|ip| matcher.contains(ip)),
        }
    }
}
