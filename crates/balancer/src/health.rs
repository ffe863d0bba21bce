//! Health state of an upstream's nodes, driven by the data plane's active probes and proxied
//! traffic, with lua-resty-healthcheck's counting rules (`lib/resty/healthcheck.lua`,
//! `incr_counter`) and APISIX's thresholds (§2.4.1, §4.4).
//!
//! Each node has four 8-bit counters (successes, HTTP failures, TCP failures, timeouts) and one of
//! four states: `healthy`, `mostly_healthy` (healthy, but failures are being counted),
//! `mostly_unhealthy` (unhealthy, successes being counted) and `unhealthy`. A report moving toward
//! the state the node is already fully in is ignored; otherwise its counter is incremented, a
//! success clears the failure counters and a failure clears the success counter, and the node
//! flips once the counter reaches its threshold. Nodes start healthy, as APISIX treats nodes before
//! its checker exists. Each node's counters and state live in one `AtomicU64`, so reports from any
//! thread are lock-free and never tear.

mod config;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

pub use config::{HealthConfig, Outcome, StatusSet, Thresholds};

use crate::{Node, NodeIndex};

/// Which configuration a report is judged against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Check {
    /// A probe of the data plane's active checker (`checks.active`).
    Active,
    /// An observation of proxied traffic (`checks.passive`).
    Passive,
}

/// The state of one node, as lua-resty-healthcheck names it (and APISIX's Control API shows it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Healthy, no failure counted since.
    Healthy,
    /// Still healthy, but failures are being counted.
    MostlyHealthy,
    /// Still unhealthy, but successes are being counted.
    MostlyUnhealthy,
    /// Unhealthy: excluded from picks unless every node is.
    Unhealthy,
}

impl State {
    /// Whether the node takes traffic in this state.
    pub fn is_healthy(self) -> bool {
        matches!(self, State::Healthy | State::MostlyHealthy)
    }

    /// lua-resty-healthcheck's name of the state.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Healthy => "healthy",
            State::MostlyHealthy => "mostly_healthy",
            State::MostlyUnhealthy => "mostly_unhealthy",
            State::Unhealthy => "unhealthy",
        }
    }

    fn code(self) -> u64 {
        match self {
            State::Healthy => 0,
            State::Unhealthy => 1,
            State::MostlyHealthy => 2,
            State::MostlyUnhealthy => 3,
        }
    }

    fn from_code(code: u64) -> State {
        match code & 3 {
            0 => State::Healthy,
            1 => State::Unhealthy,
            2 => State::MostlyHealthy,
            _ => State::MostlyUnhealthy,
        }
    }
}

/// A change of a node between taking traffic and not, returned by the report that caused it (for
/// logs, events and metrics).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transition {
    /// The node became healthy.
    BecameHealthy,
    /// The node became unhealthy.
    BecameUnhealthy,
}

/// A snapshot of one node's health bookkeeping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NodeStatus {
    /// Current state.
    pub state: State,
    /// Consecutive successes counted.
    pub successes: u8,
    /// Consecutive HTTP failures counted.
    pub http_failures: u8,
    /// Consecutive TCP failures counted.
    pub tcp_failures: u8,
    /// Consecutive timeouts counted.
    pub timeouts: u8,
}

// Counter byte offsets inside the packed cell, lua-resty-healthcheck's layout.
const SUCCESS: u32 = 0;
const HTTP: u32 = 8;
const TCP: u32 = 16;
const TIMEOUT: u32 = 24;
const MASK_SUCCESS: u64 = 0x0000_00ff;
const MASK_FAILURE: u64 = 0xffff_ff00;

/// The health of every node of one upstream. Shared as an `Arc` by the balancer (which reads it
/// on every pick), the data plane's active checker and its passive reporting; carried over to the
/// next config snapshot by [`HealthTable::carry_over`].
#[derive(Debug)]
pub struct HealthTable {
    config: HealthConfig,
    addrs: Vec<(String, u16)>,
    /// Bits 0..32: the four counters; bits 32..34: the [`State`] code.
    cells: Vec<AtomicU64>,
    unhealthy: AtomicUsize,
}

impl HealthTable {
    /// A table for `nodes` (indexed like them), every node healthy.
    pub fn new(nodes: &[Node], config: HealthConfig) -> Arc<Self> {
        Arc::new(HealthTable {
            config,
            addrs: nodes.iter().map(|n| (n.host.clone(), n.port)).collect(),
            cells: nodes.iter().map(|_| AtomicU64::new(0)).collect(),
            unhealthy: AtomicUsize::new(0),
        })
    }

    /// The table for a new snapshot of the upstream. When the node addresses (in order) and the
    /// config are unchanged, this is `previous` itself, so reports keep flowing into one table.
    /// Otherwise a new table starts from the current state of every node whose address is still
    /// present, and new nodes start healthy.
    pub fn carry_over(
        previous: &Arc<HealthTable>,
        nodes: &[Node],
        config: HealthConfig,
    ) -> Arc<Self> {
        if previous.config == config && previous.tracks(nodes) {
            return Arc::clone(previous);
        }
        let table = HealthTable::new(nodes, config);
        let mut unhealthy = 0;
        for (cell, node) in table.cells.iter().zip(nodes) {
            let old = previous
                .addrs
                .iter()
                .position(|(h, p)| *p == node.port && *h == node.host)
                .and_then(|i| previous.cells.get(i));
            if let Some(old) = old {
                let value = old.load(Ordering::Acquire);
                cell.store(value, Ordering::Relaxed);
                unhealthy += usize::from(!state_of(value).is_healthy());
            }
        }
        table.unhealthy.store(unhealthy, Ordering::Release);
        table
    }

