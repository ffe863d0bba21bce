//! limit-count's `redis`, `redis-cluster` and `redis-sentinel` policies: one counter per key
//! shared by every gateway node that uses the same Redis (`limit-count-redis.lua`,
//! `limit-count/util.lua`).
//!
//! The window is counted by one Lua script, atomically: when the key has no expiry (it does
//! not exist, or lost its TTL) it is set to the request's cost with the window as expiry;
//! otherwise it is incremented. The script returns what the window used so far and the
//! milliseconds it has left, from which the quota headers are made as for the local policy.
//! Keys are `plugin-limit-count` followed by the local policy's key (`<owner>:<crc32>:<value>`
//! or `<group>:<value>`).

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use serde_json::Value;

use crate::counters::Count;
use crate::redis::{self, Pools, Script};
use crate::redis_schema::RedisTarget;

/// Prefix of every key (APISIX's `"plugin-" .. plugin_name`, no separator).
const KEY_PREFIX: &str = "plugin-limit-count";

/// KEYS[1]: the counter; ARGV[1]: window in milliseconds; ARGV[2]: cost. Returns
/// `{used, milliseconds left}`.
const WINDOW_SCRIPT: &str = "\
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[1])
  return {tonumber(ARGV[2]), tonumber(ARGV[1])}
end
return {redis.call('INCRBY', KEYS[1], ARGV[2]), left}
";

static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(WINDOW_SCRIPT));

/// Counters in Redis.
#[derive(Debug)]
pub(super) struct RedisCounter {
    target: RedisTarget,
}

impl RedisCounter {
    /// The counter of a Redis `policy` from a checked configuration, with
    /// its connections from the node's `pools`.
    pub(super) fn build(policy: &str, conf: &Value, pools: &Pools) -> Result<RedisCounter, String> {
        Ok(RedisCounter {
            target: RedisTarget::from_conf(policy, conf, pools)?,
        })
    }

    /// Counts one request against `key`'s window of `limit` requests per `window` seconds.
    pub(super) async fn incoming(
        self: Arc<Self>,
        key: String,
        limit: u64,
        window: u64,
    ) -> Result<Count, redis::Error> {
        let key = format!("{KEY_PREFIX}{key}");
        let window_ms = window.saturating_mul(1000);
        let args = [window_ms.to_string(), "1".to_string()];
        let RedisTarget { client, limits } = &self.target;
        let reply = client.eval(&SCRIPT, &key, &args, limits).await?;
        let pair = match &reply {
            redis::Value::Array(items) if items.len() == 2 => {
                items[0].as_int().zip(items[1].as_int())
            }
            _ => None,
        };
        let Some((used, left_ms)) = pair else {
            return Err(redis::Error::Protocol(format!(
                "unexpected limit-count reply: {reply}"
            )));
        };
        let reset = Duration::from_millis(u64::try_from(left_ms).unwrap_or(0));
        Ok(
            match i64::try_from(limit).unwrap_or(i64::MAX).checked_sub(used) {
                Some(remaining) if remaining >= 0 => Count::Allowed {
                    remaining: remaining as u64,
                    reset,
                },
                _ => Count::Rejected { reset },
            },
        )
    }
}
