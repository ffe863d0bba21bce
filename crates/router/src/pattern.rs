//! Route URI patterns as lua-resty-radixtree registers them with `no_param_match` (the default
//! `radixtree_host_uri` router): where a pattern is stored, and the full-path check some
//! prefix patterns need.

use regex::Regex;

/// Where a pattern is stored in a URI table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stored<'a> {
    /// No `*`: the whole path, in the exact hash map (`:name` is literal here).
    Exact(&'a str),
    /// A `*`: the text before the first `*`, in the prefix tree.
    Prefix(&'a str),
}

/// A compiled route URI.
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    /// The pattern as configured; reported as `matched_uri`.
    text: Box<str>,
    /// The full-path check of a prefix pattern whose tail has more structure than a trailing `*`.
    check: Option<Regex>,
}

impl Pattern {
    /// Compiles a route URI; the error is the reason the check regex could not be built.
    pub(crate) fn compile(uri: &str) -> Result<Pattern, String> {
        let check = match check_source(uri) {
            Some(source) => Some(Regex::new(&source).map_err(|e| e.to_string())?),
            None => None,
        };
        Ok(Pattern {
            text: uri.into(),
            check,
        })
    }

    /// The configured text.
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// Where the pattern is stored.
    pub(crate) fn stored(&self) -> Stored<'_> {
        match self.text.find('*') {
            Some(star) => Stored::Prefix(&self.text[..star]),
            None => Stored::Exact(&self.text),
        }
    }

    /// Whether [`Pattern::accepts`] can reject anything.
    pub(crate) fn has_check(&self) -> bool {
        self.check.is_some()
    }

    /// Whether a path that reached this pattern (equal to it, or starting with its prefix)
    /// matches it in full.
    pub(crate) fn accepts(&self, path: &str) -> bool {
        self.check.as_ref().is_none_or(|re| re.is_match(path))
    }
}

/// The regex lua-resty-radixtree's `compare_param` would run for `uri`, or `None` when it cannot
/// reject a path that already starts with the stored prefix.
///
/// The pattern is split on `/`; a segment starting with `:` becomes `[^/]+` and one starting with
/// `*` becomes `.*` (newlines included); when no segment starts with either (`/foo*`, `/a*b`) the
/// prefix alone decides. The whole path must match. Other segments are matched literally: in
/// lua-resty-radixtree they are pasted into the PCRE unescaped, so a route like `/v1.0/*/x` would
/// also take `/v1x0/a/x` and `/c++/*/x` never matches; Portico treats path text as text.
fn check_source(uri: &str) -> Option<String> {
    let star = uri.find('*')?;
    let special = |s: &str| s.starts_with(':') || s.starts_with('*');
    if !uri.split('/').any(special) {
        return None;
    }
    // The first `*` opens the last segment: every segment before it is inside the stored prefix
    // (a literal `:name` there matches `[^/]+` too) and the last one matches anything.
    let opens_last_segment =
        !uri[star..].contains('/') && (star == 0 || uri[..star].ends_with('/'));
    if opens_last_segment {
        return None;
    }
    let segments: Vec<String> = uri
        .split('/')
        .map(|segment| {
            if segment.starts_with(':') {
                "[^/]+".to_string()
            } else if segment.starts_with('*') {
                "(?s:.*)".to_string()
            } else {
                regex::escape(segment)
            }
        })
        .collect();
    Some(format!("^{}$", segments.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(uri: &str) -> Pattern {
        Pattern::compile(uri).unwrap_or_else(|e| panic!("{uri}: {e}"))
    }

    #[test]
    fn storage_of_exact_and_prefix_patterns() {
        assert_eq!(pattern("/foo").stored(), Stored::Exact("/foo"));
        assert_eq!(pattern("/user/:id").stored(), Stored::Exact("/user/:id"));
        assert_eq!(pattern("/foo*").stored(), Stored::Prefix("/foo"));
        assert_eq!(pattern("/foo/*").stored(), Stored::Prefix("/foo/"));
        assert_eq!(pattern("/a/*/b").stored(), Stored::Prefix("/a/"));
        assert_eq!(pattern("*").stored(), Stored::Prefix(""));
    }

    #[test]
    fn trailing_star_needs_no_check() {
        for uri in [
            "/foo*",
            "/foo/*",
            "/foo/*name",
            "/files/*.json",
            "*",
            "/a*b",
            "/:id/*",
        ] {
            assert!(check_source(uri).is_none(), "{uri}");
        }
    }

    #[test]
    fn star_in_the_middle_checks_the_whole_path() {
        let p = pattern("/api/*/users");
        assert!(p.accepts("/api/v1/users"));
        assert!(p.accepts("/api/a/b/users"));
        assert!(!p.accepts("/api/v1/users/1"));
        assert!(!p.accepts("/api/v1/user"));
    }

    #[test]
    fn param_segments_after_a_star_match_one_segment() {
        let p = pattern("/a/*/:id");
        assert!(p.accepts("/a/x/42"));
        assert!(p.accepts("/a/x/y/42"));
        assert!(!p.accepts("/a/x/"));
        let trailing_slash = pattern("/a/*/");
        assert!(trailing_slash.accepts("/a/x/"));
        assert!(!trailing_slash.accepts("/a/x"));
    }

    #[test]
    fn literal_segments_are_text_not_regex() {
        let p = pattern("/v1.0/*/x.json");
        assert!(p.accepts("/v1.0/a/x.json"));
        assert!(!p.accepts("/v1.0/a/xxjson"));
        let mid = pattern("/a*/*");
        assert!(mid.accepts("/a*/z"));
        assert!(!mid.accepts("/ab/z"));
    }
}
