//! A cluster of etcd members, each an [`EtcdServer`] with its own ports and data folder.

use super::{require_etcd, EtcdServer};
use crate::ports::free_port;

/// A cluster of etcd members on loopback, each with its own ports and data folder.
pub struct EtcdCluster {
    members: Vec<EtcdServer>,
    _tmp: tempfile::TempDir,
}

impl EtcdCluster {
    /// Starts `size` members (`n1`..), waits until every one of them is ready.
    pub fn start(size: usize) -> EtcdCluster {
        require_etcd();
        let tmp = tempfile::tempdir().expect("create a temporary folder for etcd");
        let ports: Vec<(u16, u16)> = (0..size).map(|_| (free_port(), free_port())).collect();
        let initial = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("n{}=http://127.0.0.1:{peer}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let mut members: Vec<EtcdServer> = ports
            .iter()
            .enumerate()
            .map(|(i, (client, peer))| {
                let args = vec![
                    format!("--initial-cluster={initial}"),
                    "--initial-cluster-state=new".to_string(),
                ];
                EtcdServer::new(&format!("n{}", i + 1), *client, *peer, tmp.path(), args)
            })
            .collect();
        // Members wait for each other to elect a leader, so all must run before any is ready.
        members.iter_mut().for_each(EtcdServer::spawn);
        for member in &mut members {
            if let Err(log) = member.wait_ready() {
                panic!("etcd member {} did not start; log:\n{log}", member.name);
            }
        }
        EtcdCluster { members, _tmp: tmp }
    }

    /// The client URLs of all members, in member order.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(EtcdServer::endpoint).collect()
    }

    /// Member `i` (0-based).
    pub fn member(&self, i: usize) -> &EtcdServer {
        &self.members[i]
    }

    /// Member `i` (0-based), to kill, stop or restart it.
    pub fn member_mut(&mut self, i: usize) -> &mut EtcdServer {
        &mut self.members[i]
    }

    /// The index of the member that is the leader now, as the running members report it.
    pub fn leader(&self) -> Option<usize> {
        self.members.iter().position(|m| {
            if !m.is_running() {
                return false;
            }
            let out = m.etcdctl(&["endpoint", "status", "--write-out=json"]);
            let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            let status = &status[0]["Status"];
            let (me, leader) = (&status["header"]["member_id"], &status["leader"]);
            me.as_u64().is_some() && me.as_u64() == leader.as_u64()
        })
    }

    /// The number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the cluster has no members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}
