//! The plugin contract: what a compiled plugin instance is, the phases it may implement, and
//! what it is built from.
//!
//! A plugin instance is built once from one stored configuration (schema defaults applied,
//! secrets decrypted, `_meta` handled by the [`Chain`](crate::Chain)) and then shared by every
//! request of every snapshot that keeps the same configuration. Per-request state lives in the
//! [`Ctx`]; state that must outlive a snapshot (rate-limit counters) lives in [`PluginState`].
//!
//! Phases and what they may do (APISIX `apisix/plugin.lua:run_plugin`, reference §5.1):
//!
//! | phase | runs | may answer early |
//! |---|---|---|
//! | `rewrite` | after route match (global rules first) | yes ([`Flow::Respond`]) |
//! | `access` | after consumer merge (global rules first) | yes |
//! | `header_filter` | on the response head, upstream's or an early reply | no |
//! | `body_filter` | on every chunk of the response body, then once with `eof` | no |
//! | `log` | after the last byte of the response was handed on (or the client left) | no |
//!
//! A `rewrite` or `access` phase that must wait (a Redis round trip, a `limit-req` delay, a
//! `fault-injection` delay) returns [`Flow::Wait`]: a future that resolves to a [`Resume`], a
//! step run on the context once the wait is over. Nothing else of the request runs meanwhile.
//!
//! Body filters stream: a plugin that must see the whole body (a regex over it) keeps what it
//! needs in [`Ctx::data`] and empties the chunks until `eof`, bounded by its own limit. A plugin
//! that needs the client's request body (request-validation, hmac-auth's body digest) says so
//! with [`Plugin::wants_request_body`]; the gateway then reads the body, up to the node's body
//! limit, before `rewrite`, and offers it as [`Ctx::request_body`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;

use crate::counters::Counters;
use crate::ctx::Ctx;
use crate::reply::Reply;

/// What a `rewrite` or `access` phase decides.
pub enum Flow {
    /// Go on with the next plugin (and, after the last one, proxy the request).
    Continue,
    /// Stop here and answer the client with this response. Later `rewrite`/`access` plugins do
    /// not run; `header_filter`, `body_filter` and `log` of every plugin that was matched still
    /// do.
    Respond(Reply),
    /// Wait for the future, then run the step it resolves to on the context; what that step
    /// returns decides (it may wait again).
    Wait(Pending),
}

/// The step a [`Flow::Wait`] resumes with, run on the request's context.
pub type Resume = Box<dyn FnOnce(&mut Ctx) -> Flow + Send>;

/// The future of a [`Flow::Wait`].
pub type Pending = Pin<Box<dyn Future<Output = Resume> + Send>>;

impl Flow {
    /// Waits for `fut` and then decides with its result (a future that needs nothing of the
    /// context afterwards).
    pub fn wait(fut: impl Future<Output = Flow> + Send + 'static) -> Flow {
        Flow::Wait(Box::pin(async move {
            let flow = fut.await;
            Box::new(move |_: &mut Ctx| flow) as Resume
        }))
    }

    /// Waits for `fut`, then runs `then` with its output on the context.
    pub fn wait_then<T: Send + 'static>(
        fut: impl Future<Output = T> + Send + 'static,
        then: impl FnOnce(&mut Ctx, T) -> Flow + Send + 'static,
    ) -> Flow {
        Flow::Wait(Box::pin(async move {
            let out = fut.await;
            Box::new(move |ctx: &mut Ctx| then(ctx, out)) as Resume
        }))
    }

    /// The reply of [`Flow::Respond`], if it is one.
    pub fn reply(&self) -> Option<&Reply> {
        match self {
            Flow::Respond(r) => Some(r),
            _ => None,
        }
    }

    /// Whether this is [`Flow::Continue`].
    pub fn is_continue(&self) -> bool {
        matches!(self, Flow::Continue)
    }
}

impl fmt::Debug for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Flow::Continue => f.write_str("Continue"),
            Flow::Respond(r) => f.debug_tuple("Respond").field(r).finish(),
            Flow::Wait(_) => f.write_str("Wait(..)"),
        }
    }
}

/// Two flows are equal when both continue or both answer the same reply; a wait equals nothing.
impl PartialEq for Flow {
    fn eq(&self, other: &Flow) -> bool {
        match (self, other) {
            (Flow::Continue, Flow::Continue) => true,
            (Flow::Respond(a), Flow::Respond(b)) => a == b,
            _ => false,
        }
    }
}

/// A compiled plugin instance. Every phase has a default that does nothing, so a plugin
/// implements only the phases it takes part in.
pub trait Plugin: Send + Sync + fmt::Debug {
    /// The plugin name, e.g. `key-auth`.
    fn name(&self) -> &'static str;

    /// APISIX priority: higher runs first (a configuration's `_meta.priority` overrides it).
    fn priority(&self) -> i32;

    /// Whether this is an auth plugin (`type = 'auth'`): such a plugin attaches the consumer in
    /// `rewrite`, and is not run again when the consumer's plugins are merged in. Default: no.
    fn is_auth(&self) -> bool {
        false
    }

    /// Runs first, after the route matched: authentication, URI and header rewriting.
    /// Default: [`Flow::Continue`].
    fn rewrite(&self, _ctx: &mut Ctx) -> Flow {
        Flow::Continue
    }

    /// Runs after every `rewrite` and the consumer merge: access control and rate limits.
    /// Default: [`Flow::Continue`].
    fn access(&self, _ctx: &mut Ctx) -> Flow {
        Flow::Continue
    }

    /// Runs on the response head before it is sent (`ctx.response` is set); may change the
    /// status and headers. A plugin that will change the body removes `Content-Length` here.
    /// Default: nothing.
    fn header_filter(&self, _ctx: &mut Ctx) {}

