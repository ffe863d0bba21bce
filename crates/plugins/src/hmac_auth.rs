//! hmac-auth: authenticates a consumer by an HMAC signature of the request (APISIX priority
//! 2530, rewrite phase, auth type; `apisix/plugins/hmac-auth.lua`, the 3.x scheme).
//!
//! The client sends `Authorization: Signature keyId="…",algorithm="hmac-sha256",
//! headers="@request-target date",signature="<base64>"`, where the signature is the HMAC, keyed
//! by the consumer's `secret_key`, of `keyId\n` followed by `name: value\n` for each listed
//! header (`@request-target` → `<METHOD> <request URI>`). The `Date` header must be within
//! `clock_skew` seconds of now, every header of `signed_headers` must be listed, and with
//! `validate_request_body` the `Digest: SHA-256=<base64>` header must match the body.
//!
//! Failures answer 401 with `WWW-Authenticate: hmac realm="<realm>"`:
//! `client request can't be validated: missing Authorization header`,
//! `client request can't be validated: Authorization header does not start with 'Signature'`,
//! and `client request can't be validated` for every other reason (the reason is logged) —
//! unless `anonymous_consumer` names a consumer to attach instead. A body over
//! `max_req_body_size` answers 413.

mod signature;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::StatusCode;
use portico_model::schemas::defs::{anonymous_consumer_schema, realm_schema};
use portico_model::PluginSpec;
use ring::{digest, hmac};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::jwt_auth::b64;
use crate::{typed, BuildEnv, Consumer, Ctx, Flow, Plugin, Reply};

/// Plugin name.
pub const NAME: &str = "hmac-auth";

const PRIORITY: i32 = 2530;

const ALGORITHMS: [&str; 3] = ["hmac-sha1", "hmac-sha256", "hmac-sha512"];

/// The registry row of hmac-auth.
pub fn spec() -> PluginSpec {
    PluginSpec {
        auth: true,
        consumer_schema: Some(json!({
            "type": "object",
            "title": "work with consumer object",
            "properties": {
                "key_id": {"type": "string", "minLength": 1, "maxLength": 256},
                "secret_key": {"type": "string", "minLength": 1, "maxLength": 256}
            },
            "required": ["key_id", "secret_key"]
        })),
        consumer_encrypt_fields: &["secret_key"],
        consumer_key_field: Some("key_id"),
        ..PluginSpec::new(
            NAME,
            PRIORITY,
            json!({
                "type": "object",
                "title": "work with route or service object",
                "properties": {
                    "allowed_algorithms": {
                        "type": "array",
                        "minItems": 1,
                        "items": {"type": "string", "enum": ALGORITHMS},
                        "default": ALGORITHMS
                    },
                    "clock_skew": {"type": "integer", "default": 300, "minimum": 1},
                    "signed_headers": {
                        "type": "array",
                        "default": ["date"],
                        "items": {"type": "string", "minLength": 1, "maxLength": 50}
                    },
                    "validate_request_body": {
                        "type": "boolean",
                        "description": "A boolean value telling the plugin to enable body validation",
                        "default": false
                    },
                    "max_req_body_size": {"type": "integer", "minimum": 1, "default": 67_108_864},
                    "hide_credentials": {"type": "boolean", "default": false},
                    "realm": realm_schema("hmac"),
                    "anonymous_consumer": anonymous_consumer_schema()
                }
            }),
        )
    }
}

const MISSING_AUTHORIZATION: &str =
    "client request can't be validated: missing Authorization header";
const NOT_SIGNATURE: &str =
    "client request can't be validated: Authorization header does not start with 'Signature'";
const NOT_VALIDATED: &str = "client request can't be validated";
const ANONYMOUS_MISSING: &str = "Invalid user authorization";

fn default_algorithms() -> Vec<String> {
    ALGORITHMS.iter().map(|a| a.to_string()).collect()
}

fn default_clock_skew() -> i64 {
    300
}

fn default_signed_headers() -> Vec<String> {
    vec!["date".to_string()]
}

fn default_max_body() -> u64 {
    67_108_864
}

fn default_realm() -> String {
    "hmac".to_string()
}

/// The route-side configuration.
#[derive(Debug, Deserialize)]
struct Config {
    #[serde(default = "default_algorithms")]
    allowed_algorithms: Vec<String>,
    #[serde(default = "default_clock_skew")]
    clock_skew: i64,
    #[serde(default = "default_signed_headers")]
    signed_headers: Vec<String>,
    #[serde(default)]
    validate_request_body: bool,
    #[serde(default = "default_max_body")]
    max_req_body_size: u64,
    #[serde(default)]
    hide_credentials: bool,
    #[serde(default = "default_realm")]
    realm: String,
    anonymous_consumer: Option<String>,
}

/// An hmac-auth instance.
#[derive(Debug)]
pub struct HmacAuth {
    allowed_algorithms: Vec<String>,
    clock_skew: i64,
    signed_headers: Vec<String>,
    validate_request_body: bool,
    max_req_body_size: u64,
    hide_credentials: bool,
    www_authenticate: String,
    anonymous_consumer: Option<String>,
}

/// Builds hmac-auth from a checked configuration.
pub fn build(conf: &Value, _env: &BuildEnv<'_>) -> Result<Arc<dyn Plugin>, String> {
    let c: Config = typed(conf)?;
    Ok(Arc::new(HmacAuth {
        allowed_algorithms: c.allowed_algorithms,
        clock_skew: c.clock_skew,
        signed_headers: c.signed_headers,
        validate_request_body: c.validate_request_body,
        max_req_body_size: c.max_req_body_size,
        hide_credentials: c.hide_credentials,
        www_authenticate: format!("hmac realm=\"{}\"", c.realm),
        anonymous_consumer: c.anonymous_consumer,
    }))
}

