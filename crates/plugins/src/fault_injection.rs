//! fault-injection: delays and aborts requests on purpose (APISIX priority 11000, rewrite phase;
//! `apisix/plugins/fault-injection.lua`).
//!
//! `delay` waits `duration` seconds; `abort` answers `http_status` with `body` (`$var`
//! references resolved, sent as it is; without a body the nginx page of the status) and sets
//! `headers` (string values resolved, numbers printed as Lua does) on the response. Each part
//! applies to `percentage` percent of the requests (all when unset) and, with `vars`, only when
//! one of its lua-resty-expr rules matches (an empty `vars` list matches nothing, as in APISIX).
//! Both rule lists are evaluated before the delay; the delay comes first, then the abort.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use portico_expr::Expr;
use portico_model::PluginSpec;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::template::Template;
use crate::{typed, BuildEnv, Ctx, Flow, Plugin, Reply};

/// Plugin name.
pub const NAME: &str = "fault-injection";

/// The registry row of fault-injection.
pub fn spec() -> PluginSpec {
    PluginSpec {
        check: Some(check),
        ..PluginSpec::new(NAME, 11000, schema())
    }
}

fn vars_schema() -> Value {
    json!({"type": "array", "maxItems": 20, "items": {"type": "array"}})
}

/// The configuration schema (APISIX `fault-injection.lua`).
pub fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "abort": {
                "type": "object",
                "properties": {
                    "http_status": {"type": "integer", "minimum": 200},
                    "body": {"type": "string", "minLength": 0},
                    "headers": {
                        "type": "object",
                        "minProperties": 1,
                        "patternProperties": {
                            "^[^:]+$": {"oneOf": [{"type": "string"}, {"type": "number"}]}
                        }
                    },
                    "percentage": {"type": "integer", "minimum": 0, "maximum": 100},
                    "vars": vars_schema()
                },
                "required": ["http_status"]
            },
            "delay": {
                "type": "object",
                "properties": {
                    "duration": {"type": "number", "minimum": 0},
                    "percentage": {"type": "integer", "minimum": 0, "maximum": 100},
                    "vars": vars_schema()
                },
                "required": ["duration"]
            }
        },
        "minProperties": 1
    })
}

fn compile_vars(rules: Option<&Value>) -> Result<Option<Vec<Expr>>, String> {
    rules
        .and_then(Value::as_array)
        .map(|rules| rules.iter().map(Expr::compile).collect())
        .transpose()
}

