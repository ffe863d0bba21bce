//! Redis Cluster: the slot map from `CLUSTER SLOTS`, a connection pool per master, and the
//! `MOVED`/`ASK` redirections (what `resty.rediscluster` does for APISIX).
//!
//! A key's slot is `CRC16(key) mod 16384`, hashing only the `{hash tag}` when the key has one.
//! The map is read from the first node that answers (seed nodes first time, then the known
//! masters and the seeds) and read again after a `MOVED` or a connection failure.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use super::conn::Endpoint;
use super::pool::{Limits, Server};
use super::resp::{Cmd, Value};
use super::Error;

/// Number of hash slots.
pub const SLOTS: u16 = 16384;
/// Redirections (`MOVED`, `ASK`, `TRYAGAIN`) followed for one command before giving up.
const MAX_REDIRECTS: usize = 5;
/// Slot owner meaning "no master serves this slot".
const NOBODY: u16 = u16::MAX;

/// CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0), Redis Cluster's key hash.
pub fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in bytes {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The hash slot of `key`: only the part between the first `{` and the next `}` counts when
/// that part is not empty.
pub fn key_slot(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        rest.iter()
            .position(|&b| b == b'}')
            .filter(|&close| close > 0)
            .map(|close| &rest[..close])
    });
    crc16(tagged.unwrap_or(key)) % SLOTS
}

/// Which master serves each slot.
#[derive(Debug, Clone)]
struct SlotMap {
    /// Master addresses, `host:port`.
    addrs: Vec<String>,
    /// Per slot: an index into `addrs`, or [`NOBODY`].
    owner: Vec<u16>,
}

impl SlotMap {
    fn empty() -> SlotMap {
        SlotMap {
            addrs: Vec::new(),
            owner: vec![NOBODY; SLOTS as usize],
        }
    }

    fn get(&self, slot: u16) -> Option<&str> {
        let i = *self.owner.get(slot as usize)?;
        self.addrs.get(i as usize).map(String::as_str)
    }

    fn set(&mut self, start: u16, end: u16, addr: &str) {
        let i = match self.addrs.iter().position(|a| a == addr) {
            Some(i) => i,
            None => {
                self.addrs.push(addr.to_string());
                self.addrs.len() - 1
            }
        };
        for slot in start..=end.min(SLOTS - 1) {
            self.owner[slot as usize] = i as u16;
        }
    }

    /// Parses a `CLUSTER SLOTS` reply; `asked` is the node that answered (an empty host means
    /// "the one you asked").
    fn parse(reply: &Value, asked: &Endpoint) -> Result<SlotMap, Error> {
        let bad = |why: &str| Error::Protocol(format!("CLUSTER SLOTS: {why}: {reply}"));
        let Value::Array(ranges) = reply else {
            return Err(bad("not an array"));
        };
        let mut map = SlotMap::empty();
        for range in ranges {
            let Value::Array(fields) = range else {
                return Err(bad("range is not an array"));
            };
            let slot = |i: usize| {
                fields
                    .get(i)
                    .and_then(Value::as_int)
                    .and_then(|n| u16::try_from(n).ok())
            };
            let (Some(start), Some(end)) = (slot(0), slot(1)) else {
                return Err(bad("range without bounds"));
            };
            let Some(Value::Array(master)) = fields.get(2) else {
                return Err(bad("range without master"));
            };
            let host = master.first().and_then(Value::as_str).unwrap_or("");
            let host = if host.is_empty() || host == "?" {
                asked.host.as_str()
            } else {
                host
            };
            let port = master
                .get(1)
                .and_then(Value::as_int)
                .and_then(|p| u16::try_from(p).ok())
                .ok_or_else(|| bad("master without port"))?;
            map.set(start, end, &Endpoint::new(host, port).addr());
        }
        Ok(map)
    }
}

/// Splits `host:port` (`[v6]:port`); a missing port is Redis's 6379.
pub fn parse_addr(addr: &str) -> Result<(String, u16), String> {
    let (host, port) = match addr.strip_prefix('[') {
        Some(rest) => {
            let (host, tail) = rest
                .split_once(']')
                .ok_or_else(|| format!("invalid address {addr}"))?;
            (host, tail.strip_prefix(':'))
        }
        None => match addr.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => (addr, None),
            Some((host, port)) => (host, Some(port)),
            None => (addr, None),
        },
    };
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("invalid port in address {addr}"))?,
        None => 6379,
    };
    if host.is_empty() {
        return Err(format!("invalid address {addr}: no host"));
    }
    Ok((host.to_string(), port))
}

