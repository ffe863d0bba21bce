//! The plugin side of a snapshot: per workspace, the compiled plugin templates, the global rules
//! chain and the consumer index (consumers, credentials, consumer groups), reusing whatever did
//! not change since the previous snapshot.
//!
//! Reuse rules: a template's chain while its revision is unchanged; a workspace's global chain
//! while the set of its global rules and their revisions is; a workspace's consumer index while
//! its consumers, credentials and groups are; a consumer's or group's own chain while its
//! revision is — each only while the workspace's plugin metadata is unchanged too. Objects that fail to compile are left out with a
//! [`Problem`], as APISIX's data plane skips objects its checker refuses: a route whose
//! template is left out answers 503, a consumer left out cannot authenticate, a group left out
//! makes its consumers' requests answer 503, a global rule left out does not apply.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, LazyLock};

use portico_model::{Kind, Registry};
use portico_plugins::{Chain, Compiler, ConsumerIndex, PluginState, UpstreamBuilder};
use serde_json::{Map, Value};

use crate::consumers::IndexBuild;
use crate::{Item, Problem};

/// A workspace-wide part: the fingerprint of its inputs, the part, and its problems (reported
/// again by every snapshot that reuses it).
type Cached<T> = (u64, T, Vec<Problem>);

/// A compiled chain at a revision and metadata fingerprint; `Err` says why it was left out.
pub(crate) type Revised<T> = (i64, u64, T);

/// What one snapshot keeps for the next one to reuse.
#[derive(Debug, Default)]
pub struct PluginCache {
    /// State that outlives snapshots (rate-limit counters), handed to every plugin instance.
    pub state: Arc<PluginState>,
    /// template key → (revision, metadata fingerprint, chain or why it was left out).
    templates: HashMap<String, Revised<Result<Arc<Chain>, String>>>,
    /// workspace → global rules chain.
    globals: HashMap<String, Cached<Arc<Chain>>>,
    /// workspace → consumer index.
    indexes: HashMap<String, Cached<Arc<ConsumerIndex>>>,
    /// consumer or group key → (revision, metadata fingerprint, chain).
    pub(crate) owned: HashMap<String, Revised<Arc<Chain>>>,
}

/// The compiled plugin parts of one workspace.
#[derive(Debug, Clone, Default)]
pub struct WorkspacePlugins {
    /// Global rules.
    pub global: Arc<Chain>,
    /// Plugin templates by id; `Err` for one left out.
    pub templates: HashMap<String, Result<Arc<Chain>, String>>,
    /// Consumers for auth plugins.
    pub consumers: Arc<ConsumerIndex>,
}

impl WorkspacePlugins {
    /// The route chain for `plugin_config_id`: empty without one; `Err` (503) when the
    /// template is missing or was left out.
    pub fn template(&self, id: Option<&str>) -> Result<Arc<Chain>, String> {
        let Some(id) = id else {
            return Ok(no_template());
        };
        match self.templates.get(id) {
            Some(Ok(chain)) => Ok(chain.clone()),
            Some(Err(e)) => Err(format!("plugin template {id} was left out: {e}")),
            None => Err(format!("failed to fetch plugin config by id: {id}")),
        }
    }
}

/// The route chain of every route without a template: one shared empty chain rather than one per
/// route (100,000 routes would hold 100,000 of them).
fn no_template() -> Arc<Chain> {
    static EMPTY: LazyLock<Arc<Chain>> = LazyLock::new(|| Arc::new(Chain::empty()));
    EMPTY.clone()
}

/// The stored objects of one workspace that plugins come from.
#[derive(Default)]
pub(crate) struct Objects<'a> {
    pub templates: Vec<(&'a str, &'a Item)>,
    pub global_rules: Vec<(&'a str, &'a Item)>,
    pub consumers: Vec<(&'a str, &'a Item)>,
    pub credentials: Vec<(&'a str, &'a Item)>,
    pub groups: Vec<(&'a str, &'a Item)>,
    pub metadata: Vec<(&'a str, &'a Item)>,
}