    /// Whether this table tracks exactly `nodes` (same addresses, same order).
    pub fn tracks(&self, nodes: &[Node]) -> bool {
        self.addrs.len() == nodes.len()
            && self
                .addrs
                .iter()
                .zip(nodes)
                .all(|((h, p), n)| *p == n.port && *h == n.host)
    }

    /// The thresholds reports are judged against.
    pub fn config(&self) -> &HealthConfig {
        &self.config
    }

    /// How many nodes the table tracks.
    pub fn len(&self) -> usize {
        self.cells.len()
    }

    /// Whether the table tracks no node.
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    /// Whether `node` takes traffic. Unknown nodes do, as in APISIX.
    pub fn is_healthy(&self, node: NodeIndex) -> bool {
        self.cells
            .get(node.get())
            .is_none_or(|c| state_of(c.load(Ordering::Acquire)).is_healthy())
    }

    /// Whether every node is unhealthy, the case in which APISIX ignores health altogether
    /// ("all upstream nodes is unhealthy, use default", §4.4). False for an empty table.
    pub fn all_unhealthy(&self) -> bool {
        !self.cells.is_empty() && self.unhealthy.load(Ordering::Acquire) >= self.cells.len()
    }

    /// How many nodes are unhealthy.
    pub fn unhealthy_count(&self) -> usize {
        self.unhealthy.load(Ordering::Acquire)
    }

    /// The bookkeeping of `node`, `None` if the table does not track it.
    pub fn status(&self, node: NodeIndex) -> Option<NodeStatus> {
        let value = self.cells.get(node.get())?.load(Ordering::Acquire);
        let byte = |shift: u32| (value >> shift) as u8;
        Some(NodeStatus {
            state: state_of(value),
            successes: byte(SUCCESS),
            http_failures: byte(HTTP),
            tcp_failures: byte(TCP),
            timeouts: byte(TIMEOUT),
        })
    }

    /// Records the outcome of an active probe of `node`.
    pub fn report_active(&self, node: NodeIndex, outcome: Outcome) -> Option<Transition> {
        self.report(Check::Active, node, outcome)
    }

    /// Records what proxying to `node` gave: the response status after a completed attempt, or
    /// the failure of a try (APISIX reports those when it retries).
    pub fn report_passive(&self, node: NodeIndex, outcome: Outcome) -> Option<Transition> {
        self.report(Check::Passive, node, outcome)
    }

    /// Records `outcome` for `node` against the `check` thresholds; returns the transition it
    /// caused, if any. Reports for nodes the table does not track are ignored.
    pub fn report(&self, check: Check, node: NodeIndex, outcome: Outcome) -> Option<Transition> {
        let th = match check {
            Check::Active => &self.config.active,
            Check::Passive => &self.config.passive,
        };
        let (toward, counter, limit) = match outcome {
            Outcome::Status(code) if th.healthy_statuses.contains(code) => {
                (State::Healthy, SUCCESS, th.successes)
            }
            Outcome::Status(code) if code == 0 || th.unhealthy_statuses.contains(code) => {
                (State::Unhealthy, HTTP, th.http_failures)
            }
            Outcome::Status(_) => return None,
            Outcome::Success => (State::Healthy, SUCCESS, th.successes),
            Outcome::TcpFailure => (State::Unhealthy, TCP, th.tcp_failures),
            Outcome::Timeout => (State::Unhealthy, TIMEOUT, th.timeouts),
        };
        if limit == 0 {
            return None;
        }
        let cell = self.cells.get(node.get())?;
        let mut old = cell.load(Ordering::Acquire);
        let new = loop {
            let new = step(old, toward, counter, limit);
            if new == old {
                return None;
            }
            match cell.compare_exchange_weak(old, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break new,
                Err(actual) => old = actual,
            }
        };
        self.account(old, new)
    }

    /// Forces the state of `node` and clears its counters (lua-resty-healthcheck's
    /// `set_target_status`).
    pub fn set_healthy(&self, node: NodeIndex, healthy: bool) -> Option<Transition> {
        let state = if healthy {
            State::Healthy
        } else {
            State::Unhealthy
        };
        let old = self
            .cells
            .get(node.get())?
            .swap(state.code() << 32, Ordering::AcqRel);
        self.account(old, state.code() << 32)
    }

    fn account(&self, old: u64, new: u64) -> Option<Transition> {
        match (state_of(old).is_healthy(), state_of(new).is_healthy()) {
            (true, false) => {
                self.unhealthy.fetch_add(1, Ordering::AcqRel);
                Some(Transition::BecameUnhealthy)
            }
            (false, true) => {
                self.unhealthy.fetch_sub(1, Ordering::AcqRel);
                Some(Transition::BecameHealthy)
            }
            _ => None,
        }
    }
}

fn state_of(value: u64) -> State {
    State::from_code(value >> 32)
}

/// `incr_counter`: the cell after one report moving `toward` a state.
fn step(value: u64, toward: State, counter: u32, limit: u8) -> u64 {
    let state = state_of(value);
    if state == toward {
        return value;
    }
    let counters = value & 0xffff_ffff;
    let count = ((counters >> counter) & 0xff).saturating_add(1).min(0xff);
    let mut counters = (counters & !(0xff << counter)) | (count << counter);
    counters &= if toward == State::Healthy {
        MASK_SUCCESS
    } else {
        MASK_FAILURE
    };
    let next = if count >= u64::from(limit) {
        toward
    } else if state == State::Healthy && counters & MASK_FAILURE != 0 {
        State::MostlyHealthy
    } else if state == State::Unhealthy && counters & MASK_SUCCESS != 0 {
        State::MostlyUnhealthy
    } else {
        state
    };
    (next.code() << 32) | counters
}

#[cfg(test)]
mod tests;
