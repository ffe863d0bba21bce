//! A small shared random source: SplitMix64 over an atomic counter.
//!
//! The balancer needs randomness in two places only (the round-robin start node and ewma's two
//! random candidates), neither of which is security-sensitive, so a lock-free statistical
//! generator is enough and keeps the crate free of dependencies and of global state.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// A thread-safe generator; concurrent callers each get a distinct value of the sequence.
#[derive(Debug)]
pub(crate) struct Rng(AtomicU64);

impl Rng {
    /// A generator with a fixed seed (tests, benchmarks).
    pub(crate) fn seeded(seed: u64) -> Self {
        Rng(AtomicU64::new(seed))
    }

    /// A generator seeded from the standard library's per-process random keys.
    pub(crate) fn from_entropy() -> Self {
        Rng::seeded(RandomState::new().hash_one(0x5eed_u64))
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&self) -> u64 {
        let mut z = self
            .0
            .fetch_add(GOLDEN, Ordering::Relaxed)
            .wrapping_add(GOLDEN);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform value in `0..n`; 0 when `n` is 0.
    pub(crate) fn below(&self, n: usize) -> usize {
        // Lemire's multiply-shift: unbiased enough for load spreading, no division.
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let rng = Rng::seeded(7);
        let mut seen = [0usize; 5];
        for _ in 0..5_000 {
            let v = rng.below(5);
            seen[v] += 1;
        }
        assert!(seen.iter().all(|&c| c > 800), "{seen:?}");
        assert_eq!(rng.below(0), 0);
    }

    #[test]
    fn same_seed_same_sequence() {
        let (a, b) = (Rng::seeded(42), Rng::seeded(42));
        assert_eq!(
            (0..8).map(|_| a.next_u64()).collect::<Vec<_>>(),
            (0..8).map(|_| b.next_u64()).collect::<Vec<_>>()
        );
    }
}
