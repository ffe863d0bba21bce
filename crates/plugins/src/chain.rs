//! Compiled plugin chains: the plugins of one object (plugin template, global rules, consumer,
//! consumer group) in run order, with their `_meta` (reference §2.9) applied, and the consumer
//! merge (reference §3.9).
//!
//! * order: priority, highest first; a configuration's `_meta.priority` replaces its plugin's
//!   priority (APISIX re-sorts the object's list by it); ties go by name;
//! * `_meta.disable`: the plugin is left out when the chain is built;
//! * `_meta.filter`: evaluated once per request, the first time the entry could run; false
//!   skips the plugin in every phase of that request;
//! * `_meta.error_response`: replaces the body of any answer of this plugin with status ≥ 400.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use portico_expr::Expr;

use crate::consumer::{Consumer, GroupLink};
use crate::ctx::Ctx;
use crate::runtime::{Flow, Phases, Plugin, PHASE_COUNT};

/// Merged chains kept per route chain before the cache is cleared (bounds memory when many
/// consumers, or many consumer revisions, go through one template).
const MERGE_CACHE_MAX: usize = 4096;

static NEXT_ENTRY_ID: AtomicU64 = AtomicU64::new(1);

/// One plugin of a chain: the instance and its `_meta`.
#[derive(Debug, Clone)]
pub struct Entry {
    plugin: Arc<dyn Plugin>,
    priority: i32,
    filter: Option<Arc<Expr>>,
    error_response: Option<Arc<[u8]>>,
    /// Unique per built entry; keys the per-request `_meta.filter` result.
    id: u64,
    /// The plugin's phases.
    phases: Phases,
    /// Added by the consumer merge (the route chain did not have this plugin).
    from_consumer: bool,
}

impl Entry {
    /// An entry for `plugin`, with its `_meta` parts (`priority` overrides the plugin's).
    pub fn new(
        plugin: Arc<dyn Plugin>,
        priority: Option<i32>,
        filter: Option<Expr>,
        error_response: Option<Vec<u8>>,
    ) -> Entry {
        Entry {
            priority: priority.unwrap_or_else(|| plugin.priority()),
            phases: plugin.phases(),
            plugin,
            filter: filter.map(Arc::new),
            error_response: error_response.map(Arc::from),
            id: NEXT_ENTRY_ID.fetch_add(1, Ordering::Relaxed),
            from_consumer: false,
        }
    }

    /// The plugin name.
    pub fn name(&self) -> &'static str {
        self.plugin.name()
    }

    /// The priority the entry runs at.
    pub fn priority(&self) -> i32 {
        self.priority
    }

    /// The plugin instance.
    pub fn plugin(&self) -> &Arc<dyn Plugin> {
        &self.plugin
    }

    #[inline]
    fn runs(&self, ctx: &mut Ctx) -> bool {
        match &self.filter {
            None => true,
            Some(expr) => ctx.cached_filter(self.id, |c| expr.eval(c)),
        }
    }

    /// Whether the entry runs in `phase` of this request. An entry without work in the phase is
    /// skipped, except that its `_meta.filter` is still evaluated when this is the first phase it
    /// could run in (the filter reads the request as it is then).
    #[inline]
    fn runs_in(&self, phase: Phases, ctx: &mut Ctx) -> bool {
        if self.phases.has(phase) {
            self.runs(ctx)
        } else {
            if self.filter.is_some() {
                self.runs(ctx);
            }
            false
        }
    }

    fn answer(&self, flow: Flow) -> Flow {
        match (flow, &self.error_response) {
            (Flow::Respond(mut reply), Some(body)) if reply.status.as_u16() >= 400 => {
                reply.replace_body(body);
                Flow::Respond(reply)
            }
            (flow, _) => flow,
        }
    }
}

/// Follows a phase's [`Flow::Wait`]s until it continues or answers.
async fn settle(ctx: &mut Ctx, mut flow: Flow) -> Flow {
    while let Flow::Wait(pending) = flow {
        let resume = pending.await;
        flow = resume(ctx);
    }
    flow
}