/// Why a request was not authenticated.
enum Failure {
    /// 401 with this message (or the anonymous consumer).
    Unauthorized(&'static str),
    /// A definite answer: the body is over `max_req_body_size` (413).
    TooLarge(String),
}

/// A reason `validate` gives up: for the log, the client sees [`NOT_VALIDATED`].
enum Invalid {
    Reason(String),
    TooLarge(String),
}

impl From<&str> for Invalid {
    fn from(reason: &str) -> Invalid {
        Invalid::Reason(reason.to_string())
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl HmacAuth {
    fn reject(&self, msg: &str) -> Flow {
        Flow::Respond(
            Reply::message(StatusCode::UNAUTHORIZED, msg)
                .with_header("WWW-Authenticate", &self.www_authenticate),
        )
    }

    fn find(&self, ctx: &Ctx) -> Result<Arc<Consumer>, Failure> {
        let authorization = ctx
            .header("Authorization")
            .ok_or(Failure::Unauthorized(MISSING_AUTHORIZATION))?;
        if !authorization.starts_with("Signature") {
            return Err(Failure::Unauthorized(NOT_SIGNATURE));
        }
        let fields = signature::fields(authorization);
        self.validate(ctx, &fields).map_err(|e| match e {
            Invalid::Reason(reason) => {
                tracing::warn!("client request can't be validated: {reason}");
                Failure::Unauthorized(NOT_VALIDATED)
            }
            Invalid::TooLarge(msg) => Failure::TooLarge(msg),
        })
    }

    /// APISIX's `validate`, in its order.
    fn validate(&self, ctx: &Ctx, f: &signature::Fields) -> Result<Arc<Consumer>, Invalid> {
        let (Some(key_id), Some(sig)) = (&f.key_id, &f.signature) else {
            return Err("keyId or signature missing".into());
        };
        let algorithm = f.algorithm.as_deref().ok_or("algorithm missing")?;
        let found = ctx
            .consumers()
            .and_then(|index| index.find(NAME, key_id))
            .ok_or("Invalid key_id")?;
        if !self.allowed_algorithms.iter().any(|a| a == algorithm) {
            return Err("Invalid algorithm".into());
        }
        let hmac_alg = signature::algorithm(algorithm).ok_or("Invalid algorithm")?;
        let date = ctx
            .header("Date")
            .ok_or("Date header missing. failed to validate clock skew")?;
        let time = signature::parse_http_time(date).ok_or("Invalid GMT format time")?;
        if (now() - time).abs() > self.clock_skew {
            return Err("Clock skew exceeded".into());
        }
        let listed = f.headers.as_deref().unwrap_or_default();
        if let Some(missing) = self.signed_headers.iter().find(|h| !listed.contains(h)) {
            return Err(Invalid::Reason(format!(
                "expected header \"{missing}\" missing in signing"
            )));
        }
        let secret = found
            .conf
            .get("secret_key")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let signing_string = signature::signing_string(
            key_id,
            listed,
            |name| ctx.header(name),
            ctx.method.as_str(),
            ctx.real_request_uri(),
        );
        let sent = b64::decode_std(sig).unwrap_or_default();
        let key = hmac::Key::new(hmac_alg, secret.as_bytes());
        if hmac::verify(&key, signing_string.as_bytes(), &sent).is_err() {
            return Err("Invalid signature".into());
        }
        if self.validate_request_body {
            let digest_header = ctx.header("Digest").ok_or("Invalid digest")?;
            let body = ctx.request_body.as_deref().unwrap_or_default();
            if body.len() as u64 > self.max_req_body_size {
                return Err(Invalid::TooLarge(format!(
                    "request size {} is greater than the maximum size {} allowed",
                    body.len(),
                    self.max_req_body_size
                )));
            }
            let expected = format!(
                "SHA-256={}",
                b64::encode_std(digest::digest(&digest::SHA256, body).as_ref())
            );
            if expected != digest_header {
                return Err("Invalid digest".into());
            }
        }
        Ok(found.consumer.clone())
    }
}

impl Plugin for HmacAuth {
    fn name(&self) -> &'static str {
        NAME
    }

    fn priority(&self) -> i32 {
        PRIORITY
    }

    fn is_auth(&self) -> bool {
        true
    }

    fn rewrite(&self, ctx: &mut Ctx) -> Flow {
        let consumer = match self.find(ctx) {
            Ok(consumer) => consumer,
            Err(Failure::TooLarge(msg)) => {
                return Flow::Respond(Reply::message(StatusCode::PAYLOAD_TOO_LARGE, &msg));
            }
            Err(Failure::Unauthorized(msg)) => {
                let Some(anonymous) = &self.anonymous_consumer else {
                    return self.reject(msg);
                };
                match ctx.consumers().and_then(|i| i.consumer(anonymous)) {
                    Some(c) => c.clone(),
                    None => {
                        tracing::error!("hmac-auth failed to authenticate the request, code: 401. error: failed to get anonymous consumer {anonymous}");
                        return self.reject(ANONYMOUS_MISSING);
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

    /// The body is read only to check its `Digest`.
    fn wants_request_body(&self) -> bool {
        self.validate_request_body
    }
}
