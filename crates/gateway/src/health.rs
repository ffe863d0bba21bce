//! Active health checks (`upstream.checks.active`, `reference/apisix.md` §2.4.1, §4.4): probe
//! the nodes of every upstream that has checks, in the background, and report the outcomes into
//! the upstream's [`HealthTable`], which the balancer reads on every pick.
//!
//! **Who runs it.** [`node::follow`](crate::node::follow) owns one [`Checker`] and calls
//! [`Checker::sync`] after every snapshot swap, so `portico up` and `portico dp` get active
//! checks by following the store. Checkers start **at the swap** that brings an upstream with
//! checks, not lazily on the first request as APISIX does: an upstream no route uses is probed
//! too, and its nodes' health is known before the first request arrives.
//!
//! **Following swaps.** One tokio task per upstream (by store key). A new version of the
//! upstream is handed to its task, which probes the new node list from then on; probe outcomes
//! are always reported into the table of the newest version, matched by node address. The
//! table itself carries over in the snapshot compiler (`Builder::previous`): unchanged nodes
//! keep one table, changed node lists copy the state of the nodes that stayed. The task of an
//! upstream that is gone (or lost its checks) is aborted, and dropping the [`Checker`] aborts
//! them all.
//!
//! **Timing**, as lua-resty-healthcheck: every `healthy.interval` seconds the healthy nodes are
//! probed, every `unhealthy.interval` seconds the unhealthy ones (0 disables that timer), at most
//! `concurrency` probes at a time. The first round runs as soon as the checker starts.

