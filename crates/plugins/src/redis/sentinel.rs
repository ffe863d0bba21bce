//! Redis Sentinel: the master's address comes from the first sentinel that knows it
//! (`SENTINEL GET-MASTER-ADDR-BY-NAME`), and is asked again after a failover (what
//! `resty.redis.connector` does for APISIX's `redis-sentinel` policy, role `master`).

use std::sync::{Arc, Mutex};

use super::conn::Endpoint;
use super::pool::{Limits, Server};
use super::resp::{Cmd, Value};
use super::Error;

/// A master known by its name to a set of sentinels.
#[derive(Debug)]
pub struct Sentinel {
    master_name: String,
    /// The sentinels, in configuration order, with the sentinel credentials.
    sentinels: Vec<Server>,
    /// The master's credentials and database (its address comes from the sentinels).
    master: Endpoint,
    /// The master in use, until it fails.
    current: Mutex<Option<Arc<Server>>>,
}

impl Sentinel {
    /// A master named `master_name`, found through `sentinels`; `master` carries the
    /// credentials and database for it (its host and port are ignored). Nothing is contacted
    /// until the first call.
    pub fn new(master_name: &str, sentinels: Vec<Endpoint>, master: Endpoint) -> Sentinel {
        Sentinel {
            master_name: master_name.to_string(),
            sentinels: sentinels.into_iter().map(Server::new).collect(),
            master,
            current: Mutex::new(None),
        }
    }

    fn current(&self) -> Option<Arc<Server>> {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn forget(&self, failed: &Arc<Server>) {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, failed)) {
            *current = None;
        }
    }

    /// Asks the sentinels, in order, where the master is.
    async fn discover(&self, limits: &Limits) -> Result<Arc<Server>, Error> {
        let ask = Cmd::new("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(&self.master_name);
        let mut last = Error::Sentinel("no sentinels configured".into());
        for sentinel in &self.sentinels {
            let at = sentinel.endpoint().addr();
            let addr = match sentinel.query(&ask, limits).await {
                Ok(Value::Array(a)) if a.len() == 2 => a[0]
                    .as_str()
                    .map(str::to_string)
                    .zip(a[1].as_int().and_then(|p| u16::try_from(p).ok())),
                Ok(Value::Nil) => {
                    last = Error::Sentinel(format!("{at} does not know {}", self.master_name));
                    continue;
                }
                Ok(other) => {
                    last = Error::Protocol(format!("{at}: unexpected master address {other}"));
                    continue;
                }
                Err(e) => {
                    last = e;
                    continue;
                }
            };
            let Some((host, port)) = addr else {
                last = Error::Protocol(format!("{at}: unreadable master address"));
                continue;
            };
            let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(server) = current
                .as_ref()
                .filter(|s| s.endpoint().host == host && s.endpoint().port == port)
            {
                return Ok(server.clone());
            }
            let server = Arc::new(Server::new(Endpoint {
                host,
                port,
                ..self.master.clone()
            }));
            *current = Some(server.clone());
            return Ok(server);
        }
        Err(last)
    }

    /// Runs `cmd` on the master. When the master cannot be reached or has become a replica
    /// (`READONLY`: a failover happened), the sentinels are asked again and the command is
    /// sent once more — neither case ran it.
    pub async fn query(&self, cmd: &Cmd, limits: &Limits) -> Result<Value, Error> {
        let mut retried = false;
        loop {
            let master = match self.current() {
                Some(master) => master,
                None => self.discover(limits).await?,
            };
            let reply = master.query(cmd, limits).await;
            let not_run = match &reply {
                Err(Error::Connect(_)) => true,
                Err(Error::Server(e)) => e.starts_with("READONLY"),
                _ => false,
            };
            let broken = not_run || matches!(reply, Err(ref e) if e.is_closed_connection());
            if broken {
                self.forget(&master);
            }
            if not_run && !retried {
                retried = true;
                continue;
            }
            return reply;
        }
    }

    /// The master's `host:port` in use now, if one was found (tests).
    pub fn master_addr(&self) -> Option<String> {
        self.current().map(|s| s.endpoint().addr())
    }
}
