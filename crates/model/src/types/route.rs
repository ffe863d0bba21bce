//! Typed route.

use super::{de, Id, Labels, Timeout, Upstream};
use serde::Deserialize;
use serde_json::Value;

fn enabled() -> u8 {
    1
}

/// A route as Portico stores it (no `plugins`, `service_id` or Lua fields), with runtime
/// defaults (`priority` 0, `status` 1).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Id.
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
    /// One path (exactly one of `uri`/`uris` is set).
    pub uri: Option<String>,
    /// Several paths.
    #[serde(default, deserialize_with = "de::list")]
    pub uris: Vec<String>,
    /// Order among routes registered under the same path (higher first).
    #[serde(default)]
    pub priority: i64,
    /// Allowed methods; empty means any.
    #[serde(default, deserialize_with = "de::list")]
    pub methods: Vec<String>,
    /// One host (at most one of `host`/`hosts`).
    pub host: Option<String>,
    /// Several hosts.
    #[serde(default, deserialize_with = "de::list")]
    pub hosts: Vec<String>,
    /// One client address or CIDR.
    pub remote_addr: Option<String>,
    /// Several client addresses or CIDRs.
    #[serde(default, deserialize_with = "de::list")]
    pub remote_addrs: Vec<String>,
    /// Timeouts overriding the upstream's.
    pub timeout: Option<Timeout>,
    /// lua-resty-expr rule over request variables (compile with `portico-expr`).
    pub vars: Option<Value>,
    /// The plugin template whose plugins this route runs.
    pub plugin_config_id: Option<Id>,
    /// Inline upstream.
    pub upstream: Option<Upstream>,
    /// Referenced upstream; wins over the inline one.
    pub upstream_id: Option<Id>,
    /// Allow websocket upgrades.
    pub enable_websocket: Option<bool>,
    /// 1 enabled, 0 disabled (not loaded into the router).
    #[serde(default = "enabled")]
    pub status: u8,
}

impl Route {
    /// The paths to match: `uri`, or `uris`.
    pub fn paths(&self) -> Vec<&str> {
        match &self.uri {
            Some(uri) => vec![uri.as_str()],
            None => self.uris.iter().map(String::as_str).collect(),
        }
    }

    /// The hosts to match (empty: any host): `host`, or `hosts`.
    pub fn host_list(&self) -> Vec<&str> {
        match &self.host {
            Some(host) => vec![host.as_str()],
            None => self.hosts.iter().map(String::as_str).collect(),
        }
    }

    /// The client addresses to match (empty: any): `remote_addr`, or `remote_addrs`.
    pub fn remote_addr_list(&self) -> Vec<&str> {
        match &self.remote_addr {
            Some(addr) => vec![addr.as_str()],
            None => self.remote_addrs.iter().map(String::as_str).collect(),
        }
    }

    /// Whether the route is loaded into the router.
    pub fn is_enabled(&self) -> bool {
        self.status != 0
    }
}
