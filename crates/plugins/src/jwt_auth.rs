//! jwt-auth: authenticates a consumer by a signed JSON Web Token (APISIX priority 2510, rewrite
//! phase, auth type; `apisix/plugins/jwt-auth.lua`, `jwt-auth/parser.lua`).
//!
//! The token is read from the header `header` (a `Bearer `/`bearer ` prefix is dropped), else the
//! query argument `query`, else the cookie `cookie`. Its payload claim `key_claim_name` names the
//! consumer (the `key` of a consumer's or credential's jwt-auth); the token's `alg` must be the
//! consumer's `algorithm`, the signature must verify with the consumer's `secret` (HS*) or
//! `public_key`, and `exp`/`nbf` must hold (with `lifetime_grace_period` seconds of leeway).
//! Failures answer 401 with `WWW-Authenticate: Bearer realm="<realm>"` and one of
//! `Missing JWT token in request`, `JWT token invalid`, `missing user key in JWT token`,
//! `Invalid user key in JWT token`, `failed to verify jwt` — unless `anonymous_consumer` names a
//! consumer to attach instead (401 `Invalid user authorization` if it does not exist).

pub(crate) mod b64;
mod cookie;
mod keys;
#[cfg(test)]
mod tests;
mod token;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::StatusCode;
use portico_model::schemas::defs::{anonymous_consumer_schema, realm_schema};
use portico_model::PluginSpec;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{typed, BuildEnv, Consumer, Ctx, Flow, Plugin, Reply};
use keys::{Alg, PublicKey, ALGORITHMS};
use token::Jwt;

/// Plugin name.
pub const NAME: &str = "jwt-auth";

const PRIORITY: i32 = 2510;

/// The registry row of jwt-auth.
pub fn spec() -> PluginSpec {
    let asymmetric: Vec<&str> = ALGORITHMS
        .iter()
        .copied()
        .filter(|a| !a.starts_with("HS"))
        .collect();
    PluginSpec {
        auth: true,
        consumer_schema: Some(json!({
            "type": "object",
            "properties": {
                "key": {"type": "string", "minLength": 1},
                "secret": {"type": "string", "minLength": 1},
                "algorithm": {"type": "string", "enum": ALGORITHMS, "default": "HS256"},
                "exp": {"type": "integer", "minimum": 1, "default": 86400},
                "base64_secret": {"type": "boolean", "default": false},
                "lifetime_grace_period": {"type": "integer", "minimum": 0, "default": 0}
            },
            "dependencies": {
                "algorithm": {
                    "oneOf": [
                        {"properties": {"algorithm": {"enum": ["HS256", "HS384", "HS512"], "default": "HS256"}}},
                        {
                            "properties": {
                                "public_key": {"type": "string", "minLength": 1},
                                "algorithm": {"enum": asymmetric}
                            },
                            "required": ["public_key"]
                        }
                    ]
                }
            },
            "required": ["key"]
        })),
        consumer_encrypt_fields: &["secret"],
        consumer_key_field: Some("key"),
        consumer_check: Some(check_consumer),
        ..PluginSpec::new(
            NAME,
            PRIORITY,
            json!({
                "type": "object",
                "properties": {
                    "header": {"type": "string", "default": "authorization"},
                    "query": {"type": "string", "default": "jwt"},
                    "cookie": {"type": "string", "default": "jwt"},
                    "hide_credentials": {"type": "boolean", "default": false},
                    "key_claim_name": {"type": "string", "default": "key", "minLength": 1},
                    "store_in_ctx": {"type": "boolean", "default": false},
                    "realm": realm_schema("jwt"),
                    "anonymous_consumer": anonymous_consumer_schema(),
                    "claims_to_verify": {
                        "type": "array",
                        "items": {"type": "string", "enum": ["exp", "nbf"]},
                        "uniqueItems": true
                    }
                }
            }),
        )
    }
}

