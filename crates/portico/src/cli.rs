//! Command line: `portico up | cp | dp`, each setting also read from the environment.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "portico",
    version,
    about = "Portico: a self-hosted API gateway platform"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Everything in one process on the embedded store: the control plane and the `default`
    /// cluster's gateway.
    Up(CommonArgs),
    /// The control plane (Admin API) on the embedded store or on etcd.
    Cp(CpArgs),
    /// One data-plane node of one cluster, following the cluster's etcd.
    Dp(CpArgs),
}

/// Settings every role reads. Precedence: flag, then environment, then `portico.yaml`, then the
/// default.
#[derive(Debug, Args, Default, Clone)]
pub struct CommonArgs {
    /// Configuration file (default: ./portico.yaml when it exists).
    #[arg(long, env = "PORTICO_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data folder: the embedded store, the generated admin key and keyring.
    #[arg(long, env = "PORTICO_DATA")]
    pub data: Option<PathBuf>,
    /// The admin key (role admin). Generated and kept in the data folder when not given.
    #[arg(long, env = "PORTICO_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,
    /// An optional read-only key (role viewer).
    #[arg(long, env = "PORTICO_VIEWER_KEY", hide_env_values = true)]
    pub viewer_key: Option<String>,
    /// Admin API listener [default: 127.0.0.1:9180].
    #[arg(long, env = "PORTICO_ADMIN_ADDR")]
    pub admin_addr: Option<String>,
    /// HTTP proxy listener [default: 0.0.0.0:9080].
    #[arg(long, env = "PORTICO_PROXY_ADDR")]
    pub proxy_addr: Option<String>,
    /// HTTPS proxy listener [default: 0.0.0.0:9443].
    #[arg(long, env = "PORTICO_PROXY_TLS_ADDR")]
    pub proxy_tls_addr: Option<String>,
    /// Prometheus metrics listener [default: 127.0.0.1:9091].
    #[arg(long, env = "PORTICO_METRICS_ADDR")]
    pub metrics_addr: Option<String>,
    /// Status listener of a data-plane node (`/status`, `/status/ready`) [default: 127.0.0.1:7085].
    #[arg(long, env = "PORTICO_STATUS_ADDR")]
    pub status_addr: Option<String>,
    /// Seconds between a node's heartbeats [default: 5].
    #[arg(long, env = "PORTICO_HEARTBEAT")]
    pub heartbeat: Option<u64>,
    /// Seconds without heartbeat before a node counts as lost [default: 30].
    #[arg(long, env = "PORTICO_NODE_LOST_AFTER")]
    pub node_lost_after: Option<u64>,
    /// Seconds without heartbeat before a node counts as offline [default: 7200].
    #[arg(long, env = "PORTICO_NODE_OFFLINE_AFTER")]
    pub node_offline_after: Option<u64>,
    /// Seconds without heartbeat before a node is forgotten [default: 604800].
    #[arg(long, env = "PORTICO_NODE_REMOVE_AFTER")]
    pub node_remove_after: Option<u64>,
    /// Access log of the proxy: a file path, `stdout`, or `off` [default: <data>/access.log].
    /// The file is reopened on SIGUSR1 and when log rotation moves it.
    #[arg(long, env = "PORTICO_ACCESS_LOG")]
    pub access_log: Option<String>,
    /// Access log format: `default` (APISIX's nginx format) or `json` (one object per line)
    /// [default: default].
    #[arg(long, env = "PORTICO_ACCESS_LOG_FORMAT")]
    pub access_log_format: Option<String>,
    /// Developer portal listener [default: 0.0.0.0:9380].
    #[arg(long, env = "PORTICO_PORTAL_ADDR")]
    pub portal_addr: Option<String>,
    /// Keys that encrypt secrets at rest, comma-separated; the first encrypts, all decrypt.
    /// Generated and kept in the data folder when not given.
    #[arg(
        long,
        env = "PORTICO_KEYRING",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub keyring: Vec<String>,
}

/// Settings of the roles that can use etcd.
#[derive(Debug, Args, Default, Clone)]
pub struct CpArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// etcd endpoints, comma-separated (http:// or https://). Without them the embedded store
    /// in the data folder is used.
    #[arg(long, env = "PORTICO_ETCD_ENDPOINTS", value_delimiter = ',')]
    pub etcd_endpoints: Vec<String>,
    /// etcd user name.
    #[arg(long, env = "PORTICO_ETCD_USER")]
    pub etcd_user: Option<String>,
    /// etcd password.
    #[arg(long, env = "PORTICO_ETCD_PASSWORD", hide_env_values = true)]
    pub etcd_password: Option<String>,
    /// CA certificate (PEM file) that signs etcd's server certificate.
    #[arg(long, env = "PORTICO_ETCD_CA")]
    pub etcd_ca: Option<PathBuf>,
    /// Client certificate (PEM file) for etcd.
    #[arg(long, env = "PORTICO_ETCD_CERT")]
    pub etcd_cert: Option<PathBuf>,
    /// Client key (PEM file) for etcd.
    #[arg(long, env = "PORTICO_ETCD_KEY")]
    pub etcd_key: Option<PathBuf>,
    /// Key prefix of the cluster this process serves [default: /portico/clusters/default].
    #[arg(long, env = "PORTICO_CLUSTER_PREFIX")]
    pub cluster_prefix: Option<String>,
}
