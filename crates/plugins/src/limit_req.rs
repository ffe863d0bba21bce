//! limit-req: a leaky bucket per key (APISIX priority 1001, access phase;
//! `apisix/plugins/limit-req.lua` over `resty.limit.req`).
//!
//! Each request adds one to its key's bucket, which drains `rate` requests a second. The key is
//! `<owner store key>:<crc32 of the configuration>:<value>`; the value is `ctx.var[key]`
//! (`key_type: var`) or the rendered `$var` template (`var_combination`, unset when no variable
//! resolved), and the client address when unset. A request finding more than `burst` waiting
//! is rejected (`rejected_code`, 503, with `{"error_msg":"<rejected_msg>"}` or the nginx page)
//! and leaves the bucket as it was; any other is delayed until its turn (`excess / rate`
//! seconds) unless `nodelay`. Buckets live in [`PluginState`](crate::PluginState), so a
//! configuration swap does not reset them, and an edited configuration starts afresh.
//!
//! With `policy: redis`, `redis-cluster` or `redis-sentinel` (the last a Portico addition) the
//! buckets live in Redis instead (see `limit_req/redis.rs`), shared by every gateway node
//! using that Redis: the access phase waits for the round trip, then for the delay. A Redis
//! failure answers 500 (the nginx page), or lets the request pass with `allow_degradation`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::StatusCode;
use portico_expr::Vars;
use portico_model::PluginSpec;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::redis_schema::{redis, redis_cluster, redis_sentinel};
use crate::template::Template;
use crate::{typed, BuildEnv, Ctx, Flow, Plugin, Reply};

mod redis;
pub(crate) mod shards;

use self::redis::RedisBuckets;
use shards::Shards;

/// Plugin name.
pub const NAME: &str = "limit-req";

/// The registry row of limit-req.
pub fn spec() -> PluginSpec {
    PluginSpec {
        encrypt_fields: &["redis_password", "sentinel_password"],
        check: Some(check),
        ..PluginSpec::new(NAME, 1001, schema())
    }
}

fn policy_is(policy: &str) -> Value {
    json!({"properties": {"policy": {"enum": [policy]}}})
}

/// The configuration schema (APISIX `limit-req.lua`).
pub fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "rate": {"type": "number", "exclusiveMinimum": 0},
            "burst": {"type": "number", "minimum": 0},
            "key": {"type": "string"},
            "key_type": {"type": "string", "enum": ["var", "var_combination"], "default": "var"},
            "policy": {
                "type": "string",
                "enum": ["redis", "redis-cluster", "redis-sentinel", "local"],
                "default": "local"
            },
            "rejected_code": {"type": "integer", "minimum": 200, "maximum": 599, "default": 503},
            "rejected_msg": {"type": "string", "minLength": 1},
            "nodelay": {"type": "boolean", "default": false},
            "allow_degradation": {"type": "boolean", "default": false}
        },
        "required": ["rate", "burst", "key"],
        "if": policy_is("redis"),
        "then": redis(),
        "else": {
            "if": policy_is("redis-cluster"),
            "then": redis_cluster(),
            "else": {"if": policy_is("redis-sentinel"), "then": redis_sentinel()}
        }
    })
}

/// The configured `policy` (`local` when absent).
pub(crate) fn policy(conf: &Value) -> &str {
    conf.get("policy")
        .and_then(Value::as_str)
        .unwrap_or("local")
}

/// The checks of the Redis policies beyond the schema (ports, cluster addresses, roles).
fn check(conf: &Value) -> Result<(), String> {
    crate::redis_schema::check(policy(conf), conf)
}

pub(crate) use crate::version::conf_version;

/// Where a limit key's value comes from (`key_type` + `key`).
#[derive(Debug)]
pub(crate) enum KeySource {
    /// `var`: a variable name.
    Var(String),
    /// `var_combination`: a `$var` template; unset when no variable resolved.
    Combination(Template),
}

impl KeySource {
    pub(crate) fn new(key_type: &str, key: &str) -> KeySource {
        match key_type {
            "var_combination" => KeySource::Combination(Template::new(key)),
            _ => KeySource::Var(key.to_string()),
        }
    }

    /// The key's value for this request; the client address when unset.
    pub(crate) fn value(&self, ctx: &Ctx) -> String {
        let value = match self {
            KeySource::Var(name) => ctx.var(name).map(|v| v.into_owned()),
            KeySource::Combination(t) => Some(t.render(ctx)).filter(|(_, n)| *n > 0).map(|r| r.0),
        };
        value
            .or_else(|| ctx.var("remote_addr").map(|v| v.into_owned()))
            .unwrap_or_default()
    }
}

/// One key's bucket: requests waiting, in thousandths (`resty.limit.req` keeps an integer).
#[derive(Debug)]
struct Bucket {
    excess: u64,
    last: Instant,
    /// Drain rate in requests per second, to know when the bucket is empty for good.
    rate: f64,
}

impl Bucket {
    /// Whether the bucket still differs from a missing one at `now`: a request finds
    /// `excess - drained + 1000` (floored at 0) waiting, which is 0 for a new key too.
    fn live(&self, now: Instant) -> bool {
        let elapsed = elapsed_ms(self.last, now);
        self.excess as f64 + 1000.0 > self.rate * elapsed
    }
}

fn elapsed_ms(from: Instant, to: Instant) -> f64 {
    // `abs(elapsed)`: a request that read the clock before another one updated the bucket.
    let d = if to >= from { to - from } else { from - to };
    d.as_secs_f64() * 1000.0
}