/// A Redis Cluster reached through its seed nodes.
#[derive(Debug)]
pub struct Cluster {
    /// `redis_cluster_name`, for logs.
    name: String,
    /// The configured nodes; their password and TLS apply to every master.
    seeds: Vec<Endpoint>,
    masters: Mutex<HashMap<String, Arc<Server>>>,
    slots: RwLock<Arc<SlotMap>>,
    /// Bumped by every successful map refresh, so that waiters do not refresh again.
    generation: AtomicU64,
    refreshing: tokio::sync::Mutex<()>,
}

impl Cluster {
    /// A cluster known by `seeds` (at least one); nothing is contacted until the first call.
    pub fn new(name: &str, seeds: Vec<Endpoint>) -> Cluster {
        Cluster {
            name: name.to_string(),
            seeds,
            masters: Mutex::new(HashMap::new()),
            slots: RwLock::new(Arc::new(SlotMap::empty())),
            generation: AtomicU64::new(0),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    /// The pool of the node at `addr` (`host:port`), with the seeds' credentials and TLS.
    fn node(&self, addr: &str) -> Result<Arc<Server>, Error> {
        let mut masters = self.masters.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(server) = masters.get(addr) {
            return Ok(server.clone());
        }
        let (host, port) = parse_addr(addr).map_err(Error::Cluster)?;
        let template = self
            .seeds
            .first()
            .ok_or_else(|| Error::Cluster("no cluster nodes configured".into()))?;
        let endpoint = Endpoint {
            host,
            port,
            ..template.clone()
        };
        let server = Arc::new(Server::new(endpoint));
        masters.insert(addr.to_string(), server.clone());
        Ok(server)
    }

    fn map(&self) -> Arc<SlotMap> {
        self.slots.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Reads the slot map again from the first node that answers, unless another call did so
    /// since `seen` (a generation read before the failure that led here).
    async fn refresh(&self, seen: u64, limits: &Limits) -> Result<(), Error> {
        let _one_at_a_time = self.refreshing.lock().await;
        if self.generation.load(Ordering::Acquire) != seen {
            return Ok(());
        }
        let mut candidates: Vec<String> = self.map().addrs.clone();
        for seed in &self.seeds {
            let addr = seed.addr();
            if !candidates.contains(&addr) {
                candidates.push(addr);
            }
        }
        let mut last = Error::Cluster(format!("cluster {}: no nodes to ask", self.name));
        for addr in candidates {
            let server = self.node(&addr)?;
            let reply = server
                .query(&Cmd::new("CLUSTER").arg("SLOTS"), limits)
                .await;
            match reply.and_then(|r| SlotMap::parse(&r, server.endpoint())) {
                Ok(map) if !map.addrs.is_empty() => {
                    *self.slots.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(map);
                    self.generation.fetch_add(1, Ordering::AcqRel);
                    return Ok(());
                }
                Ok(_) => last = Error::Cluster(format!("{addr} serves no slots")),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Records a `MOVED` answer until the next refresh.
    fn moved(&self, slot: u16, addr: &str) {
        let mut slots = self.slots.write().unwrap_or_else(|e| e.into_inner());
        let mut map = SlotMap::clone(&slots);
        map.set(slot, slot, addr);
        *slots = Arc::new(map);
    }

    /// Runs `cmd`, whose key is `key`, on the master serving the key's slot, following
    /// redirections. An error reply is [`Error::Server`].
    pub async fn query(&self, key: &[u8], cmd: &Cmd, limits: &Limits) -> Result<Value, Error> {
        let slot = key_slot(key);
        let mut refreshed = false;
        let mut ask: Option<String> = None;
        for _ in 0..=MAX_REDIRECTS {
            let generation = self.generation.load(Ordering::Acquire);
            let asking = ask.is_some();
            let addr = match ask
                .take()
                .or_else(|| self.map().get(slot).map(str::to_string))
            {
                Some(addr) => addr,
                None if !refreshed => {
                    refreshed = true;
                    self.refresh(generation, limits).await?;
                    continue;
                }
                None => {
                    return Err(Error::Cluster(format!(
                        "cluster {}: no node serves slot {slot}",
                        self.name
                    )))
                }
            };
            let server = self.node(&addr)?;
            let reply = if asking {
                let replies = server
                    .pipeline(&[Cmd::new("ASKING"), cmd.clone()], limits)
                    .await;
                replies.map(|mut r| r.pop().unwrap_or(Value::Nil))
            } else {
                server
                    .pipeline(std::slice::from_ref(cmd), limits)
                    .await
                    .map(|mut r| r.pop().unwrap_or(Value::Nil))
            };
            let err = match reply {
                Ok(Value::Error(err)) => err,
                Ok(value) => return Ok(value),
                Err(e) if refreshed => return Err(e),
                Err(e) => {
                    // The node may be gone (failover, resharding): ask the others.
                    tracing::warn!("redis cluster {}: {addr}: {e}", self.name);
                    refreshed = true;
                    self.refresh(generation, limits).await?;
                    continue;
                }
            };
            let mut words = err.split(' ');
            match (words.next(), words.next(), words.next()) {
                (Some("MOVED"), Some(_), Some(to)) => {
                    let to = self.redirect_addr(to, server.endpoint());
                    self.moved(slot, &to);
                    if !refreshed {
                        refreshed = true;
                        if let Err(e) = self.refresh(generation, limits).await {
                            tracing::warn!("redis cluster {}: refresh: {e}", self.name);
                        }
                    }
                }
                (Some("ASK"), Some(_), Some(to)) => {
                    ask = Some(self.redirect_addr(to, server.endpoint()));
                }
                (Some("TRYAGAIN"), _, _) => tokio::time::sleep(Duration::from_millis(20)).await,
                _ => return Err(Error::Server(err)),
            }
        }
        Err(Error::Cluster(format!(
            "cluster {}: too many redirections for slot {slot}",
            self.name
        )))
    }

    /// The address of a redirection (`host:port`, or `:port` meaning the node that answered).
    fn redirect_addr(&self, to: &str, from: &Endpoint) -> String {
        match to.strip_prefix(':') {
            Some(port) => format!("{}:{port}", from.host),
            None => to.to_string(),
        }
    }

    /// The master serving `key` now, as far as this client knows (tests).
    pub fn owner_of(&self, key: &[u8]) -> Option<String> {
        self.map().get(key_slot(key)).map(str::to_string)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_and_slots_match_redis() {
        assert_eq!(crc16(b"123456789"), 0x31C3);
        // Values from `CLUSTER KEYSLOT`.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), key_slot(b"foo{}{bar}"));
        assert_ne!(key_slot(b"foo{}{bar}"), key_slot(b"bar"));
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
    }

    #[test]
    fn addresses() {
        assert_eq!(parse_addr("127.0.0.1:7000"), Ok(("127.0.0.1".into(), 7000)));
        assert_eq!(parse_addr("redis"), Ok(("redis".into(), 6379)));
        assert_eq!(parse_addr("[::1]:7001"), Ok(("::1".into(), 7001)));
        assert_eq!(parse_addr("::1"), Ok(("::1".into(), 6379)));
        assert!(parse_addr("host:0").is_err());
        assert!(parse_addr("host:http").is_err());
        assert!(parse_addr(":7000").is_err());
    }

    #[test]
    fn slot_map_from_cluster_slots() {
        let node = |host: &str, port: i64| {
            Value::Array(vec![
                Value::Bulk(host.as_bytes().to_vec()),
                Value::Int(port),
                Value::Bulk(b"id".to_vec()),
            ])
        };
        let reply = Value::Array(vec![
            Value::Array(vec![Value::Int(0), Value::Int(99), node("10.0.0.1", 7000)]),
            Value::Array(vec![
                Value::Int(100),
                Value::Int(16383),
                node("", 7001),
                node("10.0.0.9", 7009),
            ]),
        ]);
        let asked = Endpoint::new("127.0.0.1", 7001);
        let mut map = SlotMap::parse(&reply, &asked).unwrap();
        assert_eq!(map.get(0), Some("10.0.0.1:7000"));
        assert_eq!(map.get(99), Some("10.0.0.1:7000"));
        assert_eq!(map.get(100), Some("127.0.0.1:7001"));
        assert_eq!(map.get(16383), Some("127.0.0.1:7001"));
        map.set(5, 5, "127.0.0.1:7002");
        assert_eq!(map.get(5), Some("127.0.0.1:7002"));
        assert_eq!(map.get(6), Some("10.0.0.1:7000"));
        assert!(SlotMap::parse(&Value::Int(1), &asked).is_err());
    }
}