/// The consumer-side checks of `check_schema(conf, TYPE_CONSUMER)`, plus what Portico cannot
/// verify (refused here rather than failing every request).
fn check_consumer(conf: &Value) -> Result<(), String> {
    let algorithm = conf
        .get("algorithm")
        .and_then(Value::as_str)
        .unwrap_or("HS256");
    let alg = Alg::parse(algorithm).ok_or_else(|| format!("unknown algorithm {algorithm}"))?;
    let secret = conf.get("secret").and_then(Value::as_str);
    if alg.is_hmac() && secret.is_none() {
        return Err("property \"secret\" is required when using HS based algorithms".into());
    }
    if conf.get("base64_secret") == Some(&Value::Bool(true)) {
        if let Some(secret) = secret {
            if b64::decode_std(secret).is_none() {
                return Err("base64_secret required but the secret is not in base64 format".into());
            }
        }
    }
    if !alg.is_hmac() {
        let Some(pem) = conf.get("public_key").and_then(Value::as_str) else {
            return Err("missing valid public key".into());
        };
        keys::public_key_for(alg, pem)?;
    }
    Ok(())
}

const MISSING_TOKEN: &str = "Missing JWT token in request";
const INVALID_TOKEN: &str = "JWT token invalid";
const MISSING_KEY: &str = "missing user key in JWT token";
const INVALID_KEY: &str = "Invalid user key in JWT token";
const NOT_VERIFIED: &str = "failed to verify jwt";
const ANONYMOUS_MISSING: &str = "Invalid user authorization";

/// The token payload, kept in [`Ctx::data`] for later plugins when `store_in_ctx` is set
/// (APISIX's `ctx.jwt_auth_payload`).
#[derive(Debug, Clone, PartialEq)]
pub struct JwtPayload(pub Value);

fn default_header() -> String {
    "authorization".to_string()
}

fn default_jwt() -> String {
    "jwt".to_string()
}

fn default_claim() -> String {
    "key".to_string()
}

fn default_realm() -> String {
    "jwt".to_string()
}

/// The route-side configuration.
#[derive(Debug, Deserialize)]
struct Config {
    #[serde(default = "default_header")]
    header: String,
    #[serde(default = "default_jwt")]
    query: String,
    #[serde(default = "default_jwt")]
    cookie: String,
    #[serde(default)]
    hide_credentials: bool,
    #[serde(default = "default_claim")]
    key_claim_name: String,
    #[serde(default)]
    store_in_ctx: bool,
    #[serde(default = "default_realm")]
    realm: String,
    anonymous_consumer: Option<String>,
    #[serde(default)]
    claims_to_verify: Vec<String>,
}

/// A jwt-auth instance.
#[derive(Debug)]
pub struct JwtAuth {
    header: String,
    query: String,
    cookie: String,
    hide_credentials: bool,
    key_claim_name: String,
    store_in_ctx: bool,
    www_authenticate: String,
    anonymous_consumer: Option<String>,
    claims_to_verify: Vec<String>,
}

/// Builds jwt-auth from a checked configuration.
pub fn build(conf: &Value, _env: &BuildEnv<'_>) -> Result<Arc<dyn Plugin>, String> {
    let c: Config = typed(conf)?;
    Ok(Arc::new(JwtAuth {
        header: c.header,
        query: c.query,
        cookie: c.cookie,
        hide_credentials: c.hide_credentials,
        key_claim_name: c.key_claim_name,
        store_in_ctx: c.store_in_ctx,
        www_authenticate: format!("Bearer realm=\"{}\"", c.realm),
        anonymous_consumer: c.anonymous_consumer,
        claims_to_verify: c.claims_to_verify,
    }))
}

/// What verifies a consumer's tokens.
enum Verifier {
    Secret(Vec<u8>),
    Public(PublicKey),
}

