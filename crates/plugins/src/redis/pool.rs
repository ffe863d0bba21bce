//! Idle connections to one server, reused across requests and configuration swaps (APISIX's
//! cosocket keepalive pool: `redis_keepalive_timeout`, `redis_keepalive_pool`).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::conn::{Conn, Endpoint};
use super::resp::{Cmd, Value};
use super::Error;

/// Per-call limits, from the configuration making the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connect and TLS handshake (`redis_timeout`, sentinel's `redis_connect_timeout`).
    pub connect_timeout: Duration,
    /// Send and each reply (`redis_timeout`, sentinel's `redis_read_timeout`).
    pub timeout: Duration,
    /// How long a connection may wait idle in the pool (`redis_keepalive_timeout`).
    pub keepalive_timeout: Duration,
    /// How many idle connections the pool keeps at most (`redis_keepalive_pool`).
    pub keepalive_pool: usize,
}

impl Default for Limits {
    /// APISIX's defaults: 1 s timeout, 10 s keepalive, 100 idle connections.
    fn default() -> Limits {
        Limits {
            connect_timeout: Duration::from_millis(1000),
            timeout: Duration::from_millis(1000),
            keepalive_timeout: Duration::from_millis(10_000),
            keepalive_pool: 100,
        }
    }
}

/// One Redis server and its idle connections.
#[derive(Debug)]
pub struct Server {
    endpoint: Endpoint,
    idle: Mutex<Vec<Conn>>,
}

impl Server {
    /// A server without connections yet (nothing is opened until the first call).
    pub fn new(endpoint: Endpoint) -> Server {
        Server {
            endpoint,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Where this server is.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// An idle connection that is still open and fresh (and `true`: it was used before), or a
    /// new one.
    async fn checkout(&self, limits: &Limits) -> Result<(Conn, bool), Error> {
        let now = Instant::now();
        loop {
            let conn = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            match conn {
                Some(mut conn) => {
                    let fresh = now.duration_since(conn.idle_since) < limits.keepalive_timeout;
                    if fresh && conn.is_idle_and_open() {
                        return Ok((conn, true));
                    }
                }
                None => {
                    let conn =
                        Conn::connect(&self.endpoint, limits.connect_timeout, limits.timeout);
                    return Ok((conn.await?, false));
                }
            }
        }
    }

    /// Gives a connection that finished its commands cleanly back to the pool (dropped when
    /// the pool is full).
    fn put(&self, conn: Conn, limits: &Limits) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        idle.retain(|c| now.duration_since(c.idle_since) < limits.keepalive_timeout);
        if idle.len() < limits.keepalive_pool {
            idle.push(conn);
        }
    }

    /// Runs `cmds` pipelined on a pooled connection; see [`Conn::pipeline`].
    ///
    /// A pooled connection the server closed while it was idle (a restart, the server's idle
    /// `timeout`) is only noticed when used: the commands are then sent once more on a new
    /// connection. The server cannot have run them: it had closed the connection before.
    pub async fn pipeline(&self, cmds: &[Cmd], limits: &Limits) -> Result<Vec<Value>, Error> {
        let (mut conn, reused) = self.checkout(limits).await?;
        let replies = match conn.pipeline(cmds, limits.timeout).await {
            Err(e) if reused && e.is_closed_connection() => {
                tracing::debug!(
                    "redis {}: pooled connection was closed ({e}); reconnecting",
                    self.endpoint.addr()
                );
                conn =
                    Conn::connect(&self.endpoint, limits.connect_timeout, limits.timeout).await?;
                conn.pipeline(cmds, limits.timeout).await?
            }
            replies => replies?,
        };
        self.put(conn, limits);
        Ok(replies)
    }

    /// Runs one command on a pooled connection; an error reply is [`Error::Server`].
    pub async fn query(&self, cmd: &Cmd, limits: &Limits) -> Result<Value, Error> {
        match self
            .pipeline(std::slice::from_ref(cmd), limits)
            .await?
            .pop()
        {
            Some(Value::Error(e)) => Err(Error::Server(e)),
            Some(v) => Ok(v),
            None => Err(Error::Protocol("no reply".into())),
        }
    }

    /// Number of idle connections (tests).
    pub fn idle(&self) -> usize {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}
