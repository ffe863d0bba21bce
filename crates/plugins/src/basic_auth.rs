//! basic-auth: authenticates a consumer by `Authorization: Basic` credentials
//! (APISIX priority 2520, rewrite phase, auth type; `apisix/plugins/basic-auth.lua`).
//!
//! The header is matched with `(?i:basic)\s(.+)` (anywhere in the value), the rest is decoded as
//! nginx's `ngx.decode_base64` does (padding optional) and split on `:` like `ngx_re.split`
//! (trailing empty pieces dropped; the password is the *second* piece); all whitespace is removed
//! from user and password. Failures answer 401 with `WWW-Authenticate: Basic realm="<realm>"`:
//! `Missing authorization in request`, `Invalid authorization in request` (malformed), or
//! `Invalid user authorization` (unknown user, wrong password, missing anonymous consumer).

use std::sync::{Arc, LazyLock};

use http::StatusCode;
use portico_model::schemas::defs::{anonymous_consumer_schema, realm_schema};
use portico_model::PluginSpec;
use regex::Regex;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{typed, BuildEnv, Ctx, Flow, Plugin, Reply};

/// Plugin name.
pub const NAME: &str = "basic-auth";

/// The registry row of basic-auth.
pub fn spec() -> PluginSpec {
    PluginSpec {
        auth: true,
        consumer_schema: Some(json!({
            "type": "object",
            "title": "work with consumer object",
            "properties": {
                "username": {"type": "string"},
                "password": {"type": "string"}
            },
            "required": ["username", "password"]
        })),
        consumer_encrypt_fields: &["password"],
        consumer_key_field: Some("username"),
        ..PluginSpec::new(
            NAME,
            2520,
            json!({
                "type": "object",
                "title": "work with route or service object",
                "properties": {
                    "hide_credentials": {"type": "boolean", "default": false},
                    "realm": realm_schema("basic"),
                    "anonymous_consumer": anonymous_consumer_schema()
                }
            }),
        )
    }
}

const MISSING: &str = "Missing authorization in request";
const MALFORMED: &str = "Invalid authorization in request";
const INVALID_USER: &str = "Invalid user authorization";

static BASIC: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"(?i:basic)\s(.+)").ok());

fn realm() -> String {
    "basic".to_string()
}

/// The route-side configuration.
#[derive(Debug, Deserialize)]
struct Config {
    #[serde(default)]
    hide_credentials: bool,
    #[serde(default = "realm")]
    realm: String,
    anonymous_consumer: Option<String>,
}

/// A basic-auth instance.
#[derive(Debug)]
pub struct BasicAuth {
    hide_credentials: bool,
    www_authenticate: String,
    anonymous_consumer: Option<String>,
}

/// Builds basic-auth from a checked configuration.
pub fn build(conf: &Value, _env: &BuildEnv<'_>) -> Result<Arc<dyn Plugin>, String> {
    let c: Config = typed(conf)?;
    Ok(Arc::new(BasicAuth {
        hide_credentials: c.hide_credentials,
        www_authenticate: format!("Basic realm=\"{}\"", c.realm),
        anonymous_consumer: c.anonymous_consumer,
    }))
}

