//! csrf: double-submit cookie protection against cross-site request forgery (APISIX priority
//! 2980, access and header_filter phases; `apisix/plugins/csrf.lua`).
//!
//! Every response gets a fresh token cookie:
//! `Set-Cookie: <name>=<token>;path=/;SameSite=Lax;Expires=<now + expires, cookie date>`, where
//! the token is `base64({"random":r,"expires":t,"sign":s})`, `t` the issue time (Unix seconds),
//! `r` a random number in [0, 1) and `s` the lower-case hex SHA-256 of
//! `{expires:<t>,random:<r>,key:<key>}` (numbers as Lua prints them, `%.14g`).
//!
//! `GET`, `HEAD` and `OPTIONS` pass. Any other method must send the token both in the header
//! `<name>` and in the cookie `<name>`, equal, with a valid signature and (when `expires > 0`) not
//! older than `expires` seconds; else 401 with `{"error_msg":…}`: `no csrf token in headers`,
//! `no csrf cookie`, `csrf token mismatch`, `Failed to verify the csrf token signature`.
//! `key` is encrypted at rest.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::alphabet::STANDARD;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD as B64};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use http::header::{HeaderValue, SET_COOKIE};
use http::{Method, StatusCode};
use portico_expr::Vars;
use portico_model::schema::{cjson_encode, format_number};
use portico_model::PluginSpec;
use serde::Deserialize;
use serde_json::{json, Map, Number, Value};
use sha2::{Digest, Sha256};

use crate::request_validation::cjson;
use crate::{typed, BuildEnv, Ctx, Flow, Plugin, Reply};

/// Plugin name.
pub const NAME: &str = "csrf";

/// APISIX priority.
const PRIORITY: i32 = 2980;

const DEFAULT_NAME: &str = "apisix-csrf-token";

/// The registry row of csrf.
pub fn spec() -> PluginSpec {
    PluginSpec {
        encrypt_fields: &["key"],
        ..PluginSpec::new(
            NAME,
            PRIORITY,
            json!({
                "type": "object",
                "properties": {
                    "key": {"description": "use to generate csrf token", "type": "string"},
                    "expires": {"description": "expires time(s) for csrf token", "type": "integer", "default": 7200},
                    "name": {"description": "the csrf token name", "type": "string", "default": DEFAULT_NAME}
                },
                "required": ["key"]
            }),
        )
    }
}

fn two_hours() -> i64 {
    7200
}

fn default_name() -> String {
    DEFAULT_NAME.to_string()
}

/// The configuration.
#[derive(Debug, Deserialize)]
struct Config {
    key: String,
    #[serde(default = "two_hours")]
    expires: i64,
    #[serde(default = "default_name")]
    name: String,
}

/// A csrf instance.
#[derive(Debug)]
pub struct Csrf {
    key: String,
    expires: i64,
    name: String,
    cookie_var: String,
}

/// Builds csrf from a checked configuration.
pub fn build(conf: &Value, _env: &BuildEnv<'_>) -> Result<Arc<dyn Plugin>, String> {
    let c: Config = typed(conf)?;
    Ok(Arc::new(Csrf {
        cookie_var: format!("cookie_{}", c.name),
        key: c.key,
        expires: c.expires,
        name: c.name,
    }))
}

/// What checking a token found.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Valid,
    Invalid,
    /// APISIX's Lua fails on this token (e.g. a `random` that is not a number or string): 500.
    Broken,
}

/// `sign` of a token: hex SHA-256 of `{expires:<t>,random:<r>,key:<key>}`.
fn sign(random: &str, expires: &str, key: &str) -> String {
    let digest = Sha256::digest(format!("{{expires:{expires},random:{random},key:{key}}}"));
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A value used in Lua string concatenation: numbers print as `%.14g`, strings as they are,
/// anything else is an error.
fn lua_text(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => n.as_f64().map(format_number),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// A value used in Lua arithmetic: numbers, and strings Lua converts (decimal or `0x` hex).
fn lua_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => {
            let t = s.trim_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
            let (negative, digits) = match t.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, t),
            };
            let hex = digits
                .strip_prefix("0x")
                .or_else(|| digits.strip_prefix("0X"));
            let value = match hex {
                Some(h) => u64::from_str_radix(h, 16).ok().map(|v| v as f64),
                None if t
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b".+-eE".contains(&b)) =>
                {
                    t.parse::<f64>().ok()
                }
                None => None,
            }?;
            Some(if negative && hex.is_some() {
                -value
            } else {
                value
            })
        }
        _ => None,
    }
}

