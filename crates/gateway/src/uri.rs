//! `$uri` as nginx computes it from the request target: percent-decoded, `.`/`..` resolved,
//! repeated slashes merged, no query string. Routing matches on it; the upstream gets the
//! original request target.

use std::borrow::Cow;

/// Normalises a request path. `None` when the path climbs above the root or decodes to invalid
/// UTF-8 or a NUL byte (nginx answers 400 to those).
pub fn normalize(path: &str) -> Option<Cow<'_, str>> {
    let bytes = path.as_bytes();
    if !bytes.starts_with(b"/") {
        return None;
    }
    // One pass: no escapes, and no segment that is empty or starts with a dot (such a
    // segment may still be plain, e.g. `/.well-known`; the full walk below keeps it).
    let plain = !bytes.contains(&b'%')
        && !bytes
            .windows(2)
            .any(|w| w[0] == b'/' && (w[1] == b'/' || w[1] == b'.'));
    if plain {
        return Some(Cow::Borrowed(path));
    }
    let decoded = percent_decode(bytes)?;
    let mut segments: Vec<&str> = Vec::new();
    let trailing = decoded.ends_with('/') || decoded.ends_with("/.") || decoded.ends_with("/..");
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop()?;
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(decoded.len());
    for seg in &segments {
        out.push('/');
        out.push_str(seg);
    }
    if trailing || out.is_empty() {
        out.push('/');
    }
    Some(Cow::Owned(out))
}

fn percent_decode(bytes: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                let b = h << 4 | l;
                if b == 0 {
                    return None;
                }
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn normalises_like_nginx() {
        assert_eq!(normalize("/a/b").unwrap(), "/a/b");
        assert_eq!(normalize("/a//b").unwrap(), "/a/b");
        assert_eq!(normalize("/a/./b/../c").unwrap(), "/a/c");
        assert_eq!(normalize("/a/%62").unwrap(), "/a/b");
        assert_eq!(normalize("/a/b/..").unwrap(), "/a/");
        assert_eq!(normalize("/a/").unwrap(), "/a/");
        assert_eq!(normalize("/%2e%2e/x"), None);
        assert_eq!(normalize("/.."), None);
        assert_eq!(normalize("/a%00"), None);
        assert_eq!(normalize("a"), None);
        assert_eq!(normalize("/").unwrap(), "/");
    }
}
