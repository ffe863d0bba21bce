//! The plugins of one matched route and the three calls the gateway makes per request.
//!
//! ```text
//! route matched ─► ctx = Ctx::new(method, uri, headers, remote)      (+ path, host, port, scheme)
//!                  match plugins.access_phase(&mut ctx).await {
//!                      Flow::Respond(reply) => response = reply           (no upstream)
//!                      Flow::Continue => send ctx.method / ctx.headers /
//!                          ctx.upstream_uri or ctx.uri / ctx.upstream_host upstream
//!                  }
//!                  plugins.header_filter_phase(&mut ctx, &mut status, &mut headers)
//!                                                   (on the reply or the upstream response)
//!                  send the response
//!                  plugins.log_phase(&mut ctx)          (after the body went out)
//! ```
//!
//! `access_phase` is APISIX's `http_access_phase` from the route match on (reference §0 #6/#7,
//! §5.1): global `rewrite` → route `rewrite` (auth plugins attach the consumer) → consumer merge
//! and `rewrite` of the plugins the consumer brought → global `access` → route `access`.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};

use crate::chain::Chain;
use crate::consumer::ConsumerIndex;
use crate::ctx::{Ctx, ResponseHead};
use crate::reply::Reply;
use crate::runtime::{Flow, Phases};

/// Everything plugin-related a matched route needs.
#[derive(Debug)]
pub struct RoutePlugins {
    /// `$route_id`.
    pub route_id: Arc<str>,
    /// `$route_name`.
    pub route_name: Option<Arc<str>>,
    /// The workspace's global rules.
    pub global: Arc<Chain>,
    /// The route's plugin template, compiled; `Err` when the template is missing or was left
    /// out (the route answers 503, APISIX's `plugin_config_id` not found).
    pub route: Result<Arc<Chain>, String>,
    /// The workspace's consumers, for auth plugins.
    pub consumers: Arc<ConsumerIndex>,
}

impl RoutePlugins {
    /// No plugins at all: every phase is a no-op.
    pub fn none(route_id: &str) -> RoutePlugins {
        RoutePlugins {
            route_id: Arc::from(route_id),
            route_name: None,
            global: Arc::new(Chain::empty()),
            route: Ok(Arc::new(Chain::empty())),
            consumers: Arc::new(ConsumerIndex::new()),
        }
    }

    /// Whether no phase can do anything (no global rule, no route plugin).
    pub fn is_empty(&self) -> bool {
        self.global.is_empty() && self.route.as_ref().is_ok_and(|c| c.is_empty())
    }

    /// Whether a global rule or the route's template has a plugin that reads the matched
    /// route's URI pattern and host ([`Ctx::matched`]): the gateway copies them only then.
    pub fn wants_matched_route(&self) -> bool {
        self.global.wants_matched_route()
            || self.route.as_ref().is_ok_and(|c| c.wants_matched_route())
    }

    /// Runs `rewrite` and `access` of the global rules and the route (merging the consumer's
    /// plugins in once an auth plugin attached one). [`Flow::Respond`] carries the answer to
    /// send instead of proxying; run [`RoutePlugins::header_filter_phase`] on it too.
    ///
    /// Async so that plugins that wait (Redis-backed limits) fit in later without changing the
    /// caller; today it completes without yielding.
    pub async fn access_phase(&self, ctx: &mut Ctx) -> Flow {
        ctx.route_id = self.route_id.clone();
        ctx.route_name.clone_from(&self.route_name);
        ctx.global_rules = true;
        let route = match &self.route {
            Ok(chain) => chain,
            Err(e) => {
                tracing::error!("route {}: {e}", self.route_id);
                return Flow::Respond(Reply::page(StatusCode::SERVICE_UNAVAILABLE));
            }
        };
        ctx.consumers = Some(self.consumers.clone());
        ctx.route_chain = Some(route.clone());
        if self.global.runs(Phases::REWRITE) {
            if let f @ Flow::Respond(_) = self.global.rewrite(ctx, false).await {
                return f;
            }
        }
        if route.runs(Phases::REWRITE) {
            if let f @ Flow::Respond(_) = route.rewrite(ctx, false).await {
                return f;
            }
        }
        let merge = match ctx.consumer.as_ref() {
            Some(consumer) => route.merged(consumer),
            None => Ok(None),
        };
        let merged = match merge {
            Err(e) => {
                tracing::error!("route {}: {e}", self.route_id);
                return Flow::Respond(Reply::page(StatusCode::SERVICE_UNAVAILABLE));
            }
            Ok(merged) => merged,
        };
        if let Some(merged) = &merged {
            ctx.route_chain = Some(merged.clone());
            if merged.runs(Phases::REWRITE) {
                if let f @ Flow::Respond(_) = merged.rewrite(ctx, true).await {
                    return f;
                }
            }
        }
        let effective = merged.as_ref().unwrap_or(route);
        if self.global.runs(Phases::ACCESS) {
            if let f @ Flow::Respond(_) = self.global.access(ctx).await {
                return f;
            }
        }
        if !effective.runs(Phases::ACCESS) {
            return Flow::Continue;
        }
        effective.access(ctx).await
    }

