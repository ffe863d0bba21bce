//! Regular expressions of schemas (`pattern`, `patternProperties`, string `format`s).
//!
//! APISIX runs them through PCRE (`ngx.re.find(s, p, "jo")`: unanchored search, byte mode). The
//! patterns are compiled once with the `regex` crate and cached by source text. Before compiling,
//! the Perl classes `\d`, `\w`, `\s` (and their negations outside brackets) are rewritten to their
//! ASCII meaning so that they match what PCRE matches. One deliberate difference remains: `$`
//! matches only at the very end, whereas PCRE also matches before a final newline, so `"a\n"` does
//! not pass `^[a-z]+$` here.

use regex::Regex;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

type Cache = Mutex<HashMap<String, Option<Regex>>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Compiles (once) a PCRE-style pattern; `None` when the pattern is not supported.
pub fn compile(pattern: &str) -> Option<Regex> {
    let mut guard = cache()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(found) = guard.get(pattern) {
        return found.clone();
    }
    let compiled = Regex::new(&translate(pattern)).ok();
    guard.insert(pattern.to_string(), compiled.clone());
    compiled
}

/// Whether `text` contains a match of `pattern`. A pattern that does not compile matches
/// nothing, as `ngx.re.find` returning an error does.
pub fn is_match(pattern: &str, text: &str) -> bool {
    compile(pattern).is_some_and(|re| re.is_match(text))
}

/// Rewrites PCRE's ASCII Perl classes for the Unicode-aware `regex` crate.
pub(crate) fn translate(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut in_class = false;
    let mut class_start = false;
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let Some(next) = chars.next() else {
                out.push('\\');
                break;
            };
            let ascii = match next {
                'd' => Some(("0-9", false)),
                'w' => Some(("0-9A-Za-z_", false)),
                's' => Some(("\\t\\n\\x0B\\x0C\\r ", false)),
                'D' => Some(("0-9", true)),
                'W' => Some(("0-9A-Za-z_", true)),
                'S' => Some(("\\t\\n\\x0B\\x0C\\r ", true)),
                _ => None,
            };
            match ascii {
                Some((set, false)) if in_class => out.push_str(set),
                Some((set, negated)) if !in_class => {
                    out.push('[');
                    if negated {
                        out.push('^');
                    }
                    out.push_str(set);
                    out.push(']');
                }
                _ => {
                    out.push('\\');
                    out.push(next);
                }
            }
            class_start = false;
            continue;
        }
        if in_class {
            if c == ']' && !class_start {
                in_class = false;
            } else if c == '[' {
                // A literal `[` inside a class: PCRE takes it as is, `regex` would nest a class.
                out.push('\\');
            }
            class_start = class_start && c == '^';
            out.push(c);
            continue;
        }
        if c == '[' {
            in_class = true;
            class_start = true;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perl_classes_are_ascii() {
        assert!(is_match(r"^\d+$", "123"));
        assert!(!is_match(r"^\d+$", "١٢"));
        assert!(is_match(r"^\S+$", "a\u{a0}b"));
        assert!(is_match(r"^[\da-f]+$", "09af"));
    }

    #[test]
    fn apisix_patterns_compile() {
        for p in [
            r"^[a-zA-Z0-9-_.]+$",
            r"^\*$|^\*?[0-9a-zA-Z-._\[\]:]+$",
            "^[ -!#-[\\]-~]+$",
            r"^[^\/]+:\/\/([\da-zA-Z.-]+|\[[\da-fA-F:]+\])(:\d+)?",
            r"^((uri|server_name)|arg_[0-9a-zA-z_-]+)$",
        ] {
            assert!(compile(p).is_some(), "{p}");
        }
        assert!(is_match("^[ -!#-[\\]-~]+$", "abc [x] ~"));
        assert!(!is_match("^[ -!#-[\\]-~]+$", "a\"b"));
        assert!(is_match(r"^\*$|^\*?[0-9a-zA-Z-._\[\]:]+$", "[::1]:80"));
        assert!(!is_match(r"^[a-zA-Z0-9-_.]+$", "a/b"));
    }

    #[test]
    fn broken_pattern_matches_nothing() {
        assert!(!is_match("(", "("));
    }
}
