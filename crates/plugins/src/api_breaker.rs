//! api-breaker: a circuit breaker per route path (APISIX priority 1005, access phase, and the
//! upstream status counted once the response head is known; `apisix/plugins/api-breaker.lua`).
//!
//! State is kept per `<owner store key>:<crc32 of the configuration>:<host><uri>` (APISIX keys
//! by host and uri in one node-wide dictionary; the prefix keeps configurations apart and resets
//! the state when a configuration is edited) in [`PluginState`](crate::PluginState), so snapshot
//! swaps that keep the configuration keep the state:
//!
//! * an upstream status in `unhealthy.http_statuses` adds one failure and forgets the successes;
//!   every `unhealthy.failures`-th failure (re)starts the break at the current second;
//! * while broken — `start + min(2^n, max_breaker_sec) >= now` in whole seconds, where
//!   `n = max(1, floor(failures / unhealthy.failures))` — requests are answered
//!   `break_response_code` with `break_response_body` (and `break_response_headers`, `$var`
//!   values resolved) or, without a body, with the nginx page, and never reach the upstream;
//! * an upstream status in `healthy.http_statuses` after failures adds one success;
//!   `healthy.successes` of them forget everything.
//!
//! The break start expires `max_breaker_sec` after it was set, as APISIX's dictionary entry
//! does. Counting happens in `header_filter` (APISIX: `log`), so the next request already sees
//! the count of a response whose body is still streaming.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::header::{HeaderName, HeaderValue};
use http::StatusCode;
use portico_expr::Vars;
use portico_model::PluginSpec;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::limit_req::conf_version;
use crate::limit_req::shards::Shards;
use crate::template::Template;
use crate::{typed, BuildEnv, Ctx, Flow, Plugin, Reply};

/// Plugin name.
pub const NAME: &str = "api-breaker";

/// The registry row of api-breaker.
pub fn spec() -> PluginSpec {
    PluginSpec::new(NAME, 1005, schema())
}

/// The configuration schema (APISIX `api-breaker.lua`).
pub fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "break_response_code": {"type": "integer", "minimum": 200, "maximum": 599},
            "break_response_body": {"type": "string"},
            "break_response_headers": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "key": {"type": "string", "minLength": 1},
                        "value": {"type": "string", "minLength": 1}
                    },
                    "required": ["key", "value"]
                }
            },
            "max_breaker_sec": {"type": "integer", "minimum": 3, "default": 300},
            "unhealthy": {
                "type": "object",
                "properties": {
                    "http_statuses": {
                        "type": "array",
                        "minItems": 1,
                        "items": {"type": "integer", "minimum": 500, "maximum": 599},
                        "uniqueItems": true,
                        "default": [500]
                    },
                    "failures": {"type": "integer", "minimum": 1, "default": 3}
                },
                "default": {"http_statuses": [500], "failures": 3}
            },
            "healthy": {
                "type": "object",
                "properties": {
                    "http_statuses": {
                        "type": "array",
                        "minItems": 1,
                        "items": {"type": "integer", "minimum": 200, "maximum": 499},
                        "uniqueItems": true,
                        "default": [200]
                    },
                    "successes": {"type": "integer", "minimum": 1, "default": 3}
                },
                "default": {"http_statuses": [200], "successes": 3}
            }
        },
        "required": ["break_response_code"]
    })
}

/// A state untouched this long, and not broken, is forgotten (APISIX's dictionary would evict
/// it only under memory pressure).
const IDLE: Duration = Duration::from_secs(3600);

/// One path's breaker.
#[derive(Debug)]
struct Breaker {
    unhealthy: u64,
    healthy: u64,
    /// Second the last break started, and the second that entry expires.
    broken_at: Option<(u64, u64)>,
    touched: Instant,
}

/// Thresholds of one configuration.
#[derive(Debug, Clone)]
pub struct Policy {
    /// `unhealthy.http_statuses`.
    pub unhealthy_statuses: Vec<u16>,
    /// `unhealthy.failures`.
    pub failures: u64,
    /// `healthy.http_statuses`.
    pub healthy_statuses: Vec<u16>,
    /// `healthy.successes`.
    pub successes: u64,
    /// `max_breaker_sec`.
    pub max_breaker_sec: u64,
}

/// The breakers of every api-breaker instance of a node.
#[derive(Debug, Default)]
pub struct Breakers {
    shards: Shards<Breaker>,
}

impl Breakers {
    /// Whether `key` is broken at second `now` (APISIX `access`).
    pub fn is_broken(&self, key: &str, p: &Policy, now: u64) -> bool {
        self.shards.with(key, |map| {
            let Some(b) = map.get(key).filter(|b| b.unhealthy > 0) else {
                return false;
            };
            let Some((at, _)) = b.broken_at.filter(|(_, expires)| now <= *expires) else {
                return false;
            };
            let times = (b.unhealthy / p.failures).max(1);
            let breaker_time = match u32::try_from(times).ok().and_then(|t| 2u64.checked_pow(t)) {
                Some(t) => t.min(p.max_breaker_sec),
                None => p.max_breaker_sec,
            };
            at.saturating_add(breaker_time) >= now
        })
    }

