//! One workspace's consumer index: consumer groups and consumers with their compiled plugins,
//! and the auth keys of consumers and credentials (reusing each consumer's or group's chain while
//! its revision is unchanged).

use std::collections::HashMap;
use std::sync::Arc;

use portico_model::{types, Kind};
use portico_plugins::{Chain, Compiler, Consumer, ConsumerGroup, ConsumerIndex, GroupLink};
use serde_json::{Map, Value};

use crate::plugins::{id_of, Objects, PluginCache, Revised};
use crate::{Item, Problem};

/// Builds one workspace's consumer index.
pub(crate) struct IndexBuild<'c, 'p> {
    pub compiler: &'c Compiler<'c>,
    pub decrypted: &'c dyn Fn(Kind, &Item) -> Value,
    pub previous: Option<&'p PluginCache>,
    pub meta_print: u64,
    pub owned: &'c mut HashMap<String, Revised<Arc<Chain>>>,
    pub problems: &'c mut Vec<Problem>,
}

impl IndexBuild<'_, '_> {
    fn problem(&mut self, key: &str, error: String) {
        self.problems.push(Problem {
            key: key.to_string(),
            error,
        });
    }

    /// The chain of a consumer's or group's plugins, reused by revision.
    fn chain(
        &mut self,
        key: &str,
        item: &Item,
        plugins: &Map<String, Value>,
        consumer: bool,
    ) -> Result<Arc<Chain>, String> {
        if let Some((rev, meta, chain)) = self.previous.and_then(|p| p.owned.get(key)) {
            if *rev == item.mod_revision && *meta == self.meta_print {
                self.owned
                    .insert(key.to_string(), (*rev, *meta, chain.clone()));
                return Ok(chain.clone());
            }
        }
        let chain = if consumer {
            self.compiler.consumer_plugins(plugins, key)
        } else {
            self.compiler.plugins(plugins, key)
        }?;
        let chain = Arc::new(chain);
        self.owned.insert(
            key.to_string(),
            (item.mod_revision, self.meta_print, chain.clone()),
        );
        Ok(chain)
    }

    pub fn index(&mut self, ws: &str, objects: &Objects<'_>) -> ConsumerIndex {
        let mut groups: HashMap<&str, Arc<ConsumerGroup>> = HashMap::new();
        for (key, item) in &objects.groups {
            let value = (self.decrypted)(Kind::ConsumerGroup, item);
            let chain = types::parse::<types::ConsumerGroup>(&value)
                .and_then(|g| self.chain(key, item, &g.plugins, false));
            match chain {
                Ok(plugins) => {
                    groups.insert(
                        id_of(key),
                        Arc::new(ConsumerGroup {
                            id: id_of(key).to_string(),
                            key: key.to_string(),
                            revision: item.mod_revision,
                            plugins,
                        }),
                    );
                }
                Err(e) => self.problem(key, e),
            }
        }
        let mut index = ConsumerIndex::new();
        let registry = self.compiler.registry;
        let mut by_name: HashMap<&str, Arc<Consumer>> = HashMap::new();
        for (key, item) in &objects.consumers {
            let value = (self.decrypted)(Kind::Consumer, item);
            let parsed = types::parse::<types::Consumer>(&value);
            let built = parsed.and_then(|c| {
                let plugins = self.chain(key, item, &c.plugins, true)?;
                Ok((c, plugins))
            });
            let (c, plugins) = match built {
                Ok(b) => b,
                Err(e) => {
                    self.problem(key, e);
                    continue;
                }
            };
            let group = c.group_id.as_ref().map(|id| match groups.get(id.as_str()) {
                Some(g) => GroupLink::Ready(g.clone()),
                None => GroupLink::Missing(id.0.clone()),
            });
            let consumer = Arc::new(Consumer {
                username: c.username.clone(),
                key: key.to_string(),
                revision: item.mod_revision,
                credential_id: None,
                custom_id: c.labels.get("custom_id").cloned(),
                group,
                plugins,
                header_values: Default::default(),
            });
            for e in index.add_consumer(consumer.clone(), &c.plugins, registry) {
                self.problem(key, e);
            }
            by_name.insert(id_of(key), consumer);
        }
        for (key, item) in &objects.credentials {
            // `ws/<ws>/consumers/<username>/credentials/<id>`
            let owner = key
                .strip_prefix(&format!("ws/{ws}/consumers/"))
                .and_then(|rest| rest.split('/').next())
                .unwrap_or_default();
            let Some(consumer) = by_name.get(owner).cloned() else {
                self.problem(
                    key,
                    format!("failed to get the consumer for the credential: {owner}"),
                );
                continue;
            };
            let value = (self.decrypted)(Kind::Credential, item);
            match types::parse::<types::Credential>(&value) {
                Ok(cred) => {
                    for e in index.add_credential(&consumer, id_of(key), &cred.plugins, registry) {
                        self.problem(key, e);
                    }
                }
                Err(e) => self.problem(key, e),
            }
        }
        index
    }
}
