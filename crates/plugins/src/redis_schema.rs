//! Redis connection schemas shared by the rate-limiting plugins (`apisix/utils/redis-schema.lua`),
//! their write-time checks ([`check`]) and the client a checked configuration names
//! ([`RedisTarget::from_conf`]).

use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::redis::{parse_addr, Client, Endpoint, Limits, Pools, Tls};
use crate::typed;

/// `policy = "redis"`: a single Redis server.
pub fn redis() -> Value {
    json!({
        "properties": {
            "redis_host": {"type": "string", "minLength": 2},
            "redis_port": {"type": "integer", "minimum": 1, "default": 6379},
            "redis_username": {"type": "string", "minLength": 1},
            "redis_password": {"type": "string", "minLength": 0},
            "redis_database": {"type": "integer", "minimum": 0, "default": 0},
            "redis_timeout": {"type": "integer", "minimum": 1, "default": 1000},
            "redis_ssl": {"type": "boolean", "default": false},
            "redis_ssl_verify": {"type": "boolean", "default": false},
            "redis_keepalive_timeout": {"type": "integer", "minimum": 1000, "default": 10000},
            "redis_keepalive_pool": {"type": "integer", "minimum": 1, "default": 100}
        },
        "required": ["redis_host"]
    })
}

/// `policy = "redis-cluster"`.
pub fn redis_cluster() -> Value {
    json!({
        "properties": {
            "redis_cluster_nodes": {
                "type": "array",
                "minItems": 1,
                "items": {"type": "string", "minLength": 2, "maxLength": 100}
            },
            "redis_password": {"type": "string", "minLength": 0},
            "redis_timeout": {"type": "integer", "minimum": 1, "default": 1000},
            "redis_cluster_name": {"type": "string"},
            "redis_cluster_ssl": {"type": "boolean", "default": false},
            "redis_cluster_ssl_verify": {"type": "boolean", "default": false},
            "redis_keepalive_timeout": {"type": "integer", "minimum": 1000, "default": 10000},
            "redis_keepalive_pool": {"type": "integer", "minimum": 1, "default": 100}
        },
        "required": ["redis_cluster_nodes", "redis_cluster_name"]
    })
}

/// `policy = "redis-sentinel"` (limit-count only).
pub fn redis_sentinel() -> Value {
    json!({
        "properties": {
            "redis_sentinels": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "properties": {
                        "host": {"type": "string", "minLength": 2},
                        "port": {"type": "integer", "minimum": 1, "maximum": 65535}
                    },
                    "required": ["host", "port"],
                    "additionalProperties": false
                }
            },
            "redis_master_name": {"type": "string", "minLength": 1},
            "redis_role": {"type": "string", "enum": ["master", "slave"], "default": "master"},
            "redis_connect_timeout": {"type": "integer", "minimum": 1, "default": 1000},
            "redis_read_timeout": {"type": "integer", "minimum": 1, "default": 1000},
            "redis_keepalive_timeout": {"type": "integer", "minimum": 1, "default": 60000},
            "redis_database": {"type": "integer", "minimum": 0, "default": 0},
            "redis_username": {"type": "string", "minLength": 1},
            "redis_password": {"type": "string", "minLength": 0},
            "sentinel_username": {"type": "string", "minLength": 1},
            "sentinel_password": {"type": "string", "minLength": 0}
        },
        "required": ["redis_sentinels", "redis_master_name"]
    })
}

/// What Portico checks on write beyond the schemas for `policy` `redis`, `redis-cluster` and
/// `redis-sentinel` (ports that fit, cluster node addresses that parse, a role that can
/// write); other policies pass.
pub fn check(policy: &str, conf: &Value) -> Result<(), String> {
    match policy {
        "redis" => {
            let port = conf
                .get("redis_port")
                .and_then(Value::as_u64)
                .unwrap_or(6379);
            if port > u64::from(u16::MAX) {
                return Err(format!("invalid redis_port {port}: must be at most 65535"));
            }
            if conf
                .get("redis_database")
                .and_then(Value::as_u64)
                .is_some_and(|db| db > u64::from(u32::MAX))
            {
                return Err("invalid redis_database: too large".to_string());
            }
        }
        "redis-cluster" => {
            for node in conf
                .get("redis_cluster_nodes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                parse_addr(node)
                    .map_err(|e| format!("failed to parse address: {node} err: {e}"))?;
            }
        }
        "redis-sentinel" if conf.get("redis_role").and_then(Value::as_str) == Some("slave") => {
            return Err(
                "redis_role slave is not supported: replicas are read-only and the \
                        counters are written"
                    .to_string(),
            );
        }
        _ => {}
    }
    Ok(())
}

fn default_port() -> u16 {
    6379
}

fn default_timeout() -> u64 {
    1000
}

