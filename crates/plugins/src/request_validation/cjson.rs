//! `cjson.decode` as APISIX's `core.json.decode` runs it (lua-cjson with OpenResty's defaults:
//! invalid numbers accepted, no comments, depth limit 1000), with its error messages, e.g.
//! `Expected value but found invalid token at character 1` or
//! `Expected comma or object end but found T_STRING at character 10`.
//!
//! The input stops at the first NUL byte (cjson reads a C string). Numbers are what `strtoll`
//! or `strtod` make of them, so `+1`, `01`, `0x1A`, `1.` and `Infinity` decode; JSON `null` is
//! [`Value::Null`]. Strings keep raw bytes as they are (invalid UTF-8 is replaced, since a
//! `serde_json` string is text).

use serde_json::{Map, Number, Value};

/// Why a text did not decode.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum DecodeError {
    /// cjson's message.
    Syntax(String),
    /// The text holds `NaN` or an infinite number: cjson decodes it, but nothing downstream can
    /// carry it (APISIX fails later, when it encodes the body again).
    NonFinite,
}

/// Decodes a JSON text like `cjson.safe.decode`.
pub(crate) fn decode(data: &[u8]) -> Result<Value, DecodeError> {
    if data.len() >= 2 && (data[0] == 0 || data[1] == 0) {
        return Err(DecodeError::Syntax(
            "JSON parser does not support UTF-16 or UTF-32".to_string(),
        ));
    }
    let end = data.iter().position(|b| *b == 0).unwrap_or(data.len());
    let mut p = Parser {
        data: &data[..end],
        pos: 0,
        depth: 0,
    };
    let token = p.next_token();
    let value = p.document(token)?;
    let token = p.next_token();
    if token.kind != Kind::End {
        return Err(p.expected("the end", &token));
    }
    Ok(value)
}

const MAX_DEPTH: usize = 1000;

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    ObjBegin,
    ObjEnd,
    ArrBegin,
    ArrEnd,
    Str(String),
    Number(f64),
    Integer(i64),
    Bool(bool),
    Null,
    Colon,
    Comma,
    End,
    Error(&'static str),
}

impl Kind {
    fn name(&self) -> &'static str {
        match self {
            Kind::ObjBegin => "T_OBJ_BEGIN",
            Kind::ObjEnd => "T_OBJ_END",
            Kind::ArrBegin => "T_ARR_BEGIN",
            Kind::ArrEnd => "T_ARR_END",
            Kind::Str(_) => "T_STRING",
            Kind::Number(_) => "T_NUMBER",
            Kind::Integer(_) => "T_INTEGER",
            Kind::Bool(_) => "T_BOOLEAN",
            Kind::Null => "T_NULL",
            Kind::Colon => "T_COLON",
            Kind::Comma => "T_COMMA",
            Kind::End => "T_END",
            Kind::Error(what) => what,
        }
    }
}

struct Token {
    kind: Kind,
    /// 0-based offset where the token (or the error) starts.
    index: usize,
}

