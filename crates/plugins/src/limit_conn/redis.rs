//! limit-conn's `redis`, `redis-cluster` and `redis-sentinel` policies: the requests in flight
//! per key, counted in one Redis shared by every gateway node using it
//! (`limit-conn/util.lua`, `limit-conn-redis.lua`).
//!
//! As in APISIX 3.x, a key is a sorted set `limit_conn:<owner>:<crc32>:<value>` with one
//! member per counted request, scored by the time (seconds, the Redis server's clock) at which
//! it stops counting: `key_ttl` seconds after it entered. Entering is one Lua script: drop the
//! members past their time, count the rest, and add this request unless that reaches
//! `conn + burst`; the whole set also expires `key_ttl` after the last entry. A request that
//! ends removes its member (`ZREM`), from a task of its own since the `log` phase cannot wait.
//! A gateway node that dies with requests in flight thus holds their places for at most
//! `key_ttl` seconds, not forever.

use std::sync::{Arc, LazyLock};

use serde_json::Value;

use crate::redis::{self, Cmd, Pools, Script};
use crate::redis_schema::RedisTarget;

/// Prefix of every key (APISIX's `"limit_conn" .. ":"`).
const KEY_PREFIX: &str = "limit_conn:";

/// KEYS[1]: the set; ARGV[1]: most requests counted at once (`conn + burst`); ARGV[2]:
/// `key_ttl` in seconds; ARGV[3]: this request's member. Returns `{1, count with this
/// request}`, or `{0, count}` when it does not fit.
const ENTER_SCRIPT: &str = "\
local most = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local now = tonumber(redis.call('TIME')[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, now)
local count = redis.call('ZCARD', KEYS[1])
if count >= most then
  return {0, count}
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[3])
redis.call('EXPIRE', KEYS[1], ttl)
return {1, count + 1}
";

static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(ENTER_SCRIPT));

/// Requests in flight, counted in Redis.
#[derive(Debug)]
pub(super) struct RedisConnections {
    target: RedisTarget,
    /// `key_ttl`, in seconds.
    key_ttl: u64,
}

/// A counted request's place: its set and its member.
#[derive(Debug)]
pub(super) struct Place {
    key: String,
    member: String,
}

impl RedisConnections {
    /// The counters of a Redis `policy` from a checked configuration, with its connections
    /// from the node's `pools`.
    pub(super) fn build(
        policy: &str,
        conf: &Value,
        pools: &Pools,
        key_ttl: u64,
    ) -> Result<RedisConnections, String> {
        Ok(RedisConnections {
            target: RedisTarget::from_conf(policy, conf, pools)?,
            key_ttl,
        })
    }

    /// Counts one more request under `key` unless that would exceed `most`: its place and the
    /// count with it, or `None` (nothing counted).
    pub(super) async fn enter(
        self: Arc<Self>,
        key: String,
        most: u64,
    ) -> Result<Option<(Place, u64)>, redis::Error> {
        let key = format!("{KEY_PREFIX}{key}");
        let member = member();
        let args = [most.to_string(), self.key_ttl.to_string(), member.clone()];
        // Until Redis answered, the script may have counted the request: a call given up (the
        // client left, a timeout) removes the place again.
        let mut unclaimed = Unclaimed {
            connections: self.clone(),
            place: Some(Place {
                key: key.clone(),
                member,
            }),
        };
        let RedisTarget { client, limits } = &self.target;
        let reply = match client.eval(&SCRIPT, &key, &args, limits).await {
            Ok(reply) => reply,
            Err(e) => {
                if matches!(e, redis::Error::Connect(_)) {
                    unclaimed.place = None; // Nothing was sent.
                }
                return Err(e);
            }
        };
        let pair = match &reply {
            redis::Value::Array(items) if items.len() == 2 => {
                items[0].as_int().zip(items[1].as_int())
            }
            _ => None,
        };
        match (pair, unclaimed.place.take()) {
            (Some((1, count)), Some(place)) if count > 0 => Ok(Some((place, count as u64))),
            (Some((0, _)), _) => Ok(None),
            (_, place) => {
                unclaimed.place = place;
                Err(redis::Error::Protocol(format!(
                    "unexpected limit-conn reply: {reply}"
                )))
            }
        }
    }

    /// The request holding `place` ended: removes it from its set in a task of its own. Without
    /// a runtime to run it (a context dropped outside one) the place expires after `key_ttl`.
    pub(super) fn leave(self: &Arc<Self>, place: &Place) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                "limit-conn: {} is released when key_ttl ends (no runtime to remove it)",
                place.key
            );
            return;
        };
        let this = self.clone();
        let cmd = Cmd::new("ZREM").arg(&place.key).arg(&place.member);
        let key = place.key.clone();
        runtime.spawn(async move {
            let RedisTarget { client, limits } = &this.target;
            if let Err(e) = client.query(&key, &cmd, limits).await {
                tracing::error!("failed to record the connection leaving request: {e}");
            }
        });
    }
}

/// A place that may have been counted and belongs to no request yet: removed when dropped.
struct Unclaimed {
    connections: Arc<RedisConnections>,
    place: Option<Place>,
}

impl Drop for Unclaimed {
    fn drop(&mut self) {
        if let Some(place) = self.place.take() {
            self.connections.leave(&place);
        }
    }
}

/// A member no other request of any node uses: 128 random bits.
fn member() -> String {
    format!("{:016x}{:016x}", crate::random::u64(), crate::random::u64())
}