mod probe;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use portico_balancer::health::{Outcome, Transition};
use portico_balancer::{HealthTable, NodeIndex};
use portico_model::types::{ActiveCheck, PassHost};
use portico_snapshot::{Snapshot, Upstream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{Interval, MissedTickBehavior};

use probe::Target;

/// The active checkers of one node: one background task per upstream with `checks`.
#[derive(Default)]
pub struct Checker {
    upstreams: HashMap<String, Probing>,
}

/// The task probing one upstream and the channel that hands it new versions.
struct Probing {
    current: watch::Sender<Arc<Upstream>>,
    task: JoinHandle<()>,
}

impl Drop for Probing {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Checker {
    /// A checker probing nothing yet.
    pub fn new() -> Checker {
        Checker::default()
    }

    /// Makes the running checkers match `snapshot`: starts one for each new upstream with
    /// `checks`, hands changed upstreams to their checker, and stops the checkers of upstreams
    /// that are gone. Call it after each swap, from within a tokio runtime.
    pub fn sync(&mut self, snapshot: &Snapshot) {
        let wanted = |u: &Upstream| u.checks.is_some() && u.balancer.health().is_some();
        self.upstreams
            .retain(|key, _| snapshot.upstreams.get(key).is_some_and(|u| wanted(u)));
        for (key, upstream) in &snapshot.upstreams {
            if !wanted(upstream) {
                continue;
            }
            match self.upstreams.get(key) {
                Some(probing) => {
                    if !Arc::ptr_eq(&probing.current.borrow(), upstream) {
                        probing.current.send_replace(upstream.clone());
                    }
                }
                None => {
                    let (current, rx) = watch::channel(upstream.clone());
                    let task = tokio::spawn(run(key.clone(), rx));
                    self.upstreams
                        .insert(key.clone(), Probing { current, task });
                }
            }
        }
    }

    /// The keys of the upstreams being probed, sorted.
    pub fn upstreams(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.upstreams.keys().cloned().collect();
        keys.sort();
        keys
    }
}

/// Probes one upstream until its task is aborted or its [`Checker`] entry is dropped.
async fn run(key: String, mut versions: watch::Receiver<Arc<Upstream>>) {
    let mut upstream = versions.borrow_and_update().clone();
    let mut timers = Timers::new(active(&upstream));
    loop {
        let healthy = tokio::select! {
            _ = tick(&mut timers.healthy) => true,
            _ = tick(&mut timers.unhealthy) => false,
            changed = versions.changed() => {
                if changed.is_err() {
                    return;
                }
                upstream = versions.borrow_and_update().clone();
                if timers.intervals != Timers::intervals(active(&upstream)) {
                    timers = Timers::new(active(&upstream));
                }
                continue;
            }
        };
        round(&key, &upstream, healthy, &versions).await;
    }
}

/// The active section of an upstream's checks (present: the checker runs only for those).
fn active(upstream: &Upstream) -> Option<&ActiveCheck> {
    upstream.checks.as_ref().map(|c| &c.active)
}

/// The two probe timers of lua-resty-healthcheck; `None` is a disabled timer.
struct Timers {
    intervals: (u32, u32),
    healthy: Option<Interval>,
    unhealthy: Option<Interval>,
}

impl Timers {
    fn new(check: Option<&ActiveCheck>) -> Timers {
        let intervals = Timers::intervals(check);
        let timer = |secs: u32| {
            (secs > 0).then(|| {
                let mut t = tokio::time::interval(Duration::from_secs(u64::from(secs)));
                t.set_missed_tick_behavior(MissedTickBehavior::Delay);
                t
            })
        };
        Timers {
            intervals,
            healthy: timer(intervals.0),
            unhealthy: timer(intervals.1),
        }
    }

    fn intervals(check: Option<&ActiveCheck>) -> (u32, u32) {
        check.map_or((0, 0), |c| (c.healthy.interval, c.unhealthy.interval))
    }
}

async fn tick(timer: &mut Option<Interval>) {
    match timer {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Probes the nodes of `upstream` that are currently healthy (or unhealthy), `concurrency` at a
/// time, reporting each outcome as it comes.
async fn round(
    key: &str,
    upstream: &Upstream,
    healthy: bool,
    versions: &watch::Receiver<Arc<Upstream>>,
) {
    let (Some(check), Some(table)) = (active(upstream), upstream.balancer.health()) else {
        return;
    };
    let mut targets = (0..upstream.nodes.len())
        .filter_map(NodeIndex::new)
        .filter(|&idx| table.is_healthy(idx) == healthy)
        .filter_map(|idx| target(upstream, check, idx));
    let check = Arc::new(check.clone());
    let limit = usize::try_from(check.concurrency)
        .unwrap_or(usize::MAX)
        .max(1);
    let mut running = JoinSet::new();
    loop {
        while running.len() < limit {
            let Some((host, port, target)) = targets.next() else {
                break;
            };
            let check = check.clone();
            running.spawn(async move { (host, port, probe::probe(&check, &target).await) });
        }
        let Some(done) = running.join_next().await else {
            return;
        };
        if let Ok((host, port, outcome)) = done {
            let latest = versions.borrow().clone();
            report(key, &latest, &host, port, outcome);
        }
    }
}

/// What to probe for node `idx`: `(node host, node port, target)`.
fn target(
    upstream: &Upstream,
    check: &ActiveCheck,
    idx: NodeIndex,
) -> Option<(String, u16, Target)> {
    let node = upstream.nodes.get(idx.get())?;
    let host_header = match (&check.host, upstream.pass_host, &upstream.upstream_host) {
        (Some(host), _, _) => host.clone(),
        (None, PassHost::Rewrite, Some(host)) => host.clone(),
        _ => node.host.clone(),
    };
    let target = Target {
        host: node.host.clone(),
        addr: node.addr,
        port: check.port.unwrap_or(node.port),
        host_header,
    };
    Some((node.host.clone(), node.port, target))
}

/// Reports `outcome` for the node `host:port` into the table of the newest version of the
/// upstream (the node may have moved or gone since the probe started).
fn report(key: &str, upstream: &Upstream, host: &str, port: u16, outcome: Outcome) {
    let Some(table): Option<&Arc<HealthTable>> = upstream.balancer.health() else {
        return;
    };
    let position = upstream
        .nodes
        .iter()
        .position(|n| n.port == port && n.host == host);
    let Some(idx) = position.and_then(NodeIndex::new) else {
        return;
    };
    match table.report_active(idx, outcome) {
        Some(Transition::BecameUnhealthy) => {
            tracing::warn!(
                upstream = key,
                "node {host}:{port} is unhealthy ({outcome:?})"
            )
        }
        Some(Transition::BecameHealthy) => {
            tracing::info!(upstream = key, "node {host}:{port} is healthy again")
        }
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portico_model::{Keyring, Registry};
    use portico_snapshot::{Config, Item};
    use serde_json::json;

    /// A snapshot of upstreams `(id, with checks)`, each with one node nothing listens on.
    fn snapshot(upstreams: &[(&str, bool)]) -> Snapshot {
        let config: Config = upstreams
            .iter()
            .map(|&(id, checks)| {
                let mut value = json!({"nodes": {"127.0.0.1:9": 1}});
                if checks {
                    value["checks"] = json!({"active": {"type": "tcp"}});
                }
                let item = Item {
                    mod_revision: 1,
                    value,
                };
                (format!("ws/default/upstreams/{id}"), item)
            })
            .collect();
        let (plugins, keyring) = (Registry::new(Vec::new()), Keyring::disabled());
        portico_snapshot::compile(&config, 1, None, &plugins, &keyring)
    }

    #[tokio::test]
    async fn checkers_run_for_upstreams_with_checks_and_stop_with_them() {
        let mut checker = Checker::new();
        checker.sync(&snapshot(&[("1", true), ("2", false)]));
        assert_eq!(checker.upstreams(), ["ws/default/upstreams/1"]);
        let task = checker.upstreams["ws/default/upstreams/1"]
            .task
            .abort_handle();

        checker.sync(&snapshot(&[("1", false), ("2", true)]));
        assert_eq!(checker.upstreams(), ["ws/default/upstreams/2"]);
        for _ in 0..100 {
            if task.is_finished() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(task.is_finished(), "the checker of upstream 1 still runs");

        checker.sync(&Snapshot::empty());
        assert!(checker.upstreams().is_empty());
    }
}