struct Parser<'a> {
    data: &'a [u8],
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self, at: usize) -> u8 {
        self.data.get(at).copied().unwrap_or(0)
    }

    fn expected(&self, what: &str, token: &Token) -> DecodeError {
        DecodeError::Syntax(format!(
            "Expected {what} but found {} at character {}",
            token.kind.name(),
            token.index + 1
        ))
    }

    fn error(&self, at: usize, what: &'static str) -> Token {
        Token {
            kind: Kind::Error(what),
            index: at,
        }
    }

    fn next_token(&mut self) -> Token {
        while matches!(self.peek(self.pos), b' ' | b'\t' | b'\n' | b'\r') {
            self.pos += 1;
        }
        let index = self.pos;
        let single = |kind| Token { kind, index };
        let c = self.peek(index);
        let kind = match c {
            0 => return single(Kind::End),
            b'{' => Kind::ObjBegin,
            b'}' => Kind::ObjEnd,
            b'[' => Kind::ArrBegin,
            b']' => Kind::ArrEnd,
            b',' => Kind::Comma,
            b':' => Kind::Colon,
            b'"' => return self.string(),
            b'-' | b'0'..=b'9' => return self.number(),
            b't' | b'f' | b'n' | b'i' | b'I' | b'N' | b'+' => return self.word(),
            _ => return self.error(index, "invalid token"),
        };
        self.pos += 1;
        single(kind)
    }

    fn word(&mut self) -> Token {
        let rest = &self.data[self.pos..];
        for (text, kind) in [
            (&b"true"[..], Kind::Bool(true)),
            (b"false", Kind::Bool(false)),
            (b"null", Kind::Null),
        ] {
            if rest.starts_with(text) {
                let index = self.pos;
                self.pos += text.len();
                return Token { kind, index };
            }
        }
        // Only what cjson calls an invalid number (`+…`, `inf…`, `nan…`) is tried as one.
        let lower = |n: usize| rest.get(..n).map(|s| s.to_ascii_lowercase());
        let invalid_number =
            rest.first() == Some(&b'+') || lower(3).is_some_and(|s| s == b"inf" || s == b"nan");
        if invalid_number {
            return self.number();
        }
        self.error(self.pos, "invalid token")
    }

    fn string(&mut self) -> Token {
        let index = self.pos;
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let c = self.peek(self.pos);
            match c {
                b'"' => break,
                0 => return self.error(self.pos, "unexpected end of string"),
                b'\\' => {
                    let at = self.pos;
                    let translated = match self.peek(at + 1) {
                        b'"' => b'"',
                        b'\\' => b'\\',
                        b'/' => b'/',
                        b'b' => 0x08,
                        b't' => b'\t',
                        b'n' => b'\n',
                        b'f' => 0x0c,
                        b'r' => b'\r',
                        b'u' => match self.unicode_escape(at) {
                            Some((ch, len)) => {
                                let mut buf = [0u8; 4];
                                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                                self.pos += len;
                                continue;
                            }
                            None => return self.error(at, "invalid unicode escape code"),
                        },
                        _ => return self.error(at, "invalid escape code"),
                    };
                    out.push(translated);
                    self.pos += 2;
                }
                c => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
        self.pos += 1;
        let text = match String::from_utf8(out) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
        Token {
            kind: Kind::Str(text),
            index,
        }
    }

    fn hex4(&self, at: usize) -> Option<u32> {
        let digits = self.data.get(at..at + 4)?;
        let text = std::str::from_utf8(digits).ok()?;
        if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(text, 16).ok()
    }

    /// `\uXXXX` at `at` (a surrogate pair takes two escapes): the character and the escape's
    /// length.
    fn unicode_escape(&self, at: usize) -> Option<(char, usize)> {
        let high = self.hex4(at + 2)?;
        if high & 0xF800 != 0xD800 {
            return char::from_u32(high).map(|c| (c, 6));
        }
        if high & 0x400 != 0 || self.data.get(at + 6..at + 8) != Some(b"\\u") {
            return None;
        }
        let low = self.hex4(at + 8)?;
        if low & 0xFC00 != 0xDC00 {
            return None;
        }
        let code = (((high & 0x3FF) << 10) | (low & 0x3FF)) + 0x10000;
        char::from_u32(code).map(|c| (c, 12))
    }

    /// `strtoll` first; `strtod` when that stops at `.`, `e`, `E`, `x` or read nothing.
    fn number(&mut self) -> Token {
        let index = self.pos;
        let rest = &self.data[index..];
        let (int, used) = strtoll(rest);
        let next = rest.get(used).copied().unwrap_or(0);
        if used == 0 || matches!(next, b'.' | b'e' | b'E' | b'x') {
            return match strtod(rest) {
                Some((value, used)) => {
                    self.pos += used;
                    Token {
                        kind: Kind::Number(value),
                        index,
                    }
                }
                None => self.error(index, "invalid number"),
            };
        }
        self.pos += used;
        Token {
            kind: Kind::Integer(int),
            index,
        }
    }

    /// A scalar token's value; containers are built by [`Parser::document`].
    fn scalar(&self, token: Token) -> Result<Value, DecodeError> {
        match token.kind {
            Kind::Str(s) => Ok(Value::String(s)),
            Kind::Integer(i) => number(i as f64),
            Kind::Number(f) => number(f),
            Kind::Bool(b) => Ok(Value::Bool(b)),
            Kind::Null => Ok(Value::Null),
            _ => Err(self.expected("value", &token)),
        }
    }

    fn descend(&mut self) -> Result<(), DecodeError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(DecodeError::Syntax(format!(
                "Found too many nested data structures ({}) at character {}",
                self.depth, self.pos
            )));
        }
        Ok(())
    }

    /// An object key and its colon; the token after the colon.
    fn member(&mut self, token: Token) -> Result<(String, Token), DecodeError> {
        let Kind::Str(key) = token.kind else {
            return Err(self.expected("object key string", &token));
        };
        let colon = self.next_token();
        if colon.kind != Kind::Colon {
            return Err(self.expected("colon", &colon));
        }
        Ok((key, self.next_token()))
    }

    /// The value starting at `token`, containers included. cjson descends recursively; this
    /// keeps its own stack, so a deeply nested body cannot exhaust the thread's.
    fn document(&mut self, first: Token) -> Result<Value, DecodeError> {
        enum Open {
            Array(Vec<Value>),
            Object(Map<String, Value>, String),
        }
        let mut open: Vec<Open> = Vec::new();
        let mut token = first;
        loop {
            let mut value = match token.kind {
                Kind::ObjBegin => {
                    self.descend()?;
                    let next = self.next_token();
                    if next.kind == Kind::ObjEnd {
                        self.depth -= 1;
                        Value::Object(Map::new())
                    } else {
                        let (key, next) = self.member(next)?;
                        open.push(Open::Object(Map::new(), key));
                        token = next;
                        continue;
                    }
                }
                Kind::ArrBegin => {
                    self.descend()?;
                    let next = self.next_token();
                    if next.kind == Kind::ArrEnd {
                        self.depth -= 1;
                        Value::Array(Vec::new())
                    } else {
                        open.push(Open::Array(Vec::new()));
                        token = next;
                        continue;
                    }
                }
                _ => {
                    let placeholder = Token {
                        kind: Kind::End,
                        index: 0,
                    };
                    self.scalar(std::mem::replace(&mut token, placeholder))?
                }
            };
            // Hand the finished value to the containers it closes, up to one that goes on.
            loop {
                let Some(mut parent) = open.pop() else {
                    return Ok(value);
                };
                let after = self.next_token();
                let closed = match &mut parent {
                    Open::Array(items) => {
                        items.push(value);
                        match after.kind {
                            Kind::ArrEnd => true,
                            Kind::Comma => {
                                token = self.next_token();
                                false
                            }
                            _ => return Err(self.expected("comma or array end", &after)),
                        }
                    }
                    Open::Object(map, key) => {
                        map.insert(std::mem::take(key), value);
                        match after.kind {
                            Kind::ObjEnd => true,
                            Kind::Comma => {
                                let next = self.next_token();
                                let (next_key, next) = self.member(next)?;
                                *key = next_key;
                                token = next;
                                false
                            }
                            _ => return Err(self.expected("comma or object end", &after)),
                        }
                    }
                };
                if !closed {
                    open.push(parent);
                    break;
                }
                self.depth -= 1;
                value = match parent {
                    Open::Array(items) => Value::Array(items),
                    Open::Object(map, _) => Value::Object(map),
                };
            }
        }
    }
}

