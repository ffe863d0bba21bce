//! Lua's number <-> string conversions, as LuaJIT (OpenResty) performs them.

/// LuaJIT's `tonumber(s)` for a string: surrounding whitespace allowed, optional sign, decimal
/// with optional fraction and exponent, hexadecimal integers (`0x1F`), `inf`/`infinity`/`nan`.
/// Anything else (including an empty string) is `None`.
pub(crate) fn lua_tonumber(s: &str) -> Option<f64> {
    let s = s.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r'));
    let (negative, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let value = if let Some(hex) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        parse_hex(hex)?
    } else if is_decimal(body) || is_special(body) {
        body.parse::<f64>().ok()?
    } else {
        return None;
    };
    Some(if negative { -value } else { value })
}

fn parse_hex(digits: &str) -> Option<f64> {
    if digits.is_empty() {
        return None;
    }
    digits.chars().try_fold(0f64, |acc, c| {
        c.to_digit(16).map(|d| acc * 16.0 + f64::from(d))
    })
}

/// `digits [. digits] [e [sign] digits]` with at least one mantissa digit (`5.`, `.5` allowed).
fn is_decimal(s: &str) -> bool {
    let bytes = s.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while bytes.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    let mut mantissa = digits(&mut i);
    if bytes.get(i) == Some(&b'.') {
        i += 1;
        mantissa += digits(&mut i);
    }
    if mantissa == 0 {
        return false;
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(bytes.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == bytes.len()
}

fn is_special(s: &str) -> bool {
    ["inf", "infinity", "nan"]
        .iter()
        .any(|word| s.eq_ignore_ascii_case(word))
}

/// Lua's `tostring` of a JSON number, used where lua-resty-expr passes a number to a string
/// function (an operator name, a regex, an IP). Integral values print without a fraction.
pub(crate) fn lua_tostring(n: &serde_json::Number) -> String {
    match n.as_f64() {
        Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 1e15 => format!("{f:.0}"),
        _ => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tonumber_accepts_what_luajit_accepts() {
        assert_eq!(lua_tonumber("10"), Some(10.0));
        assert_eq!(lua_tonumber("  -2.5 \n"), Some(-2.5));
        assert_eq!(lua_tonumber("+3"), Some(3.0));
        assert_eq!(lua_tonumber(".5"), Some(0.5));
        assert_eq!(lua_tonumber("5."), Some(5.0));
        assert_eq!(lua_tonumber("1e3"), Some(1000.0));
        assert_eq!(lua_tonumber("1E-1"), Some(0.1));
        assert_eq!(lua_tonumber("0x1F"), Some(31.0));
        assert_eq!(lua_tonumber("-0X10"), Some(-16.0));
        assert_eq!(lua_tonumber("inf"), Some(f64::INFINITY));
        assert_eq!(lua_tonumber("-Infinity"), Some(f64::NEG_INFINITY));
        assert!(lua_tonumber("nan").is_some_and(f64::is_nan));
    }

    #[test]
    fn tonumber_rejects_what_luajit_rejects() {
        for s in [
            "", " ", "abc", "1a", "1 2", ".", "1e", "e5", "0x", "0xg", "--1", "1_000", "-",
        ] {
            assert_eq!(lua_tonumber(s), None, "{s:?}");
        }
    }

    #[test]
    fn tostring_prints_integral_floats_without_fraction() {
        let n = |v: serde_json::Value| v.as_number().cloned().unwrap_or_else(|| 0.into());
        assert_eq!(lua_tostring(&n(serde_json::json!(5))), "5");
        assert_eq!(lua_tostring(&n(serde_json::json!(5.0))), "5");
        assert_eq!(lua_tostring(&n(serde_json::json!(-1.5))), "-1.5");
    }
}
