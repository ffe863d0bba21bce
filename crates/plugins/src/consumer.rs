//! Consumers as the data plane sees them (`apisix/consumer.lua`): one index per workspace that
//! auth plugins look credentials up in, and the consumer (with its group) an auth plugin
//! attaches to the request.
//!
//! Every auth plugin with a `consumer_key_field` (key-auth `key`, basic-auth `username`) gets a
//! map from that field's value to the consumer or credential that holds it. A credential
//! authenticates *as its consumer* (the consumer's plugins and group apply) and adds its id
//! (`X-Credential-Identifier`). Duplicate values: the last one added wins (APISIX: last loaded).

use std::collections::HashMap;
use std::sync::Arc;

use http::HeaderValue;

use portico_model::schema::validate_in_place;
use portico_model::{Registry, SchemaType};
use serde_json::{Map, Value};

use crate::chain::Chain;

/// A consumer group: plugins shared by its consumers.
#[derive(Debug)]
pub struct ConsumerGroup {
    /// The group id.
    pub id: String,
    /// Its store key, e.g. `ws/default/consumer_groups/gold`.
    pub key: String,
    /// Its store revision (part of the merge cache key).
    pub revision: i64,
    /// Its compiled plugins.
    pub plugins: Arc<Chain>,
}

/// The group a consumer names.
#[derive(Debug, Clone)]
pub enum GroupLink {
    /// The group exists and compiled.
    Ready(Arc<ConsumerGroup>),
    /// `group_id` names no (usable) group: an authenticated request answers 503.
    Missing(String),
}

/// A consumer, or a credential acting as its consumer.
#[derive(Debug, Clone)]
pub struct Consumer {
    /// `username` (`$consumer_name`, `X-Consumer-Username`).
    pub username: String,
    /// The consumer's store key, e.g. `ws/default/consumers/jack` (owner of its plugins).
    pub key: String,
    /// The consumer's store revision (part of the merge cache key).
    pub revision: i64,
    /// The credential that authenticated, if any (`X-Credential-Identifier`).
    pub credential_id: Option<String>,
    /// `labels.custom_id` (`X-Consumer-Custom-ID`).
    pub custom_id: Option<String>,
    /// The consumer's group.
    pub group: Option<GroupLink>,
    /// The consumer's own non-auth plugins, compiled (its auth plugins sit in the index).
    pub plugins: Arc<Chain>,
    /// The values of the upstream headers naming it, made on first use.
    pub header_values: HeaderValues,
}

/// `X-Consumer-Username`, `X-Credential-Identifier` and `X-Consumer-Custom-ID` of a consumer
/// (`None`: the consumer has no such value, or none a header can carry), made once and shared
/// by the requests it authenticates.
#[derive(Debug, Clone, Default)]
pub struct HeaderValues(std::sync::OnceLock<[Option<HeaderValue>; 3]>);

impl Consumer {
    /// The values of `X-Consumer-Username`, `X-Credential-Identifier` and
    /// `X-Consumer-Custom-ID`.
    pub(crate) fn header_values(&self) -> &[Option<HeaderValue>; 3] {
        self.header_values.0.get_or_init(|| {
            let value = |v: Option<&str>| v.and_then(|v| HeaderValue::from_str(v).ok());
            [
                value(Some(&self.username)),
                value(self.credential_id.as_deref()),
                value(self.custom_id.as_deref()),
            ]
        })
    }
}

impl Consumer {
    /// The group id (`$consumer_group_id`), whether or not the group exists.
    pub fn group_id(&self) -> Option<&str> {
        match self.group.as_ref()? {
            GroupLink::Ready(g) => Some(&g.id),
            GroupLink::Missing(id) => Some(id),
        }
    }

    /// The same consumer, authenticated through credential `id`.
    pub fn with_credential(&self, id: &str) -> Consumer {
        Consumer {
            credential_id: Some(id.to_string()),
            header_values: HeaderValues::default(),
            ..self.clone()
        }
    }
}

