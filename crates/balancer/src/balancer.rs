//! The balancer of one upstream: priority groups, exclusions, the all-unhealthy rule, and the
//! per-node load shared with the next config snapshot.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::chash::{self, Ring};
use crate::ewma::{self, EwmaCell};
use crate::health::{HealthConfig, HealthTable};
use crate::least_conn::LeastConn;
use crate::rng::Rng;
use crate::roundrobin::RoundRobin;
use crate::{default_retries, Kind, Node, NodeIndex, Tried};

/// Why a [`Balancer`] could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// More nodes than a [`NodeIndex`] can address.
    #[error("upstream has {0} nodes, more than a balancer can index")]
    TooManyNodes(usize),
    /// [`Builder::health_table`] was given a table for other nodes.
    #[error("health table tracks other nodes than the upstream's")]
    HealthTableMismatch,
}

/// Load counters of one node, shared with later balancers of the same upstream so that requests
/// still running on an old snapshot keep counting (APISIX #12217).
#[derive(Debug)]
struct NodeLoad {
    in_flight: AtomicU32,
    ewma: EwmaCell,
}

#[derive(Debug)]
struct Group {
    members: Vec<NodeIndex>,
    picker: Picker,
}

#[derive(Debug)]
enum Picker {
    RoundRobin(RoundRobin),
    Chash(Ring),
    LeastConn(LeastConn),
    Ewma,
}

/// Picks nodes of one upstream. Built once per upstream per config snapshot, shared by every
/// request (`Send + Sync`, all methods take `&self`).
#[derive(Debug)]
pub struct Balancer {
    kind: Kind,
    nodes: Vec<Node>,
    /// By descending priority.
    groups: Vec<Group>,
    health: Option<Arc<HealthTable>>,
    load: Vec<Arc<NodeLoad>>,
    rng: Rng,
}

/// Options of a [`Balancer`] under construction; see [`Balancer::builder`].
#[derive(Debug)]
pub struct Builder<'a> {
    kind: Kind,
    nodes: Vec<Node>,
    checks: Option<HealthConfig>,
    table: Option<Arc<HealthTable>>,
    previous: Option<&'a Balancer>,
    seed: Option<u64>,
}

impl<'a> Builder<'a> {
    /// Tracks node health with these thresholds (the upstream has `checks`). Without this, or
    /// [`health_table`](Self::health_table), every node counts as healthy.
    pub fn checks(mut self, config: HealthConfig) -> Self {
        self.checks = Some(config);
        self
    }

    /// Uses this exact health table, which must track the same nodes in the same order.
    pub fn health_table(mut self, table: Arc<HealthTable>) -> Self {
        self.table = Some(table);
        self
    }

    /// The balancer of the previous snapshot of this upstream: its health table (when
    /// [`checks`](Self::checks) is set) and the in-flight and latency counters of nodes with the
    /// same address carry over.
    pub fn previous(mut self, previous: &'a Balancer) -> Self {
        self.previous = Some(previous);
        self
    }

    /// Seeds the random choices (round-robin start node, ewma candidates); for tests and
    /// benchmarks. By default they are seeded from the process's random keys.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Builds the balancer.
    ///
    /// # Errors
    /// [`BuildError::TooManyNodes`] past `u32::MAX` nodes; [`BuildError::HealthTableMismatch`]
    /// when a table given to [`health_table`](Self::health_table) tracks other nodes.
    pub fn build(self) -> Result<Balancer, BuildError> {
        let Builder {
            kind,
            nodes,
            checks,
            table,
            previous,
            seed,
        } = self;
        if NodeIndex::new(nodes.len()).is_none() {
            return Err(BuildError::TooManyNodes(nodes.len()));
        }
        let health = match (table, checks) {
            (Some(table), _) if !table.tracks(&nodes) => {
                return Err(BuildError::HealthTableMismatch)
            }
            (Some(table), _) => Some(table),
            (None, Some(config)) => Some(match previous.and_then(|p| p.health.as_ref()) {
                Some(old) => HealthTable::carry_over(old, &nodes, config),
                None => HealthTable::new(&nodes, config),
            }),
            (None, None) => None,
        };
        let load = carry_load(&nodes, previous);
        let rng = seed.map_or_else(Rng::from_entropy, Rng::seeded);
        let groups = group(&nodes, kind, &rng);
        Ok(Balancer {
            kind,
            nodes,
            groups,
            health,
            load,
            rng,
        })
    }
}

impl Balancer {
    /// Starts building the balancer of an upstream of `kind` over `nodes` (in config order; a
    /// [`NodeIndex`] is a position in this list).
    pub fn builder<'a>(kind: Kind, nodes: Vec<Node>) -> Builder<'a> {
        Builder {
            kind,
            nodes,
            checks: None,
            table: None,
            previous: None,
            seed: None,
        }
    }

    /// Picks the node for one attempt of a request, APISIX's way (`apisix/balancer.lua`):
    /// * a single-node upstream always gets its node, whatever its weight, health or tries;
    /// * unhealthy nodes are skipped, unless every node is unhealthy, then health is ignored;
    /// * nodes in `tried` are skipped, so retries go elsewhere;
    /// * higher priority groups first.
    ///
    /// `key` is the chash key ([`HashKey::resolve`](crate::HashKey::resolve)), pass the same on
    /// every attempt; `now` feeds ewma's decay. Both are ignored by other kinds. `None` when every
    /// node is excluded (APISIX: "all upstream servers tried", a 502) or there is none (503).
    pub fn pick(&self, key: Option<&str>, tried: &Tried, now: Instant) -> Option<NodeIndex> {
        match self.nodes.len() {
            0 => return None,
            1 => return NodeIndex::new(0),
            _ => {}
        }
        match self.health.as_deref().filter(|h| !h.all_unhealthy()) {
            Some(health) => {
                self.pick_excluding(key, now, &|n| tried.contains(n) || !health.is_healthy(n))
            }
            None => self.pick_excluding(key, now, &|n| tried.contains(n)),
        }
    }

