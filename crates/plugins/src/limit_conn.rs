//! limit-conn: concurrent requests per key (APISIX priority 1003, access and log phases;
//! `apisix/plugins/limit-conn/init.lua` over `resty.limit.conn`).
//!
//! A request counts against `<owner store key>:<crc32 of the configuration>:<value>` from its
//! `access` phase until its `log` phase (the end of the response body, or the client leaving).
//! The value is `ctx.var[key]` (`key_type: var`), the rendered `$var` template
//! (`var_combination`, unset when nothing resolved), the client address when unset; with
//! `rules`, each rule whose `key` template resolves counts against its own key, in order.
//!
//! The request that makes the count exceed `conn + burst` is rejected (`rejected_code`, 503,
//! with `{"error_msg":"<rejected_msg>"}` or the nginx page) and not counted; one that makes it
//! exceed `conn` waits `default_conn_delay * floor((count - 1) / conn)` seconds first, still
//! counted. `conn`/`burst` given as strings are `$var` templates resolved per request; a value
//! that is not a positive (burst: non-negative) integer answers 500, or lets the request pass
//! with `allow_degradation` (with `rules`, such a rule is skipped instead).
//!
//! `only_use_default_delay` is accepted and, as in APISIX, changes nothing: APISIX adapts the
//! delay unit of a per-request limiter object that is thrown away afterwards.
//!
//! With `policy: redis`, `redis-cluster` or `redis-sentinel` (the last a Portico addition) the
//! requests are counted in Redis instead (see `limit_conn/redis.rs`), shared by every gateway
//! node using that Redis: the access phase waits for the round trip of each rule, and `log`
//! releases the request from a task of its own; a place not released (a node that died) stops
//! counting after `key_ttl` seconds. A Redis failure answers 500 (the nginx page), or lets the
//! request pass that rule uncounted with `allow_degradation`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use portico_model::PluginSpec;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::limit_req::shards::Shards;
use crate::limit_req::{conf_version, policy, KeySource};
use crate::redis_schema::{redis, redis_cluster, redis_sentinel};
use crate::template::Template;
use crate::{typed, BuildEnv, Ctx, Flow, Plugin, Reply};

mod redis;

use self::redis::{Place, RedisConnections};

/// Plugin name.
pub const NAME: &str = "limit-conn";

/// The registry row of limit-conn.
pub fn spec() -> PluginSpec {
    PluginSpec {
        encrypt_fields: &["redis_password", "sentinel_password"],
        check: Some(check),
        ..PluginSpec::new(NAME, 1003, schema())
    }
}

/// An integer with a lower bound (`minimum` or `exclusiveMinimum` 0), or a `$var` string.
fn int_or_var(bound: &str) -> Value {
    let mut integer = json!({"type": "integer"});
    integer[bound] = json!(0);
    json!({"oneOf": [integer, {"type": "string"}]})
}

fn with_key_ttl(mut schema: Value) -> Value {
    if let Some(p) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        p.insert(
            "key_ttl".into(),
            json!({"type": "integer", "default": 3600}),
        );
    }
    schema
}

fn policy_is(policy: &str) -> Value {
    json!({"properties": {"policy": {"enum": [policy]}}})
}

/// The checks of the Redis policies beyond the schema (ports, cluster addresses, roles), and a
/// `key_ttl` under which a request counts at all.
fn check(conf: &Value) -> Result<(), String> {
    let policy = policy(conf);
    crate::redis_schema::check(policy, conf)?;
    match conf.get("key_ttl").and_then(Value::as_i64) {
        Some(ttl) if policy != "local" && ttl < 1 => Err(format!(
            "invalid key_ttl {ttl}: requests would stop counting at once (at least 1 second)"
        )),
        _ => Ok(()),
    }
}

/// The configuration schema (APISIX `limit-conn.lua`).
pub fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "conn": int_or_var("exclusiveMinimum"),
            "burst": int_or_var("minimum"),
            "default_conn_delay": {"type": "number", "exclusiveMinimum": 0},
            "only_use_default_delay": {"type": "boolean", "default": false},
            "key": {"type": "string"},
            "key_type": {"type": "string", "enum": ["var", "var_combination"], "default": "var"},
            "policy": {
                "type": "string",
                "enum": ["redis", "redis-cluster", "redis-sentinel", "local"],
                "default": "local"
            },
            "rejected_code": {"type": "integer", "minimum": 200, "maximum": 599, "default": 503},
            "rejected_msg": {"type": "string", "minLength": 1},
            "allow_degradation": {"type": "boolean", "default": false},
            "rules": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "conn": int_or_var("exclusiveMinimum"),
                        "burst": int_or_var("minimum"),
                        "key": {"type": "string"}
                    },
                    "required": ["conn", "burst", "key"]
                }
            }
        },
        "oneOf": [
            {"required": ["conn", "burst", "default_conn_delay", "key"]},
            {"required": ["default_conn_delay", "rules"]}
        ],
        "if": policy_is("redis"),
        "then": with_key_ttl(redis()),
        "else": {
            "if": policy_is("redis-cluster"),
            "then": with_key_ttl(redis_cluster()),
            "else": {"if": policy_is("redis-sentinel"), "then": with_key_ttl(redis_sentinel())}
        }
    })
}

