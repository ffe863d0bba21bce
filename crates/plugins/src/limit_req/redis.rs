//! limit-req's `redis`, `redis-cluster` and `redis-sentinel` policies: one leaky bucket per key
//! shared by every gateway node that uses the same Redis (`limit-req/util.lua`,
//! `limit-req-redis.lua`).
//!
//! One Lua script reads, drains and refills a bucket atomically, with the arithmetic of the
//! local policy ([`Buckets::incoming`](super::Buckets::incoming)): a request finds
//! `max(excess - rate * elapsed + 1000, 0)` thousandths of a request waiting; above the burst
//! it is rejected and the bucket is left as it was, otherwise the bucket keeps that excess
//! (floored) and the request waits `excess / rate`. The clock is the Redis server's (`TIME`),
//! so gateway nodes whose clocks differ still drain one bucket alike.
//!
//! The bucket is a hash `limit_req:<owner>:<crc32>:<value>` with fields `excess` and `last`
//! (APISIX keeps two string keys, `…excess` and `…last`; one hash keeps a bucket on one
//! cluster slot). It expires once it has drained to nothing, when it is as good as missing.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use serde_json::Value;

use crate::redis::{self, Pools, Script};
use crate::redis_schema::RedisTarget;

/// Prefix of every bucket key (APISIX's `"limit_req" .. ":"`).
const KEY_PREFIX: &str = "limit_req:";

/// KEYS[1]: the bucket; ARGV[1]: rate (requests a second); ARGV[2]: burst (requests).
/// Returns the thousandths of a request waiting ahead of this one, or -1 when that is over
/// the burst. Times are milliseconds with a fraction.
const BUCKET_SCRIPT: &str = "\
local rate = tonumber(ARGV[1]) * 1000
local burst = tonumber(ARGV[2]) * 1000
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + tonumber(time[2]) / 1000
local bucket = redis.call('HMGET', KEYS[1], 'excess', 'last')
local excess = 0
if bucket[1] and bucket[2] then
  local elapsed = math.abs(now - tonumber(bucket[2]))
  excess = math.max(tonumber(bucket[1]) - rate * elapsed / 1000 + 1000, 0)
  if excess > burst then
    return -1
  end
end
excess = math.floor(excess)
redis.call('HSET', KEYS[1], 'excess', excess, 'last', now)
local drained_in = math.min(math.ceil((excess + 1000) * 1000 / rate) + 1, 2 ^ 50)
redis.call('PEXPIRE', KEYS[1], drained_in)
return excess
";

static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(BUCKET_SCRIPT));

/// Buckets in Redis.
#[derive(Debug)]
pub(super) struct RedisBuckets {
    target: RedisTarget,
}

impl RedisBuckets {
    /// The buckets of a Redis `policy` from a checked configuration, with its connections
    /// from the node's `pools`.
    pub(super) fn build(policy: &str, conf: &Value, pools: &Pools) -> Result<RedisBuckets, String> {
        Ok(RedisBuckets {
            target: RedisTarget::from_conf(policy, conf, pools)?,
        })
    }

    /// `incoming(key, true)`: the delay before the request may go on, or `None` when it is
    /// over the burst.
    pub(super) async fn incoming(
        self: Arc<Self>,
        key: String,
        rate: f64,
        burst: f64,
    ) -> Result<Option<Duration>, redis::Error> {
        let key = format!("{KEY_PREFIX}{key}");
        let args = [rate.to_string(), burst.to_string()];
        let RedisTarget { client, limits } = &self.target;
        let reply = client.eval(&SCRIPT, &key, &args, limits).await?;
        match reply.as_int() {
            Some(-1) => Ok(None),
            Some(excess) if excess >= 0 => Ok(Some(
                Duration::try_from_secs_f64(excess as f64 / (rate * 1000.0))
                    .unwrap_or(Duration::MAX),
            )),
            _ => Err(redis::Error::Protocol(format!(
                "unexpected limit-req reply: {reply}"
            ))),
        }
    }
}
