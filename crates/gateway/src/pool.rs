//! Upstream connections: keep-alive pools per `scheme#host#port#sni#client-cert` (as APISIX keys
//! them), HTTP/1.1 connections checked out one request at a time, HTTP/2 connections shared.
//!
//! Connecting is a separate step from sending so that a refused or timed-out connect can be
//! retried on another node without having consumed the request body.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use crate::body::GatewayBody;

/// Keep-alive policy of one upstream (`keepalive_pool`; APISIX defaults 320 / 60 s / 1000).
#[derive(Clone, Copy, Debug)]
pub struct Keepalive {
    /// Idle connections kept per pool key.
    pub size: usize,
    /// How long an idle connection is kept.
    pub idle_timeout: Duration,
    /// Requests served by one connection before it is closed.
    pub requests: u32,
}

impl Default for Keepalive {
    fn default() -> Self {
        Keepalive {
            size: 320,
            idle_timeout: Duration::from_secs(60),
            requests: 1000,
        }
    }
}

/// TLS towards an upstream node: the server name to send and the client configuration (which
/// carries the client certificate for upstream mTLS).
#[derive(Clone, Debug)]
pub struct TlsTarget {
    pub server_name: ServerName<'static>,
    pub config: Arc<rustls::ClientConfig>,
}

impl PartialEq for TlsTarget {
    fn eq(&self, other: &Self) -> bool {
        self.server_name == other.server_name && Arc::ptr_eq(&self.config, &other.config)
    }
}
impl Eq for TlsTarget {}
impl Hash for TlsTarget {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.server_name.hash(state);
        (Arc::as_ptr(&self.config) as usize).hash(state);
    }
}

/// What identifies interchangeable connections.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PoolKey {
    pub addr: SocketAddr,
    pub tls: Option<TlsTarget>,
    /// HTTP/2 (gRPC upstreams) instead of HTTP/1.1.
    pub h2: bool,
}

/// Why no connection could be had. Both are retryable on another node.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connect to {0} timed out")]
    Timeout(SocketAddr),
    #[error("connect to {addr} failed: {message}")]
    Failed { addr: SocketAddr, message: String },
}

/// A connection ready for one request.
pub enum Conn {
    H1(http1::SendRequest<GatewayBody>, Checkin),
    H2(http2::SendRequest<GatewayBody>),
}

impl Conn {
    /// Whether this HTTP/1.1 connection already served a request (it came from the pool, so
    /// the upstream may have closed it meanwhile).
    pub fn is_reused(&self) -> bool {
        matches!(self, Conn::H1(_, checkin) if checkin.served > 1)
    }
}

struct Idle {
    sender: http1::SendRequest<GatewayBody>,
    since: Instant,
    served: u32,
}

#[derive(Default)]
struct Inner {
    idle: Mutex<HashMap<PoolKey, Vec<Idle>>>,
    h2: Mutex<HashMap<PoolKey, http2::SendRequest<GatewayBody>>>,
}

/// The upstream connection pools of one data-plane node.
#[derive(Clone, Default)]
pub struct Pool {
    inner: Arc<Inner>,
}

/// Returns an HTTP/1.1 connection to its pool once its response has been read to the end.
/// Dropping it instead closes the connection.
pub struct Checkin {
    pool: Weak<Inner>,
    key: PoolKey,
    sender: Option<http1::SendRequest<GatewayBody>>,
    served: u32,
    policy: Keepalive,
}

impl Checkin {
    /// Gives the sender of a checked-out connection to this check-in (after the request was
    /// handed to it).
    pub fn hold(&mut self, sender: http1::SendRequest<GatewayBody>) {
        self.sender = Some(sender);
    }

    /// The response ended cleanly: keep the connection for the next request.
    pub fn release(mut self) {
        let (Some(pool), Some(sender)) = (self.pool.upgrade(), self.sender.take()) else {
            return;
        };
        if sender.is_closed() || self.served >= self.policy.requests {
            return;
        }
        let Ok(mut idle) = pool.idle.lock() else {
            return;
        };
        let list = idle.entry(self.key.clone()).or_default();
        if list.len() < self.policy.size {
            list.push(Idle {
                sender,
                since: Instant::now(),
                served: self.served,
            });
        }
    }
}