    /// Whether a plugin of this request's chains (the global rules and the route's chain, as
    /// merged with its consumer's) has work in `phase`; `false` before the request phases ran.
    pub fn has(&self, ctx: &Ctx, phase: Phases) -> bool {
        (ctx.global_rules && self.global.has(phase))
            || ctx.route_chain.as_ref().is_some_and(|c| c.has(phase))
    }

    /// Whether a plugin of the global rules or the route's template reads the request body
    /// (then the gateway reads it before [`RoutePlugins::access_phase`]).
    pub fn wants_request_body(&self) -> bool {
        self.global.wants_request_body()
            || self.route.as_ref().is_ok_and(|c| c.wants_request_body())
    }

    /// Runs `header_filter` of the global rules, then of the route's (merged) chain, on the
    /// response about to be sent — the upstream's or a [`Flow::Respond`] reply. First lays the
    /// response headers plugins set earlier (`ctx.response_headers`) over `headers`. Plugins
    /// may change `status` and `headers`. Afterwards `ctx.response` keeps the status (for `log`);
    /// the headers are handed back.
    pub fn header_filter_phase(
        &self,
        ctx: &mut Ctx,
        status: &mut StatusCode,
        headers: &mut HeaderMap,
    ) {
        if !ctx.response_headers.is_empty() {
            let mut current = None;
            for (name, value) in std::mem::take(&mut ctx.response_headers) {
                // The first value of a name replaces the response's; the others follow it.
                match name {
                    Some(name) => {
                        headers.insert(name.clone(), value);
                        current = Some(name);
                    }
                    None => {
                        if let Some(name) = &current {
                            headers.append(name.clone(), value);
                        }
                    }
                }
            }
        }
        let global = ctx.global_rules && self.global.runs(Phases::HEADER_FILTER);
        let route = ctx
            .route_chain
            .as_ref()
            .is_some_and(|c| c.runs(Phases::HEADER_FILTER));
        // Quota headers noted in `access` are there for every `header_filter`, as APISIX sets
        // them; with none to run, the gateway may write them with the head.
        let filters = global || route;
        if filters || !ctx.late_headers {
            if let Some(note) = ctx.quota.take() {
                note.write(headers);
            }
        }
        if !filters {
            ctx.response = Some(ResponseHead {
                status: *status,
                headers: HeaderMap::new(),
            });
            return;
        }
        ctx.response = Some(ResponseHead {
            status: *status,
            headers: std::mem::take(headers),
        });
        // The context names the chain once the request phases ran on it.
        if global {
            self.global.header_filter(ctx);
        }
        if let Some(chain) = ctx.route_chain.take_if(|_| route) {
            chain.header_filter(ctx);
            ctx.route_chain = Some(chain);
        }
        if let Some(head) = ctx.response.as_mut() {
            *status = head.status;
            *headers = std::mem::take(&mut head.headers);
        }
    }

    /// Runs `body_filter` of the global rules, then of the route's (merged) chain, on one chunk
    /// of the response body; `eof` marks the call after the last chunk.
    pub fn body_filter_phase(&self, ctx: &mut Ctx, chunk: &mut Bytes, eof: bool) {
        // The context names the chain once the request phases ran on it.
        if ctx.global_rules && self.global.runs(Phases::BODY_FILTER) {
            self.global.body_filter(ctx, chunk, eof);
        }
        if let Some(route) = ctx.route_chain.take_if(|c| c.runs(Phases::BODY_FILTER)) {
            route.body_filter(ctx, chunk, eof);
            ctx.route_chain = Some(route);
        }
    }

    /// Runs `log` of the global rules, then of the route's (merged) chain, once the response
    /// has been sent.
    pub fn log_phase(&self, ctx: &mut Ctx) {
        // The context names the chain once the request phases ran on it.
        if ctx.global_rules && self.global.runs(Phases::LOG) {
            self.global.log(ctx);
        }
        // Taken out while it runs on the context (no reference count to touch), then put back.
        if let Some(route) = ctx.route_chain.take_if(|c| c.runs(Phases::LOG)) {
            route.log(ctx);
            ctx.route_chain = Some(route);
        }
    }
}
