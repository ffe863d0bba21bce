//! Typed consumers, credentials, consumer groups, plugin templates and global rules.

use super::{de, Id, Labels, Plugins};
use serde::Deserialize;

/// A consumer, keyed by `username`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Consumer {
    /// Unused by APISIX (the key is `username`); accepted by its schema.
    pub id: Option<Id>,
    /// The consumer's name and key.
    pub username: String,
    /// Description.
    pub desc: Option<String>,
    /// Labels (`custom_id` is forwarded upstream as `X-Consumer-Custom-ID`).
    #[serde(default, deserialize_with = "de::map")]
    pub labels: Labels,
    /// Creation time (unix seconds).
    pub create_time: Option<i64>,
    /// Update time (unix seconds).
    pub update_time: Option<i64>,
    /// The consumer group whose plugins apply.
    pub group_id: Option<Id>,
    /// Plugins (auth plugins hold the consumer's credentials).
    #[serde(default, deserialize_with = "de::map")]
    pub plugins: Plugins,
}

/// A credential of a consumer: one auth plugin; it authenticates as its consumer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    /// Id (sent upstream as `X-Credential-Identifier`).
    pub id: Option<Id>,
    /// Name.
    pub name: Option<String>,
    /// Description.
    pub desc: Option<String>,
    /// Labels.
    #[serde(default, deserialize_with = "de::map")]
    pub labels: Labels,
    /// Creation time (unix seconds).
    pub create_time: Option<i64>,
    /// Update time (unix seconds).
    pub update_time: Option<i64>,
    /// The auth plugin.
    #[serde(default, deserialize_with = "de::map")]
    pub plugins: Plugins,
}

/// A consumer group: plugins shared by its consumers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerGroup {
    /// Id.
    pub id: Id,
    /// Name.
    pub name: Option<String>,
    /// Description.
    pub desc: Option<String>,
    /// Labels.
    #[serde(default, deserialize_with = "de::map")]
    pub labels: Labels,
    /// Creation time (unix seconds).
    pub create_time: Option<i64>,
    /// Update time (unix seconds).
    pub update_time: Option<i64>,
    /// Plugins.
    #[serde(deserialize_with = "de::map")]
    pub plugins: Plugins,
}

/// A plugin template (APISIX `plugin_config`): the plugins of the routes that reference it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// Id.
    pub id: Id,
    /// Name.
    pub name: Option<String>,
    /// Description.
    pub desc: Option<String>,
    /// Labels.
    #[serde(default, deserialize_with = "de::map")]
    pub labels: Labels,
    /// Creation time (unix seconds).
    pub create_time: Option<i64>,
    /// Update time (unix seconds).
    pub update_time: Option<i64>,
    /// Plugins.
    #[serde(deserialize_with = "de::map")]
    pub plugins: Plugins,
}

/// A global rule (global plugins).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalRule {
    /// Id.
    pub id: Id,
    /// Creation time (unix seconds).
    pub create_time: Option<i64>,
    /// Update time (unix seconds).
    pub update_time: Option<i64>,
    /// Plugins.
    #[serde(deserialize_with = "de::map")]
    pub plugins: Plugins,
}