/// `ngx.decode_base64`: the standard alphabet, the text up to the first `=`, lenient about
/// padding and trailing bits.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::RequireNone)
            .with_decode_allow_trailing_bits(true),
    );
    let data = text.split('=').next().unwrap_or_default();
    LENIENT.decode(data).ok()
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// `math.random()`: a uniform number in [0, 1).
fn random() -> f64 {
    let mut buf = [0u8; 8];
    if getrandom::fill(&mut buf).is_err() {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_i64(now());
        buf = h.finish().to_le_bytes();
    }
    (u64::from_le_bytes(buf) >> 11) as f64 / (1u64 << 53) as f64
}

impl Csrf {
    /// A new token issued at `issued`.
    fn token(&self, random: f64, issued: i64) -> String {
        let mut t = Map::new();
        let r = Number::from_f64(random).unwrap_or_else(|| Number::from(0));
        t.insert("random".into(), Value::Number(r));
        t.insert("expires".into(), Value::from(issued));
        let s = sign(&format_number(random), &issued.to_string(), &self.key);
        t.insert("sign".into(), Value::String(s));
        B64.encode(cjson_encode(&Value::Object(t)))
    }

    fn verify(&self, token: &str, now: i64) -> Verdict {
        let Some(text) = decode_base64(token) else {
            return Verdict::Invalid;
        };
        let table = match cjson::decode(&text) {
            Ok(Value::Object(o)) => o,
            // Indexing a string or an array gives nil: "no random in token".
            Ok(Value::String(_) | Value::Array(_)) | Err(_) => return Verdict::Invalid,
            Ok(_) => return Verdict::Broken,
        };
        let present = |k: &str| table.get(k).filter(|v| **v != Value::Bool(false));
        let (Some(random), Some(expires)) = (present("random"), present("expires")) else {
            return Verdict::Invalid;
        };
        if self.expires > 0 {
            let Some(issued) = lua_number(expires) else {
                return Verdict::Broken;
            };
            if now as f64 - issued > self.expires as f64 {
                return Verdict::Invalid;
            }
        }
        let (Some(random), Some(expires)) = (lua_text(random), lua_text(expires)) else {
            return Verdict::Broken;
        };
        let expected = sign(&random, &expires, &self.key);
        if table.get("sign").and_then(Value::as_str) == Some(expected.as_str()) {
            Verdict::Valid
        } else {
            Verdict::Invalid
        }
    }

    fn reject(msg: &str) -> Flow {
        Flow::Respond(Reply::error_msg(StatusCode::UNAUTHORIZED, msg))
    }
}

impl Plugin for Csrf {
    fn name(&self) -> &'static str {
        NAME
    }

    fn priority(&self) -> i32 {
        PRIORITY
    }

    fn access(&self, ctx: &mut Ctx) -> Flow {
        if [Method::GET, Method::HEAD, Method::OPTIONS].contains(&ctx.method) {
            return Flow::Continue;
        }
        let header = ctx
            .headers
            .get(self.name.as_str())
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .filter(|v| !v.is_empty());
        let Some(header) = header else {
            return Self::reject("no csrf token in headers");
        };
        let Some(cookie) = ctx.var(&self.cookie_var).map(|c| c.into_owned()) else {
            return Self::reject("no csrf cookie");
        };
        if header != cookie {
            return Self::reject("csrf token mismatch");
        }
        match self.verify(&cookie, now()) {
            Verdict::Valid => Flow::Continue,
            Verdict::Invalid => Self::reject("Failed to verify the csrf token signature"),
            Verdict::Broken => {
                tracing::error!("csrf: the token cookie could not be checked");
                Flow::Respond(Reply::page(StatusCode::INTERNAL_SERVER_ERROR))
            }
        }
    }

    fn header_filter(&self, ctx: &mut Ctx) {
        let issued = now();
        let cookie = format!(
            "{}={};path=/;SameSite=Lax;Expires={}",
            self.name,
            self.token(random(), issued),
            cookie_time(issued.saturating_add(self.expires))
        );
        if let (Some(head), Ok(value)) = (ctx.response.as_mut(), HeaderValue::from_str(&cookie)) {
            head.headers.append(SET_COOKIE, value);
        }
    }
}

