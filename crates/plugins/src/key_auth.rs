//! key-auth: authenticates a consumer by an API key in a header or query argument
//! (APISIX priority 2500, rewrite phase, auth type; `apisix/plugins/key-auth.lua`).
//!
//! The key is read from the header `header` (case-insensitive), else from the query argument
//! `query`, and looked up among the keys of the workspace's consumers and credentials. Failures
//! answer 401 with `WWW-Authenticate: apikey realm="<realm>"` and `{"message":"Missing API key in
//! request"}` or `{"message":"Invalid API key in request"}` — unless `anonymous_consumer` names a
//! consumer to attach instead (401 `Invalid user authorization` if it does not exist).

use std::sync::Arc;

use http::StatusCode;
use portico_model::schemas::defs::{anonymous_consumer_schema, realm_schema};
use portico_model::PluginSpec;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{typed, BuildEnv, Ctx, Flow, Phases, Plugin, Reply};

/// Plugin name.
pub const NAME: &str = "key-auth";

/// The registry row of key-auth.
pub fn spec() -> PluginSpec {
    PluginSpec {
        auth: true,
        consumer_schema: Some(json!({
            "type": "object",
            "properties": {"key": {"type": "string"}},
            "required": ["key"]
        })),
        consumer_encrypt_fields: &["key"],
        consumer_key_field: Some("key"),
        ..PluginSpec::new(
            NAME,
            2500,
            json!({
                "type": "object",
                "properties": {
                    "header": {"type": "string", "default": "apikey"},
                    "query": {"type": "string", "default": "apikey"},
                    "realm": realm_schema("key"),
                    "hide_credentials": {"type": "boolean", "default": false},
                    "anonymous_consumer": anonymous_consumer_schema()
                }
            }),
        )
    }
}

const MISSING: &str = "Missing API key in request";
const INVALID: &str = "Invalid API key in request";
const ANONYMOUS_MISSING: &str = "Invalid user authorization";

fn apikey() -> String {
    "apikey".to_string()
}

fn realm() -> String {
    "key".to_string()
}

/// The route-side configuration.
#[derive(Debug, Deserialize)]
struct Config {
    #[serde(default = "apikey")]
    header: String,
    #[serde(default = "apikey")]
    query: String,
    #[serde(default)]
    hide_credentials: bool,
    #[serde(default = "realm")]
    realm: String,
    anonymous_consumer: Option<String>,
}

/// A key-auth instance.
#[derive(Debug)]
pub struct KeyAuth {
    header: String,
    /// `header` parsed once (`None`: not a valid header name, so never present).
    header_name: Option<http::HeaderName>,
    query: String,
    hide_credentials: bool,
    www_authenticate: String,
    anonymous_consumer: Option<String>,
}

/// Builds key-auth from a checked configuration.
pub fn build(conf: &Value, _env: &BuildEnv<'_>) -> Result<Arc<dyn Plugin>, String> {
    let c: Config = typed(conf)?;
    Ok(Arc::new(KeyAuth {
        header_name: http::HeaderName::from_bytes(c.header.as_bytes()).ok(),
        header: c.header,
        query: c.query,
        hide_credentials: c.hide_credentials,
        www_authenticate: format!("apikey realm=\"{}\"", c.realm),
        anonymous_consumer: c.anonymous_consumer,
    }))
}

impl KeyAuth {
    fn reject(&self, msg: &str) -> Flow {
        Flow::Respond(
            Reply::message(StatusCode::UNAUTHORIZED, msg)
                .with_header("WWW-Authenticate", &self.www_authenticate),
        )
    }
}

