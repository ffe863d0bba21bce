//! Upstream connections: keep-alive pools per `scheme#host#port#sni#client-cert` (as APISIX keys
//! them).
//!
//! HTTP/1.1 connections are the gateway's own ([`crate::h1`]): checked out for one request, back
//! in the pool once its response body ended cleanly; an idle one costs no task and no timer.
//! HTTP/2 connections (gRPC upstreams) are hyper's, shared by all requests. A request that asks
//! for an upgrade (WebSocket) gets a hyper HTTP/1.1 connection of its own, which never returns.
//!
//! Connecting is a separate step from sending so that a refused or timed-out connect can be
//! retried on another node without having consumed the request body.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use crate::body::GatewayBody;
use crate::h1::{self, Stream};

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
    /// The gateway's own HTTP/1.1 connection.
    H1(Box<h1::Conn>),
    /// A shared hyper HTTP/2 connection.
    H2(http2::SendRequest<GatewayBody>),
    /// A fresh hyper HTTP/1.1 connection for an upgrade request.
    Upgrade(http1::SendRequest<GatewayBody>),
}

impl Conn {
    /// Whether this HTTP/1.1 connection already served a request (it came from the pool, so
    /// the upstream may have closed it meanwhile).
    pub fn is_reused(&self) -> bool {
        matches!(self, Conn::H1(conn) if conn.served > 1)
    }
}

struct Idle {
    conn: Box<h1::Conn>,
    since: Instant,
}

/// Pool keys come from the configuration, not from clients: a plain multiplicative hash will
/// do, where the default SipHash costs more than the rest of a checkout.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }

    fn write_u16(&mut self, n: u16) {
        self.write_u64(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type KeyMap<V> = HashMap<PoolKey, V, BuildHasherDefault<KeyHasher>>;

#[derive(Default)]
struct Inner {
    idle: Mutex<KeyMap<VecDeque<Idle>>>,
    h2: Mutex<KeyMap<http2::SendRequest<GatewayBody>>>,
}

/// The upstream connection pools of one data-plane node.
#[derive(Clone, Default)]
pub struct Pool {
    inner: Arc<Inner>,
}

impl Pool {
    /// A connection to `key` that needs no connecting: for HTTP/1.1 an idle pooled one (never
    /// for an `upgrade` request), for HTTP/2 the shared one. `None`: [`Pool::connect`] makes
    /// one.
    pub fn checkout(
        &self,
        key: &PoolKey,
        policy: Keepalive,
        upgrade: bool,
        now: Instant,
    ) -> Option<Conn> {
        if key.h2 {
            let shared = self.inner.h2.lock().ok()?.get(key).cloned();
            return shared.filter(|s| !s.is_closed()).map(Conn::H2);
        }
        if upgrade {
            return None;
        }
        self.pop_idle(key, policy, now).map(Conn::H1)
    }

    /// A new connection to `key`, made within `connect_timeout` (for HTTP/2: a new shared one).
    pub async fn connect(
        &self,
        key: &PoolKey,
        connect_timeout: Duration,
        upgrade: bool,
    ) -> Result<Conn, ConnectError> {
        if key.h2 {
            return self.connect_h2(key, connect_timeout).await;
        }
        let io = connect(key, connect_timeout).await?;
        if !upgrade {
            return Ok(Conn::H1(h1::Conn::new(
                io,
                key.clone(),
                portico_clock::now(),
            )));
        }
        let (sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(io))
            .await
            .map_err(|e| failed(key.addr, e))?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!("upstream connection closed: {e}");
            }
        });
        Ok(Conn::Upgrade(sender))
    }

    /// Takes back a connection whose response ended: kept for the next request when its
    /// response allowed it, it has served fewer than `policy.requests` and the pool has room;
    /// closed otherwise. Its idle time counts from when it was taken (no clock reading here;
    /// a long response only makes it expire sooner).
    pub(crate) fn release(&self, mut conn: Box<h1::Conn>, policy: Keepalive) {
        if !conn.reusable() || conn.served >= policy.requests {
            return;
        }
        conn.idle();
        let now = conn.taken;
        let Ok(mut idle) = self.inner.idle.lock() else {
            return;
        };
        let list = match idle.get_mut(&conn.key) {
            Some(list) => list,
            None => idle.entry(conn.key.clone()).or_default(),
        };
        // The oldest are at the front; those past the idle timeout go.
        while list
            .front()
            .is_some_and(|i| now.saturating_duration_since(i.since) >= policy.idle_timeout)
        {
            list.pop_front();
        }
        if list.len() < policy.size {
            list.push_back(Idle { conn, since: now });
        }
    }

    /// The most recently used idle connection that is still open and within its idle timeout.
    fn pop_idle(&self, key: &PoolKey, policy: Keepalive, now: Instant) -> Option<Box<h1::Conn>> {
        let mut idle = self.inner.idle.lock().ok()?;
        let list = idle.get_mut(key)?;
        while let Some(Idle { mut conn, since }) = list.pop_back() {
            if now.saturating_duration_since(since) < policy.idle_timeout && conn.is_usable() {
                conn.served += 1;
                conn.taken = now;
                return Some(conn);
            }
        }
        None
    }

    /// A new HTTP/2 connection to `key`, shared from now on.
    async fn connect_h2(
        &self,
        key: &PoolKey,
        connect_timeout: Duration,
    ) -> Result<Conn, ConnectError> {
        let io = connect(key, connect_timeout).await?;
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .handshake(TokioIo::new(io))
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
            .map(|m| m.get(key).map_or(0, VecDeque::len))
            .unwrap_or(0)
    }
}

async fn connect(key: &PoolKey, connect_timeout: Duration) -> Result<Stream, ConnectError> {
    let deadline = tokio::time::Instant::now() + connect_timeout;
    let tcp = tokio::time::timeout_at(deadline, TcpStream::connect(key.addr))
        .await
        .map_err(|_| ConnectError::Timeout(key.addr))?
        .map_err(|e| failed(key.addr, e))?;
    let _ = tcp.set_nodelay(true);
    let Some(tls) = &key.tls else {
        return Ok(Stream::Tcp(tcp));
    };
    // The configuration already offers ALPN `h2` for gRPC upstreams.
    let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
    let stream = tokio::time::timeout_at(deadline, connector.connect(tls.server_name.clone(), tcp))
        .await
        .map_err(|_| ConnectError::Timeout(key.addr))?
        .map_err(|e| failed(key.addr, e))?;
    Ok(Stream::Tls(Box::new(stream)))
}

fn failed(addr: SocketAddr, e: impl std::fmt::Display) -> ConnectError {
    ConnectError::Failed {
        addr,
        message: e.to_string(),
    }
}