/// `ngx.cookie_time`: `Thu, 18-Nov-10 11:27:35 GMT` (a four-digit year after 2037).
pub(crate) fn cookie_time(t: i64) -> String {
    const WEEK: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let (year, month, day) = civil_date(days);
    let year = if year > 2037 {
        year.to_string()
    } else {
        format!("{:02}", year.rem_euclid(100))
    };
    format!(
        "{}, {:02}-{}-{} {:02}:{:02}:{:02} GMT",
        WEEK[usize::try_from((days + 4).rem_euclid(7)).unwrap_or(0)],
        day,
        MONTHS[usize::try_from(month - 1).unwrap_or(0)],
        year,
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01: (year, month 1–12, day).
fn civil_date(days: i64) -> (i64, i64, i64) {
    // Count in 400-year eras from 0000-03-01, where leap days fall at the end of a year.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{ctx_for, plugin};
    use crate::ResponseHead;

    fn csrf(key: &str, expires: i64) -> Csrf {
        Csrf {
            key: key.into(),
            expires,
            name: DEFAULT_NAME.into(),
            cookie_var: format!("cookie_{DEFAULT_NAME}"),
        }
    }

    fn request(method: &str, header: Option<&str>, cookie: Option<&str>) -> Ctx {
        let mut req = http::Request::builder().method(method).uri("/");
        if let Some(h) = header {
            req = req.header(DEFAULT_NAME, h);
        }
        if let Some(c) = cookie {
            req = req.header("Cookie", format!("a=b; {DEFAULT_NAME}={c}"));
        }
        ctx_for(req)
    }

    fn answer(p: &Arc<dyn Plugin>, ctx: &mut Ctx) -> (u16, String) {
        match p.access(ctx) {
            Flow::Respond(r) => (r.status.as_u16(), String::from_utf8_lossy(&r.body).into()),
            Flow::Continue => (200, String::new()),
            Flow::Wait(_) => unreachable!("csrf never waits"),
        }
    }

    /// The token a response hands out.
    fn issued(p: &Arc<dyn Plugin>) -> (String, String) {
        let mut ctx = request("GET", None, None);
        ctx.response = Some(ResponseHead::default());
        p.header_filter(&mut ctx);
        let head = ctx.response.expect("response");
        let cookie = head.headers[SET_COOKIE].to_str().expect("text").to_string();
        let token = cookie
            .strip_prefix("apisix-csrf-token=")
            .and_then(|c| c.split(';').next())
            .expect("token")
            .to_string();
        (cookie, token)
    }

    #[test]
    fn token_round_trip() {
        let p = plugin(NAME, json!({"key": "userkey", "expires": 1000000000}));
        let (cookie, token) = issued(&p);
        assert!(cookie.contains(";path=/;SameSite=Lax;Expires="), "{cookie}");
        assert!(cookie.ends_with(" GMT"), "{cookie}");
        for m in ["GET", "HEAD", "OPTIONS"] {
            assert_eq!(answer(&p, &mut request(m, None, None)).0, 200);
        }
        let body = |m: &str| format!("{{\"error_msg\":\"{m}\"}}\n");
        assert_eq!(
            answer(&p, &mut request("POST", None, Some(&token))),
            (401, body("no csrf token in headers"))
        );
        assert_eq!(
            answer(&p, &mut request("POST", Some(""), Some(&token))),
            (401, body("no csrf token in headers"))
        );
        assert_eq!(
            answer(&p, &mut request("POST", Some(&token), None)),
            (401, body("no csrf cookie"))
        );
        assert_eq!(
            answer(&p, &mut request("PUT", Some("other"), Some(&token))),
            (401, body("csrf token mismatch"))
        );
        assert_eq!(
            answer(&p, &mut request("POST", Some(&token), Some(&token))).0,
            200
        );
        let other_key = plugin(NAME, json!({"key": "another"}));
        assert_eq!(
            answer(
                &other_key,
                &mut request("DELETE", Some(&token), Some(&token))
            ),
            (401, body("Failed to verify the csrf token signature"))
        );
    }

    #[test]
    fn signature_matches_apisix() {
        // What APISIX computes for random 0.5, expires 1700000000, key "userkey".
        let c = csrf("userkey", 7200);
        let token = c.token(0.5, 1_700_000_000);
        let text = String::from_utf8(B64.decode(&token).expect("base64")).expect("text");
        let expected = sign("0.5", "1700000000", "userkey");
        assert_eq!(
            text,
            format!("{{\"random\":0.5,\"expires\":1700000000,\"sign\":\"{expected}\"}}")
        );
        let digest = Sha256::digest(b"{expires:1700000000,random:0.5,key:userkey}");
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(expected, hex);
        // %.14g of the random number, as Lua concatenates it.
        let r = 0.123_456_789_012_345_67;
        let t = c.token(r, 1);
        let text = String::from_utf8(B64.decode(&t).expect("base64")).expect("text");
        assert!(text.contains("\"random\":0.12345678901235"), "{text}");
        assert_eq!(c.verify(&t, 2), Verdict::Valid);
    }

    #[test]
    fn expiry_and_odd_tokens() {
        let c = csrf("k", 10);
        let t = c.token(0.25, 100);
        assert_eq!(c.verify(&t, 110), Verdict::Valid);
        assert_eq!(c.verify(&t, 111), Verdict::Invalid);
        // expires <= 0: tokens never expire.
        assert_eq!(
            csrf("k", 0).verify(&c.token(0.25, 100), 1 << 40),
            Verdict::Valid
        );
        let enc = |text: &str| B64.encode(text);
        assert_eq!(c.verify("%%%", 100), Verdict::Invalid);
        assert_eq!(c.verify(&enc("not json"), 100), Verdict::Invalid);
        assert_eq!(c.verify(&enc("\"str\""), 100), Verdict::Invalid);
        assert_eq!(c.verify(&enc("{\"expires\":100}"), 100), Verdict::Invalid);
        assert_eq!(c.verify(&enc("{\"random\":1}"), 100), Verdict::Invalid);
        assert_eq!(c.verify(&enc("123"), 100), Verdict::Broken);
        assert_eq!(
            c.verify(&enc("{\"random\":true,\"expires\":100}"), 100),
            Verdict::Broken
        );
        // A string issue time is what Lua makes of it, and concatenated as written.
        let s = sign("0.5", "100", "k");
        let text = format!("{{\"random\":0.5,\"expires\":\"100\",\"sign\":\"{s}\"}}");
        assert_eq!(c.verify(&enc(&text), 105), Verdict::Valid);
        // Without padding, as ngx.decode_base64 allows.
        let unpadded = c.token(0.25, 100).trim_end_matches('=').to_string();
        assert_eq!(c.verify(&unpadded, 100), Verdict::Valid);
    }

    #[test]
    fn cookie_dates() {
        assert_eq!(cookie_time(0), "Thu, 01-Jan-70 00:00:00 GMT");
        assert_eq!(cookie_time(1_290_079_655), "Thu, 18-Nov-10 11:27:35 GMT");
        assert_eq!(cookie_time(951_782_400), "Tue, 29-Feb-00 00:00:00 GMT");
        assert_eq!(cookie_time(2_240_611_200), "Tue, 01-Jan-2041 00:00:00 GMT");
        assert_eq!(cookie_time(-86_400), "Wed, 31-Dec-69 00:00:00 GMT");
    }
}
