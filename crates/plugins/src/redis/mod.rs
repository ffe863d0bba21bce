//! A small async Redis client for the rate-limiting plugins: RESP2 over tokio TCP (TLS with
//! rustls), pooled connections per server, Redis Cluster slot routing, masters found through
//! Redis Sentinel, and Lua scripts run with `EVALSHA` (falling back to `EVAL` on `NOSCRIPT`,
//! as APISIX does).
//!
//! * [`Pools`] lives in [`PluginState`](crate::PluginState): plugin instances built from the
//!   same Redis settings share one [`Server`] (or [`Cluster`]), so a configuration swap keeps
//!   the open connections. A pool is dropped, with its connections, once no instance uses it.
//! * [`Client`] is what a plugin holds: one server (`policy: redis`), a cluster
//!   (`policy: redis-cluster`) or a sentinel-managed master (`policy: redis-sentinel`). Every call takes [`Limits`] (timeout, keepalive) from the
//!   configuration making it.
//! * Errors ([`Error`]) say whether the server refused the command or the connection failed;
//!   a connection that failed is closed, never reused.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, OnceLock, Weak};

mod cluster;
mod conn;
mod pool;
pub mod resp;
mod sentinel;
mod tls;

pub use cluster::{crc16, key_slot, parse_addr, Cluster};
pub use conn::{Conn, Endpoint};
pub use pool::{Limits, Server};
pub use resp::{Cmd, Value};
pub use sentinel::Sentinel;

/// What went wrong talking to Redis.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The TCP connection could not be opened (nothing was sent).
    #[error("redis connect: {0}")]
    Connect(std::io::Error),
    /// Sending or receiving failed.
    #[error("redis connection: {0}")]
    Io(#[from] std::io::Error),
    /// The server closed the connection.
    #[error("redis closed the connection")]
    Closed,
    /// A step took longer than `redis_timeout`.
    #[error("redis {0} timed out")]
    Timeout(&'static str),
    /// The TLS handshake or its configuration failed.
    #[error("redis tls: {0}")]
    Tls(String),
    /// The server answered something that is not RESP2 or not what the command returns.
    #[error("redis protocol: {0}")]
    Protocol(String),
    /// The server refused the command (`-ERR ...`, `-WRONGPASS ...`).
    #[error("redis: {0}")]
    Server(String),
    /// No cluster node could serve the request.
    #[error("redis {0}")]
    Cluster(String),
    /// No sentinel named a usable master.
    #[error("redis sentinel: {0}")]
    Sentinel(String),
}

impl Error {
    /// Whether the server had closed the connection before this use (end of stream, reset,
    /// broken pipe), as opposed to a timeout or a refused command.
    pub fn is_closed_connection(&self) -> bool {
        use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
        match self {
            Error::Closed => true,
            Error::Io(e) => matches!(
                e.kind(),
                BrokenPipe | ConnectionAborted | ConnectionReset | UnexpectedEof
            ),
            _ => false,
        }
    }
}

/// TLS settings of an endpoint: whether the server certificate is verified, and the client
/// configuration doing it.
#[derive(Clone)]
pub struct Tls {
    /// `redis_ssl_verify`: check the certificate against the trusted CAs and the host name.
    pub verify: bool,
    /// The rustls configuration.
    pub config: Arc<rustls::ClientConfig>,
}

impl Tls {
    /// The process-wide configuration: without verification, or verifying against the
    /// system's CA bundle plus the PEM file named by `SSL_CERT_FILE`.
    pub fn new(verify: bool) -> Result<Tls, Error> {
        static VERIFYING: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
        static ACCEPTING: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
        let config = if verify {
            VERIFYING.get_or_init(tls::verifying_system)
        } else {
            ACCEPTING.get_or_init(crate::tls::accepting_any)
        };
        let config = config.clone().map_err(Error::Tls)?;
        Ok(Tls { verify, config })
    }

    /// A verifying configuration that trusts only the CA certificates in the PEM file `ca`.
    pub fn verifying_with(ca: &std::path::Path) -> Result<Tls, Error> {
        Ok(Tls {
            verify: true,
            config: tls::verifying_with(ca).map_err(Error::Tls)?,
        })
    }
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("verify", &self.verify).finish()
    }
}

/// Two settings are the same when they verify alike with the same configuration object.
impl PartialEq for Tls {
    fn eq(&self, other: &Tls) -> bool {
        self.verify == other.verify && Arc::ptr_eq(&self.config, &other.config)
    }
}

impl Eq for Tls {}

impl Hash for Tls {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.verify.hash(state);
        Arc::as_ptr(&self.config).hash(state);
    }
}

/// A Lua script, run by its SHA1 (`EVALSHA`) and sent whole (`EVAL`) when the server does not
/// know it yet.
#[derive(Debug, Clone)]
pub struct Script {
    body: &'static str,
    sha: String,
}