    /// Runs on each chunk of the response body as it passes (`chunk` may be replaced, emptied
    /// or grown), and once more with `eof` set (and usually an empty chunk) when the body ends.
    /// Default: nothing.
    fn body_filter(&self, _ctx: &mut Ctx, _chunk: &mut Bytes, _eof: bool) {}

    /// Runs once the response is complete (metrics, loggers); `ctx.log` says how it went.
    /// Default: nothing.
    fn log(&self, _ctx: &Ctx) {}

    /// Whether this plugin reads the client's request body ([`Ctx::request_body`]); the gateway
    /// then reads it whole (up to its body limit) before the first phase. Default: no.
    fn wants_request_body(&self) -> bool {
        false
    }

    /// The phases this plugin has work in. A chain skips a phase none of its plugins has, and a
    /// response whose chains have no `body_filter` is passed on as it is. A plugin that leaves
    /// a phase out here is not called in it. Default: every phase.
    fn phases(&self) -> Phases {
        Phases::ALL
    }

    /// Whether this plugin reads the matched route's URI pattern and host ([`Ctx::matched`]);
    /// the gateway then copies them into the context. Default: no.
    fn wants_matched_route(&self) -> bool {
        false
    }
}

/// How many phases a [`Phases`] set can hold.
pub(crate) const PHASE_COUNT: usize = 5;

/// A set of plugin phases (see [`Plugin::phases`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Phases(u8);

impl Phases {
    /// No phase.
    pub const NONE: Phases = Phases(0);
    /// `rewrite`.
    pub const REWRITE: Phases = Phases(1);
    /// `access`.
    pub const ACCESS: Phases = Phases(1 << 1);
    /// `header_filter`.
    pub const HEADER_FILTER: Phases = Phases(1 << 2);
    /// `body_filter`.
    pub const BODY_FILTER: Phases = Phases(1 << 3);
    /// `log`.
    pub const LOG: Phases = Phases(1 << 4);
    /// Every phase.
    pub const ALL: Phases = Phases(0b1_1111);

    /// The single phase at bit position `bit` (below [`PHASE_COUNT`]).
    pub(crate) const fn from_bit(bit: usize) -> Phases {
        Phases(1 << bit)
    }

    /// The bit position of a single phase.
    pub(crate) const fn bit(self) -> usize {
        self.0.trailing_zeros() as usize
    }

    /// Both sets.
    pub const fn with(self, other: Phases) -> Phases {
        Phases(self.0 | other.0)
    }

    /// Whether every phase of `other` is in this set.
    pub const fn has(self, other: Phases) -> bool {
        self.0 & other.0 == other.0
    }
}

/// State shared by the plugin instances of every snapshot of a node: the next compile takes it
/// from the snapshot it replaces, so a configuration swap does not reset it.
#[derive(Debug, Default)]
pub struct PluginState {
    /// limit-count's local counters.
    pub counters: Arc<Counters>,
    /// limit-req's leaky buckets.
    pub limit_req: Arc<crate::limit_req::Buckets>,
    /// limit-conn's requests in flight per key.
    pub limit_conn: Arc<crate::limit_conn::Connections>,
    /// api-breaker's per-path breakers.
    pub api_breaker: Arc<crate::api_breaker::Breakers>,
    /// Redis connection pools of the `redis` and `redis-cluster` policies.
    pub redis: Arc<crate::redis::Pools>,
    /// The prometheus plugin's per-route request counters.
    pub prometheus: Arc<crate::prometheus::Registry>,
    /// The batch loggers' pending entries, per plugin.
    pub log_backlog: Arc<crate::batch::Backlogs>,
}

/// What a plugin's `build` function gets besides its configuration.
#[derive(Debug, Clone, Copy)]
pub struct BuildEnv<'a> {
    /// Store key of the object the configuration belongs to, e.g. `ws/default/plugin_configs/1`
    /// (APISIX's `_meta.parent.resource_key`; limit-count keys its counters by it).
    pub owner: &'a str,
    /// Cross-snapshot state.
    pub state: &'a PluginState,
    /// The plugin's metadata (`plugin_metadata/<name>`), schema defaults applied, if any.
    pub metadata: Option<&'a Value>,
    /// Builds an upstream from an upstream configuration (traffic-split's inline upstreams) into
    /// what [`UpstreamPick::Built`](crate::UpstreamPick) carries; `None` where no data plane
    /// compiles (unit tests), and the plugin then refuses inline upstreams.
    pub upstreams: Option<&'a UpstreamBuilder>,
}

/// Builds an upstream from its configuration into the data plane's compiled form (type-erased);
/// the error says what is wrong with it.
pub struct UpstreamBuilder(pub Box<BuildUpstreamFn>);

/// The function inside an [`UpstreamBuilder`].
pub type BuildUpstreamFn =
    dyn Fn(&Value) -> Result<Arc<dyn std::any::Any + Send + Sync>, String> + Send + Sync;

impl UpstreamBuilder {
    /// Builds one upstream.
    pub fn build(&self, conf: &Value) -> Result<Arc<dyn std::any::Any + Send + Sync>, String> {
        (self.0)(conf)
    }
}

impl fmt::Debug for UpstreamBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UpstreamBuilder")
    }
}

/// Builds a plugin instance from a configuration that passed the plugin's schema and checks
/// (defaults applied). The error says why the configuration cannot run here.
pub type BuildFn = fn(conf: &Value, env: &BuildEnv<'_>) -> Result<Arc<dyn Plugin>, String>;

/// Parses a checked configuration into a plugin's typed config; the error names the field.
pub fn typed<T: serde::de::DeserializeOwned>(conf: &Value) -> Result<T, String> {
    portico_model::types::parse(conf)
}
