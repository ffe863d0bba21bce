//! limit-count: request quotas per key and time window (APISIX priority 1002, access phase;
//! `apisix/plugins/limit-count/init.lua`).
//!
//! Runtime (local policy, fixed window): each request counts against the window of
//! `<owner store key>:<crc32 of the configuration>:<key value>` (or `<group>:<key value>`), held
//! in [`Counters`] that survive snapshot swaps. The key value is `ctx.var[key]` (`key_type`
//! `var`), the rendered template (`var_combination`, unset when no variable resolved) or `key`
//! itself (`constant`); unset falls back to `remote_addr`. `count`/`time_window` may be `$var`
//! strings, resolved per request (a non-positive-integer result answers 500, or passes with
//! `allow_degradation`). With `show_limit_quota_header`, `X-RateLimit-Limit`, `-Remaining` and
//! `-Reset` (names from plugin metadata; `X-<prefix>-RateLimit-*` for `rules`) go on the
//! response. Over the quota: `rejected_code` (503) with `{"error_msg":"<rejected_msg>"}` or the
//! nginx page.
//!
//! With `policy: redis`, `redis-cluster` or `redis-sentinel` the windows live in Redis instead
//! (see `limit_count/redis.rs`), shared by every gateway node using that Redis: the access
//! phase waits for the round trip. A Redis failure answers 500 `{"error_msg":"failed to limit
//! count"}`, or lets the request pass with `allow_degradation`.
//!
//! Refused on write and when built: `window_type: sliding` and a `sync_interval` (delayed
//! synchronisation) — not implemented yet; `redis_role: slave` (a replica cannot count).
//! Not checked here: `group conf mismatched` (all configurations of one `group` must be equal).

use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue};

use crate::version::conf_version;
#[cfg(test)]
use crate::version::stable_json;
use http::StatusCode;
use portico_expr::Vars;
use portico_model::PluginSpec;
use serde::Deserialize;
use serde_json::Value;

use crate::counters::{Count, Counters};
use crate::template::Template;
use crate::{typed, BuildEnv, Ctx, Flow, Phases, Plugin, Reply};

/// Plugin name.
pub const NAME: &str = "limit-count";

mod redis;
mod schema;
pub use schema::{metadata_schema, schema};

use self::redis::RedisCounter;

/// The registry row of limit-count.
pub fn spec() -> PluginSpec {
    PluginSpec {
        metadata_schema: Some(metadata_schema()),
        encrypt_fields: &["redis_password", "sentinel_password"],
        check: Some(schema::check),
        schema_error: Some(schema::schema_error),
        ..PluginSpec::new(NAME, 1002, schema())
    }
}

/// The largest count Lua keeps exact (2^53 - 1).
const MAX_SAFE: f64 = 9_007_199_254_740_991.0;

fn remote_addr() -> String {
    "remote_addr".to_string()
}

fn var() -> String {
    "var".to_string()
}

fn local() -> String {
    "local".to_string()
}

fn fixed() -> String {
    "fixed".to_string()
}

