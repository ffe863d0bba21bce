//! Typed health checks (`checks` of an upstream) with APISIX's defaults.

use super::de;
use serde::Deserialize;

/// Probe type of a health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckType {
    /// HTTP probe (default).
    #[default]
    Http,
    /// HTTPS probe.
    Https,
    /// TCP connect.
    Tcp,
}

/// `checks`: active probes, optionally with passive observation.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct HealthCheck {
    /// Active probes (required).
    pub active: ActiveCheck,
    /// Passive checks on proxied traffic.
    pub passive: Option<PassiveCheck>,
}

/// `checks.active`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct ActiveCheck {
    /// Probe type.
    #[serde(rename = "type")]
    pub kind: CheckType,
    /// Probe timeout (seconds).
    pub timeout: f64,
    /// Parallel probes.
    pub concurrency: u32,
    /// Host header / SNI of the probe (node host when absent).
    pub host: Option<String>,
    /// Probe port (node port when absent).
    pub port: Option<u16>,
    /// Probe method.
    pub http_method: String,
    /// Probe path.
    pub http_path: String,
    /// Probe body.
    pub http_req_body: String,
    /// Verify the node's certificate on HTTPS probes.
    pub https_verify_certificate: bool,
    /// When a node counts as healthy.
    pub healthy: ActiveHealthy,
    /// When a node counts as unhealthy.
    pub unhealthy: ActiveUnhealthy,
    /// Extra probe headers, `"Name: value"`.
    #[serde(deserialize_with = "de::list")]
    pub req_headers: Vec<String>,
}

impl Default for ActiveCheck {
    fn default() -> Self {
        ActiveCheck {
            kind: CheckType::Http,
            timeout: 1.0,
            concurrency: 10,
            host: None,
            port: None,
            http_method: "GET".to_string(),
            http_path: "/".to_string(),
            http_req_body: String::new(),
            https_verify_certificate: true,
            healthy: ActiveHealthy::default(),
            unhealthy: ActiveUnhealthy::default(),
            req_headers: Vec::new(),
        }
    }
}

/// `checks.active.healthy`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct ActiveHealthy {
    /// Seconds between probes of a healthy node.
    pub interval: u32,
    /// Statuses that count as success.
    #[serde(deserialize_with = "de::list")]
    pub http_statuses: Vec<u16>,
    /// Successes to become healthy.
    pub successes: u32,
}

impl Default for ActiveHealthy {
    fn default() -> Self {
        ActiveHealthy {
            interval: 1,
            http_statuses: vec![200, 302],
            successes: 2,
        }
    }
}

/// `checks.active.unhealthy`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct ActiveUnhealthy {
    /// Seconds between probes of an unhealthy node.
    pub interval: u32,
    /// Statuses that count as failure.
    #[serde(deserialize_with = "de::list")]
    pub http_statuses: Vec<u16>,
    /// HTTP failures to become unhealthy.
    pub http_failures: u32,
    /// TCP failures to become unhealthy.
    pub tcp_failures: u32,
    /// Timeouts to become unhealthy.
    pub timeouts: u32,
}

impl Default for ActiveUnhealthy {
    fn default() -> Self {
        ActiveUnhealthy {
            interval: 1,
            http_statuses: vec![429, 404, 500, 501, 502, 503, 504, 505],
            http_failures: 5,
            tcp_failures: 2,
            timeouts: 3,
        }
    }
}

/// `checks.passive`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct PassiveCheck {
    /// Traffic type.
    #[serde(rename = "type")]
    pub kind: CheckType,
    /// When a node counts as healthy.
    pub healthy: PassiveHealthy,
    /// When a node counts as unhealthy.
    pub unhealthy: PassiveUnhealthy,
}

/// `checks.passive.healthy`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct PassiveHealthy {
    /// Statuses that count as success.
    #[serde(deserialize_with = "de::list")]
    pub http_statuses: Vec<u16>,
    /// Successes to become healthy.
    pub successes: u32,
}

impl Default for PassiveHealthy {
    fn default() -> Self {
        let mut http_statuses: Vec<u16> = (200..=208).collect();
        http_statuses.push(226);
        http_statuses.extend(300..=308);
        PassiveHealthy {
            http_statuses,
            successes: 5,
        }
    }
}

/// `checks.passive.unhealthy`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct PassiveUnhealthy {
    /// Statuses that count as failure.
    #[serde(deserialize_with = "de::list")]
    pub http_statuses: Vec<u16>,
    /// TCP failures to become unhealthy.
    pub tcp_failures: u32,
    /// Timeouts to become unhealthy.
    pub timeouts: u32,
    /// HTTP failures to become unhealthy.
    pub http_failures: u32,
}

impl Default for PassiveUnhealthy {
    fn default() -> Self {
        PassiveUnhealthy {
            http_statuses: vec![429, 500, 503],
            tcp_failures: 2,
            timeouts: 7,
            http_failures: 5,
        }
    }
}
