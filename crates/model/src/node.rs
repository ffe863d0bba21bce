//! What a data-plane node reports about itself, stored at `<cluster prefix>/nodes/<id>`, and the
//! drain switch the control plane sets at `<cluster prefix>/node_control/<id>`.

use serde::{Deserialize, Serialize};

/// The folder of node registrations below a cluster prefix.
pub const NODE_DIR: &str = "nodes";
/// The folder of drain switches below a cluster prefix.
pub const NODE_CONTROL_DIR: &str = "node_control";

/// Written below a cluster's prefix just before the control plane wipes it (cluster deletion):
/// nodes that see it stop following the store and keep serving their last config.
pub const CLUSTER_DELETED: &str = "cluster_deleted";

/// A data-plane node's registration, rewritten at every heartbeat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub id: String,
    pub hostname: String,
    /// The addresses its listeners are bound to.
    pub addresses: Vec<String>,
    pub version: String,
    /// Unix seconds.
    pub start_time: i64,
    /// Unix seconds of the last heartbeat.
    pub last_heartbeat: i64,
    /// The store revision of the config the node serves.
    pub applied_revision: i64,
    /// Whether the node considers itself drained.
    #[serde(default)]
    pub drained: bool,
}

/// The control plane's switch for one node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeControl {
    pub drained: bool,
}