fn fingerprint<'a>(items: impl Iterator<Item = &'a (&'a str, &'a Item)>, extra: u64) -> u64 {
    let mut h = DefaultHasher::new();
    extra.hash(&mut h);
    for (key, item) in items {
        key.hash(&mut h);
        item.mod_revision.hash(&mut h);
    }
    h.finish()
}

fn plugins_of(value: &Value) -> Map<String, Value> {
    match value.get("plugins") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    }
}

pub(crate) fn id_of(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

/// Compiles the plugin parts of every workspace of `config`. Plugin metadata is read from
/// `plugin_metadata/<name>` (cluster-wide) and `ws/<ws>/plugin_metadata/<name>` (which wins
/// for its workspace).
pub(crate) fn compile<'a>(
    config: &'a BTreeMap<String, Item>,
    workspace_of: impl Fn(&'a str) -> Option<(&'a str, Kind)>,
    previous: Option<&PluginCache>,
    registry: &Registry,
    decrypted: &dyn Fn(Kind, &Item) -> Value,
    problems: &mut Vec<Problem>,
) -> (PluginCache, HashMap<String, WorkspacePlugins>) {
    let state: Arc<PluginState> = previous.map_or_else(Arc::default, |p| p.state.clone());
    let mut cluster_metadata = Vec::new();
    let mut by_ws: BTreeMap<&str, Objects<'_>> = BTreeMap::new();
    for (key, item) in config {
        if key.starts_with("plugin_metadata/") {
            cluster_metadata.push((key.as_str(), item));
            continue;
        }
        let Some((ws, kind)) = workspace_of(key) else {
            continue;
        };
        let objects = by_ws.entry(ws).or_default();
        let list = match kind {
            Kind::PluginConfig => &mut objects.templates,
            Kind::GlobalRule => &mut objects.global_rules,
            Kind::Consumer => &mut objects.consumers,
            Kind::Credential => &mut objects.credentials,
            Kind::ConsumerGroup => &mut objects.groups,
            Kind::PluginMetadata => &mut objects.metadata,
            _ => continue,
        };
        list.push((key.as_str(), item));
    }
    let mut next = PluginCache {
        state: state.clone(),
        ..PluginCache::default()
    };
    let upstreams = UpstreamBuilder(Box::new(inline_upstream));
    let mut out = HashMap::new();
    for (ws, objects) in &by_ws {
        let mut metadata = HashMap::new();
        for (key, item) in cluster_metadata.iter().chain(&objects.metadata) {
            metadata.insert(
                id_of(key).to_string(),
                decrypted(Kind::PluginMetadata, item),
            );
        }
        let mut build = WorkspaceBuild {
            ws,
            compiler: Compiler {
                registry,
                state: &state,
                metadata: &metadata,
                upstreams: Some(&upstreams),
            },
            meta_print: fingerprint(cluster_metadata.iter().chain(&objects.metadata), 0),
            previous,
            decrypted,
            next: &mut next,
            problems,
        };
        out.insert(ws.to_string(), build.run(objects));
    }
    // Consumer and group chains of reused indexes are still current: keep them for reuse.
    if let Some(p) = previous {
        for (key, entry) in &p.owned {
            if config.contains_key(key) && !next.owned.contains_key(key) {
                next.owned.insert(key.clone(), entry.clone());
            }
        }
    }
    (next, out)
}

/// Compiles one workspace's plugin parts into `next`.
struct WorkspaceBuild<'b> {
    ws: &'b str,
    compiler: Compiler<'b>,
    meta_print: u64,
    previous: Option<&'b PluginCache>,
    decrypted: &'b dyn Fn(Kind, &Item) -> Value,
    next: &'b mut PluginCache,
    problems: &'b mut Vec<Problem>,
}