impl Plugin for KeyAuth {
    fn name(&self) -> &'static str {
        NAME
    }

    fn priority(&self) -> i32 {
        2500
    }

    fn is_auth(&self) -> bool {
        true
    }

    fn phases(&self) -> Phases {
        Phases::REWRITE
    }

    fn rewrite(&self, ctx: &mut Ctx) -> Flow {
        let find = |key: &str| {
            ctx.consumers()
                .and_then(|index| index.find(NAME, key))
                .map(|m| m.consumer.clone())
                .ok_or(INVALID)
        };
        let in_header = self
            .header_name
            .as_ref()
            .and_then(|name| ctx.headers.get(name))
            .and_then(|v| v.to_str().ok());
        let (found, from_header) = match in_header {
            Some(key) => (find(key), true),
            None => match ctx.query_arg(&self.query) {
                Some(key) => (find(&key), false),
                None => (Err(MISSING), false),
            },
        };
        let consumer = match found {
            Ok(consumer) => {
                if self.hide_credentials {
                    if from_header {
                        ctx.set_header(&self.header, None);
                    } else {
                        ctx.remove_query_arg(&self.query);
                    }
                }
                consumer
            }
            Err(msg) => {
                let Some(anonymous) = &self.anonymous_consumer else {
                    return self.reject(msg);
                };
                if self.hide_credentials {
                    ctx.set_header(&self.header, None);
                    ctx.remove_query_arg(&self.query);
                }
                match ctx.consumers().and_then(|i| i.consumer(anonymous)) {
                    Some(c) => c.clone(),
                    None => {
                        tracing::error!("key-auth failed to authenticate the request, code: 401. error: failed to get anonymous consumer {anonymous}");
                        return self.reject(ANONYMOUS_MISSING);
                    }
                }
            }
        };
        ctx.attach_consumer(consumer);
        Flow::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{ctx_for, get, index, plugin};

    fn key_auth(conf: Value) -> Arc<dyn Plugin> {
        plugin(NAME, conf)
    }

    fn consumers() -> Arc<crate::ConsumerIndex> {
        index(
            &[
                json!({"username": "jack", "labels": {"custom_id": "c-1"}, "plugins": {"key-auth": {"key": "k-jack"}}}),
                json!({"username": "anon"}),
            ],
            &[("jack", "cred-1", json!({"key-auth": {"key": "k-cred"}}))],
        )
    }

    fn run(p: &Arc<dyn Plugin>, req: http::request::Builder) -> (Ctx, Flow) {
        let mut ctx = ctx_for(req);
        ctx.set_consumers(consumers());
        let flow = p.rewrite(&mut ctx);
        (ctx, flow)
    }

    fn rejected(flow: &Flow) -> (u16, String, String) {
        match flow {
            Flow::Respond(r) => (
                r.status.as_u16(),
                String::from_utf8_lossy(&r.body).into_owned(),
                r.headers
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string(),
            ),
            Flow::Continue => (0, String::new(), String::new()),
            Flow::Wait(_) => unreachable!("this plugin never waits"),
        }
    }

    #[test]
    fn missing_and_invalid_keys() {
        let p = key_auth(json!({}));
        let (_, flow) = run(&p, get("/"));
        assert_eq!(
            rejected(&flow),
            (
                401,
                "{\"message\":\"Missing API key in request\"}\n".into(),
                "apikey realm=\"key\"".into()
            )
        );
        let (_, flow) = run(&p, get("/").header("apikey", "nope"));
        assert_eq!(
            rejected(&flow).1,
            "{\"message\":\"Invalid API key in request\"}\n"
        );
        let p = key_auth(json!({"realm": "mine"}));
        let (_, flow) = run(&p, get("/?apikey=nope"));
        assert_eq!(rejected(&flow).2, "apikey realm=\"mine\"");
    }

    #[test]
    fn header_key_attaches_consumer() {
        let p = key_auth(json!({}));
        let (ctx, flow) = run(
            &p,
            get("/")
                .header("APIKEY", "k-jack")
                .header("X-Credential-Identifier", "forged"),
        );
        assert_eq!(flow, Flow::Continue);
        assert_eq!(
            ctx.consumer.as_ref().map(|c| c.username.as_str()),
            Some("jack")
        );
        assert_eq!(ctx.headers["x-consumer-username"], "jack");
        assert_eq!(ctx.headers["x-consumer-custom-id"], "c-1");
        assert!(ctx.headers.get("x-credential-identifier").is_none());
        // Not hidden by default.
        assert_eq!(ctx.headers["apikey"], "k-jack");
    }

    #[test]
    fn query_key_and_credentials() {
        let p = key_auth(json!({"query": "k", "hide_credentials": true}));
        let (ctx, flow) = run(&p, get("/p?a=1&k=k-cred&b=2"));
        assert_eq!(flow, Flow::Continue);
        assert_eq!(ctx.headers["x-consumer-username"], "jack");
        assert_eq!(ctx.headers["x-credential-identifier"], "cred-1");
        assert_eq!(ctx.uri.to_string(), "/p?a=1&b=2");
    }

    #[test]
    fn hide_credentials_removes_the_header() {
        let p = key_auth(json!({"header": "X-Key", "hide_credentials": true}));
        let (ctx, flow) = run(&p, get("/?apikey=x").header("x-key", "k-jack"));
        assert_eq!(flow, Flow::Continue);
        assert!(ctx.headers.get("x-key").is_none());
        assert_eq!(ctx.uri.to_string(), "/?apikey=x");
    }

    #[test]
    fn anonymous_consumer() {
        let p = key_auth(json!({"anonymous_consumer": "anon", "hide_credentials": true}));
        let (ctx, flow) = run(&p, get("/?apikey=bad").header("apikey", "bad"));
        assert_eq!(flow, Flow::Continue);
        assert_eq!(ctx.headers["x-consumer-username"], "anon");
        assert!(ctx.headers.get("apikey").is_none());
        assert_eq!(ctx.uri.to_string(), "/");
        let p = key_auth(json!({"anonymous_consumer": "ghost"}));
        let (_, flow) = run(&p, get("/"));
        assert_eq!(rejected(&flow).0, 401);
        assert_eq!(
            rejected(&flow).1,
            "{\"message\":\"Invalid user authorization\"}\n"
        );
    }
}