/// `ngx.decode_base64`: the standard alphabet, input up to the first `=`, no whitespace.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let data = text.as_bytes();
    let data = &data[..data.iter().position(|b| *b == b'=').unwrap_or(data.len())];
    if data.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(data.len() / 4 * 3 + 2);
    for chunk in data.chunks(4) {
        let mut acc = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            acc |= value(*c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

fn strip_whitespace(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r'))
        .collect()
}

/// `(username, password)` of an `Authorization` value.
fn credentials(header: &str) -> Option<(String, String)> {
    let encoded = BASIC.as_ref()?.captures(header)?.get(1)?.as_str();
    let decoded = decode_base64(encoded)?;
    let decoded = String::from_utf8_lossy(&decoded);
    let mut pieces: Vec<&str> = decoded.split(':').collect();
    if decoded.ends_with(':') {
        while pieces.last() == Some(&"") {
            pieces.pop();
        }
    }
    match pieces.as_slice() {
        [user, pass, ..] => Some((strip_whitespace(user), strip_whitespace(pass))),
        _ => None,
    }
}

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl BasicAuth {
    fn reject(&self, msg: &str) -> Flow {
        Flow::Respond(
            Reply::message(StatusCode::UNAUTHORIZED, msg)
                .with_header("WWW-Authenticate", &self.www_authenticate),
        )
    }

    fn find(&self, ctx: &Ctx) -> Result<Arc<crate::Consumer>, &'static str> {
        let header = ctx.header("Authorization").ok_or(MISSING)?;
        let (user, pass) = credentials(header).ok_or(MALFORMED)?;
        let found = ctx
            .consumers()
            .and_then(|index| index.find(NAME, &user))
            .ok_or(INVALID_USER)?;
        let expected = found
            .conf
            .get("password")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !same(expected.as_bytes(), pass.as_bytes()) {
            return Err(INVALID_USER);
        }
        Ok(found.consumer.clone())
    }
}

impl Plugin for BasicAuth {
    fn name(&self) -> &'static str {
        NAME
    }

    fn priority(&self) -> i32 {
        2520
    }

    fn is_auth(&self) -> bool {
        true
    }

    fn rewrite(&self, ctx: &mut Ctx) -> Flow {
        let consumer = match self.find(ctx) {
            Ok(consumer) => consumer,
            Err(msg) => {
                let Some(anonymous) = &self.anonymous_consumer else {
                    return self.reject(msg);
                };
                match ctx.consumers().and_then(|i| i.consumer(anonymous)) {
                    Some(c) => c.clone(),
                    None => {
                        tracing::error!("basic-auth failed to authenticate the request, code: 401. error: failed to get anonymous consumer {anonymous}");
                        return self.reject(INVALID_USER);
                    }
                }
            }
        };
        if self.hide_credentials {
            ctx.set_header("Authorization", None);
        }
        ctx.attach_consumer(consumer);
        Flow::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{ctx_for, get, index, plugin};

    fn run(conf: Value, authorization: Option<&str>) -> (Ctx, Flow) {
        let p = plugin(NAME, conf);
        let mut req = get("/");
        if let Some(a) = authorization {
            req = req.header("Authorization", a);
        }
        let mut ctx = ctx_for(req);
        ctx.set_consumers(index(
            &[
                json!({"username": "jack", "plugins": {"basic-auth": {"username": "jack", "password": "s3cret"}}}),
                json!({"username": "anon"}),
            ],
            &[("jack", "c2", json!({"basic-auth": {"username": "bob", "password": "pw"}}))],
        ));
        let flow = p.rewrite(&mut ctx);
        (ctx, flow)
    }

    fn message(flow: &Flow) -> (u16, String) {
        match flow {
            Flow::Respond(r) => {
                assert_eq!(r.headers["www-authenticate"], "Basic realm=\"basic\"");
                (
                    r.status.as_u16(),
                    String::from_utf8_lossy(&r.body).into_owned(),
                )
            }
            Flow::Continue => (0, String::new()),
            Flow::Wait(_) => unreachable!("this plugin never waits"),
        }
    }

    #[test]
    fn decodes_like_nginx() {
        assert_eq!(
            decode_base64("amFjazpzM2NyZXQ="),
            Some(b"jack:s3cret".to_vec())
        );
        assert_eq!(
            decode_base64("amFjazpzM2NyZXQ"),
            Some(b"jack:s3cret".to_vec())
        );
        assert_eq!(decode_base64("a"), None);
        assert_eq!(decode_base64("am Fj"), None);
        assert_eq!(
            credentials("Basic amFjazpzM2NyZXQ="),
            Some(("jack".into(), "s3cret".into()))
        );
        // "a:b:c": the password is the second piece; "jack:" has none.
        assert_eq!(
            credentials("basic YTpiOmM="),
            Some(("a".into(), "b".into()))
        );
        assert_eq!(credentials("Basic amFjazo="), None);
        assert_eq!(credentials("Bearer x"), None);
    }

    #[test]
    fn rejections() {
        let m = |a: Option<&str>| message(&run(json!({}), a).1);
        assert_eq!(
            m(None),
            (
                401,
                "{\"message\":\"Missing authorization in request\"}\n".into()
            )
        );
        assert_eq!(
            m(Some("Basic !!")),
            (
                401,
                "{\"message\":\"Invalid authorization in request\"}\n".into()
            )
        );
        // jack:wrong
        assert_eq!(
            m(Some("Basic amFjazp3cm9uZw==")),
            (401, "{\"message\":\"Invalid user authorization\"}\n".into())
        );
        // nobody:s3cret
        assert_eq!(
            m(Some("Basic bm9ib2R5OnMzY3JldA==")).1,
            "{\"message\":\"Invalid user authorization\"}\n"
        );
    }

    #[test]
    fn authenticates_and_hides() {
        let (ctx, flow) = run(json!({}), Some("BASIC amFjazpzM2NyZXQ="));
        assert_eq!(flow, Flow::Continue);
        assert_eq!(ctx.headers["x-consumer-username"], "jack");
        assert!(ctx.headers.get("authorization").is_some());
        // bob:pw is a credential of jack.
        let (ctx, flow) = run(json!({"hide_credentials": true}), Some("Basic Ym9iOnB3"));
        assert_eq!(flow, Flow::Continue);
        assert_eq!(ctx.headers["x-consumer-username"], "jack");
        assert_eq!(ctx.headers["x-credential-identifier"], "c2");
        assert!(ctx.headers.get("authorization").is_none());
    }

    #[test]
    fn anonymous_consumer() {
        let (ctx, flow) = run(json!({"anonymous_consumer": "anon"}), None);
        assert_eq!(flow, Flow::Continue);
        assert_eq!(ctx.headers["x-consumer-username"], "anon");
        let (_, flow) = run(json!({"anonymous_consumer": "ghost"}), None);
        assert_eq!(
            message(&flow).1,
            "{\"message\":\"Invalid user authorization\"}\n"
        );
    }
}
