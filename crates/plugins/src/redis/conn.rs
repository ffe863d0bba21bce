//! One connection to one Redis server: TCP (or TLS) connect, `AUTH`/`SELECT` on connect, and
//! pipelined commands, every step bounded by the caller's timeout.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::resp::{self, Cmd, Value};
use super::{Error, Tls};

/// A byte stream to a server: plain TCP or TLS over it.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Where and as whom to connect.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// `AUTH <username> <password>` when both are set, `AUTH <password>` with a password only.
    pub username: Option<String>,
    /// Sent only when not empty (as APISIX does).
    pub password: Option<String>,
    /// `SELECT <database>` on connect when not 0.
    pub database: u32,
    /// TLS, when the server speaks it.
    pub tls: Option<Tls>,
}

/// Leaves the password out.
impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("addr", &self.addr())
            .field("username", &self.username)
            .field("database", &self.database)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// A plain endpoint without credentials on database 0.
    pub fn new(host: &str, port: u16) -> Endpoint {
        Endpoint {
            host: host.to_string(),
            port,
            username: None,
            password: None,
            database: 0,
            tls: None,
        }
    }

    /// `host:port` (brackets around an IPv6 address), as errors and cluster maps name it.
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// An open connection, ready for commands (authenticated, database selected).
pub struct Conn {
    io: Box<dyn Io>,
    /// Bytes read but not parsed yet.
    buf: Vec<u8>,
    /// When the connection last finished a command (for the pool's keepalive timeout).
    pub(super) idle_since: Instant,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("buffered", &self.buf.len())
            .finish()
    }
}

/// Runs `fut`, failing with [`Error::Timeout`] after `timeout`.
async fn bounded<T>(
    timeout: Duration,
    what: &'static str,
    fut: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    tokio::time::timeout(timeout, fut)
        .await
        .unwrap_or(Err(Error::Timeout(what)))
}

impl Conn {
    /// Connects to `ep` within `connect_timeout` (TLS handshake included), then authenticates
    /// and selects the database, each command within `timeout`.
    pub async fn connect(
        ep: &Endpoint,
        connect_timeout: Duration,
        timeout: Duration,
    ) -> Result<Conn, Error> {
        let tcp = bounded(connect_timeout, "connect", async {
            TcpStream::connect((ep.host.as_str(), ep.port))
                .await
                .map_err(Error::Connect)
        })
        .await?;
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn Io> = match &ep.tls {
            None => Box::new(tcp),
            Some(tls) => {
                let name = rustls::pki_types::ServerName::try_from(ep.host.clone())
                    .map_err(|e| Error::Tls(format!("server name {}: {e}", ep.host)))?;
                let connector = tokio_rustls::TlsConnector::from(Arc::clone(&tls.config));
                let stream = bounded(connect_timeout, "TLS handshake", async {
                    connector
                        .connect(name, tcp)
                        .await
                        .map_err(|e| Error::Tls(e.to_string()))
                })
                .await?;
                Box::new(stream)
            }
        };
        let mut conn = Conn {
            io,
            buf: Vec::with_capacity(512),
            idle_since: Instant::now(),
        };
        let mut hello = Vec::new();
        if let Some(password) = ep.password.as_deref().filter(|p| !p.is_empty()) {
            hello.push(match &ep.username {
                Some(user) => Cmd::new("AUTH").arg(user).arg(password),
                None => Cmd::new("AUTH").arg(password),
            });
        }
        if ep.database != 0 {
            hello.push(Cmd::new("SELECT").num(ep.database));
        }
        if !hello.is_empty() {
            for (cmd, reply) in hello.iter().zip(conn.pipeline(&hello, timeout).await?) {
                if let Value::Error(e) = reply {
                    return Err(Error::Server(format!("{} failed: {e}", cmd.name())));
                }
            }
        }
        Ok(conn)
    }

    /// Sends every command at once, then reads one reply per command. A reply that is an error
    /// stays in the list ([`Value::Error`]); an I/O, protocol or timeout error fails the whole
    /// call and leaves the connection unusable.
    pub async fn pipeline(&mut self, cmds: &[Cmd], timeout: Duration) -> Result<Vec<Value>, Error> {
        let mut out = Vec::new();
        for cmd in cmds {
            cmd.encode(&mut out);
        }
        bounded(timeout, "send", async {
            self.io.write_all(&out).await?;
            self.io.flush().await.map_err(Error::Io)
        })
        .await?;
        let mut replies = Vec::with_capacity(cmds.len());
        for _ in cmds {
            replies.push(bounded(timeout, "read", self.read_reply()).await?);
        }
        self.idle_since = Instant::now();
        Ok(replies)
    }

    /// Sends one command and reads its reply; an error reply becomes [`Error::Server`].
    pub async fn query(&mut self, cmd: &Cmd, timeout: Duration) -> Result<Value, Error> {
        let mut replies = self.pipeline(std::slice::from_ref(cmd), timeout).await?;
        match replies.pop() {
            Some(Value::Error(e)) => Err(Error::Server(e)),
            Some(v) => Ok(v),
            None => Err(Error::Protocol("no reply".into())),
        }
    }

    async fn read_reply(&mut self) -> Result<Value, Error> {
        loop {
            if let Some((value, used)) = resp::parse(&self.buf).map_err(|e| Error::Protocol(e.0))? {
                self.buf.drain(..used);
                return Ok(value);
            }
            let mut chunk = [0u8; 4096];
            let n = self.io.read(&mut chunk).await?;
            if n == 0 {
                return Err(Error::Closed);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Whether an idle connection still looks usable: nothing is waiting to be read (a server
    /// that closed the connection, e.g. on restart or its idle `timeout`, makes it readable).
    pub(super) fn is_idle_and_open(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(Waker::noop());
        let mut byte = [0u8; 1];
        let mut probe = ReadBuf::new(&mut byte);
        matches!(
            Pin::new(&mut self.io).poll_read(&mut cx, &mut probe),
            Poll::Pending
        )
    }
}
