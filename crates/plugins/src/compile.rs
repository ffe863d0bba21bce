//! Stored plugin configurations → chain entries, the way an APISIX data plane loads them: the
//! configuration is checked against the plugin's schema (defaults injected) and semantic check,
//! `_meta` is read, and the plugin's `build` makes the instance.
//!
//! * `_meta.disable: true` → left out, even when the rest would not validate;
//! * a plugin the registry does not know → left out with a warning (APISIX skips it);
//! * a plugin the registry knows but Portico cannot run → an error, so the object is left out
//!   rather than served without a plugin it was configured with;
//! * an invalid configuration or one the plugin refuses → an error naming the plugin.
//!
//! The caller leaves out the whole object on error (APISIX's config checker does the same).

use std::collections::{HashMap, HashSet};

use portico_expr::Expr;
use portico_model::schema::validate_in_place;
use portico_model::{Registry, SchemaType};
use serde_json::{Map, Value};

use crate::chain::{Chain, Entry};
use crate::reply::error_response_body;
use crate::runtime::{BuildEnv, PluginState, UpstreamBuilder};

/// One stored plugin configuration and the object it belongs to.
#[derive(Debug, Clone, Copy)]
pub struct Conf<'a> {
    /// Plugin name.
    pub name: &'a str,
    /// The configuration as stored (secrets decrypted).
    pub conf: &'a Value,
    /// Store key of the owning object, e.g. `ws/default/plugin_configs/1`.
    pub owner: &'a str,
}

/// What compiling configurations needs: the registry (schemas), the cross-snapshot state, and
/// the plugin metadata of the cluster (`plugin_metadata/<name>` → object, decrypted).
#[derive(Debug, Clone, Copy)]
pub struct Compiler<'a> {
    /// Plugin schemas and checks.
    pub registry: &'a Registry,
    /// State that outlives snapshots (counters).
    pub state: &'a PluginState,
    /// Plugin metadata by plugin name.
    pub metadata: &'a HashMap<String, Value>,
    /// Builds plugin-configured upstreams (see [`BuildEnv::upstreams`]).
    pub upstreams: Option<&'a UpstreamBuilder>,
}

fn meta<'v>(conf: &'v Value, key: &str) -> Option<&'v Value> {
    conf.get("_meta").and_then(|m| m.get(key))
}

