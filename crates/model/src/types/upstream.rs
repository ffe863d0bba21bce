//! Typed upstream: nodes in both wire forms normalised to [`Node`]s, health checks, TLS and
//! keep-alive pool, with APISIX's runtime defaults.

use super::{de, HealthCheck, Id, Labels};
use crate::check::parse_addr;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::net::Ipv6Addr;

/// `timeout` (seconds): all three are required.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct Timeout {
    /// Connect timeout.
    pub connect: f64,
    /// Send timeout.
    pub send: f64,
    /// Read timeout.
    pub read: f64,
}

/// Load-balancing key source of `chash`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HashOn {
    /// An nginx variable (default).
    #[default]
    Vars,
    /// A request header.
    Header,
    /// A cookie.
    Cookie,
    /// The authenticated consumer.
    Consumer,
    /// A template of variables, e.g. `$request_uri$remote_addr`.
    VarsCombinations,
}

/// Protocol towards the nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scheme {
    /// gRPC over cleartext HTTP/2.
    Grpc,
    /// gRPC over TLS.
    Grpcs,
    /// HTTP (default).
    #[default]
    Http,
    /// HTTPS.
    Https,
    /// L4 TCP.
    Tcp,
    /// L4 TLS.
    Tls,
    /// L4 UDP.
    Udp,
    /// Kafka.
    Kafka,
}

impl Scheme {
    /// The port of a node given without one (`apisix/upstream.lua:scheme_to_port`; 80 for the
    /// others).
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Https | Scheme::Grpcs => 443,
            _ => 80,
        }
    }
}

/// How the `Host` header reaches the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PassHost {
    /// The client's Host (default).
    #[default]
    Pass,
    /// The chosen node's host.
    Node,
    /// `upstream_host`.
    Rewrite,
}

/// One upstream server.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Host name or IP; IPv6 literals are bracketed (`[::1]`).
    pub host: String,
    /// Port (the scheme's default when the node gave none).
    pub port: u16,
    /// Weight; 0 is never picked by round robin unless it is the only node.
    pub weight: u32,
    /// Higher priorities are tried first.
    pub priority: i32,
    /// Free-form metadata.
    pub metadata: Option<Map<String, Value>>,
}

/// `tls` towards the upstream.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct UpstreamTls {
    /// An SSL object of `type: client` holding the client certificate.
    pub client_cert_id: Option<Id>,
    /// Inline client certificate (PEM).
    pub client_cert: Option<String>,
    /// Inline client key (PEM, decrypted).
    pub client_key: Option<String>,
    /// Verify the server certificate (APISIX: kafka only).
    #[serde(default)]
    pub verify: bool,
}

/// `keepalive_pool`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(default)]
pub struct KeepalivePool {
    /// Idle connections kept.
    pub size: u32,
    /// Seconds an idle connection is kept.
    pub idle_timeout: f64,
    /// Requests per connection.
    pub requests: u32,
}

impl Default for KeepalivePool {
    fn default() -> Self {
        KeepalivePool {
            size: 320,
            idle_timeout: 60.0,
            requests: 1000,
        }
    }
}

#[derive(Deserialize)]
struct RawNode {
    host: String,
    port: Option<u16>,
    weight: u32,
    #[serde(default)]
    priority: i32,
    metadata: Option<Map<String, Value>>,
}

/// The wire form; [`Upstream`] is built from it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    id: Option<Id>,
    name: Option<String>,
    desc: Option<String>,
    #[serde(default, deserialize_with = "de::map")]
    labels: Labels,
    create_time: Option<i64>,
    update_time: Option<i64>,
    nodes: Option<Value>,
    retries: Option<u32>,
    retry_timeout: Option<f64>,
    timeout: Option<Timeout>,
    tls: Option<UpstreamTls>,
    #[serde(default)]
    keepalive_pool: KeepalivePool,
    #[serde(rename = "type")]
    balancer: Option<String>,
    checks: Option<HealthCheck>,
    #[serde(default)]
    hash_on: HashOn,
    key: Option<String>,
    #[serde(default)]
    scheme: Scheme,
    discovery_type: Option<String>,
    #[serde(default, deserialize_with = "de::opt_map")]
    discovery_args: Option<Map<String, Value>>,
    #[serde(default)]
    pass_host: PassHost,
    upstream_host: Option<String>,
    service_name: Option<String>,
}