/// What a credential lookup finds: who, and the auth plugin's consumer-side configuration
/// (decrypted, consumer-schema defaults applied), e.g. basic-auth's `password`.
#[derive(Debug, Clone)]
pub struct AuthMatch {
    /// The consumer to attach.
    pub consumer: Arc<Consumer>,
    /// The matched auth configuration.
    pub conf: Arc<Value>,
}

/// The maps of an index, looked up on every authenticated request: foldhash hashes a short key
/// several times faster than the default SipHash (its per-map random seed still keeps the
/// slots of keys unpredictable to clients).
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// The consumers of one workspace, by username and by auth key.
#[derive(Debug, Default)]
pub struct ConsumerIndex {
    by_name: FastMap<String, Arc<Consumer>>,
    /// Per auth plugin (a handful: a list beats hashing the name), key value → match.
    by_key: Vec<(String, FastMap<String, AuthMatch>)>,
}

impl ConsumerIndex {
    /// An index with nobody in it.
    pub fn new() -> ConsumerIndex {
        ConsumerIndex::default()
    }

    /// Adds a consumer and indexes the auth plugins of its `plugins` map. Returns what could
    /// not be indexed (an auth configuration failing its consumer schema), as messages.
    pub fn add_consumer(
        &mut self,
        consumer: Arc<Consumer>,
        plugins: &Map<String, Value>,
        registry: &Registry,
    ) -> Vec<String> {
        self.by_name
            .insert(consumer.username.clone(), consumer.clone());
        self.index(&consumer, plugins, registry)
    }

    /// Indexes the auth plugin of credential `id` of `consumer` (added before).
    pub fn add_credential(
        &mut self,
        consumer: &Consumer,
        id: &str,
        plugins: &Map<String, Value>,
        registry: &Registry,
    ) -> Vec<String> {
        let as_consumer = Arc::new(consumer.with_credential(id));
        self.index(&as_consumer, plugins, registry)
    }

    fn index(
        &mut self,
        consumer: &Arc<Consumer>,
        plugins: &Map<String, Value>,
        registry: &Registry,
    ) -> Vec<String> {
        let mut problems = Vec::new();
        for (name, conf) in plugins {
            let Some(spec) = registry.get(name).filter(|s| s.auth) else {
                continue;
            };
            let Some(field) = spec.consumer_key_field else {
                continue;
            };
            let mut conf = conf.clone();
            if let Some(schema) = registry.schema_for(name, SchemaType::Consumer) {
                let checked = validate_in_place(schema, &mut conf)
                    .and_then(|()| spec.consumer_check.map_or(Ok(()), |check| check(&conf)));
                if let Err(e) = checked {
                    problems.push(format!(
                        "failed to check the configuration of plugin {name} err: {e}"
                    ));
                    continue;
                }
            }
            let Some(value) = conf.get(field).and_then(Value::as_str) else {
                problems.push(format!("missing consumer auth credential '{field}'"));
                continue;
            };
            let keys = match self.by_key.iter().position(|(plugin, _)| plugin == name) {
                Some(i) => &mut self.by_key[i].1,
                None => {
                    self.by_key.push((name.clone(), FastMap::default()));
                    let last = self.by_key.len() - 1;
                    &mut self.by_key[last].1
                }
            };
            keys.insert(
                value.to_string(),
                AuthMatch {
                    consumer: consumer.clone(),
                    conf: Arc::new(conf.clone()),
                },
            );
        }
        problems
    }

    /// The consumer (or credential) whose `plugin` key field equals `value`.
    pub fn find(&self, plugin: &str, value: &str) -> Option<&AuthMatch> {
        let (_, keys) = self.by_key.iter().find(|(name, _)| name == plugin)?;
        keys.get(value)
    }

    /// A consumer by username (`anonymous_consumer`).
    pub fn consumer(&self, username: &str) -> Option<&Arc<Consumer>> {
        self.by_name.get(username)
    }

    /// Number of consumers.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether there is no consumer.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Number of indexed auth keys (consumers' and credentials').
    pub fn key_count(&self) -> usize {
        self.by_key.iter().map(|(_, keys)| keys.len()).sum()
    }
}