impl Pool {
    /// A connection to `key`: an idle pooled one when there is one, else a new one made within
    /// `connect_timeout`.
    pub async fn get(
        &self,
        key: &PoolKey,
        connect_timeout: Duration,
        policy: Keepalive,
    ) -> Result<Conn, ConnectError> {
        if key.h2 {
            return self.get_h2(key, connect_timeout).await;
        }
        while let Some(mut idle) = self.pop_idle(key, policy) {
            if idle.sender.ready().await.is_ok() {
                return Ok(Conn::H1(
                    idle.sender,
                    self.checkin(key, idle.served + 1, policy),
                ));
            }
        }
        self.connect(key, connect_timeout, policy).await
    }

    /// A new connection to `key`, made within `connect_timeout`, never a pooled one.
    pub async fn connect(
        &self,
        key: &PoolKey,
        connect_timeout: Duration,
        policy: Keepalive,
    ) -> Result<Conn, ConnectError> {
        if key.h2 {
            return self.get_h2(key, connect_timeout).await;
        }
        let io = connect(key, connect_timeout).await?;
        let (sender, conn) = http1::Builder::new()
            .handshake(io)
            .await
            .map_err(|e| failed(key.addr, e))?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!("upstream connection closed: {e}");
            }
        });
        Ok(Conn::H1(sender, self.checkin(key, 1, policy)))
    }

    fn checkin(&self, key: &PoolKey, served: u32, policy: Keepalive) -> Checkin {
        Checkin {
            pool: Arc::downgrade(&self.inner),
            key: key.clone(),
            sender: None,
            served,
            policy,
        }
    }

    fn pop_idle(&self, key: &PoolKey, policy: Keepalive) -> Option<Idle> {
        let mut idle = self.inner.idle.lock().ok()?;
        let list = idle.get_mut(key)?;
        while let Some(conn) = list.pop() {
            if !conn.sender.is_closed() && conn.since.elapsed() < policy.idle_timeout {
                return Some(conn);
            }
        }
        None
    }

    async fn get_h2(&self, key: &PoolKey, connect_timeout: Duration) -> Result<Conn, ConnectError> {
        if let Some(sender) = self
            .inner
            .h2
            .lock()
            .ok()
            .and_then(|m| m.get(key).cloned())
            .filter(|s| !s.is_closed())
        {
            return Ok(Conn::H2(sender));
        }
        let io = connect(key, connect_timeout).await?;
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .handshake(io)
            .await
            .map_err(|e| failed(key.addr, e))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("upstream h2 connection closed: {e}");
            }
        });
        if let Ok(mut map) = self.inner.h2.lock() {
            map.insert(key.clone(), sender.clone());
        }
        Ok(Conn::H2(sender))
    }

    /// Idle HTTP/1.1 connections currently pooled for `key` (for tests and metrics).
    pub fn idle_count(&self, key: &PoolKey) -> usize {
        self.inner
            .idle
            .lock()
            .map(|m| m.get(key).map_or(0, Vec::len))
            .unwrap_or(0)
    }
}

/// A byte stream to an upstream node: plain TCP or TLS over TCP.
pub type UpstreamIo = TokioIo<Box<dyn Io>>;

/// Anything a connection can run over.
pub trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static> Io for T {}

async fn connect(key: &PoolKey, connect_timeout: Duration) -> Result<UpstreamIo, ConnectError> {
    let deadline = tokio::time::Instant::now() + connect_timeout;
    let tcp = tokio::time::timeout_at(deadline, TcpStream::connect(key.addr))
        .await
        .map_err(|_| ConnectError::Timeout(key.addr))?
        .map_err(|e| failed(key.addr, e))?;
    let _ = tcp.set_nodelay(true);
    let Some(tls) = &key.tls else {
        return Ok(TokioIo::new(Box::new(tcp)));
    };
    // The configuration already offers ALPN `h2` for gRPC upstreams.
    let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
    let stream = tokio::time::timeout_at(deadline, connector.connect(tls.server_name.clone(), tcp))
        .await
        .map_err(|_| ConnectError::Timeout(key.addr))?
        .map_err(|e| failed(key.addr, e))?;
    Ok(TokioIo::new(Box::new(stream)))
}

fn failed(addr: SocketAddr, e: impl std::fmt::Display) -> ConnectError {
    ConnectError::Failed {
        addr,
        message: e.to_string(),
    }
}
