//! Upstreams compiled for the data plane: nodes with addresses, a balancer (whose load and health
//! state carry over from the previous snapshot when the nodes did not change), timeouts, retries,
//! host policy and TLS towards the nodes.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use portico_balancer::{Balancer, HashKey, HealthConfig, Kind, Node};
use portico_model::types::{self, PassHost, Scheme};

use crate::health::health_config;

/// connect/send/read timeouts; nginx's 60 s each when unset.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timeouts {
    pub connect: Duration,
    pub send: Duration,
    pub read: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        let d = Duration::from_secs(60);
        Timeouts {
            connect: d,
            send: d,
            read: d,
        }
    }
}

impl From<&types::Timeout> for Timeouts {
    fn from(t: &types::Timeout) -> Self {
        let secs = |s: f64| Duration::from_secs_f64(s.max(0.001));
        Timeouts {
            connect: secs(t.connect),
            send: secs(t.send),
            read: secs(t.read),
        }
    }
}

/// One node, ready to connect to.
#[derive(Clone, Debug)]
pub struct UpstreamNode {
    /// Host as configured (IP, bracketed IPv6, or domain).
    pub host: String,
    pub port: u16,
    /// The address when `host` is an IP literal; domains are resolved when connecting.
    pub addr: Option<SocketAddr>,
    /// `Host` for `pass_host: node`: the host, plus `:port` unless it is the scheme's default.
    pub host_header: String,
}

/// A compiled upstream.
pub struct Upstream {
    /// Store key of the object it came from (for an inline upstream, the route's key).
    pub key: String,
    pub mod_revision: i64,
    pub nodes: Vec<UpstreamNode>,
    pub balancer: Balancer,
    /// The chash key, when `type` is `chash`.
    pub hash_key: Option<HashKey>,
    pub scheme: Scheme,
    pub pass_host: PassHost,
    pub upstream_host: Option<String>,
    /// Tries after the first one.
    pub retries: usize,
    pub retry_timeout: Option<Duration>,
    pub timeout: Timeouts,
    pub keepalive_size: usize,
    pub keepalive_idle: Duration,
    pub keepalive_requests: u32,
    /// TLS towards the nodes (https, grpcs).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// The health-check settings, when the upstream has `checks`.
    pub checks: Option<types::HealthCheck>,
    /// The typed configuration it was compiled from.
    pub config: types::Upstream,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("key", &self.key)
            .field("nodes", &self.nodes)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// Whether the scheme talks HTTP/2 to the nodes.
    pub fn is_grpc(&self) -> bool {
        matches!(self.scheme, Scheme::Grpc | Scheme::Grpcs)
    }
}

/// Compiles one upstream; `previous` (same key, older revision) hands over balancer load and
/// health state when the nodes are the same.
pub fn compile(
    key: &str,
    mod_revision: i64,
    config: types::Upstream,
    client_tls: Option<(&str, &str)>,
    previous: Option<&Upstream>,
) -> Result<Upstream, String> {
    if config.service_name.is_some() || config.discovery_type.is_some() {
        return Err("service discovery is not supported by Portico; list the nodes".into());
    }
    if !matches!(
        config.scheme,
        Scheme::Http | Scheme::Https | Scheme::Grpc | Scheme::Grpcs
    ) {
        return Err(format!(
            "scheme {:?} is for stream (L4) proxying, which Portico does not support",
            config.scheme
        ));
    }
    let kind = Kind::parse(&config.balancer).map_err(|e| e.to_string())?;
    let nodes: Vec<UpstreamNode> = config
        .nodes
        .iter()
        .map(|n| node(n, config.scheme))
        .collect();
    let balancer_nodes: Vec<Node> = config
        .nodes
        .iter()
        .map(|n| Node::new(n.host.clone(), n.port, n.weight).with_priority(n.priority))
        .collect();
    let health: Option<HealthConfig> = config.checks.as_ref().map(health_config);
    let mut builder = Balancer::builder(kind, balancer_nodes);
    if let Some(h) = health {
        builder = builder.checks(h);
    }
    if let Some(prev) = previous {
        builder = builder.previous(&prev.balancer);
    }
    let balancer = builder.build().map_err(|e| e.to_string())?;
    let hash_key = (kind == Kind::Chash).then(|| {
        let on = portico_balancer::HashOn::parse(hash_on_name(config.hash_on))
            .unwrap_or(portico_balancer::HashOn::Vars);
        HashKey::new(on, config.key.as_deref().unwrap_or("remote_addr"))
    });
    let tls = match config.scheme {
        Scheme::Https | Scheme::Grpcs => Some(crate::client_tls::config(
            client_tls,
            config.scheme == Scheme::Grpcs,
        )?),
        _ => None,
    };
    let retries = config
        .retries
        .map_or_else(|| balancer.default_retries(), |r| r as usize);
    Ok(Upstream {
        key: key.to_string(),
        mod_revision,
        nodes,
        balancer,
        hash_key,
        scheme: config.scheme,
        pass_host: config.pass_host,
        upstream_host: config.upstream_host.clone(),
        retries,
        retry_timeout: config
            .retry_timeout
            .filter(|t| *t > 0.0)
            .map(Duration::from_secs_f64),
        timeout: config
            .timeout
            .as_ref()
            .map(Timeouts::from)
            .unwrap_or_default(),
        keepalive_size: config.keepalive_pool.size as usize,
        keepalive_idle: Duration::from_secs_f64(config.keepalive_pool.idle_timeout.max(0.0)),
        keepalive_requests: config.keepalive_pool.requests.max(1),
        tls,
        checks: config.checks.clone(),
        config,
    })
}

fn node(n: &types::Node, scheme: Scheme) -> UpstreamNode {
    let bare = n.host.trim_start_matches('[').trim_end_matches(']');
    let addr = bare
        .parse::<IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, n.port));
    let host_header = if n.port == scheme.default_port() {
        n.host.clone()
    } else {
        format!("{}:{}", n.host, n.port)
    };
    UpstreamNode {
        host: n.host.clone(),
        port: n.port,
        addr,
        host_header,
    }
}

fn hash_on_name(on: types::HashOn) -> &'static str {
    match on {
        types::HashOn::Vars => "vars",
        types::HashOn::Header => "header",
        types::HashOn::Cookie => "cookie",
        types::HashOn::Consumer => "consumer",
        types::HashOn::VarsCombinations => "vars_combinations",
    }
}
