//! Strings with `$var` / `${var}` references (`core.utils.resolve_var`, reference §3.6), compiled
//! once from a configuration and rendered per request against [`Vars`].
//!
//! The grammar is APISIX's pattern `(?<!\\)\$(\{\s*([^}]+?)\s*\}|([\w\.]+))`:
//!
//! * `$name` takes the longest run of `[A-Za-z0-9_.]`; `${ name }` may hold spaces around the
//!   name and a default: `${name ?? fallback}`;
//! * a `$` right after a backslash is left alone (and the backslash is kept, as APISIX does);
//! * an unset variable renders as the empty string (or its `??` default).
//!
//! With captures ([`Template::with_captures`], proxy-rewrite header values) `$1` / `${1}` are
//! the groups of the matched `regex_uri` first (`core.utils.resolve_var_with_captures`). APISIX
//! runs that as a second pass over the output of the first; here both are one pass, so text that
//! a capture brings in is not interpolated again.

use std::borrow::Cow;

use portico_expr::Vars;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Var {
        name: String,
        default: Option<String>,
    },
    Capture(usize),
}

/// A compiled template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

impl Template {
    /// Compiles `$var` references.
    pub fn new(text: &str) -> Template {
        Template::parse(text, false)
    }

    /// Compiles `$1` capture references and `$var` references.
    pub fn with_captures(text: &str) -> Template {
        Template::parse(text, true)
    }

    fn parse(text: &str, captures: bool) -> Template {
        let bytes = text.as_bytes();
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut i = 0;
        let mut last = 0;
        while i < bytes.len() {
            if bytes[i] != b'$' || (i > 0 && bytes[i - 1] == b'\\') {
                i += 1;
                continue;
            }
            let Some((part, end)) = reference(text, i, captures) else {
                i += 1;
                continue;
            };
            literal.push_str(&text[last..i]);
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            parts.push(part);
            i = end;
            last = end;
        }
        literal.push_str(&text[last..]);
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Template { parts }
    }

    /// Whether the template holds no reference (it renders to itself).
    pub fn is_plain(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Literal(_)))
    }

    /// Renders the template: the text and how many variables resolved (`n_resolved`, which
    /// limit-count's `var_combination` keys test for zero).
    pub fn render(&self, vars: &dyn Vars) -> (String, usize) {
        self.render_with(vars, &[], None)
    }

    /// Renders with regex captures (index 0 = the whole match) and an escaper applied to every
    /// variable value (proxy-rewrite escapes `?` in `uri`).
    pub fn render_with(
        &self,
        vars: &dyn Vars,
        captures: &[Option<String>],
        escaper: Option<fn(&str) -> Cow<'_, str>>,
    ) -> (String, usize) {
        let mut out = String::new();
        let mut resolved = 0;
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Capture(n) => {
                    if let Some(Some(c)) = captures.get(*n) {
                        out.push_str(c);
                    }
                }
                Part::Var { name, default } => {
                    let value = vars
                        .var(name)
                        .or_else(|| default.as_deref().map(Cow::Borrowed));
                    if let Some(v) = value {
                        resolved += 1;
                        match escaper {
                            Some(escape) => out.push_str(&escape(&v)),
                            None => out.push_str(&v),
                        }
                    }
                }
            }
        }
        (out, resolved)
    }
}

/// The reference starting at the `$` at `at`, and where it ends.
fn reference(text: &str, at: usize, captures: bool) -> Option<(Part, usize)> {
    let bytes = text.as_bytes();
    let next = at + 1;
    if captures {
        let braced = bytes.get(next) == Some(&b'{');
        let start = next + usize::from(braced);
        let digits = bytes[start.min(bytes.len())..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits > 0 {
            let n = text[start..start + digits].parse().unwrap_or(usize::MAX);
            let mut end = start + digits;
            if bytes.get(end) == Some(&b'}') {
                end += 1;
            }
            return Some((Part::Capture(n), end));
        }
    }
    if bytes.get(next) == Some(&b'{') {
        let close = text[next + 1..].find('}')? + next + 1;
        let inner = &text[next + 1..close];
        if inner.is_empty() {
            return None;
        }
        let (name, default) = split_default(inner.trim());
        return Some((Part::Var { name, default }, close + 1));
    }
    let len = bytes[next.min(bytes.len())..]
        .iter()
        .take_while(|b| is_word(**b) || **b == b'.')
        .count();
    if len == 0 {
        return None;
    }
    let name = text[next..next + len].to_string();
    Some((
        Part::Var {
            name,
            default: None,
        },
        next + len,
    ))
}

/// `name ?? default` (APISIX splits on `\s*\?\?\s*` and uses the second piece).
fn split_default(inner: &str) -> (String, Option<String>) {
    let mut pieces = inner.split("??").map(str::trim);
    let name = pieces.next().unwrap_or_default().to_string();
    let default = pieces.next().map(str::to_string);
    (name, default)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars() -> HashMap<&'static str, &'static str> {
        HashMap::from([("uri", "/a"), ("arg_x", "1"), ("http_h.x", "d")])
    }

    #[test]
    fn resolves_both_forms_and_defaults() {
        let v = vars();
        let render = |t: &str| Template::new(t).render(&v);
        assert_eq!(render("/p$uri/${ arg_x }"), ("/p/a/1".to_string(), 2));
        assert_eq!(render("$nope-x"), ("-x".to_string(), 0));
        assert_eq!(render("${nope ?? fb}"), ("fb".to_string(), 1));
        assert_eq!(render("${arg_x??fb}"), ("1".to_string(), 1));
        assert_eq!(render("$http_h.x"), ("d".to_string(), 1));
        assert_eq!(render("\\$uri costs $"), ("\\$uri costs $".to_string(), 0));
        assert_eq!(render("${uri"), ("${uri".to_string(), 0));
        assert!(Template::new("plain").is_plain());
        assert!(!Template::new("$uri").is_plain());
    }

    #[test]
    fn captures_come_first() {
        let v = vars();
        let caps = [Some("/a/b".to_string()), Some("b".to_string()), None];
        let t = Template::with_captures("$1-${1}-$2-$uri-${0}");
        assert_eq!(t.render_with(&v, &caps, None).0, "b-b--/a-/a/b");
        // Without captures, `$1` is a variable named `1`.
        assert_eq!(Template::new("$1").render(&v).0, "");
    }

    #[test]
    fn escaper_applies_to_values_only() {
        let v = HashMap::from([("q", "a?b")]);
        let esc: fn(&str) -> Cow<'_, str> = |s| Cow::Owned(s.replace('?', "%3F"));
        let t = Template::new("/x?$q");
        assert_eq!(t.render_with(&v, &[], Some(esc)).0, "/x?a%3Fb");
    }
}