fn default_keepalive_timeout() -> u64 {
    10_000
}

fn default_keepalive_pool() -> usize {
    100
}

/// The Redis fields of a checked configuration.
#[derive(Debug, Deserialize)]
struct RedisConf {
    redis_host: Option<String>,
    #[serde(default = "default_port")]
    redis_port: u16,
    redis_username: Option<String>,
    redis_password: Option<String>,
    #[serde(default)]
    redis_database: u32,
    #[serde(default)]
    redis_ssl: bool,
    #[serde(default)]
    redis_ssl_verify: bool,
    #[serde(default)]
    redis_cluster_nodes: Vec<String>,
    redis_cluster_name: Option<String>,
    #[serde(default)]
    redis_cluster_ssl: bool,
    #[serde(default)]
    redis_cluster_ssl_verify: bool,
    #[serde(default = "default_timeout")]
    redis_timeout: u64,
    #[serde(default = "default_keepalive_timeout")]
    redis_keepalive_timeout: u64,
    #[serde(default = "default_keepalive_pool")]
    redis_keepalive_pool: usize,
    #[serde(default)]
    redis_sentinels: Vec<SentinelAddr>,
    redis_master_name: Option<String>,
    redis_connect_timeout: Option<u64>,
    redis_read_timeout: Option<u64>,
    sentinel_username: Option<String>,
    sentinel_password: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SentinelAddr {
    host: String,
    port: u16,
}

fn tls(on: bool, verify: bool) -> Result<Option<Tls>, String> {
    on.then(|| Tls::new(verify))
        .transpose()
        .map_err(|e| e.to_string())
}

/// The Redis a plugin configuration names, and the limits its calls run with.
#[derive(Debug, Clone)]
pub struct RedisTarget {
    /// A server (`policy: redis`) or a cluster (`policy: redis-cluster`), with its connections
    /// from the node's pools.
    pub client: Client,
    /// `redis_timeout`, `redis_keepalive_timeout`, `redis_keepalive_pool`.
    pub limits: Limits,
}

impl RedisTarget {
    /// The target of `policy` (`redis`, `redis-cluster`, `redis-sentinel`) in a checked
    /// configuration; the
    /// pools are the node's ([`PluginState::redis`](crate::PluginState)). Nothing is contacted.
    pub fn from_conf(policy: &str, conf: &Value, pools: &Pools) -> Result<RedisTarget, String> {
        let c: RedisConf = typed(conf)?;
        let client = match policy {
            "redis" => {
                let host = c.redis_host.ok_or("redis_host is required")?;
                Client::Server(pools.server(Endpoint {
                    host,
                    port: c.redis_port,
                    username: c.redis_username,
                    password: c.redis_password,
                    database: c.redis_database,
                    tls: tls(c.redis_ssl, c.redis_ssl_verify)?,
                }))
            }
            "redis-cluster" => {
                let tls = tls(c.redis_cluster_ssl, c.redis_cluster_ssl_verify)?;
                let seeds = c
                    .redis_cluster_nodes
                    .iter()
                    .map(|node| {
                        let (host, port) = parse_addr(node)?;
                        Ok(Endpoint {
                            password: c.redis_password.clone(),
                            tls: tls.clone(),
                            ..Endpoint::new(&host, port)
                        })
                    })
                    .collect::<Result<Vec<_>, String>>()?;
                if seeds.is_empty() {
                    return Err("redis_cluster_nodes is required".into());
                }
                let name = c.redis_cluster_name.unwrap_or_default();
                Client::Cluster(pools.cluster(&name, seeds))
            }
            "redis-sentinel" => {
                let sentinels = c
                    .redis_sentinels
                    .iter()
                    .map(|s| Endpoint {
                        username: c.sentinel_username.clone(),
                        password: c.sentinel_password.clone(),
                        ..Endpoint::new(&s.host, s.port)
                    })
                    .collect();
                let master = Endpoint {
                    username: c.redis_username,
                    password: c.redis_password,
                    database: c.redis_database,
                    ..Endpoint::new("", 0)
                };
                let name = c.redis_master_name.ok_or("redis_master_name is required")?;
                Client::Sentinel(pools.sentinel(&name, sentinels, master))
            }
            other => return Err(format!("policy {other} is not supported yet")),
        };
        Ok(RedisTarget {
            client,
            limits: Limits {
                connect_timeout: Duration::from_millis(
                    c.redis_connect_timeout.unwrap_or(c.redis_timeout),
                ),
                timeout: Duration::from_millis(c.redis_read_timeout.unwrap_or(c.redis_timeout)),
                keepalive_timeout: Duration::from_millis(c.redis_keepalive_timeout),
                keepalive_pool: c.redis_keepalive_pool,
            },
        })
    }
}