impl Compiler<'_> {
    /// Builds one entry; `Ok(None)` when the plugin is disabled or unknown.
    pub fn entry(&self, c: Conf<'_>) -> Result<Option<Entry>, String> {
        if !c.conf.is_object() {
            return Err(format!(
                "invalid plugin conf {} for plugin [{}]",
                portico_model::schema::cjson_encode(c.conf),
                c.name
            ));
        }
        if meta(c.conf, "disable") == Some(&Value::Bool(true)) {
            return Ok(None);
        }
        let Some(spec) = self.registry.get(c.name) else {
            tracing::warn!("unknown plugin [{}] in {}: skipped", c.name, c.owner);
            return Ok(None);
        };
        let Some(build) = crate::builder(c.name) else {
            return Err(format!(
                "plugin {} cannot run on this data plane yet",
                c.name
            ));
        };
        let mut conf = c.conf.clone();
        if let Some(schema) = self.registry.schema_for(c.name, SchemaType::Route) {
            let checked = validate_in_place(schema, &mut conf)
                .map_err(|e| spec.schema_error.map_or(e.clone(), |f| f(&conf, e)))
                .and_then(|()| spec.check.map_or(Ok(()), |check| check(&conf)));
            if let Err(e) = checked {
                return Err(format!(
                    "failed to check the configuration of plugin {} err: {e}",
                    c.name
                ));
            }
        }
        let metadata = self.metadata(c.name);
        let env = BuildEnv {
            owner: c.owner,
            state: self.state,
            metadata: metadata.as_ref(),
            upstreams: self.upstreams,
        };
        let plugin =
            build(&conf, &env).map_err(|e| format!("failed to load plugin {}: {e}", c.name))?;
        let priority = meta(&conf, "priority")
            .and_then(Value::as_i64)
            .map(|p| p.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32);
        let filter = match meta(&conf, "filter") {
            Some(rule @ Value::Array(_)) => match Expr::compile(rule) {
                Ok(expr) => Some(expr),
                Err(e) => {
                    // APISIX runs the plugin when its filter cannot be built.
                    tracing::warn!(
                        "failed to get the 'vars' expression: {e} plugin_name: {}",
                        c.name
                    );
                    None
                }
            },
            _ => None,
        };
        let error_response = meta(&conf, "error_response")
            .filter(|v| v.is_string() || v.is_object())
            .map(error_response_body);
        Ok(Some(Entry::new(plugin, priority, filter, error_response)))
    }

    fn metadata(&self, name: &str) -> Option<Value> {
        let mut value = self.metadata.get(name)?.clone();
        if let Some(schema) = self.registry.metadata_schema(name) {
            if let Err(e) = validate_in_place(schema, &mut value) {
                tracing::warn!("plugin metadata of {name} ignored: {e}");
                return None;
            }
        }
        Some(value)
    }

    /// A chain of the given configurations; the first failure is the error.
    pub fn chain<'c>(&self, confs: impl IntoIterator<Item = Conf<'c>>) -> Result<Chain, String> {
        let mut entries = Vec::new();
        for c in confs {
            if let Some(e) = self.entry(c)? {
                entries.push(e);
            }
        }
        Ok(Chain::new(entries))
    }

    /// The chain of an object's `plugins` map (plugin template, consumer group).
    pub fn plugins(&self, plugins: &Map<String, Value>, owner: &str) -> Result<Chain, String> {
        self.chain(
            plugins
                .iter()
                .map(|(name, conf)| Conf { name, conf, owner }),
        )
    }

    /// The chain of a consumer's `plugins`: its auth plugins are credentials for the
    /// [`ConsumerIndex`](crate::ConsumerIndex), not plugins to run, and are left out.
    pub fn consumer_plugins(
        &self,
        plugins: &Map<String, Value>,
        owner: &str,
    ) -> Result<Chain, String> {
        let registry = self.registry;
        self.chain(
            plugins
                .iter()
                .filter(|(name, _)| !registry.get(name).is_some_and(|s| s.auth))
                .map(|(name, conf)| Conf { name, conf, owner }),
        )
    }

    /// The chain of a workspace's global rules, given as `(store key, plugins)`: a rule that does
    /// not compile is left out (its key and error are returned), and a plugin configured in more
    /// than one of the remaining rules is dropped from all of them (APISIX `merge_global_rules`).
    pub fn global_rules(
        &self,
        rules: &[(&str, &Map<String, Value>)],
    ) -> (Chain, Vec<(String, String)>) {
        let mut loaded = Vec::new();
        let mut problems = Vec::new();
        for (owner, plugins) in rules {
            let compiled: Result<Vec<Entry>, String> = plugins
                .iter()
                .filter_map(|(name, conf)| self.entry(Conf { name, conf, owner }).transpose())
                .collect();
            match compiled {
                Ok(entries) => loaded.push((*plugins, entries)),
                Err(e) => problems.push((owner.to_string(), e)),
            }
        }
        let mut seen = HashSet::new();
        let mut duplicated = HashSet::new();
        for name in loaded.iter().flat_map(|(plugins, _)| plugins.keys()) {
            if !seen.insert(name.as_str()) {
                duplicated.insert(name.as_str());
            }
        }
        for name in &duplicated {
            tracing::error!(
                "Found {name} configured across different global rules. Removing it from execution list"
            );
        }
        let entries = loaded
            .iter()
            .flat_map(|(_, entries)| entries.iter().cloned())
            .filter(|e| !duplicated.contains(e.name()))
            .collect();
        (Chain::new(entries), problems)
    }
}