    /// Counts an upstream status for `key` at second `now` (APISIX `log`).
    pub fn record(&self, key: &str, p: &Policy, status: u16, now: u64, clock: Instant) {
        let keep = |b: &Breaker| {
            clock.saturating_duration_since(b.touched) < IDLE
                || b.broken_at.is_some_and(|(_, expires)| now <= expires)
        };
        self.shards.update(key, clock, keep, |map| {
            if p.unhealthy_statuses.contains(&status) {
                let b = map.entry(key.to_string()).or_insert(Breaker {
                    unhealthy: 0,
                    healthy: 0,
                    broken_at: None,
                    touched: clock,
                });
                b.unhealthy += 1;
                b.healthy = 0;
                b.touched = clock;
                if b.unhealthy % p.failures == 0 {
                    b.broken_at = Some((now, now.saturating_add(p.max_breaker_sec)));
                }
                return;
            }
            if !p.healthy_statuses.contains(&status) {
                return;
            }
            let Some(b) = map.get_mut(key) else {
                return;
            };
            b.healthy += 1;
            b.touched = clock;
            if b.healthy >= p.successes {
                map.remove(key);
            }
        });
    }

    /// Number of paths with a state (tests).
    pub fn len(&self) -> usize {
        self.shards.len()
    }

    /// Whether no path has a state.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn five_hundred() -> Vec<u16> {
    vec![500]
}

fn two_hundred() -> Vec<u16> {
    vec![200]
}

fn three() -> u64 {
    3
}

fn max_breaker_sec() -> u64 {
    300
}

#[derive(Debug, Deserialize)]
struct Unhealthy {
    #[serde(default = "five_hundred")]
    http_statuses: Vec<u16>,
    #[serde(default = "three")]
    failures: u64,
}

#[derive(Debug, Deserialize)]
struct Healthy {
    #[serde(default = "two_hundred")]
    http_statuses: Vec<u16>,
    #[serde(default = "three")]
    successes: u64,
}

#[derive(Debug, Deserialize)]
struct HeaderConfig {
    key: String,
    value: String,
}

#[derive(Debug, Deserialize)]
struct Config {
    break_response_code: u16,
    break_response_body: Option<String>,
    break_response_headers: Option<Vec<HeaderConfig>>,
    #[serde(default = "max_breaker_sec")]
    max_breaker_sec: u64,
    unhealthy: Unhealthy,
    healthy: Healthy,
}

/// An api-breaker instance.
#[derive(Debug)]
pub struct ApiBreaker {
    policy: Policy,
    code: StatusCode,
    body: Option<String>,
    headers: Vec<(HeaderName, Template)>,
    /// `<owner>:<crc32>`: the state key prefix.
    prefix: String,
    breakers: Arc<Breakers>,
}

/// Builds api-breaker from a checked configuration.
pub fn build(conf: &Value, env: &BuildEnv<'_>) -> Result<Arc<dyn Plugin>, String> {
    let c: Config = typed(conf)?;
    let mut headers = Vec::new();
    for h in c.break_response_headers.iter().flatten() {
        match HeaderName::from_bytes(h.key.as_bytes()) {
            Ok(name) => headers.push((name, Template::new(&h.value))),
            Err(_) => tracing::warn!("api-breaker: invalid header name {:?} skipped", h.key),
        }
    }
    Ok(Arc::new(ApiBreaker {
        policy: Policy {
            unhealthy_statuses: c.unhealthy.http_statuses,
            failures: c.unhealthy.failures.max(1),
            healthy_statuses: c.healthy.http_statuses,
            successes: c.healthy.successes.max(1),
            max_breaker_sec: c.max_breaker_sec,
        },
        code: StatusCode::from_u16(c.break_response_code).map_err(|e| e.to_string())?,
        body: c.break_response_body,
        headers,
        prefix: format!("{}:{}", env.owner, conf_version(conf)),
        breakers: env.state.api_breaker.clone(),
    }))
}

/// `ngx.time()`: the current second.
fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl ApiBreaker {
    fn key(&self, ctx: &Ctx) -> String {
        let uri = ctx.var("uri").unwrap_or_default();
        format!("{}:{}{uri}", self.prefix, ctx.host)
    }
}

impl Plugin for ApiBreaker {
    fn name(&self) -> &'static str {
        NAME
    }

    fn priority(&self) -> i32 {
        1005
    }

    fn access(&self, ctx: &mut Ctx) -> Flow {
        if !self
            .breakers
            .is_broken(&self.key(ctx), &self.policy, now_secs())
        {
            return Flow::Continue;
        }
        let Some(body) = &self.body else {
            return Flow::Respond(Reply::page(self.code));
        };
        for (name, value) in &self.headers {
            let value = value.render(ctx).0;
            if let Ok(v) = HeaderValue::from_str(&value) {
                ctx.response_headers.append(name.clone(), v);
            }
        }
        Flow::Respond(Reply::text(self.code, body.clone()))
    }

    fn header_filter(&self, ctx: &mut Ctx) {
        if let Some(status) = ctx.log.upstream_status {
            let key = self.key(ctx);
            self.breakers
                .record(&key, &self.policy, status, now_secs(), Instant::now());
        }
    }
}

#[cfg(test)]
mod tests;