/// An upstream with runtime defaults applied.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "RawUpstream")]
pub struct Upstream {
    /// Id (absent for an inline upstream).
    pub id: Option<Id>,
    /// Name.
    pub name: Option<String>,
    /// Description.
    pub desc: Option<String>,
    /// Labels.
    pub labels: Labels,
    /// Creation time (unix seconds).
    pub create_time: Option<i64>,
    /// Update time (unix seconds).
    pub update_time: Option<i64>,
    /// The nodes, in the order given (both wire forms).
    pub nodes: Vec<Node>,
    /// Retries; `None` means "number of nodes − 1" at runtime.
    pub retries: Option<u32>,
    /// Retry time budget in seconds (`None`/0: none).
    pub retry_timeout: Option<f64>,
    /// Timeouts (`None`: 60 s each).
    pub timeout: Option<Timeout>,
    /// TLS towards the nodes.
    pub tls: Option<UpstreamTls>,
    /// Keep-alive pool.
    pub keepalive_pool: KeepalivePool,
    /// Balancer: `roundrobin` (default), `chash`, `ewma`, `least_conn` (not enum-checked by
    /// APISIX; an unknown one fails at request time).
    pub balancer: String,
    /// Health checks.
    pub checks: Option<HealthCheck>,
    /// chash key source.
    pub hash_on: HashOn,
    /// chash key.
    pub key: Option<String>,
    /// Protocol towards the nodes.
    pub scheme: Scheme,
    /// Service discovery type (nodes come from discovery instead).
    pub discovery_type: Option<String>,
    /// Service discovery arguments.
    pub discovery_args: Option<Map<String, Value>>,
    /// Host header policy.
    pub pass_host: PassHost,
    /// Host for `pass_host: rewrite`.
    pub upstream_host: Option<String>,
    /// Service name for discovery.
    pub service_name: Option<String>,
}

fn bracket(host: String) -> String {
    if !host.starts_with('[') && host.parse::<Ipv6Addr>().is_ok() {
        format!("[{host}]")
    } else {
        host
    }
}

fn nodes(raw: Option<Value>, scheme: Scheme) -> Result<Vec<Node>, String> {
    let port = |p: Option<f64>| {
        p.filter(|p| (1.0..=65535.0).contains(p))
            .map_or(scheme.default_port(), |p| p as u16)
    };
    match raw {
        None => Ok(Vec::new()),
        Some(Value::Object(map)) => map
            .into_iter()
            .map(|(addr, weight)| {
                let (host, p) = parse_addr(&addr);
                let weight = weight
                    .as_u64()
                    .and_then(|w| u32::try_from(w).ok())
                    .ok_or(format!("invalid weight of node {addr}"))?;
                Ok(Node {
                    host: host.to_string(),
                    port: port(p),
                    weight,
                    priority: 0,
                    metadata: None,
                })
            })
            .collect(),
        Some(Value::Array(list)) => list
            .into_iter()
            .map(|n| {
                let n: RawNode = serde_json::from_value(n).map_err(|e| e.to_string())?;
                Ok(Node {
                    host: bracket(n.host),
                    port: n.port.unwrap_or(scheme.default_port()),
                    weight: n.weight,
                    priority: n.priority,
                    metadata: n.metadata,
                })
            })
            .collect(),
        Some(other) => Err(format!("invalid nodes: {other}")),
    }
}

impl TryFrom<RawUpstream> for Upstream {
    type Error = String;

    fn try_from(r: RawUpstream) -> Result<Self, String> {
        Ok(Upstream {
            nodes: nodes(r.nodes, r.scheme)?,
            id: r.id,
            name: r.name,
            desc: r.desc,
            labels: r.labels,
            create_time: r.create_time,
            update_time: r.update_time,
            retries: r.retries,
            retry_timeout: r.retry_timeout,
            timeout: r.timeout,
            tls: r.tls,
            keepalive_pool: r.keepalive_pool,
            balancer: r.balancer.unwrap_or_else(|| "roundrobin".to_string()),
            checks: r.checks,
            hash_on: r.hash_on,
            key: r.key,
            scheme: r.scheme,
            discovery_type: r.discovery_type,
            discovery_args: r.discovery_args,
            pass_host: r.pass_host,
            upstream_host: r.upstream_host,
            service_name: r.service_name,
        })
    }
}