fn service_unavailable() -> u16 {
    503
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
struct RuleConfig {
    count: Value,
    time_window: Value,
    key: String,
    header_prefix: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Config {
    count: Option<Value>,
    time_window: Option<Value>,
    #[serde(default = "fixed")]
    window_type: String,
    rules: Option<Vec<RuleConfig>>,
    group: Option<String>,
    #[serde(default = "remote_addr")]
    key: String,
    #[serde(default = "var")]
    key_type: String,
    #[serde(default = "service_unavailable")]
    rejected_code: u16,
    rejected_msg: Option<String>,
    #[serde(default = "local")]
    policy: String,
    #[serde(default)]
    allow_degradation: bool,
    #[serde(default = "yes")]
    show_limit_quota_header: bool,
}

/// `count` or `time_window`: a number, or a string resolved per request.
#[derive(Debug)]
enum Amount {
    Fixed(u64),
    Template(Template),
}

impl Amount {
    fn new(v: &Value) -> Result<Amount, String> {
        match v {
            Value::String(s) => Ok(Amount::Template(Template::new(s))),
            v => v
                .as_u64()
                .filter(|n| *n > 0)
                .map(Amount::Fixed)
                .ok_or_else(|| format!("invalid count or time_window: {v}")),
        }
    }

    /// The per-request value; APISIX's `resolve_var` + `tonumber` checks.
    fn resolve(&self, ctx: &Ctx) -> Result<u64, String> {
        let t = match self {
            Amount::Fixed(n) => return Ok(*n),
            Amount::Template(t) => t,
        };
        let text = t.render(ctx).0;
        let n: f64 = text
            .trim()
            .parse()
            .map_err(|_| "resolved value is not a number".to_string())?;
        if n <= 0.0 || n.fract() != 0.0 || n > MAX_SAFE {
            return Err(format!(
                "resolved value must be a positive integer, got: {text}"
            ));
        }
        Ok(n as u64)
    }
}

#[derive(Debug)]
enum Key {
    /// `key_type: var`: a variable name.
    Var(String),
    /// `key_type: var_combination`, and every `rules[].key`: unset when nothing resolved.
    Combination(Template),
    /// `key_type: constant`.
    Constant(String),
}

#[derive(Debug)]
struct QuotaHeaders {
    limit: HeaderName,
    remaining: HeaderName,
    reset: HeaderName,
    /// The rule's `count` and its header value, when it is a number (not a `$var`).
    fixed_limit: Option<(u64, HeaderValue)>,
}

#[derive(Debug)]
struct Rule {
    count: Amount,
    window: Amount,
    key: Key,
}

/// Quota headers to send: written into the response head when it exists.
#[derive(Debug)]
pub struct QuotaNote {
    answer: Arc<Answer>,
    rule: usize,
    limit: u64,
    left: u64,
    reset: Duration,
}

impl QuotaNote {
    /// Sets the three headers in `headers`.
    pub(crate) fn write(self, headers: &mut http::HeaderMap) {
        // A fixed limit's value (the first header) is prepared: shared, not made again.
        let mut fixed = self
            .names()
            .and_then(|h| h.fixed_limit.as_ref())
            .filter(|(n, _)| *n == self.limit)
            .map(|(_, value)| value.clone());
        self.each(|name, text| {
            let value = fixed.take().unwrap_or_else(|| {
                // Digits and a dot only.
                HeaderValue::from_bytes(text).unwrap_or(HeaderValue::from_static("0"))
            });
            headers.insert(name.clone(), value);
        });
    }

    fn names(&self) -> Option<&QuotaHeaders> {
        self.answer.headers.get(self.rule)
    }

    /// Whether `name` is one of the three headers.
    pub fn has(&self, name: &HeaderName) -> bool {
        self.names()
            .is_some_and(|h| h.limit == name || h.remaining == name || h.reset == name)
    }

    /// Hands each of the three headers to `put` as name and text: limit, remaining, reset.
    pub fn each(&self, mut put: impl FnMut(&HeaderName, &[u8])) {
        let Some(h) = self.names() else {
            return;
        };
        let mut digits = Digits::default();
        match &h.fixed_limit {
            Some((n, value)) if *n == self.limit => put(&h.limit, value.as_bytes()),
            _ => put(&h.limit, digits.number(self.limit)),
        }
        put(&h.remaining, digits.number(self.left));
        put(&h.reset, digits.hundredths(reset_hundredths(self.reset)));
    }
}

/// `00` to `99`.
const DIGIT_PAIRS: [u8; 200] = {
    let mut pairs = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        pairs[i * 2] = b'0' + (i / 10) as u8;
        pairs[i * 2 + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    pairs
};

/// Room for a number's text: a `u64`, or hundredths of a second as seconds with a fraction.
#[derive(Default)]
struct Digits {
    buf: [u8; 24],
}

impl Digits {
    /// `n` in decimal, two digits at a time.
    fn number(&mut self, mut n: u64) -> &[u8] {
        let mut at = self.buf.len();
        while n >= 100 {
            let pair = usize::try_from(n % 100).unwrap_or(0) * 2;
            n /= 100;
            at -= 2;
            self.buf[at..at + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
        }
        if n >= 10 {
            let pair = usize::try_from(n).unwrap_or(0) * 2;
            at -= 2;
            self.buf[at..at + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
        } else {
            at -= 1;
            self.buf[at] = b'0' + n as u8;
        }
        &self.buf[at..]
    }

    /// Hundredths of a second as Lua prints their quotient by 100: `59.87`, `59.8`, `59`.
    fn hundredths(&mut self, hundredths: u64) -> &[u8] {
        let (secs, frac) = (hundredths / 100, hundredths % 100);
        let mut end = self.number(secs).len();
        // The seconds end the buffer: move them to its start to make room for the fraction.
        let len = self.buf.len();
        self.buf.copy_within(len - end.., 0);
        if frac != 0 {
            self.buf[end] = b'.';
            self.buf[end + 1] = b'0' + (frac / 10) as u8;
            end += 2;
            if frac % 10 != 0 {
                self.buf[end] = b'0' + (frac % 10) as u8;
                end += 1;
            }
        }
        &self.buf[..end]
    }
}

/// Where the windows are counted.
#[derive(Debug)]
enum Store {
    /// `policy: local`: this node's memory.
    Local(Arc<Counters>),
    /// `policy: redis` / `redis-cluster`.
    Redis(Arc<RedisCounter>),
}

/// How counted requests are answered: shared with the step that runs after a Redis round trip.
#[derive(Debug)]
struct Answer {
    /// Quota header names, per rule.
    headers: Vec<QuotaHeaders>,
    rejected_code: StatusCode,
    rejected_msg: Option<String>,
    allow_degradation: bool,
    show_headers: bool,
}

/// A limit-count instance.
#[derive(Debug)]
pub struct LimitCount {
    rules: Vec<Rule>,
    /// Configured with `rules`: a rule whose key resolves to nothing is skipped.
    from_rules: bool,
    /// `<owner>:<crc32>` or the group name: the counter key prefix.
    prefix: String,
    answer: Arc<Answer>,
    store: Store,
}

/// A rule resolved for one request: its index, counter key, count and window (seconds).
type Resolved = (usize, String, u64, u64);

const DEFAULT_NAMES: [HeaderName; 3] = [
    HeaderName::from_static("x-ratelimit-limit"),
    HeaderName::from_static("x-ratelimit-remaining"),
    HeaderName::from_static("x-ratelimit-reset"),
];

fn quota_headers(
    metadata: Option<&Value>,
    prefix: Option<&str>,
    count: &Amount,
) -> Result<QuotaHeaders, String> {
    let name = |field: &str, default: &str| -> Result<HeaderName, String> {
        let base = metadata
            .and_then(|m| m.get(field))
            .and_then(Value::as_str)
            .unwrap_or(default);
        let name = match prefix {
            Some(p) => base.replacen("RateLimit-", &format!("{p}-RateLimit-"), 1),
            None => base.to_string(),
        };
        let parsed = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid header name: {name}"))?;
        // The default names are static: a static name costs nothing to copy into a response.
        Ok(DEFAULT_NAMES
            .into_iter()
            .find(|n| *n == parsed)
            .unwrap_or(parsed))
    };
    Ok(QuotaHeaders {
        limit: name("limit_header", "X-RateLimit-Limit")?,
        remaining: name("remaining_header", "X-RateLimit-Remaining")?,
        reset: name("reset_header", "X-RateLimit-Reset")?,
        fixed_limit: match count {
            Amount::Fixed(n) => Some((*n, HeaderValue::from(*n))),
            Amount::Template(_) => None,
        },
    })
}

/// Builds limit-count from a checked configuration.
pub fn build(conf: &Value, env: &BuildEnv<'_>) -> Result<Arc<dyn Plugin>, String> {
    let c: Config = typed(conf)?;
    if c.window_type != "fixed" {
        return Err(format!(
            "window_type {} is not supported yet",
            c.window_type
        ));
    }
    let store = match c.policy.as_str() {
        "local" => Store::Local(env.state.counters.clone()),
        policy => Store::Redis(Arc::new(RedisCounter::build(
            policy,
            conf,
            &env.state.redis,
        )?)),
    };
    let mut headers = Vec::new();
    let rules = match &c.rules {
        Some(rules) => rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let prefix = r
                    .header_prefix
                    .clone()
                    .unwrap_or_else(|| (i + 1).to_string());
                let count = Amount::new(&r.count)?;
                headers.push(quota_headers(env.metadata, Some(&prefix), &count)?);
                Ok(Rule {
                    count,
                    window: Amount::new(&r.time_window)?,
                    key: Key::Combination(Template::new(&r.key)),
                })
            })
            .collect::<Result<Vec<_>, String>>()?,
        None => {
            let (Some(count), Some(window)) = (&c.count, &c.time_window) else {
                return Err("count and time_window are required without rules".to_string());
            };
            let key = match c.key_type.as_str() {
                "var_combination" => Key::Combination(Template::new(&c.key)),
                "constant" => Key::Constant(c.key.clone()),
                _ => Key::Var(c.key.clone()),
            };
            let count = Amount::new(count)?;
            headers.push(quota_headers(env.metadata, None, &count)?);
            vec![Rule {
                count,
                window: Amount::new(window)?,
                key,
            }]
        }
    };
    let prefix = match &c.group {
        Some(group) => group.clone(),
        None => format!("{}:{}", env.owner, conf_version(conf)),
    };
    Ok(Arc::new(LimitCount {
        rules,
        from_rules: c.rules.is_some(),
        prefix,
        answer: Arc::new(Answer {
            headers,
            rejected_code: StatusCode::from_u16(c.rejected_code).map_err(|e| e.to_string())?,
            rejected_msg: c.rejected_msg,
            allow_degradation: c.allow_degradation,
            show_headers: c.show_limit_quota_header,
        }),
        store,
    }))
}

/// `math.floor(reset * 100) / 100` printed as Lua prints numbers.
///
/// The hundredths are taken with the same float arithmetic; the quotient by 100 then prints as
/// its decimal digits (what `%.14g` and a shortest-representation print give for it), with
/// integer formatting rather than float formatting on every request.
#[cfg(test)]
fn reset_text(reset: Duration) -> String {
    String::from_utf8_lossy(Digits::default().hundredths(reset_hundredths(reset))).into_owned()
}

/// `math.floor(reset * 100)`, with Lua's float arithmetic.
fn reset_hundredths(reset: Duration) -> u64 {
    (reset.as_secs_f64() * 100.0).floor() as u64
}

impl Answer {
    /// A rule could not be resolved: 500 (nginx page), or pass with `allow_degradation`.
    fn failure(&self, err: &str) -> Flow {
        tracing::error!("failed to get rate limit rules: {err}");
        if self.allow_degradation {
            return Flow::Continue;
        }
        Flow::Respond(Reply::page(StatusCode::INTERNAL_SERVER_ERROR))
    }

    /// The counter store failed: 500 `failed to limit count`, or pass with
    /// `allow_degradation`.
    fn store_failure(&self, err: &crate::redis::Error) -> Flow {
        tracing::error!("failed to limit count: {err}");
        if self.allow_degradation {
            return Flow::Continue;
        }
        Flow::Respond(Reply::error_msg(
            StatusCode::INTERNAL_SERVER_ERROR,
            "failed to limit count",
        ))
    }

    /// Notes rule `rule`'s quota headers for the response (`core.response.set_header`). The
    /// first note of a request waits in the context: the `header_filter` phase writes it into
    /// the response head before any plugin's `header_filter` runs, or, when none runs, the
    /// gateway writes it as it writes the head ([`Ctx::take_late_headers`]); any further one
    /// goes with the other headers plugins set early.
    fn set_headers(
        self: &Arc<Self>,
        ctx: &mut Ctx,
        rule: usize,
        limit: u64,
        left: u64,
        reset: Duration,
    ) {
        if !self.show_headers || rule >= self.headers.len() {
            return;
        }
        let note = QuotaNote {
            answer: self.clone(),
            rule,
            limit,
            left,
            reset,
        };
        match ctx.quota {
            None => ctx.quota = Some(note),
            Some(_) => note.write(&mut ctx.response_headers),
        }
    }

    /// Sets rule `rule`'s quota headers; the reply when the request is over the quota.
    fn counted(
        self: &Arc<Self>,
        ctx: &mut Ctx,
        rule: usize,
        limit: u64,
        count: Count,
    ) -> Option<Flow> {
        match count {
            Count::Allowed { remaining, reset } => {
                self.set_headers(ctx, rule, limit, remaining, reset);
                None
            }
            Count::Rejected { reset } => {
                self.set_headers(ctx, rule, limit, 0, reset);
                Some(Flow::Respond(match &self.rejected_msg {
                    Some(msg) => Reply::error_msg(self.rejected_code, msg),
                    None => Reply::page(self.rejected_code),
                }))
            }
        }
    }
}

impl LimitCount {
    /// Every rule that applies to this request, resolved (APISIX `get_rules`), before any is
    /// counted; or why one cannot be resolved.
    fn resolve(&self, ctx: &Ctx) -> Result<Vec<Resolved>, String> {
        let mut resolved = Vec::with_capacity(self.rules.len());
        for (i, rule) in self.rules.iter().enumerate() {
            let mut key = String::new();
            if !self.key_into(rule, ctx, &mut key) {
                continue; // A rule whose key resolves to nothing does not apply.
            }
            let (limit, window) = rule.amounts(ctx)?;
            resolved.push((i, key, limit, window));
        }
        if resolved.is_empty() {
            return Err(NO_RULE.to_string());
        }
        Ok(resolved)
    }

    /// Writes rule `rule`'s counter key for this request into `key`: `<prefix>:<value>`, the
    /// client's address standing in for a value that resolves to nothing — except with `rules`,
    /// where such a rule does not apply (false).
    fn key_into(&self, rule: &Rule, ctx: &Ctx, key: &mut String) -> bool {
        key.clear();
        key.push_str(&self.prefix);
        key.push(':');
        let found = match &rule.key {
            Key::Var(name) => push_var(ctx, name, key),
            Key::Combination(t) => {
                let (text, resolved) = t.render(ctx);
                key.push_str(&text);
                resolved > 0
            }
            Key::Constant(s) => {
                key.push_str(s);
                true
            }
        };
        if !found {
            if self.from_rules {
                return false;
            }
            key.truncate(self.prefix.len() + 1);
            push_var(ctx, "remote_addr", key);
        }
        true
    }

    /// The local store with one rule (every configuration without `rules`): counted without
    /// collecting the rules first, the key built in a reused buffer.
    fn count_one_locally(&self, counters: &Counters, rule: &Rule, ctx: &mut Ctx) -> Flow {
        let counted = KEY.with_borrow_mut(|key| {
            if !self.key_into(rule, ctx, key) {
                return Err(NO_RULE.to_string());
            }
            let (limit, window) = rule.amounts(ctx)?;
            let window = Duration::from_secs(window);
            Ok((
                limit,
                counters.incoming(key, limit, window, 1, portico_clock::now()),
            ))
        });
        match counted {
            Ok((limit, count)) => self
                .answer
                .counted(ctx, 0, limit, count)
                .unwrap_or(Flow::Continue),
            Err(e) => self.answer.failure(&e),
        }
    }
}

impl Rule {
    /// `count` and `time_window` (seconds) for this request.
    fn amounts(&self, ctx: &Ctx) -> Result<(u64, u64), String> {
        Ok((self.count.resolve(ctx)?, self.window.resolve(ctx)?))
    }
}

const NO_RULE: &str = "no rule applies to this request";

thread_local! {
    /// The counter key of the request being counted (local store, one rule).
    static KEY: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// Appends variable `name` to `out`; false when it has no value. `remote_addr` is written
/// without an intermediate string.
fn push_var(ctx: &Ctx, name: &str, out: &mut String) -> bool {
    if name == "remote_addr" && ctx.var_override(name).is_none() {
        crate::ip_text::push_ip(ctx.remote.ip(), out);
        return true;
    }
    match ctx.var(name) {
        Some(v) => {
            out.push_str(&v);
            true
        }
        None => false,
    }
}

/// Counts the rules in Redis one after the other, stopping at the first that is over its
/// quota or fails; the outcomes in rule order.
async fn count_in_redis(
    redis: Arc<RedisCounter>,
    rules: Vec<Resolved>,
) -> Vec<(usize, u64, Result<Count, crate::redis::Error>)> {
    let mut outcomes = Vec::with_capacity(rules.len());
    for (i, key, limit, window) in rules {
        let count = redis.clone().incoming(key, limit, window).await;
        let go_on = matches!(count, Ok(Count::Allowed { .. }));
        outcomes.push((i, limit, count));
        if !go_on {
            break;
        }
    }
    outcomes
}

impl Plugin for LimitCount {
    fn name(&self) -> &'static str {
        NAME
    }

    fn priority(&self) -> i32 {
        1002
    }

    fn phases(&self) -> Phases {
        Phases::ACCESS
    }

    fn access(&self, ctx: &mut Ctx) -> Flow {
        if let (Store::Local(counters), [rule]) = (&self.store, self.rules.as_slice()) {
            return self.count_one_locally(counters, rule, ctx);
        }
        let rules = match self.resolve(ctx) {
            Ok(rules) => rules,
            Err(e) => return self.answer.failure(&e),
        };
        match &self.store {
            Store::Local(counters) => {
                for (i, key, limit, window) in rules {
                    let window = Duration::from_secs(window);
                    let count = counters.incoming(&key, limit, window, 1, portico_clock::now());
                    if let Some(flow) = self.answer.counted(ctx, i, limit, count) {
                        return flow;
                    }
                }
                Flow::Continue
            }
            Store::Redis(redis) => {
                let answer = self.answer.clone();
                Flow::wait_then(
                    count_in_redis(redis.clone(), rules),
                    move |ctx, outcomes| {
                        for (i, limit, count) in outcomes {
                            let flow = match count {
                                Ok(count) => answer.counted(ctx, i, limit, count),
                                Err(e) => Some(answer.store_failure(&e)),
                            };
                            if let Some(flow) = flow {
                                return flow;
                            }
                        }
                        Flow::Continue
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