/// Cache key of a merged chain: the consumer and its group, at their revisions.
type MergeKey = (String, i64, Option<(String, i64)>);

/// An ordered list of plugin entries.
#[derive(Debug, Default)]
pub struct Chain {
    entries: Vec<Entry>,
    /// The phases any entry has work in.
    phases: Phases,
    /// An entry has a `_meta.filter` (evaluated in the first phase the entry could run in).
    filtered: bool,
    /// Per phase (by the bit's position in [`Phases`]), the positions of the entries to visit
    /// in it: those with work in it, and those with a `_meta.filter`.
    visits: [Box<[u16]>; PHASE_COUNT],
    /// A plugin reads the matched route's URI pattern and host ([`Ctx::matched`]).
    wants_matched_route: bool,
    merged: RwLock<HashMap<MergeKey, Arc<Chain>>>,
}

impl Chain {
    /// A chain of `entries`, sorted into run order.
    pub fn new(mut entries: Vec<Entry>) -> Chain {
        entries.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.name().cmp(b.name())));
        let visits = std::array::from_fn(|bit| {
            let phase = Phases::from_bit(bit);
            (0..entries.len())
                .filter(|&i| entries[i].phases.has(phase) || entries[i].filter.is_some())
                .filter_map(|i| u16::try_from(i).ok())
                .collect()
        });
        Chain {
            phases: entries
                .iter()
                .fold(Phases::NONE, |all, e| all.with(e.phases)),
            filtered: entries.iter().any(|e| e.filter.is_some()),
            visits,
            wants_matched_route: entries.iter().any(|e| e.plugin.wants_matched_route()),
            entries,
            merged: RwLock::default(),
        }
    }

    /// A chain without plugins.
    pub fn empty() -> Chain {
        Chain::default()
    }

    /// The entries to visit in `phase` (one phase), in run order.
    #[inline]
    fn visiting(&self, phase: Phases) -> impl Iterator<Item = &Entry> {
        self.visits[phase.bit()]
            .iter()
            .filter_map(|&i| self.entries.get(usize::from(i)))
    }

    /// Whether a plugin of the chain reads the matched route's URI pattern and host.
    pub fn wants_matched_route(&self) -> bool {
        self.wants_matched_route
    }

    /// The entries in run order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Plugin names in run order.
    pub fn names(&self) -> Vec<&'static str> {
        self.entries.iter().map(Entry::name).collect()
    }

    /// Number of plugins.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the chain has no plugin.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether a plugin of the chain has work in `phase`.
    #[inline]
    pub fn has(&self, phase: Phases) -> bool {
        self.phases.has(phase)
    }

    /// Whether running `phase` on this chain can do anything (a plugin has work in it, or a
    /// `_meta.filter` may be due).
    #[inline]
    pub fn runs(&self, phase: Phases) -> bool {
        self.phases.has(phase) || self.filtered
    }

    /// Runs `rewrite` of every entry; with `consumer_pass`, only of the non-auth entries the
    /// consumer merge added (APISIX's `rewrite_in_consumer`). Never returns [`Flow::Wait`].
    pub async fn rewrite(&self, ctx: &mut Ctx, consumer_pass: bool) -> Flow {
        for e in self.visiting(Phases::REWRITE) {
            if consumer_pass && (!e.from_consumer || e.plugin.is_auth()) {
                continue;
            }
            if e.runs_in(Phases::REWRITE, ctx) {
                let flow = match e.plugin.rewrite(ctx) {
                    flow @ Flow::Wait(_) => settle(ctx, flow).await,
                    flow => flow,
                };
                if let Flow::Respond(r) = flow {
                    return e.answer(Flow::Respond(r));
                }
            }
        }
        Flow::Continue
    }

    /// Runs `access` of every entry until one answers. Never returns [`Flow::Wait`].
    pub async fn access(&self, ctx: &mut Ctx) -> Flow {
        for e in self.visiting(Phases::ACCESS) {
            if e.runs_in(Phases::ACCESS, ctx) {
                let flow = match e.plugin.access(ctx) {
                    flow @ Flow::Wait(_) => settle(ctx, flow).await,
                    flow => flow,
                };
                if let Flow::Respond(r) = flow {
                    return e.answer(Flow::Respond(r));
                }
            }
        }
        Flow::Continue
    }

    /// Runs `header_filter` of every entry.
    pub fn header_filter(&self, ctx: &mut Ctx) {
        for e in self.visiting(Phases::HEADER_FILTER) {
            if e.runs_in(Phases::HEADER_FILTER, ctx) {
                e.plugin.header_filter(ctx);
            }
        }
    }

    /// Runs `body_filter` of every entry on one chunk of the response body.
    pub fn body_filter(&self, ctx: &mut Ctx, chunk: &mut Bytes, eof: bool) {
        for e in self.visiting(Phases::BODY_FILTER) {
            if e.runs_in(Phases::BODY_FILTER, ctx) {
                e.plugin.body_filter(ctx, chunk, eof);
            }
        }
    }

    /// Whether a plugin of the chain reads the request body.
    pub fn wants_request_body(&self) -> bool {
        self.entries.iter().any(|e| e.plugin.wants_request_body())
    }

    /// Runs `log` of every entry whose filter passed.
    pub fn log(&self, ctx: &mut Ctx) {
        for e in self.visiting(Phases::LOG) {
            if e.runs_in(Phases::LOG, ctx) {
                e.plugin.log(ctx);
            }
        }
    }

    /// The chain the rest of a request runs once `consumer` authenticated on this (route)
    /// chain (`apisix/plugin.lua:merge_consumer_route`): the consumer group's plugins replace
    /// same-named route plugins, then the consumer's replace both. Auth configurations of the
    /// consumer are credentials, not plugins to run: the route's auth entry stays (it ran in
    /// `rewrite` and runs in no later phase).
    ///
    /// `Ok(None)`: nothing to merge, keep this chain. `Err`: the consumer's group is missing
    /// (APISIX answers 503). Merged chains are cached per consumer and group revision.
    pub fn merged(&self, consumer: &Consumer) -> Result<Option<Arc<Chain>>, String> {
        let group = match &consumer.group {
            None => None,
            Some(GroupLink::Ready(g)) => Some(g),
            Some(GroupLink::Missing(id)) => {
                return Err(format!("failed to fetch consumer group config by id: {id}"))
            }
        };
        let group_empty = group.is_none_or(|g| g.plugins.is_empty());
        if consumer.plugins.is_empty() && group_empty {
            return Ok(None);
        }
        let key: MergeKey = (
            consumer.key.clone(),
            consumer.revision,
            group.map(|g| (g.key.clone(), g.revision)),
        );
        if let Some(hit) = self.read_cache().get(&key) {
            return Ok(Some(hit.clone()));
        }
        let mut by_name: Vec<Entry> = self.entries.clone();
        let mut overlay = |from: &Chain| {
            for e in &from.entries {
                let mut e = e.clone();
                match by_name.iter().position(|x| x.name() == e.name()) {
                    Some(i) => {
                        // Replacing a route plugin keeps its "already rewritten" status.
                        e.from_consumer = by_name[i].from_consumer;
                        by_name[i] = e;
                    }
                    None => {
                        e.from_consumer = true;
                        by_name.push(e);
                    }
                }
            }
        };
        if let Some(g) = group {
            overlay(&g.plugins);
        }
        overlay(&consumer.plugins);
        let chain = Arc::new(Chain::new(by_name));
        let mut cache = self.merged.write().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MERGE_CACHE_MAX {
            cache.clear();
        }
        cache.insert(key, chain.clone());
        Ok(Some(chain))
    }

    fn read_cache(&self) -> std::sync::RwLockReadGuard<'_, HashMap<MergeKey, Arc<Chain>>> {
        self.merged.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Number of merged chains cached (tests).
    pub fn merged_cached(&self) -> usize {
        self.read_cache().len()
    }
}