impl Script {
    /// A script and its SHA1 in hex.
    pub fn new(body: &'static str) -> Script {
        let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, body.as_bytes());
        let sha = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        Script { body, sha }
    }

    /// The SHA1 of the body, as `SCRIPT LOAD` returns it.
    pub fn sha(&self) -> &str {
        &self.sha
    }

    fn cmd(&self, name: &str, body: &str, key: &str, args: &[String]) -> Cmd {
        let mut cmd = Cmd::new(name).arg(body).num(1).arg(key);
        for arg in args {
            cmd = cmd.arg(arg);
        }
        cmd
    }
}

/// A server or a cluster, as a plugin configuration names it.
#[derive(Debug, Clone)]
pub enum Client {
    /// `policy: redis`.
    Server(Arc<Server>),
    /// `policy: redis-cluster`.
    Cluster(Arc<Cluster>),
    /// `policy: redis-sentinel`.
    Sentinel(Arc<Sentinel>),
}

impl Client {
    /// Runs `cmd`, whose (only) key is `key`; an error reply is [`Error::Server`].
    pub async fn query(&self, key: &str, cmd: &Cmd, limits: &Limits) -> Result<Value, Error> {
        match self {
            Client::Server(server) => server.query(cmd, limits).await,
            Client::Cluster(cluster) => cluster.query(key.as_bytes(), cmd, limits).await,
            Client::Sentinel(sentinel) => sentinel.query(cmd, limits).await,
        }
    }

    /// Runs `script` with one key and `args`.
    pub async fn eval(
        &self,
        script: &Script,
        key: &str,
        args: &[String],
        limits: &Limits,
    ) -> Result<Value, Error> {
        let by_sha = script.cmd("EVALSHA", &script.sha, key, args);
        match self.query(key, &by_sha, limits).await {
            Err(Error::Server(e)) if e.starts_with("NOSCRIPT") => {
                let whole = script.cmd("EVAL", script.body, key, args);
                self.query(key, &whole, limits).await
            }
            other => other,
        }
    }
}

/// A cluster's pool key: its name and seed nodes.
type ClusterKey = (String, Vec<Endpoint>);

/// A sentinel-managed master's key: its name, the sentinels, and its credentials.
type SentinelKey = (String, Vec<Endpoint>, Endpoint);

/// The pools of one node, shared by every snapshot's plugin instances.
#[derive(Debug, Default)]
pub struct Pools {
    servers: Mutex<HashMap<Endpoint, Weak<Server>>>,
    clusters: Mutex<HashMap<ClusterKey, Weak<Cluster>>>,
    sentinels: Mutex<HashMap<SentinelKey, Weak<Sentinel>>>,
}

impl Pools {
    /// The pool of `endpoint` (host, port, credentials, database, TLS), made on first use.
    pub fn server(&self, endpoint: Endpoint) -> Arc<Server> {
        let mut servers = self.servers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(server) = servers.get(&endpoint).and_then(Weak::upgrade) {
            return server;
        }
        servers.retain(|_, s| s.strong_count() > 0);
        let server = Arc::new(Server::new(endpoint.clone()));
        servers.insert(endpoint, Arc::downgrade(&server));
        server
    }

    /// The cluster named `name` reached through `seeds`, made on first use.
    pub fn cluster(&self, name: &str, seeds: Vec<Endpoint>) -> Arc<Cluster> {
        let mut clusters = self.clusters.lock().unwrap_or_else(|e| e.into_inner());
        let key = (name.to_string(), seeds);
        if let Some(cluster) = clusters.get(&key).and_then(Weak::upgrade) {
            return cluster;
        }
        clusters.retain(|_, c| c.strong_count() > 0);
        let cluster = Arc::new(Cluster::new(name, key.1.clone()));
        clusters.insert(key, Arc::downgrade(&cluster));
        cluster
    }

    /// The master `master_name` found through `sentinels`, reached with the credentials and
    /// database of `master`; made on first use.
    pub fn sentinel(
        &self,
        master_name: &str,
        sentinels: Vec<Endpoint>,
        master: Endpoint,
    ) -> Arc<Sentinel> {
        let mut all = self.sentinels.lock().unwrap_or_else(|e| e.into_inner());
        let key = (master_name.to_string(), sentinels, master);
        if let Some(sentinel) = all.get(&key).and_then(Weak::upgrade) {
            return sentinel;
        }
        all.retain(|_, s| s.strong_count() > 0);
        let sentinel = Arc::new(Sentinel::new(master_name, key.1.clone(), key.2.clone()));
        all.insert(key, Arc::downgrade(&sentinel));
        sentinel
    }

    /// Number of servers, clusters and sentinel-managed masters in use (tests).
    pub fn len(&self) -> usize {
        let servers = self.servers.lock().unwrap_or_else(|e| e.into_inner());
        let clusters = self.clusters.lock().unwrap_or_else(|e| e.into_inner());
        let sentinels = self.sentinels.lock().unwrap_or_else(|e| e.into_inner());
        servers.values().filter(|s| s.strong_count() > 0).count()
            + clusters.values().filter(|c| c.strong_count() > 0).count()
            + sentinels.values().filter(|s| s.strong_count() > 0).count()
    }

    /// Whether no server or cluster is in use.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests;