/// The concurrent requests of every local limit-conn instance of a node, per key.
#[derive(Debug, Default)]
pub struct Connections {
    shards: Shards<u64>,
}

impl Connections {
    /// `resty.limit.conn:incoming(key, true)`: counts one more request under `key` and returns
    /// the new count, unless that would exceed `max` (then nothing is counted).
    pub fn enter(&self, key: &str, max: u64) -> Option<u64> {
        self.shards.with(key, |map| {
            let count = map.get(key).copied().unwrap_or(0) + 1;
            if count > max {
                return None;
            }
            map.insert(key.to_string(), count);
            Some(count)
        })
    }

    /// `leaving`: one request under `key` ended.
    pub fn leave(&self, key: &str) {
        self.shards.with(key, |map| {
            if let Some(count) = map.get_mut(key) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    map.remove(key);
                }
            }
        });
    }

    /// Requests counted under `key` right now.
    pub fn count(&self, key: &str) -> u64 {
        self.shards
            .with(key, |map| map.get(key).copied().unwrap_or(0))
    }

    /// Number of keys with requests in flight.
    pub fn len(&self) -> usize {
        self.shards.len()
    }

    /// Whether no request is counted.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where the requests are counted.
#[derive(Debug)]
enum Store {
    /// `policy: local`: this node's memory.
    Local(Arc<Connections>),
    /// `policy: redis`, `redis-cluster` or `redis-sentinel`.
    Redis(Arc<RedisConnections>),
}

/// Where one counted request is to be released.
#[derive(Debug)]
enum Counted {
    /// Under its key in this node's memory.
    Local(Arc<Connections>, String),
    /// Its place in Redis.
    Redis(Arc<RedisConnections>, Place),
}

/// One counted request: released by the instance's `log`, or when the request's context is
/// dropped without one (a client that left while the request waited).
#[derive(Debug)]
struct Hold {
    counted: Counted,
    instance: u64,
    released: AtomicBool,
}

impl Hold {
    fn new(counted: Counted, instance: u64) -> Arc<Hold> {
        Arc::new(Hold {
            counted,
            instance,
            released: AtomicBool::new(false),
        })
    }

    fn release(&self) {
        if !self.released.swap(true, Ordering::AcqRel) {
            match &self.counted {
                Counted::Local(connections, key) => connections.leave(key),
                Counted::Redis(connections, place) => connections.leave(place),
            }
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.release();
    }
}

/// The holds of one request, in [`Ctx::data`].
#[derive(Debug, Clone, Default)]
struct Holds(Vec<Arc<Hold>>);

/// `conn` or `burst`: a number, or a `$var` template resolved per request.
#[derive(Debug, Clone)]
enum Amount {
    Fixed(u64),
    Template(Template),
}

/// The largest integer a Lua number holds exactly (2^53 - 1).
const MAX_SAFE: f64 = 9_007_199_254_740_991.0;

impl Amount {
    fn new(v: &Value) -> Result<Amount, String> {
        match v {
            Value::String(s) => Ok(Amount::Template(Template::new(s))),
            v => v
                .as_u64()
                .map(Amount::Fixed)
                .ok_or_else(|| format!("invalid conn or burst: {v}")),
        }
    }

