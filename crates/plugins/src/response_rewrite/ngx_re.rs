//! `ngx.re.sub` / `ngx.re.gsub` over bytes: a pattern with PCRE option letters, and a
//! replacement template with `$0`, `$1`, `${1}` and `$$` (used by response-rewrite `filters` and
//! redirect `regex_uri`).
//!
//! Options: `i` (caseless), `m` (multi-line), `s` (dot matches newline), `x` (extended),
//! `u`/`U` (UTF-8: classes and `.` work on characters; without it on bytes, as PCRE does), `a`
//! (anchored at the start position), `j`/`o` (JIT, compile once: nothing to do here). `d` (DFA
//! longest match), `D` (duplicate names) and `J` (JavaScript compatibility) are refused. The
//! regex dialect is the `regex` crate's: no look-around, no back-references.

use regex::bytes::{Captures, Regex, RegexBuilder};

/// A compiled pattern with its options.
#[derive(Debug, Clone)]
pub struct NgxRegex {
    re: Regex,
    /// `a`: each match must start where the search starts.
    anchored: bool,
}

/// A piece of a replacement template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(Vec<u8>),
    Group(usize),
}

/// A compiled replacement template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replacement(Vec<Piece>);

impl NgxRegex {
    /// Compiles `pattern` with ngx.re `options`; the error reads like resty.core's.
    pub fn new(pattern: &str, options: &str) -> Result<NgxRegex, String> {
        let mut b = RegexBuilder::new(pattern);
        b.unicode(false);
        let mut anchored = false;
        for flag in options.chars() {
            match flag {
                'i' => {
                    b.case_insensitive(true);
                }
                'm' => {
                    b.multi_line(true);
                }
                's' => {
                    b.dot_matches_new_line(true);
                }
                'x' => {
                    b.ignore_whitespace(true);
                }
                'u' | 'U' => {
                    b.unicode(true);
                }
                'a' => anchored = true,
                'j' | 'o' => {}
                'd' | 'D' | 'J' => {
                    return Err(format!("regex option \"{flag}\" is not supported"));
                }
                other => {
                    return Err(format!("unknown flag \"{other}\" (flags \"{options}\")"));
                }
            }
        }
        let re = b.build().map_err(|e| one_line(&e.to_string()))?;
        Ok(NgxRegex { re, anchored })
    }

    /// The first match at or after `from` (at `from` exactly when anchored).
    fn captures_at<'h>(&self, text: &'h [u8], from: usize) -> Option<Captures<'h>> {
        let caps = self.re.captures_at(text, from)?;
        let start = caps.get(0).map_or(from, |m| m.start());
        (!self.anchored || start == from).then_some(caps)
    }

    /// `ngx.re.sub`: replaces the first match; returns the text and how many were replaced.
    pub fn sub(&self, text: &[u8], with: &Replacement) -> (Vec<u8>, usize) {
        match self.captures_at(text, 0) {
            None => (text.to_vec(), 0),
            Some(caps) => {
                let whole = caps.get(0).map_or(0..0, |m| m.range());
                let mut out = Vec::with_capacity(text.len() + 16);
                out.extend_from_slice(&text[..whole.start]);
                with.render(&caps, &mut out);
                out.extend_from_slice(&text[whole.end..]);
                (out, 1)
            }
        }
    }

    /// `ngx.re.gsub`: replaces every match (an empty match right after a match is skipped, as
    /// PCRE's global loop does); returns the text and how many were replaced.
    pub fn gsub(&self, text: &[u8], with: &Replacement) -> (Vec<u8>, usize) {
        let mut out = Vec::with_capacity(text.len());
        let (mut copied, mut count) = (0, 0);
        if self.anchored {
            // Consecutive matches from the start; an empty one ends the run.
            let mut at = 0;
            while let Some(caps) = self.captures_at(text, at) {
                let whole = caps.get(0).map_or(at..at, |m| m.range());
                with.render(&caps, &mut out);
                count += 1;
                copied = whole.end;
                if whole.is_empty() {
                    break;
                }
                at = whole.end;
            }
        } else {
            for caps in self.re.captures_iter(text) {
                let whole = caps.get(0).map_or(0..0, |m| m.range());
                out.extend_from_slice(&text[copied..whole.start]);
                with.render(&caps, &mut out);
                copied = whole.end;
                count += 1;
            }
        }
        out.extend_from_slice(&text[copied..]);
        (out, count)
    }
}

