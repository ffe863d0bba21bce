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
//! | `log` | after the response was sent | no |
//!
//! `body_filter` will join as `fn body_filter(&self, ctx: &mut Ctx, chunk: &mut Vec<u8>, eof:
//! bool)` with a no-op default, run by the chain like `header_filter`; nothing else changes.

use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use crate::counters::Counters;
use crate::ctx::Ctx;
use crate::reply::Reply;

/// What a `rewrite` or `access` phase decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flow {
    /// Go on with the next plugin (and, after the last one, proxy the request).
    Continue,
    /// Stop here and answer the client with this response. Later `rewrite`/`access` plugins do
    /// not run; `header_filter` and `log` of every plugin that was matched still do.
    Respond(Reply),
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
    /// status and headers. Default: nothing.
    fn header_filter(&self, _ctx: &mut Ctx) {}

    /// Runs once the response is complete (metrics, loggers). Default: nothing.
    fn log(&self, _ctx: &Ctx) {}
}

/// State shared by the plugin instances of every snapshot of a node: the next compile takes it
/// from the snapshot it replaces, so a configuration swap does not reset it.
#[derive(Debug, Default)]
pub struct PluginState {
    /// limit-count's local counters.
    pub counters: Arc<Counters>,
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
}

/// Builds a plugin instance from a configuration that passed the plugin's schema and checks
/// (defaults applied). The error says why the configuration cannot run here.
pub type BuildFn = fn(conf: &Value, env: &BuildEnv<'_>) -> Result<Arc<dyn Plugin>, String>;

/// Parses a checked configuration into a plugin's typed config; the error names the field.
pub fn typed<T: serde::de::DeserializeOwned>(conf: &Value) -> Result<T, String> {
    portico_model::types::parse(conf)
}