impl WorkspaceBuild<'_> {
    fn run(&mut self, objects: &Objects<'_>) -> WorkspacePlugins {
        let mut parts = WorkspacePlugins::default();
        for (key, item) in &objects.templates {
            let chain = self.template(key, item);
            if let Err(e) = &chain {
                self.problems.push(Problem {
                    key: key.to_string(),
                    error: e.clone(),
                });
            }
            parts.templates.insert(id_of(key).to_string(), chain);
        }
        parts.global = self.global(objects);
        parts.consumers = self.consumers(objects);
        parts
    }

    fn template(&mut self, key: &str, item: &Item) -> Result<Arc<Chain>, String> {
        let reused = self
            .previous
            .and_then(|p| p.templates.get(key))
            .filter(|(rev, meta, _)| *rev == item.mod_revision && *meta == self.meta_print)
            .map(|(_, _, chain)| chain.clone());
        let chain = reused.unwrap_or_else(|| {
            let value = (self.decrypted)(Kind::PluginConfig, item);
            self.compiler
                .plugins(&plugins_of(&value), key)
                .map(Arc::new)
        });
        self.next.templates.insert(
            key.to_string(),
            (item.mod_revision, self.meta_print, chain.clone()),
        );
        chain
    }

    fn global(&mut self, objects: &Objects<'_>) -> Arc<Chain> {
        let print = fingerprint(objects.global_rules.iter(), self.meta_print);
        let (global, failed) = match self.previous.and_then(|p| p.globals.get(self.ws)) {
            Some((p, chain, failed)) if *p == print => (chain.clone(), failed.clone()),
            _ => {
                let values: Vec<(&str, Map<String, Value>)> = objects
                    .global_rules
                    .iter()
                    .map(|(key, item)| {
                        (*key, plugins_of(&(self.decrypted)(Kind::GlobalRule, item)))
                    })
                    .collect();
                let rules: Vec<(&str, &Map<String, Value>)> =
                    values.iter().map(|(k, m)| (*k, m)).collect();
                let (chain, failed) = self.compiler.global_rules(&rules);
                let failed = failed
                    .into_iter()
                    .map(|(key, error)| Problem { key, error })
                    .collect();
                (Arc::new(chain), failed)
            }
        };
        self.problems.extend(failed.iter().cloned());
        self.next
            .globals
            .insert(self.ws.to_string(), (print, global.clone(), failed));
        global
    }

    fn consumers(&mut self, objects: &Objects<'_>) -> Arc<ConsumerIndex> {
        let items = objects
            .consumers
            .iter()
            .chain(&objects.credentials)
            .chain(&objects.groups);
        let print = fingerprint(items, self.meta_print);
        let (index, failed) = match self.previous.and_then(|p| p.indexes.get(self.ws)) {
            Some((p, index, failed)) if *p == print => (index.clone(), failed.clone()),
            _ => {
                let mut failed = Vec::new();
                let mut build = IndexBuild {
                    compiler: &self.compiler,
                    decrypted: self.decrypted,
                    previous: self.previous,
                    meta_print: self.meta_print,
                    owned: &mut self.next.owned,
                    problems: &mut failed,
                };
                (Arc::new(build.index(self.ws, objects)), failed)
            }
        };
        self.problems.extend(failed.iter().cloned());
        self.next
            .indexes
            .insert(self.ws.to_string(), (print, index.clone(), failed));
        index
    }
}

/// Compiles an upstream configured inside a plugin (traffic-split's inline upstreams) into the
/// gateway's [`Upstream`](crate::Upstream).
fn inline_upstream(value: &Value) -> Result<Arc<dyn std::any::Any + Send + Sync>, String> {
    let config: portico_model::types::Upstream = portico_model::types::parse(value)?;
    let compiled = crate::upstream::compile("traffic-split", 0, config, None, None)?;
    Ok(Arc::new(compiled))
}