impl Replacement {
    /// Parses `$N`, `${N}` and `$$`; any other `$` is an error (as `ngx.re.sub` reports it).
    pub fn new(text: &str) -> Result<Replacement, String> {
        let bytes = text.as_bytes();
        let mut pieces = Vec::new();
        let mut lit = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] != b'$' {
                lit.push(bytes[i]);
                i += 1;
                continue;
            }
            if bytes.get(i + 1) == Some(&b'$') {
                lit.push(b'$');
                i += 2;
                continue;
            }
            let braced = bytes.get(i + 1) == Some(&b'{');
            let start = i + 1 + usize::from(braced);
            let digits = bytes[start.min(bytes.len())..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            let mut end = start + digits;
            if digits == 0 || (braced && bytes.get(end) != Some(&b'}')) {
                return Err(format!(
                    "invalid capturing variable name in replacement template \"{text}\""
                ));
            }
            let n = text[start..end].parse().unwrap_or(usize::MAX);
            end += usize::from(braced);
            if !lit.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut lit)));
            }
            pieces.push(Piece::Group(n));
            i = end;
        }
        if !lit.is_empty() {
            pieces.push(Piece::Text(lit));
        }
        Ok(Replacement(pieces))
    }

    /// Appends the replacement for one match (a group that did not take part is empty).
    fn render(&self, caps: &Captures<'_>, out: &mut Vec<u8>) {
        for piece in &self.0 {
            match piece {
                Piece::Text(t) => out.extend_from_slice(t),
                Piece::Group(n) => {
                    if let Some(m) = caps.get(*n) {
                        out.extend_from_slice(m.as_bytes());
                    }
                }
            }
        }
    }
}

/// A multi-line `regex` error on one line.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(pattern: &str, options: &str, text: &str, with: &str, global: bool) -> String {
        let re = NgxRegex::new(pattern, options).expect("compiles");
        let with = Replacement::new(with).expect("template");
        let (out, _) = if global {
            re.gsub(text.as_bytes(), &with)
        } else {
            re.sub(text.as_bytes(), &with)
        };
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn sub_and_gsub_like_ngx_re() {
        assert_eq!(sub("l+", "jo", "hello world", "L", false), "heLo world");
        assert_eq!(sub("l", "jo", "hello world", "L", true), "heLLo worLd");
        assert_eq!(
            sub("(\\w+) (\\w+)", "jo", "hello world", "$2 ${1}$$0 $0", false),
            "world hello$0 hello world"
        );
        assert_eq!(sub("x*", "", "abc", "-", true), "-a-b-c-");
        assert_eq!(sub("HELLO", "i", "hello", "hi", false), "hi");
        assert_eq!(sub("HELLO", "jo", "hello", "hi", false), "hello");
        assert_eq!(sub("^b", "m", "a\nb", "B", false), "a\nB");
        assert_eq!(sub("a.b", "s", "a\nb", "X", false), "X");
        // Anchored: only a match at the start counts.
        assert_eq!(sub("b", "a", "ab", "X", false), "ab");
        assert_eq!(sub("a", "a", "aab", "X", true), "XXb");
        // A group that did not take part renders empty; so does one past the last.
        assert_eq!(sub("(a)|(b)", "", "b", "[$1|$2|$7]", false), "[|b|]");
    }

    #[test]
    fn bytes_without_u_characters_with_it() {
        let re = NgxRegex::new(".", "").expect("compiles");
        let with = Replacement::new("_").expect("template");
        assert_eq!(re.gsub("é".as_bytes(), &with).0, b"__");
        let re = NgxRegex::new(".", "u").expect("compiles");
        assert_eq!(re.gsub("é".as_bytes(), &with).0, b"_");
        // Invalid UTF-8 in the body is matched byte by byte without `u`.
        let re = NgxRegex::new("\\xff", "").expect("compiles");
        assert_eq!(re.gsub(&[b'a', 0xff], &with).0, b"a_");
        let re = NgxRegex::new("é", "").expect("compiles");
        assert_eq!(re.sub("café".as_bytes(), &with).0, b"caf_");
    }

    #[test]
    fn options_and_templates_refused() {
        assert_eq!(
            NgxRegex::new("hello", "h").expect_err("refused"),
            "unknown flag \"h\" (flags \"h\")"
        );
        assert!(NgxRegex::new("a", "d")
            .expect_err("refused")
            .contains("not supported"));
        assert!(NgxRegex::new("(", "jo").is_err());
        assert!(Replacement::new("$x").is_err());
        assert!(Replacement::new("${1").is_err());
        assert!(Replacement::new("a$").is_err());
        assert_eq!(
            Replacement::new("a$$b${12}"),
            Ok(Replacement(vec![
                Piece::Text(b"a$b".to_vec()),
                Piece::Group(12)
            ]))
        );
    }
}