    /// Picks a node that `exclude` does not reject, with no other policy: no single-node
    /// shortcut, no health table, no all-unhealthy rule. For callers composing their own.
    pub fn pick_excluding(
        &self,
        key: Option<&str>,
        now: Instant,
        exclude: &dyn Fn(NodeIndex) -> bool,
    ) -> Option<NodeIndex> {
        let key_hash = match self.kind {
            Kind::Chash => chash::hash_key(key.unwrap_or("")),
            _ => 0,
        };
        self.groups.iter().find_map(|group| {
            let members = &group.members;
            let usable = |pos: usize| members.get(pos).is_some_and(|&n| !exclude(n));
            let pos = match &group.picker {
                Picker::RoundRobin(rr) => rr.pick(&usable),
                Picker::Chash(ring) => ring.pick(key_hash, &usable),
                Picker::LeastConn(lc) => lc.pick(&|pos| self.in_flight_at(members, pos), &usable),
                Picker::Ewma => {
                    let score = |pos: usize| self.score_at(members, pos, now);
                    ewma::pick(members.len(), &score, &usable, &self.rng)
                }
            }?;
            members.get(pos).copied()
        })
    }

    /// A request started on `node` (counts for `least_conn`); pair with [`on_finish`](Self::on_finish).
    pub fn on_start(&self, node: NodeIndex) {
        if let Some(load) = self.load.get(node.get()) {
            load.in_flight.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// A request on `node` finished, however it ended. Extra calls never drive the count below 0.
    pub fn on_finish(&self, node: NodeIndex) {
        if let Some(load) = self.load.get(node.get()) {
            let _ = load
                .in_flight
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        }
    }

    /// A response came back from `node` after `rtt` (connect + response time), observed at `now`
    /// (feeds `ewma`). Report completed responses only, not failed tries, as APISIX does.
    pub fn on_response(&self, node: NodeIndex, rtt: Duration, now: Instant) {
        if let Some(load) = self.load.get(node.get()) {
            load.ewma.observe(rtt, now);
        }
    }

    /// Requests in flight on `node`, as reported through `on_start`/`on_finish`.
    pub fn in_flight(&self, node: NodeIndex) -> Option<u32> {
        self.load
            .get(node.get())
            .map(|l| l.in_flight.load(Ordering::Acquire))
    }

    /// The algorithm.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The nodes, indexed by [`NodeIndex`].
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// One node.
    pub fn node(&self, node: NodeIndex) -> Option<&Node> {
        self.nodes.get(node.get())
    }

    /// The health table, when the upstream has checks; the data plane's checkers report into it.
    pub fn health(&self) -> Option<&Arc<HealthTable>> {
        self.health.as_ref()
    }

    /// Retries allowed when `upstream.retries` is not set: [`default_retries`] of the node count.
    pub fn default_retries(&self) -> usize {
        default_retries(self.nodes.len())
    }

    fn in_flight_at(&self, members: &[NodeIndex], pos: usize) -> u32 {
        members
            .get(pos)
            .and_then(|&n| self.in_flight(n))
            .unwrap_or(0)
    }

    fn score_at(&self, members: &[NodeIndex], pos: usize, now: Instant) -> f64 {
        let load = members.get(pos).and_then(|n| self.load.get(n.get()));
        load.map_or(0.0, |l| l.ewma.score(now))
    }
}

fn carry_load(nodes: &[Node], previous: Option<&Balancer>) -> Vec<Arc<NodeLoad>> {
    let old: HashMap<(&str, u16), &Arc<NodeLoad>> = previous
        .map(|p| {
            p.nodes
                .iter()
                .zip(&p.load)
                .map(|(n, l)| ((n.host.as_str(), n.port), l))
                .collect()
        })
        .unwrap_or_default();
    nodes
        .iter()
        .map(|n| match old.get(&(n.host.as_str(), n.port)) {
            Some(load) => Arc::clone(load),
            None => Arc::new(NodeLoad {
                in_flight: AtomicU32::new(0),
                ewma: EwmaCell::new(),
            }),
        })
        .collect()
}

fn group(nodes: &[Node], kind: Kind, rng: &Rng) -> Vec<Group> {
    let mut priorities: Vec<i32> = nodes.iter().map(|n| n.priority).collect();
    priorities.sort_unstable_by(|a, b| b.cmp(a));
    priorities.dedup();
    priorities
        .into_iter()
        .map(|priority| {
            let members: Vec<NodeIndex> = (0..nodes.len())
                .filter(|&i| nodes[i].priority == priority)
                .filter_map(NodeIndex::new)
                .collect();
            let weights: Vec<u32> = members.iter().map(|&i| nodes[i.get()].weight).collect();
            let picker = match kind {
                Kind::RoundRobin => {
                    Picker::RoundRobin(RoundRobin::new(&weights, rng.below(members.len())))
                }
                Kind::Chash => {
                    let ring: Vec<(Vec<u8>, u32)> = members
                        .iter()
                        .map(|&i| {
                            let n = &nodes[i.get()];
                            (chash::node_id(&n.host, n.port), n.weight)
                        })
                        .collect();
                    Picker::Chash(Ring::new(&ring))
                }
                Kind::LeastConn => Picker::LeastConn(LeastConn::new(&weights)),
                Kind::Ewma => Picker::Ewma,
            };
            Group { members, picker }
        })
        .collect()
}

#[cfg(test)]
mod tests;
