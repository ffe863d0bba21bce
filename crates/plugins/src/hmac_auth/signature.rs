//! The parts of an hmac-auth request: the `Authorization: Signature …` fields
//! (`retrieve_hmac_fields`), the signing string (`generate_signature`) and the `Date` header
//! (`ngx.parse_http_time`).

use ring::hmac;

/// The fields of `Authorization: Signature keyId="…",algorithm="…",headers="…",signature="…"`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Fields {
    pub key_id: Option<String>,
    pub algorithm: Option<String>,
    pub signature: Option<String>,
    /// `headers="a b c"` split on single spaces (empty names kept, as `ngx_re.split` does).
    pub headers: Option<Vec<String>>,
}

/// Parses what follows `Signature` (APISIX's `auth_string:sub(10)`): each
/// comma-separated piece contributes its first `name="value"` (name of letters and digits); the
/// last occurrence of a field wins; unknown fields are ignored.
pub fn fields(authorization: &str) -> Fields {
    let mut out = Fields::default();
    let rest = authorization.get(9..).unwrap_or("");
    for piece in rest.split(',').filter(|p| !p.is_empty()) {
        let Some((name, value)) = pair(piece) else {
            continue;
        };
        match name {
            "keyId" => out.key_id = Some(value.to_string()),
            "algorithm" => out.algorithm = Some(value.to_string()),
            "signature" => out.signature = Some(value.to_string()),
            "headers" => out.headers = Some(value.split(' ').map(str::to_string).collect()),
            _ => {}
        }
    }
    out
}

/// Lua's `piece:match('%s*(%w+)="(.-)"')`: the first `word="…"` in the piece.
fn pair(piece: &str) -> Option<(&str, &str)> {
    let bytes = piece.as_bytes();
    let mut search = 0;
    while let Some(eq) = piece[search..].find("=\"").map(|i| i + search) {
        let start = bytes[..eq]
            .iter()
            .rposition(|b| !b.is_ascii_alphanumeric())
            .map_or(0, |i| i + 1);
        if start < eq {
            let value_start = eq + 2;
            let end = piece[value_start..].find('"')? + value_start;
            return Some((&piece[start..eq], &piece[value_start..end]));
        }
        search = eq + 1;
    }
    None
}

/// The HMAC algorithm of an `algorithm` field.
pub fn algorithm(name: &str) -> Option<hmac::Algorithm> {
    match name {
        "hmac-sha1" => Some(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY),
        "hmac-sha256" => Some(hmac::HMAC_SHA256),
        "hmac-sha512" => Some(hmac::HMAC_SHA512),
        _ => None,
    }
}

/// The string the client signs: `keyId`, then for each listed header that the request has
/// `name: value` (the first value), and for `@request-target` (when no such header exists)
/// `<METHOD> <request URI>`; one per line, each line ending in `\n`.
pub fn signing_string<'a>(
    key_id: &str,
    headers: &[String],
    header: impl Fn(&str) -> Option<&'a str>,
    method: &str,
    request_uri: &str,
) -> String {
    let mut out = String::with_capacity(128);
    out.push_str(key_id);
    out.push('\n');
    for name in headers {
        match header(name) {
            Some(value) => {
                out.push_str(name);
                out.push_str(": ");
                out.push_str(value);
                out.push('\n');
            }
            None if name == "@request-target" => {
                let uri = if request_uri.is_empty() {
                    "/"
                } else {
                    request_uri
                };
                out.push_str(method);
                out.push(' ');
                out.push_str(uri);
                out.push('\n');
            }
            None => {}
        }
    }
    out
}