/// A decoded number as a JSON value: integral values Lua holds exactly stay integers.
fn number(f: f64) -> Result<Value, DecodeError> {
    if !f.is_finite() {
        return Err(DecodeError::NonFinite);
    }
    if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 {
        return Ok(Value::Number(Number::from(f as i64)));
    }
    Number::from_f64(f)
        .map(Value::Number)
        .ok_or(DecodeError::NonFinite)
}

/// C's `strtoll(s, &end, 10)` on text without leading blanks: the value (saturated) and how
/// many bytes it read (0 when there are no digits).
fn strtoll(s: &[u8]) -> (i64, usize) {
    let (negative, start) = match s.first() {
        Some(b'-') => (true, 1),
        Some(b'+') => (false, 1),
        _ => (false, 0),
    };
    let digits = s[start..].iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return (0, 0);
    }
    let mut value: i128 = 0;
    for b in &s[start..start + digits] {
        value = (value * 10 + i128::from(b - b'0')).min(i128::from(i64::MAX) + 1);
    }
    if negative {
        value = -value;
    }
    let value = value.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
    (value, start + digits)
}

/// glibc's `strtod` on text without leading blanks: decimal and hexadecimal numbers,
/// `inf`/`infinity` and `nan`/`nan(…)`, any case. The value and how many bytes it read.
fn strtod(s: &[u8]) -> Option<(f64, usize)> {
    let (sign, start) = match s.first() {
        Some(b'-') => (-1.0, 1),
        Some(b'+') => (1.0, 1),
        _ => (1.0, 0),
    };
    let body = &s[start..];
    let lower: Vec<u8> = body.iter().take(8).map(u8::to_ascii_lowercase).collect();
    if lower.starts_with(b"infinity") {
        return Some((sign * f64::INFINITY, start + 8));
    }
    if lower.starts_with(b"inf") {
        return Some((sign * f64::INFINITY, start + 3));
    }
    if lower.starts_with(b"nan") {
        let mut used = 3;
        if body.get(3) == Some(&b'(') {
            let inner = body[4..]
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
                .count();
            if body.get(4 + inner) == Some(&b')') {
                used = 5 + inner;
            }
        }
        return Some((f64::NAN, start + used));
    }
    if lower.starts_with(b"0x") {
        if let Some((v, used)) = hex_float(&body[2..]) {
            return Some((sign * v, start + 2 + used));
        }
        // "0x" without hex digits reads as the number 0, stopping at the `x`.
        return Some((0.0, start + 1));
    }
    let int = body.iter().take_while(|b| b.is_ascii_digit()).count();
    let mut used = int;
    let mut frac = 0;
    if body.get(used) == Some(&b'.') {
        frac = body[used + 1..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if int + frac > 0 {
            used += 1 + frac;
        }
    }
    if int + frac == 0 {
        return None;
    }
    if matches!(body.get(used), Some(b'e' | b'E')) {
        let mut e = used + 1;
        if matches!(body.get(e), Some(b'+' | b'-')) {
            e += 1;
        }
        let digits = body[e.min(body.len())..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits > 0 {
            used = e + digits;
        }
    }
    let text = std::str::from_utf8(&body[..used]).ok()?;
    // Rust reads "1." and ".5" like C does.
    let value: f64 = text.parse().ok()?;
    Some((sign * value, start + used))
}

/// The digits of a hexadecimal float after `0x`: `h[.h][p[±]d]`.
fn hex_float(s: &[u8]) -> Option<(f64, usize)> {
    let mut value = 0f64;
    let mut used = 0;
    let mut any = false;
    while let Some(d) = s.get(used).and_then(|b| (*b as char).to_digit(16)) {
        value = value * 16.0 + f64::from(d);
        used += 1;
        any = true;
    }
    if s.get(used) == Some(&b'.') {
        let mut scale = 1.0 / 16.0;
        let mut i = used + 1;
        let mut frac_any = false;
        while let Some(d) = s.get(i).and_then(|b| (*b as char).to_digit(16)) {
            value += f64::from(d) * scale;
            scale /= 16.0;
            i += 1;
            frac_any = true;
        }
        if any || frac_any {
            used = i;
            any = true;
        }
    }
    if !any {
        return None;
    }
    if matches!(s.get(used), Some(b'p' | b'P')) {
        let mut e = used + 1;
        let negative = s.get(e) == Some(&b'-');
        if matches!(s.get(e), Some(b'+' | b'-')) {
            e += 1;
        }
        let digits = s[e.min(s.len())..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits > 0 {
            let exp: i32 = std::str::from_utf8(&s[e..e + digits])
                .ok()?
                .parse()
                .unwrap_or(i32::MAX);
            value *= 2f64.powi(if negative { -exp } else { exp });
            used = e + digits;
        }
    }
    Some((value, used))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(text: &str) -> String {
        match decode(text.as_bytes()) {
            Err(DecodeError::Syntax(m)) => m,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn decodes_json() {
        assert_eq!(
            decode(br#" {"a": [1, 2.5, "x\u00e9\ud83d\ude00", true, null], "b": {}} "#),
            Ok(json!({"a": [1, 2.5, "xé😀", true, null], "b": {}}))
        );
        assert_eq!(decode(b"\"s\\/\\n\""), Ok(json!("s/\n")));
        assert_eq!(decode(b"-0.5e1"), Ok(json!(-5)));
    }

    #[test]
    fn lenient_numbers() {
        assert_eq!(decode(b"+1"), Ok(json!(1)));
        assert_eq!(decode(b"01"), Ok(json!(1)));
        assert_eq!(decode(b"0x1A"), Ok(json!(26)));
        assert_eq!(decode(b"1."), Ok(json!(1)));
        assert_eq!(
            decode(b"99999999999999999999"),
            Ok(json!(9.223372036854776e18))
        );
        assert_eq!(decode(b"[Infinity]"), Err(DecodeError::NonFinite));
        assert_eq!(decode(b"-nan"), Err(DecodeError::NonFinite));
        assert_eq!(decode(b"1e999"), Err(DecodeError::NonFinite));
    }

    #[test]
    fn cjson_messages() {
        assert_eq!(
            err("abc"),
            "Expected value but found invalid token at character 1"
        );
        assert_eq!(err(""), "Expected value but found T_END at character 1");
        assert_eq!(err("  "), "Expected value but found T_END at character 3");
        assert_eq!(
            err("{\"a\" 1}"),
            "Expected colon but found T_INTEGER at character 6"
        );
        assert_eq!(
            err("{1:2}"),
            "Expected object key string but found T_INTEGER at character 2"
        );
        assert_eq!(
            err("{\"a\":1 \"b\":2}"),
            "Expected comma or object end but found T_STRING at character 8"
        );
        assert_eq!(
            err("[1 2]"),
            "Expected comma or array end but found T_INTEGER at character 4"
        );
        assert_eq!(
            err("[1,]"),
            "Expected value but found T_ARR_END at character 4"
        );
        assert_eq!(
            err("{} x"),
            "Expected the end but found invalid token at character 4"
        );
        assert_eq!(
            err("\"abc"),
            "Expected value but found unexpected end of string at character 5"
        );
        assert_eq!(
            err("\"a\\qb\""),
            "Expected value but found invalid escape code at character 3"
        );
        assert_eq!(
            err("\"\\ud800\""),
            "Expected value but found invalid unicode escape code at character 2"
        );
        assert_eq!(
            err("-"),
            "Expected value but found invalid number at character 1"
        );
        assert_eq!(
            err("tru"),
            "Expected value but found invalid token at character 1"
        );
        assert_eq!(
            err("{\"a\":1.5.2}"),
            "Expected comma or object end but found invalid token at character 9"
        );
        assert_eq!(
            err("[1.5 2]"),
            "Expected comma or array end but found T_INTEGER at character 6"
        );
        assert_eq!(err("\0{"), "JSON parser does not support UTF-16 or UTF-32");
        let deep = "[".repeat(1001);
        assert_eq!(
            err(&deep),
            "Found too many nested data structures (1001) at character 1001"
        );
        // The text ends at the first NUL byte.
        assert_eq!(decode(b"{}\0garbage"), Ok(json!({})));
    }
}
