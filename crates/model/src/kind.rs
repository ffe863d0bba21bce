//! The resource kinds of Portico's APISIX-compatible Admin API.

use serde_json::Value;

/// A kind of gateway object. Services, stream routes, protos and secrets are not part of Portico:
/// the Admin API answers them as unknown resource types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `routes`
    Route,
    /// `upstreams`
    Upstream,
    /// `consumers` (keyed by `username`)
    Consumer,
    /// `consumers/<username>/credentials`
    Credential,
    /// `consumer_groups`
    ConsumerGroup,
    /// `plugin_configs` (plugin templates)
    PluginConfig,
    /// `global_rules` (global plugins)
    GlobalRule,
    /// `ssls` (certificates)
    Ssl,
    /// `plugin_metadata` (keyed by plugin name)
    PluginMetadata,
}

/// Which HTTP methods the Admin API supports for a kind (reference §1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Methods {
    /// `GET` one and list.
    pub get: bool,
    /// `PUT`.
    pub put: bool,
    /// `POST` (generated id).
    pub post: bool,
    /// `PATCH` (JSON merge and sub-path).
    pub patch: bool,
    /// `DELETE`.
    pub delete: bool,
}

impl Methods {
    /// Whether `method` (upper case) is supported.
    pub fn allows(&self, method: &str) -> bool {
        match method {
            "GET" => self.get,
            "PUT" => self.put,
            "POST" => self.post,
            "PATCH" => self.patch,
            "DELETE" => self.delete,
            _ => false,
        }
    }
}

const ALL: Methods = Methods {
    get: true,
    put: true,
    post: true,
    patch: true,
    delete: true,
};
const NO_POST: Methods = Methods { post: false, ..ALL };
const NO_POST_PATCH: Methods = Methods {
    post: false,
    patch: false,
    ..ALL
};

impl Kind {
    /// Every kind, in the order the Admin API documents them.
    pub const ALL: [Kind; 9] = [
        Kind::Route,
        Kind::Upstream,
        Kind::Consumer,
        Kind::Credential,
        Kind::ConsumerGroup,
        Kind::PluginConfig,
        Kind::GlobalRule,
        Kind::Ssl,
        Kind::PluginMetadata,
    ];

    /// The kind of an Admin API path segment (`/apisix/admin/<segment>/...`). Credentials are
    /// reached as `consumers/<username>/credentials/<id>`; their own segment is `credentials`.
    pub fn from_segment(segment: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.segment() == segment)
    }

    /// The path segment (and store directory) of the kind.
    pub fn segment(self) -> &'static str {
        match self {
            Kind::Route => "routes",
            Kind::Upstream => "upstreams",
            Kind::Consumer => "consumers",
            Kind::Credential => "credentials",
            Kind::ConsumerGroup => "consumer_groups",
            Kind::PluginConfig => "plugin_configs",
            Kind::GlobalRule => "global_rules",
            Kind::Ssl => "ssls",
            Kind::PluginMetadata => "plugin_metadata",
        }
    }

    /// The word APISIX uses in messages (`missing route id`, ``not supported `POST` method for
    /// consumer``, `failed to fetch plugin config info by plugin config id [x] ...`).
    /// For plugin metadata APISIX's resource kind is literally `plugin_metadata`.
    pub fn word(self) -> &'static str {
        match self {
            Kind::Route => "route",
            Kind::Upstream => "upstream",
            Kind::Consumer => "consumer",
            Kind::Credential => "credential",
            Kind::ConsumerGroup => "consumer group",
            Kind::PluginConfig => "plugin config",
            Kind::GlobalRule => "global rule",
            Kind::Ssl => "ssl",
            Kind::PluginMetadata => "plugin_metadata",
        }
    }

    /// The name of the kind's schema under `/apisix/admin/schema/<name>`.
    pub fn schema_name(self) -> &'static str {
        match self {
            Kind::Route => "route",
            Kind::Upstream => "upstream",
            Kind::Consumer => "consumer",
            Kind::Credential => "credential",
            Kind::ConsumerGroup => "consumer_group",
            Kind::PluginConfig => "plugin_config",
            Kind::GlobalRule => "global_rule",
            Kind::Ssl => "ssl",
            Kind::PluginMetadata => "plugin_metadata",
        }
    }

    /// The resource's JSON Schema, as APISIX serves it at `/apisix/admin/schema/<name>` (for
    /// plugin metadata, which has none there, `{"type":"object"}`).
    pub fn schema(self) -> &'static Value {
        match self {
            Kind::PluginMetadata => crate::schemas::plugin_metadata_static(),
            kind => crate::schemas::core_schema(kind.schema_name())
                .unwrap_or_else(|| crate::schemas::plugin_metadata_static()),
        }
    }

    /// The HTTP methods the Admin API supports for this kind.
    pub fn methods(self) -> Methods {
        match self {
            Kind::Route | Kind::Upstream | Kind::Ssl => ALL,
            Kind::ConsumerGroup | Kind::PluginConfig | Kind::GlobalRule => NO_POST,
            Kind::Consumer | Kind::Credential | Kind::PluginMetadata => NO_POST_PATCH,
        }
    }

    /// The 405 message for an unsupported method, e.g. ``not supported `POST` method for consumer``.
    pub fn unsupported_method_message(self, method: &str) -> String {
        format!("not supported `{method}` method for {}", self.word())
    }

    /// Whether objects of this kind carry an `id` (consumers are keyed by `username`, plugin
    /// metadata by the plugin name).
    pub fn has_id(self) -> bool {
        !matches!(self, Kind::Consumer | Kind::PluginMetadata)
    }

    /// Whether objects of this kind carry a `plugins` map in Portico (routes do not: they take
    /// plugins from a plugin template).
    pub fn carries_plugins(self) -> bool {
        matches!(
            self,
            Kind::Consumer
                | Kind::Credential
                | Kind::ConsumerGroup
                | Kind::PluginConfig
                | Kind::GlobalRule
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_round_trip() {
        for kind in Kind::ALL {
            assert_eq!(Kind::from_segment(kind.segment()), Some(kind));
        }
        assert_eq!(Kind::from_segment("services"), None);
        assert_eq!(Kind::from_segment("routs"), None);
    }

    #[test]
    fn method_matrix() {
        assert!(Kind::Route.methods().allows("PATCH"));
        assert!(!Kind::Consumer.methods().allows("POST"));
        assert!(!Kind::Consumer.methods().allows("PATCH"));
        assert!(Kind::Ssl.methods().allows("PATCH"));
        assert!(!Kind::PluginConfig.methods().allows("POST"));
        assert!(Kind::PluginConfig.methods().allows("PATCH"));
        assert!(!Kind::PluginMetadata.methods().allows("PATCH"));
        assert_eq!(
            Kind::Consumer.unsupported_method_message("POST"),
            "not supported `POST` method for consumer"
        );
    }

    #[test]
    fn schemas_exist() {
        for kind in Kind::ALL {
            assert!(kind.schema().is_object());
        }
        assert!(Kind::Route.schema()["properties"].get("plugins").is_none());
    }
}
