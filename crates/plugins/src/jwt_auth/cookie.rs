//! The cookie a token may travel in: nginx's `$cookie_<name>` and APISIX's
//! `remove_specified_cookie` (jwt-auth `hide_credentials`).

use std::sync::LazyLock;

use http::header::COOKIE;
use http::HeaderMap;
use regex::Regex;

/// `$cookie_<name>` (`ngx_http_parse_multi_header_lines`): over every `Cookie` header, the first
/// `name=value` pair whose name matches case-insensitively (spaces allowed around `=`); the
/// value runs to the next `;`.
pub fn value(headers: &HeaderMap, name: &str) -> Option<String> {
    let name = name.as_bytes();
    for header in headers.get_all(COOKIE) {
        let line = header.as_bytes();
        let mut at = 0;
        while at < line.len() {
            if let Some(v) = pair_at(line, at, name) {
                return String::from_utf8(v.to_vec()).ok();
            }
            // Skip past the next `;` or `,` and the spaces after it.
            while at < line.len() {
                at += 1;
                if matches!(line[at - 1], b';' | b',') {
                    break;
                }
            }
            while at < line.len() && line[at] == b' ' {
                at += 1;
            }
        }
    }
    None
}

/// The value of `name=value` starting at `at`, if the pair there is `name`'s.
fn pair_at<'a>(line: &'a [u8], at: usize, name: &[u8]) -> Option<&'a [u8]> {
    let rest = line.get(at..)?;
    if rest.len() < name.len() || !rest[..name.len()].eq_ignore_ascii_case(name) {
        return None;
    }
    let rest = rest[name.len()..].trim_ascii_start();
    let rest = rest.strip_prefix(b"=")?.trim_ascii_start();
    let end = rest.iter().position(|b| *b == b';').unwrap_or(rest.len());
    Some(&rest[..end])
}

static PAIR: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"([a-zA-Z0-9\-_]*)=([a-zA-Z0-9\-._]*)").ok());

/// The `Cookie` header without cookie `name`: every other `name=value` pair (names and values
/// of `[a-zA-Z0-9-_]`/`[a-zA-Z0-9-._]`), joined with `; `. Several `Cookie` headers are read
/// as one.
pub fn without(headers: &HeaderMap, name: &str) -> String {
    let joined: Vec<&str> = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let joined = joined.join("; ");
    let Some(pair) = PAIR.as_ref() else {
        return joined;
    };
    pair.captures_iter(&joined)
        .filter(|c| c.get(1).map(|m| m.as_str()) != Some(name))
        .filter_map(|c| c.get(0).map(|m| m.as_str()))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(cookies: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for c in cookies {
            h.append(COOKIE, c.parse().expect("header value"));
        }
        h
    }

    #[test]
    fn reads_like_nginx() {
        let h = headers(&["a=1; JWT = tok.en ; b=2", "jwt=second"]);
        assert_eq!(value(&h, "jwt").as_deref(), Some("tok.en "));
        assert_eq!(value(&h, "b").as_deref(), Some("2"));
        assert_eq!(value(&h, "c"), None);
        // A longer name does not match a shorter one.
        let h = headers(&["jwtx=1", "jwt=2"]);
        assert_eq!(value(&h, "jwt").as_deref(), Some("2"));
        assert_eq!(value(&headers(&["a=1"]), ""), None);
    }

    #[test]
    fn removes_one_cookie() {
        let h = headers(&["a=1; jwt=x.y.z; b=2", "c=3"]);
        assert_eq!(without(&h, "jwt"), "a=1; b=2; c=3");
        assert_eq!(without(&headers(&["jwt=x"]), "jwt"), "");
    }
}
