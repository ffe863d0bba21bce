//! limit-count's local policy store: fixed windows per key, shared by every snapshot of a node
//! (held by [`PluginState`](crate::PluginState)), so a configuration swap does not reset them.
//!
//! A window starts with the first request for its key and lasts `time_window` seconds
//! (`resty.limit.count` over a shared dict with a TTL). The store is sharded by key hash behind
//! `std` mutexes; each shard drops its expired windows at most once a second, on use.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

const SHARDS: usize = 16;
const SWEEP_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Window {
    used: u64,
    ends: Instant,
}

#[derive(Debug, Default)]
struct Shard {
    windows: HashMap<String, Window>,
    next_sweep: Option<Instant>,
}

/// The counters of every local limit-count instance of a node.
#[derive(Debug)]
pub struct Counters {
    shards: Vec<Mutex<Shard>>,
}

impl Default for Counters {
    fn default() -> Counters {
        Counters {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
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
    fn shard(&self, key: &str) -> MutexGuard<'_, Shard> {
        // FNV-1a: only spreads keys over the shards (the maps hash them with SipHash).
        let h = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        let i = (h % SHARDS as u64) as usize;
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
        let mut shard = self.shard(key);
        if shard.next_sweep.is_none_or(|t| now >= t) {
            shard.windows.retain(|_, w| w.ends > now);
            shard.next_sweep = Some(now + SWEEP_EVERY);
        }
        let w = match shard.windows.get_mut(key) {
            Some(w) if w.ends > now => {
                w.used = w.used.saturating_add(cost);
                w
            }
            _ => {
                shard.windows.insert(
                    key.to_string(),
                    Window {
                        used: cost,
                        ends: now + window,
                    },
                );
                match shard.windows.get_mut(key) {
                    Some(w) => w,
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
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).windows.len())
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
        let later = t0 + Duration::from_secs(5);
        for i in 0..50 {
            c.incoming(&format!("n{i}"), 1, Duration::from_secs(100), 1, later);
        }
        assert_eq!(c.len(), 50);
    }
}