/// `ngx_parse_http_time`: RFC 1123 (`Sun, 06 Nov 1994 08:49:37 GMT`), RFC 850
/// (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime (`Sun Nov  6 08:49:37 1994`) dates, as
/// seconds since the epoch. The weekday and the zone are not read, like nginx.
pub fn parse_http_time(text: &str) -> Option<i64> {
    #[derive(PartialEq)]
    enum Fmt {
        Rfc822,
        Rfc850,
        Isoc,
    }
    let s = text.as_bytes();
    let at = |i: usize| s.get(i).copied().unwrap_or(0);
    let digit = |i: usize| -> Option<i64> {
        let b = at(i);
        b.is_ascii_digit().then(|| i64::from(b - b'0'))
    };
    let two = |i: usize| -> Option<i64> { Some(digit(i)? * 10 + digit(i + 1)?) };

    let mut p = 0;
    let mut isoc = false;
    while p < s.len() {
        if s[p] == b',' {
            break;
        }
        if s[p] == b' ' {
            isoc = true;
            break;
        }
        p += 1;
    }
    p += 1;
    while p < s.len() && s[p] == b' ' {
        p += 1;
    }
    if s.len().saturating_sub(p) < 18 {
        return None;
    }
    let mut fmt = if isoc { Fmt::Isoc } else { Fmt::Rfc822 };
    let mut day = 0;
    if fmt != Fmt::Isoc {
        day = two(p)?;
        p += 2;
        match at(p) {
            b' ' => {
                if s.len().saturating_sub(p) < 18 {
                    return None;
                }
            }
            b'-' => fmt = Fmt::Rfc850,
            _ => return None,
        }
        p += 1;
    }
    let month: i64 = match at(p) {
        b'J' if at(p + 1) == b'a' => 0,
        b'J' if at(p + 2) == b'n' => 5,
        b'J' => 6,
        b'F' => 1,
        b'M' if at(p + 2) == b'r' => 2,
        b'M' => 4,
        b'A' if at(p + 1) == b'p' => 3,
        b'A' => 7,
        b'S' => 8,
        b'O' => 9,
        b'N' => 10,
        b'D' => 11,
        _ => return None,
    };
    p += 3;
    if (fmt == Fmt::Rfc822 && at(p) != b' ') || (fmt == Fmt::Rfc850 && at(p) != b'-') {
        return None;
    }
    p += 1;
    let mut year = 0;
    match fmt {
        Fmt::Rfc822 => {
            year = two(p)? * 100 + two(p + 2)?;
            p += 4;
        }
        Fmt::Rfc850 => {
            year = two(p)?;
            year += if year < 70 { 2000 } else { 1900 };
            p += 2;
        }
        Fmt::Isoc => {
            if at(p) == b' ' {
                p += 1;
            }
            day = digit(p)?;
            p += 1;
            if at(p) != b' ' {
                day = day * 10 + digit(p)?;
                p += 1;
            }
            if s.len().saturating_sub(p) < 14 {
                return None;
            }
        }
    }
    if at(p) != b' ' {
        return None;
    }
    p += 1;
    let hour = two(p)?;
    p += 2;
    if at(p) != b':' {
        return None;
    }
    p += 1;
    let min = two(p)?;
    p += 2;
    if at(p) != b':' {
        return None;
    }
    p += 1;
    let sec = two(p)?;
    if fmt == Fmt::Isoc {
        p += 2;
        if at(p) != b' ' {
            return None;
        }
        p += 1;
        year = two(p)? * 100 + two(p + 2)?;
    }
    if hour > 23 || min > 59 || sec > 59 {
        return None;
    }
    const MDAY: [i64; 12] = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    if day == 29 && month == 1 {
        if !leap {
            return None;
        }
    } else if day > MDAY[month as usize] {
        return None;
    }
    // Days since the epoch with the year shifted to start in March (nginx's formula).
    let (mut month, mut year) = (month, year);
    month -= 1;
    if month <= 0 {
        month += 12;
        year -= 1;
    }
    let days =
        365 * year + year / 4 - year / 100 + year / 400 + 367 * month / 12 - 30 + day - 1 - 719_527
            + 31
            + 28;
    Some(days * 86400 + hour * 3600 + min * 60 + sec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_fields() {
        let f = fields(
            r#"Signature keyId="my-key",algorithm="hmac-sha256",headers="@request-target date",signature="c2ln=""#,
        );
        assert_eq!(
            f,
            Fields {
                key_id: Some("my-key".into()),
                algorithm: Some("hmac-sha256".into()),
                signature: Some("c2ln=".into()),
                headers: Some(vec!["@request-target".into(), "date".into()]),
            }
        );
        // Spaces after commas, unknown and repeated fields, junk pieces.
        let f = fields(r#"Signature keyId="a", junk, x="y", keyId="b",headers="a  b""#);
        assert_eq!(f.key_id.as_deref(), Some("b"));
        assert_eq!(
            f.headers,
            Some(vec!["a".to_string(), String::new(), "b".to_string()])
        );
        assert_eq!(f.signature, None);
        // A name must be letters and digits: `key_id="x"` reads as `id="x"`.
        assert_eq!(fields(r#"Signature key_id="x""#), Fields::default());
        assert_eq!(fields("Signature"), Fields::default());
    }

    #[test]
    fn signing_string_lines() {
        let headers = vec![
            "@request-target".to_string(),
            "date".to_string(),
            "x-missing".to_string(),
            "x-custom".to_string(),
        ];
        let lookup = |name: &str| match name {
            "date" => Some("Tue, 19 Jan 2038 03:14:07 GMT"),
            "x-custom" => Some("v"),
            _ => None,
        };
        assert_eq!(
            signing_string("k", &headers, lookup, "GET", "/a?b=1"),
            "k\nGET /a?b=1\ndate: Tue, 19 Jan 2038 03:14:07 GMT\nx-custom: v\n"
        );
        assert_eq!(signing_string("k", &[], lookup, "GET", "/"), "k\n");
    }

    #[test]
    fn http_dates_like_nginx() {
        assert_eq!(
            parse_http_time("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(
            parse_http_time("Sunday, 06-Nov-94 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(
            parse_http_time("Sun Nov  6 08:49:37 1994"),
            Some(784_111_777)
        );
        assert_eq!(parse_http_time("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_http_time("Tue, 29 Feb 2000 12:00:00 GMT"),
            Some(951_825_600)
        );
        assert_eq!(
            parse_http_time("Tue, 19 Jan 2038 03:14:07 GMT"),
            Some(2_147_483_647)
        );
        for bad in [
            "",
            "yesterday",
            "Sun, 06 Nov 1994 08:49 GMT",
            "Sun, 06 Xyz 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Thu, 29 Feb 2001 12:00:00 GMT",
            "Sun, 31 Apr 1994 08:49:37 GMT",
            "1994-11-06T08:49:37Z",
        ] {
            assert_eq!(parse_http_time(bad), None, "{bad}");
        }
    }
}