    /// APISIX's `resolve_var` in `limit-conn/init.lua`: `burst` may be zero, `conn` may not.
    fn resolve(&self, ctx: &Ctx, allow_zero: bool) -> Result<u64, String> {
        let t = match self {
            Amount::Fixed(n) => return Ok(*n),
            Amount::Template(t) => t,
        };
        let text = t.render(ctx).0;
        let n: f64 = text
            .trim()
            .parse()
            .map_err(|_| format!("resolved value is not a number: {text}"))?;
        if allow_zero && n < 0.0 {
            return Err(format!(
                "resolved value must be a non-negative number, got: {text}"
            ));
        }
        if !allow_zero && n <= 0.0 {
            return Err(format!(
                "resolved value must be a positive number, got: {text}"
            ));
        }
        if n.fract() != 0.0 {
            return Err(format!("resolved value must be an integer, got: {text}"));
        }
        if n > MAX_SAFE {
            return Err(format!(
                "resolved value exceeds safe integer range (2^53-1), got: {text}"
            ));
        }
        Ok(n as u64)
    }
}

#[derive(Debug)]
enum RuleKey {
    /// The top-level `key`/`key_type`.
    Source(KeySource),
    /// A `rules[].key` template: the rule is skipped when nothing resolved.
    Rule(Template),
}

#[derive(Debug)]
struct Rule {
    conn: Amount,
    burst: Amount,
    key: RuleKey,
}

/// A rule resolved for one request.
struct Admission {
    conn: u64,
    burst: u64,
    key: String,
}

#[derive(Debug, Deserialize)]
struct RuleConfig {
    conn: Value,
    burst: Value,
    key: String,
}

fn var() -> String {
    "var".to_string()
}

fn service_unavailable() -> u16 {
    503
}

#[derive(Debug, Deserialize)]
struct Config {
    conn: Option<Value>,
    burst: Option<Value>,
    default_conn_delay: f64,
    key: Option<String>,
    #[serde(default = "var")]
    key_type: String,
    #[serde(default = "service_unavailable")]
    rejected_code: u16,
    rejected_msg: Option<String>,
    #[serde(default)]
    allow_degradation: bool,
    rules: Option<Vec<RuleConfig>>,
}

/// `key_ttl` (seconds) of a checked configuration: 3600 when absent, and at most about 136
/// years, which Redis's expiry times and Lua's numbers both hold exactly.
fn key_ttl(conf: &Value) -> u64 {
    conf.get("key_ttl")
        .and_then(Value::as_u64)
        .unwrap_or(3600)
        .clamp(1, u64::from(u32::MAX))
}

/// What the waits of a request need of the instance.
#[derive(Debug)]
struct Shared {
    instance: u64,
    store: Store,
    allow_degradation: bool,
    /// `default_conn_delay`, in seconds.
    unit_delay: f64,
    rejected_code: StatusCode,
    rejected_msg: Option<String>,
}

/// A limit-conn instance.
#[derive(Debug)]
pub struct LimitConn {
    rules: Vec<Rule>,
    from_rules: bool,
    /// `<owner>:<crc32>`: the key prefix.
    prefix: String,
    shared: Arc<Shared>,
}

static NEXT_INSTANCE: AtomicU64 = AtomicU64::new(1);

/// Builds limit-conn from a checked configuration.
pub fn build(conf: &Value, env: &BuildEnv<'_>) -> Result<Arc<dyn Plugin>, String> {
    let c: Config = typed(conf)?;
    let store = match policy(conf) {
        "local" => Store::Local(env.state.limit_conn.clone()),
        remote => Store::Redis(Arc::new(RedisConnections::build(
            remote,
            conf,
            &env.state.redis,
            key_ttl(conf),
        )?)),
    };
    let rules = match &c.rules {
        Some(rules) => rules
            .iter()
            .map(|r| {
                Ok(Rule {
                    conn: Amount::new(&r.conn)?,
                    burst: Amount::new(&r.burst)?,
                    key: RuleKey::Rule(Template::new(&r.key)),
                })
            })
            .collect::<Result<Vec<_>, String>>()?,
        None => {
            let (Some(conn), Some(burst), Some(key)) = (&c.conn, &c.burst, &c.key) else {
                return Err("conn, burst and key are required without rules".to_string());
            };
            vec![Rule {
                conn: Amount::new(conn)?,
                burst: Amount::new(burst)?,
                key: RuleKey::Source(KeySource::new(&c.key_type, key)),
            }]
        }
    };
    Ok(Arc::new(LimitConn {
        rules,
        from_rules: c.rules.is_some(),
        prefix: format!("{}:{}", env.owner, conf_version(conf)),
        shared: Arc::new(Shared {
            instance: NEXT_INSTANCE.fetch_add(1, Ordering::Relaxed),
            store,
            allow_degradation: c.allow_degradation,
            unit_delay: c.default_conn_delay,
            rejected_code: StatusCode::from_u16(c.rejected_code).map_err(|e| e.to_string())?,
            rejected_msg: c.rejected_msg,
        }),
    }))
}

/// Delays under a millisecond are not slept (APISIX: `delay >= 0.001`).
const MIN_DELAY: Duration = Duration::from_millis(1);

impl LimitConn {
    /// APISIX `get_rules`: every rule resolved for this request.
    fn admissions(&self, ctx: &Ctx) -> Result<VecDeque<Admission>, String> {
        let mut out = VecDeque::with_capacity(self.rules.len());
        for rule in &self.rules {
            let amounts = rule
                .conn
                .resolve(ctx, false)
                .and_then(|conn| Ok((conn, rule.burst.resolve(ctx, true)?)));
            let (conn, burst) = match amounts {
                Ok(a) => a,
                Err(_) if self.from_rules => continue,
                Err(e) => return Err(e),
            };
            let value = match &rule.key {
                RuleKey::Source(source) => source.value(ctx),
                RuleKey::Rule(t) => match t.render(ctx) {
                    (_, 0) => continue,
                    (text, _) => text,
                },
            };
            out.push_back(Admission {
                conn,
                burst,
                key: format!("{}:{value}", self.prefix),
            });
        }
        if out.is_empty() {
            return Err("no rule applies to this request".to_string());
        }
        Ok(out)
    }
}

/// Counts the request against each admission in turn, waiting where the count asks for it
/// (and, with a Redis policy, for Redis).
fn admit(shared: Arc<Shared>, ctx: &mut Ctx, mut pending: VecDeque<Admission>) -> Flow {
    while let Some(a) = pending.pop_front() {
        let connections = match &shared.store {
            Store::Local(connections) => connections.clone(),
            Store::Redis(redis) => {
                let redis = redis.clone();
                return admit_in_redis(shared, redis, a, pending);
            }
        };
        let Some(count) = connections.enter(&a.key, a.conn.saturating_add(a.burst)) else {
            return shared.rejected();
        };
        let hold = Hold::new(Counted::Local(connections, a.key), shared.instance);
        if let Some(wait) = counted_wait(&shared, ctx, hold, a.conn, count) {
            return Flow::wait_then(wait, move |ctx, ()| admit(shared, ctx, pending));
        }
    }
    Flow::Continue
}

/// Counts the request against admission `a` in Redis, then goes on with the others.
fn admit_in_redis(
    shared: Arc<Shared>,
    redis: Arc<RedisConnections>,
    a: Admission,
    pending: VecDeque<Admission>,
) -> Flow {
    let most = a.conn.saturating_add(a.burst);
    let entering = redis.clone().enter(a.key, most);
    Flow::wait_then(entering, move |ctx, entered| match entered {
        Ok(Some((place, count))) => {
            let hold = Hold::new(Counted::Redis(redis, place), shared.instance);
            match counted_wait(&shared, ctx, hold, a.conn, count) {
                Some(wait) => Flow::wait_then(wait, move |ctx, ()| admit(shared, ctx, pending)),
                None => admit(shared, ctx, pending),
            }
        }
        Ok(None) => shared.rejected(),
        Err(e) => {
            tracing::error!("failed to limit conn: {e}");
            if !shared.allow_degradation {
                return Flow::Respond(Reply::page(StatusCode::INTERNAL_SERVER_ERROR));
            }
            admit(shared, ctx, pending)
        }
    })
}

/// Keeps `hold` in the context; the wait of the `count`-th request under a rule of `conn`
/// (`default_conn_delay * floor((count - 1) / conn)`), if any.
fn counted_wait(
    shared: &Shared,
    ctx: &mut Ctx,
    hold: Arc<Hold>,
    conn: u64,
    count: u64,
) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
    ctx.data.get_or_insert_default::<Holds>().0.push(hold);
    if count <= conn {
        return None;
    }
    let units = (count - 1) / conn;
    let delay =
        Duration::try_from_secs_f64(shared.unit_delay * units as f64).unwrap_or(Duration::MAX);
    // The timer is made when the chain first polls the wait, inside the runtime.
    (delay >= MIN_DELAY).then_some(async move { tokio::time::sleep(delay).await })
}

impl Shared {
    /// Over `conn + burst`: `rejected_code` with `rejected_msg` or the nginx page.
    fn rejected(&self) -> Flow {
        Flow::Respond(match &self.rejected_msg {
            Some(msg) => Reply::error_msg(self.rejected_code, msg),
            None => Reply::page(self.rejected_code),
        })
    }
}

impl Plugin for LimitConn {
    fn name(&self) -> &'static str {
        NAME
    }

    fn priority(&self) -> i32 {
        1003
    }

    fn access(&self, ctx: &mut Ctx) -> Flow {
        match self.admissions(ctx) {
            Ok(pending) => admit(self.shared.clone(), ctx, pending),
            Err(e) => {
                tracing::error!("failed to get limit conn rules: {e}");
                if self.shared.allow_degradation {
                    Flow::Continue
                } else {
                    Flow::Respond(Reply::page(StatusCode::INTERNAL_SERVER_ERROR))
                }
            }
        }
    }

    fn log(&self, ctx: &Ctx) {
        if let Some(holds) = ctx.data.get::<Holds>() {
            for hold in holds
                .0
                .iter()
                .filter(|h| h.instance == self.shared.instance)
            {
                hold.release();
            }
        }
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_redis;
