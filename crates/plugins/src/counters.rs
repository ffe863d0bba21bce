//! limit-count's local policy store: fixed windows per key, shared by every snapshot of a node
//! (held by [`PluginState`](crate::PluginState)), so a configuration swap does not reset them.
//!
//! A window starts with the first request for its key and lasts `time_window` seconds
//! (`resty.limit.count` over a shared dict with a TTL). The store is sharded by key hash behind
//! `std` mutexes; each shard drops its expired windows at most once a second, on use.
//!
//! A key is hashed once per request (foldhash, seeded per store): the hash picks the shard and
//! is the shard map's key, so the map does not hash the text again; the text tells apart the
//! (practically nonexistent) keys with equal hashes.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

const SHARDS: usize = 16;
const SWEEP_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Window {
    used: u64,
    ends: Instant,
}

/// The windows whose keys share one hash (one, but for a collision).
type Windows = Vec<(Box<str>, Window)>;

#[derive(Debug, Default)]
struct Shard {
    /// Key hash → the windows of the keys with that hash.
    windows: HashMap<u64, Windows, BuildHasherDefault<KeyHash>>,
    next_sweep: Option<Instant>,
}

/// The hasher of a shard map, whose keys are hashes already.
#[derive(Default)]
struct KeyHash(u64);

impl Hasher for KeyHash {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed here; any other input still hashes consistently.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The counters of every local limit-count instance of a node.
#[derive(Debug)]
pub struct Counters {
    shards: Vec<Mutex<Shard>>,
    hasher: foldhash::fast::RandomState,
}

impl Default for Counters {
    fn default() -> Counters {
        Counters {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }
}

/// The result of counting one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// Within the quota: what is left and when the window ends.
    Allowed {
        /// Requests left in this window.
        remaining: u64,
        /// Time until the window ends.
        reset: Duration,
    },
    /// Over the quota.
    Rejected {
        /// Time until the window ends.
        reset: Duration,
    },
}

impl Counters {
    fn shard(&self, hash: u64) -> MutexGuard<'_, Shard> {
        // Middle bits: the map uses the low bits for its slots and the top ones as tags.
        let i = (hash >> 32) as usize % SHARDS;
        // A poisoned shard only means another request panicked mid-update; the counts are
        // still usable.
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a request of `cost` against `key`'s window of `limit` requests per `window`, at
    /// time `now`. A rejected request is counted too (as `resty.limit.count` does), which does
    /// not change any answer of the window.
    pub fn incoming(
        &self,
        key: &str,
        limit: u64,
        window: Duration,
        cost: u64,
        now: Instant,
    ) -> Count {
        let hash = self.hasher.hash_one(key);
        let mut shard = self.shard(hash);
        if shard.next_sweep.is_none_or(|t| now >= t) {
            shard.windows.retain(|_, same_hash| {
                same_hash.retain(|(_, w)| w.ends > now);
                !same_hash.is_empty()
            });
            shard.next_sweep = Some(now + SWEEP_EVERY);
        }
        let same_hash = shard.windows.entry(hash).or_default();
        let w = match same_hash.iter().position(|(k, _)| **k == *key) {
            Some(i) => {
                let w = &mut same_hash[i].1;
                if w.ends > now {
                    w.used = w.used.saturating_add(cost);
                } else {
                    *w = Window {
                        used: cost,
                        ends: now + window,
                    };
                }
                w
            }
            None => {
                same_hash.push((
                    key.into(),
                    Window {
                        used: cost,
                        ends: now + window,
                    },
                ));
                match same_hash.last_mut() {
                    Some((_, w)) => w,
                    None => return Count::Rejected { reset: window },
                }
            }
        };
        let reset = w.ends.saturating_duration_since(now);
        match limit.checked_sub(w.used) {
            Some(remaining) => Count::Allowed { remaining, reset },
            None => Count::Rejected { reset },
        }
    }

    /// Number of live windows (tests and metrics).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let shard = s.lock().unwrap_or_else(|e| e.into_inner());
                shard.windows.values().map(Vec::len).sum::<usize>()
            })
            .sum()
    }

    /// Whether no window is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_window_per_key() {
        let c = Counters::default();
        let t0 = Instant::now();
        let w = Duration::from_secs(60);
        assert_eq!(
            c.incoming("k", 2, w, 1, t0),
            Count::Allowed {
                remaining: 1,
                reset: w
            }
        );
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(
            c.incoming("k", 2, w, 1, t1),
            Count::Allowed {
                remaining: 0,
                reset: Duration::from_secs(50)
            }
        );
        assert_eq!(
            c.incoming("k", 2, w, 1, t1),
            Count::Rejected {
                reset: Duration::from_secs(50)
            }
        );
        // Another key has its own window.
        assert!(matches!(
            c.incoming("other", 2, w, 1, t1),
            Count::Allowed { remaining: 1, .. }
        ));
        // The window ends: a new one starts with the next request.
        let t2 = t0 + w;
        assert_eq!(
            c.incoming("k", 2, w, 1, t2),
            Count::Allowed {
                remaining: 1,
                reset: w
            }
        );
    }

    #[test]
    fn expired_windows_are_swept() {
        let c = Counters::default();
        let t0 = Instant::now();
        for i in 0..50 {
            c.incoming(&format!("k{i}"), 1, Duration::from_secs(1), 1, t0);
        }
        assert_eq!(c.len(), 50);
        // A shard sweeps when it is used: enough new keys that every shard is (the chance
        // that one of the 16 gets none of 1,000 random hashes is below 1e-26).
        let later = t0 + Duration::from_secs(5);
        for i in 0..1000 {
            c.incoming(&format!("n{i}"), 1, Duration::from_secs(100), 1, later);
        }
        assert_eq!(c.len(), 1000);
    }

    #[test]
    fn keys_of_any_length_have_their_own_windows() {
        let c = Counters::default();
        let t0 = Instant::now();
        let w = Duration::from_secs(60);
        let keys: Vec<String> = (0..300).map(|i| "k".repeat(i)).collect();
        for (i, key) in keys.iter().enumerate() {
            for n in 0..=(i % 3) as u64 {
                c.incoming(key, 10, w, 1, t0 + Duration::from_secs(n));
            }
        }
        assert_eq!(c.len(), keys.len());
        for (i, key) in keys.iter().enumerate() {
            let used = (i % 3) as u64 + 2;
            assert_eq!(
                c.incoming(key, 10, w, 1, t0 + Duration::from_secs(5)),
                Count::Allowed {
                    remaining: 10 - used,
                    reset: Duration::from_secs(55)
                },
                "{key:?}"
            );
        }
    }
}