fn check(conf: &Value) -> Result<(), String> {
    if let Some(abort) = conf.get("abort") {
        compile_vars(abort.get("vars"))?;
        if abort
            .get("http_status")
            .and_then(Value::as_u64)
            .is_some_and(|s| s > 999)
        {
            return Err("abort.http_status must be a three-digit status code".to_string());
        }
    }
    if let Some(delay) = conf.get("delay") {
        compile_vars(delay.get("vars"))?;
        if delay
            .get("duration")
            .and_then(Value::as_f64)
            .is_some_and(|d| Duration::try_from_secs_f64(d).is_err())
        {
            return Err("delay.duration is too large".to_string());
        }
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
struct AbortConfig {
    http_status: u16,
    body: Option<String>,
    headers: Option<Map<String, Value>>,
    percentage: Option<u8>,
    vars: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct DelayConfig {
    duration: f64,
    percentage: Option<u8>,
    vars: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct Config {
    abort: Option<AbortConfig>,
    delay: Option<DelayConfig>,
}

/// When a part applies: its percentage and rules.
#[derive(Debug)]
struct Sample {
    percentage: Option<u8>,
    /// `None`: no `vars`, always true. `Some`: true when one rule matches.
    vars: Option<Vec<Expr>>,
}

impl Sample {
    /// `sample_hit`: `math.random(1, 100) <= percentage`.
    fn hit(&self) -> bool {
        self.percentage
            .is_none_or(|p| crate::random::u64() % 100 < u64::from(p))
    }

    /// `vars_match`: whether one of the rules matches.
    fn vars_match(&self, ctx: &Ctx) -> bool {
        self.vars
            .as_ref()
            .is_none_or(|rules| rules.iter().any(|r| r.eval(ctx)))
    }
}

#[derive(Debug)]
enum HeaderValueSource {
    Text(Template),
    Number(String),
}

#[derive(Debug)]
struct Abort {
    status: StatusCode,
    body: Option<Template>,
    headers: Vec<(String, HeaderValueSource)>,
    when: Sample,
}

impl Abort {
    /// The abort, if its percentage samples this request.
    fn answer(&self, ctx: &mut Ctx) -> Flow {
        if !self.when.hit() {
            return Flow::Continue;
        }
        for (name, value) in &self.headers {
            let value = match value {
                HeaderValueSource::Text(t) => t.render(ctx).0,
                HeaderValueSource::Number(n) => n.clone(),
            };
            ctx.set_response_header(name, &value);
        }
        Flow::Respond(match &self.body {
            Some(body) => Reply::text(self.status, body.render(ctx).0),
            None => Reply::page(self.status),
        })
    }
}

#[derive(Debug)]
struct Delay {
    duration: Duration,
    when: Sample,
}

/// A fault-injection instance.
#[derive(Debug)]
pub struct FaultInjection {
    abort: Option<Arc<Abort>>,
    delay: Option<Delay>,
}

/// Builds fault-injection from a checked configuration.
pub fn build(conf: &Value, _env: &BuildEnv<'_>) -> Result<Arc<dyn Plugin>, String> {
    let c: Config = typed(conf)?;
    let abort = match c.abort {
        Some(a) => {
            let headers = a
                .headers
                .unwrap_or_default()
                .into_iter()
                .map(|(name, v)| {
                    let value = match v {
                        Value::String(s) => HeaderValueSource::Text(Template::new(&s)),
                        other => HeaderValueSource::Number(portico_model::schema::format_number(
                            other.as_f64().unwrap_or_default(),
                        )),
                    };
                    (name, value)
                })
                .collect();
            Some(Arc::new(Abort {
                status: StatusCode::from_u16(a.http_status).map_err(|e| e.to_string())?,
                body: a.body.as_deref().map(Template::new),
                headers,
                when: Sample {
                    percentage: a.percentage,
                    vars: compile_vars(a.vars.as_ref())?,
                },
            }))
        }
        None => None,
    };
    let delay = match c.delay {
        Some(d) => Some(Delay {
            duration: Duration::try_from_secs_f64(d.duration).map_err(|e| e.to_string())?,
            when: Sample {
                percentage: d.percentage,
                vars: compile_vars(d.vars.as_ref())?,
            },
        }),
        None => None,
    };
    Ok(Arc::new(FaultInjection { abort, delay }))
}

impl Plugin for FaultInjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn priority(&self) -> i32 {
        11000
    }

    fn rewrite(&self, ctx: &mut Ctx) -> Flow {
        let abort = self
            .abort
            .as_ref()
            .filter(|a| a.when.vars_match(ctx))
            .cloned();
        let delay = self
            .delay
            .as_ref()
            .filter(|d| d.when.vars_match(ctx) && d.when.hit() && !d.duration.is_zero())
            .map(|d| d.duration);
        match (delay, abort) {
            (Some(delay), abort) => {
                // The timer is made when the chain first polls the wait, inside the runtime.
                let sleep = async move { tokio::time::sleep(delay).await };
                Flow::wait_then(sleep, move |ctx, ()| {
                    abort.map_or(Flow::Continue, |a| a.answer(ctx))
                })
            }
            (None, Some(abort)) => abort.answer(ctx),
            (None, None) => Flow::Continue,
        }
    }
}

#[cfg(test)]
mod tests;