/// The consumer's algorithm and key, from its (decrypted, defaulted) jwt-auth configuration.
fn verifier(conf: &Value) -> Result<(Alg, Verifier), String> {
    let algorithm = conf
        .get("algorithm")
        .and_then(Value::as_str)
        .unwrap_or("HS256");
    let alg = Alg::parse(algorithm).ok_or_else(|| format!("unknown algorithm {algorithm}"))?;
    let text = |field: &str| {
        conf.get(field)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("the consumer has no {field}"))
    };
    if alg.is_hmac() {
        let secret = text("secret")?;
        let secret = if conf.get("base64_secret") == Some(&Value::Bool(true)) {
            b64::decode_std(secret).ok_or("the secret is not in base64 format")?
        } else {
            secret.as_bytes().to_vec()
        };
        Ok((alg, Verifier::Secret(secret)))
    } else {
        let key = keys::public_key_for(alg, text("public_key")?)?;
        Ok((alg, Verifier::Public(key)))
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl JwtAuth {
    fn reject(&self, msg: &str) -> Flow {
        Flow::Respond(
            Reply::message(StatusCode::UNAUTHORIZED, msg)
                .with_header("WWW-Authenticate", &self.www_authenticate),
        )
    }

    /// The token from the header, query argument or cookie, removed from the request when
    /// `hide_credentials` is set.
    fn fetch_token(&self, ctx: &mut Ctx) -> Option<String> {
        if let Some(value) = ctx.header(&self.header).map(str::to_string) {
            if self.hide_credentials {
                ctx.set_header(&self.header, None);
            }
            let token = value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
                .unwrap_or(&value);
            return Some(token.to_string());
        }
        if let Some(value) = ctx.query_arg(&self.query).map(|v| v.into_owned()) {
            if self.hide_credentials {
                ctx.remove_query_arg(&self.query);
            }
            return Some(value);
        }
        let value = cookie::value(&ctx.headers, &self.cookie)?;
        if self.hide_credentials {
            let rest = cookie::without(&ctx.headers, &self.cookie);
            ctx.set_header("Cookie", Some(rest.as_str()).filter(|r| !r.is_empty()));
        }
        Some(value)
    }

    /// The consumer the request's token proves, or the client's error message.
    fn find(&self, ctx: &mut Ctx) -> Result<Arc<Consumer>, &'static str> {
        let token = self.fetch_token(ctx).ok_or(MISSING_TOKEN)?;
        let Some(jwt) = Jwt::parse(&token) else {
            tracing::warn!("JWT token invalid: invalid jwt string");
            return Err(INVALID_TOKEN);
        };
        let user_key = match jwt.payload.get(&self.key_claim_name) {
            None | Some(Value::Bool(false)) => return Err(MISSING_KEY),
            Some(Value::String(key)) => key.as_str(),
            Some(_) => return Err(INVALID_KEY),
        };
        let found = ctx
            .consumers()
            .and_then(|index| index.find(NAME, user_key))
            .cloned();
        let Some(found) = found else {
            tracing::warn!("failed to find consumer: invalid user key");
            return Err(INVALID_KEY);
        };
        let (alg, verifier) = verifier(&found.conf).map_err(|e| {
            tracing::error!("failed to retrieve secrets, err: {e}");
            NOT_VERIFIED
        })?;
        let expected = alg.name();
        if jwt.alg() != Some(expected) {
            tracing::warn!("failed to verify jwt: algorithm mismatch, expected {expected}");
            return Err(NOT_VERIFIED);
        }
        let signature = jwt.signature_bytes().unwrap_or_default();
        let data = jwt.signed.as_bytes();
        let verified = match &verifier {
            Verifier::Secret(secret) => keys::verify_hmac(alg, secret, data, &signature),
            Verifier::Public(key) => keys::verify_public(alg, key, data, &signature),
        };
        if !verified {
            tracing::warn!(
                "failed to verify jwt: signature mismatch: {}",
                jwt.signature
            );
            return Err(NOT_VERIFIED);
        }
        let grace = found
            .conf
            .get("lifetime_grace_period")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if let Err(e) = jwt.verify_claims(&self.claims_to_verify, grace, now()) {
            tracing::error!("failed to verify jwt: {e}");
            return Err(NOT_VERIFIED);
        }
        if self.store_in_ctx {
            ctx.data.insert(JwtPayload(jwt.payload.clone()));
        }
        Ok(found.consumer)
    }
}

impl Plugin for JwtAuth {
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
            Err(msg) => {
                let Some(anonymous) = &self.anonymous_consumer else {
                    return self.reject(msg);
                };
                match ctx.consumers().and_then(|i| i.consumer(anonymous)) {
                    Some(c) => c.clone(),
                    None => {
                        tracing::error!("jwt-auth failed to authenticate the request, code: 401. error: failed to get anonymous consumer {anonymous}");
                        return self.reject(ANONYMOUS_MISSING);
                    }
                }
            }
        };
        ctx.attach_consumer(consumer);
        Flow::Continue
    }
}
