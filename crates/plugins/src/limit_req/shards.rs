//! A string-keyed map split into mutex-guarded shards, for the per-key state of limit-req,
//! limit-conn and api-breaker (APISIX keeps it in `ngx.shared` dictionaries). Each shard drops
//! the entries its owner no longer needs at most once a second, on use.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

const SHARDS: usize = 16;
const SWEEP_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Shard<V> {
    map: HashMap<String, V>,
    next_sweep: Option<Instant>,
}

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct Shards<V> {
    shards: Vec<Mutex<Shard<V>>>,
}

impl<V> Default for Shards<V> {
    fn default() -> Shards<V> {
        Shards {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        map: HashMap::new(),
                        next_sweep: None,
                    })
                })
                .collect(),
        }
    }
}

impl<V> Shards<V> {
    fn shard(&self, key: &str) -> MutexGuard<'_, Shard<V>> {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        let i = (h.finish() % SHARDS as u64) as usize;
        // A poisoned shard only means another request panicked mid-update; the state is
        // still usable.
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the map of `key`'s shard, after dropping the entries `keep` refuses if the
    /// shard's sweep is due at `now`.
    pub(crate) fn update<R>(
        &self,
        key: &str,
        now: Instant,
        keep: impl FnMut(&V) -> bool,
        f: impl FnOnce(&mut HashMap<String, V>) -> R,
    ) -> R {
        let mut shard = self.shard(key);
        if shard.next_sweep.is_none_or(|t| now >= t) {
            let mut keep = keep;
            shard.map.retain(|_, v| keep(v));
            shard.next_sweep = Some(now + SWEEP_EVERY);
        }
        f(&mut shard.map)
    }

    /// Runs `f` on the map of `key`'s shard, without sweeping.
    pub(crate) fn with<R>(&self, key: &str, f: impl FnOnce(&mut HashMap<String, V>) -> R) -> R {
        f(&mut self.shard(key).map)
    }

    /// Number of entries (tests).
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).map.len())
            .sum()
    }
}