/// The buckets of every local limit-req instance of a node.
#[derive(Debug, Default)]
pub struct Buckets {
    shards: Shards<Bucket>,
}

impl Buckets {
    /// `resty.limit.req:incoming(key, true)` at `now`: the delay before the request may go on,
    /// or `None` when it is over the burst (the bucket then stays as it was).
    pub fn incoming(&self, key: &str, rate: f64, burst: f64, now: Instant) -> Option<Duration> {
        let rate_milli = rate * 1000.0;
        self.shards.update(
            key,
            now,
            |b| b.live(now),
            |map| {
                let excess = match map.get(key) {
                    Some(b) => {
                        let drained = rate_milli * elapsed_ms(b.last, now) / 1000.0;
                        let excess = (b.excess as f64 - drained + 1000.0).max(0.0);
                        if excess > burst * 1000.0 {
                            return None;
                        }
                        excess
                    }
                    None => 0.0,
                };
                map.insert(
                    key.to_string(),
                    Bucket {
                        excess: excess as u64,
                        last: now,
                        rate,
                    },
                );
                Some(Duration::from_secs_f64(excess / rate_milli))
            },
        )
    }

    /// Number of live buckets (tests).
    pub fn len(&self) -> usize {
        self.shards.len()
    }

    /// Whether no bucket is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn var() -> String {
    "var".to_string()
}

fn service_unavailable() -> u16 {
    503
}

#[derive(Debug, Deserialize)]
struct Config {
    rate: f64,
    burst: f64,
    key: String,
    #[serde(default = "var")]
    key_type: String,
    #[serde(default = "service_unavailable")]
    rejected_code: u16,
    rejected_msg: Option<String>,
    #[serde(default)]
    nodelay: bool,
    #[serde(default)]
    allow_degradation: bool,
}

/// Where the buckets are kept.
#[derive(Debug)]
enum Store {
    /// `policy: local`: this node's memory.
    Local(Arc<Buckets>),
    /// `policy: redis`, `redis-cluster` or `redis-sentinel`.
    Redis(Arc<RedisBuckets>),
}

/// How a request is answered once its bucket decided: shared with the step that runs after a
/// Redis round trip.
#[derive(Debug)]
struct Answer {
    rejected_code: StatusCode,
    rejected_msg: Option<String>,
    nodelay: bool,
    allow_degradation: bool,
}

impl Answer {
    /// The request waits `delay` (`None`: over the burst).
    fn decided(&self, delay: Option<Duration>) -> Flow {
        match delay {
            None => Flow::Respond(match &self.rejected_msg {
                Some(msg) => Reply::error_msg(self.rejected_code, msg),
                None => Reply::page(self.rejected_code),
            }),
            Some(delay) if delay >= MIN_DELAY && !self.nodelay => Flow::wait(async move {
                tokio::time::sleep(delay).await;
                Flow::Continue
            }),
            Some(_) => Flow::Continue,
        }
    }

    /// Redis failed: 500 (the nginx page), or pass with `allow_degradation`.
    fn failed(&self, err: &crate::redis::Error) -> Flow {
        tracing::error!("failed to limit req: {err}");
        if self.allow_degradation {
            return Flow::Continue;
        }
        Flow::Respond(Reply::page(StatusCode::INTERNAL_SERVER_ERROR))
    }
}

/// A limit-req instance.
#[derive(Debug)]
pub struct LimitReq {
    rate: f64,
    burst: f64,
    key: KeySource,
    /// `<owner>:<crc32>`: the bucket key prefix.
    prefix: String,
    answer: Arc<Answer>,
    store: Store,
}

/// Builds limit-req from a checked configuration.
pub fn build(conf: &Value, env: &BuildEnv<'_>) -> Result<Arc<dyn Plugin>, String> {
    let c: Config = typed(conf)?;
    let store = match policy(conf) {
        "local" => Store::Local(env.state.limit_req.clone()),
        remote => Store::Redis(Arc::new(RedisBuckets::build(
            remote,
            conf,
            &env.state.redis,
        )?)),
    };
    Ok(Arc::new(LimitReq {
        rate: c.rate,
        burst: c.burst,
        key: KeySource::new(&c.key_type, &c.key),
        prefix: format!("{}:{}", env.owner, conf_version(conf)),
        answer: Arc::new(Answer {
            rejected_code: StatusCode::from_u16(c.rejected_code).map_err(|e| e.to_string())?,
            rejected_msg: c.rejected_msg,
            nodelay: c.nodelay,
            allow_degradation: c.allow_degradation,
        }),
        store,
    }))
}

/// Delays under a millisecond are not slept (APISIX: `delay >= 0.001`).
const MIN_DELAY: Duration = Duration::from_millis(1);

impl Plugin for LimitReq {
    fn name(&self) -> &'static str {
        NAME
    }

    fn priority(&self) -> i32 {
        1001
    }

    fn access(&self, ctx: &mut Ctx) -> Flow {
        let key = format!("{}:{}", self.prefix, self.key.value(ctx));
        match &self.store {
            Store::Local(buckets) => {
                let delay = buckets.incoming(&key, self.rate, self.burst, portico_clock::now());
                self.answer.decided(delay)
            }
            Store::Redis(redis) => {
                let answer = self.answer.clone();
                Flow::wait_then(
                    redis.clone().incoming(key, self.rate, self.burst),
                    move |_, delay| match delay {
                        Ok(delay) => answer.decided(delay),
                        Err(e) => answer.failed(&e),
                    },
                )
            }
        }
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_redis;
