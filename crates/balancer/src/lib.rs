//! Load balancing for Portico upstreams, with the semantics of APISIX 3.x (`apisix/balancer.lua`,
//! `apisix/balancer/*.lua`, lua-resty-balancer, lua-resty-healthcheck).
//!
//! This crate is pure: no I/O, no clock, no async runtime. The data plane builds one [`Balancer`]
//! per upstream per config snapshot, asks it for a node on every attempt of a request, and reports
//! back what happened (request start and finish, response latency, health-check outcomes). All
//! per-request entry points take `&self` and use atomics, so one balancer is shared by every task.
//!
//! ```
//! use std::time::Instant;
//! use portico_balancer::{Balancer, Kind, Node, Tried};
//!
//! let nodes = vec![Node::new("10.0.0.1", 80, 3), Node::new("10.0.0.2", 80, 1)];
//! let balancer = Balancer::builder(Kind::RoundRobin, nodes).build()?;
//!
//! let mut tried = Tried::new();
//! let first = balancer.pick(None, &tried, Instant::now()).expect("two nodes");
//! tried.insert(first); // the attempt failed: a retry must pick another node
//! let retry = balancer.pick(None, &tried, Instant::now()).expect("one node left");
//! assert_ne!(first, retry);
//! # Ok::<(), portico_balancer::BuildError>(())
//! ```
//!
//! Algorithms and their sources of truth: [`Kind`]. Health bookkeeping: [`health`]. Consistent
//! hash keys (`hash_on`): [`HashKey`].

mod balancer;
mod chash;
mod ewma;
pub mod health;
mod key;
mod kind;
mod least_conn;
mod rng;
mod roundrobin;
mod tried;

pub use balancer::{Balancer, BuildError, Builder};
pub use health::{HealthConfig, HealthTable};
pub use key::{HashKey, HashOn, UnknownHashOn};
pub use kind::{Kind, UnknownKind};
pub use tried::Tried;

/// One upstream node, as normalised from `upstream.nodes` (§2.4): the hash form
/// `{"host:port": weight}` and the array form both end up as a list of these.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Node {
    /// IP address or domain; IPv6 bracketed (`[::1]`), as APISIX stores it.
    pub host: String,
    /// Port, already defaulted from the scheme when the config omitted it.
    pub port: u16,
    /// Relative weight; 0 means "never picked while any other node can be" (see [`Kind`]).
    pub weight: u32,
    /// Priority group; higher groups are used first (`nodes[].priority`, default 0).
    pub priority: i32,
}

impl Node {
    /// A node of priority 0.
    pub fn new(host: impl Into<String>, port: u16, weight: u32) -> Self {
        Node {
            host: host.into(),
            port,
            weight,
            priority: 0,
        }
    }

    /// The same node in priority group `priority`.
    #[must_use]
    pub fn with_priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// Whether both nodes name the same server (`host` and `port`; weight and priority aside).
    pub fn same_address(&self, other: &Node) -> bool {
        self.port == other.port && self.host == other.host
    }
}

/// Position of a node in the list the [`Balancer`] was built from. Stable for the lifetime of that
/// balancer; it is what the data plane stores in [`Tried`] and passes back to report outcomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeIndex(u32);

impl NodeIndex {
    /// The index as a `usize`, for indexing the node list.
    pub fn get(self) -> usize {
        self.0 as usize
    }

    /// The index of the `i`-th node, if it fits (balancers hold at most `u32::MAX` nodes).
    pub fn new(i: usize) -> Option<Self> {
        u32::try_from(i).ok().map(NodeIndex)
    }
}

/// How many retries an upstream gets when `retries` is not configured: one per other node
/// (`#nodes - 1`, §0 item 11, `apisix/balancer.lua:set_balancer_opts`). A configured `retries`
/// (including 0, which disables retries) replaces it. For service-discovery upstreams the count is
/// that of the nodes discovered for the request.
pub fn default_retries(node_count: usize) -> usize {
    node_count.saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_retries_is_one_per_other_node() {
        assert_eq!(default_retries(0), 0);
        assert_eq!(default_retries(1), 0);
        assert_eq!(default_retries(4), 3);
    }

    #[test]
    fn node_index_round_trips() {
        let idx = NodeIndex::new(7).expect("small index");
        assert_eq!(idx.get(), 7);
    }

    #[test]
    fn same_address_ignores_weight_and_priority() {
        let a = Node::new("10.0.0.1", 80, 1);
        assert!(a.same_address(&Node::new("10.0.0.1", 80, 9).with_priority(3)));
        assert!(!a.same_address(&Node::new("10.0.0.1", 81, 1)));
    }
}
