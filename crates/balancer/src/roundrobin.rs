//! `roundrobin`: lua-resty-balancer's `resty.roundrobin` (interleaved weighted round robin).
//!
//! The picker walks the nodes in order with a "current weight" `cw` that starts at the largest
//! weight: a node is picked when its weight is at least `cw`; after the last node `cw` drops by the
//! gcd of the weights, wrapping back to the largest weight below 1. Over a cycle of
//! `sum(weight) / gcd` picks every node is picked exactly `weight / gcd` times. Like the Lua
//! picker, the walk starts after a random node and its state is shared by all requests.
//!
//! Exclusions (unhealthy, already tried) behave as APISIX's retry loop does — as if the excluded
//! picks were drawn and thrown away — but in O(nodes) instead of O(weight): when the walk wraps,
//! `cw` jumps straight to the largest weight still usable. Nodes of weight 0 never qualify; they
//! are handed out in turn only when no node of positive weight is usable.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Picker state of one priority group: positions are group-local.
#[derive(Debug)]
pub(crate) struct RoundRobin {
    weights: Vec<u32>,
    gcd: u32,
    max: u32,
    /// `cw` in the high 32 bits, the last picked position in the low 32 bits.
    state: AtomicU64,
    /// Rotation over weight-0 nodes when nothing else is usable.
    standby: AtomicUsize,
}

impl RoundRobin {
    /// A picker over `weights` whose walk starts after position `start`. A group whose weights
    /// are all 0 is balanced as if they were all 1 (lua-resty-balancer's gcd-0 case).
    pub(crate) fn new(weights: &[u32], start: usize) -> Self {
        let all_zero = weights.iter().all(|&w| w == 0);
        let weights: Vec<u32> = if all_zero {
            vec![1; weights.len()]
        } else {
            weights.to_vec()
        };
        let gcd = weights.iter().fold(0, |g, &w| gcd(g, w)).max(1);
        let max = weights.iter().copied().max().unwrap_or(1).max(1);
        let last = if weights.is_empty() {
            0
        } else {
            start % weights.len()
        };
        RoundRobin {
            weights,
            gcd,
            max,
            state: AtomicU64::new(pack(max, last)),
            standby: AtomicUsize::new(0),
        }
    }

    /// The next usable position of the walk, advancing the shared state.
    pub(crate) fn pick(&self, usable: &dyn Fn(usize) -> bool) -> Option<usize> {
        let mut current = self.state.load(Ordering::Relaxed);
        loop {
            let (cw, last) = unpack(current);
            let Some((cw, pos)) = self.walk(cw, last, usable) else {
                return self.standby(usable);
            };
            match self.state.compare_exchange_weak(
                current,
                pack(cw, pos),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(pos),
                Err(actual) => current = actual,
            }
        }
    }

    /// `resty.roundrobin.find` from state `(cw, last)`, skipping unusable positions.
    fn walk(
        &self,
        mut cw: u32,
        last: usize,
        usable: &dyn Fn(usize) -> bool,
    ) -> Option<(u32, usize)> {
        let mut pos = last + 1;
        let mut usable_max = None;
        loop {
            while let Some(&w) = self.weights.get(pos) {
                if w >= cw && usable(pos) {
                    return Some((cw, pos));
                }
                pos += 1;
            }
            // End of the list: lower cw. Levels above the heaviest usable node would only yield
            // skipped picks, so jump over them; the next pass then surely finds a node.
            let ceiling = match usable_max {
                Some(m) => m,
                None => {
                    let m = self.usable_max(usable)?;
                    usable_max = Some(m);
                    m
                }
            };
            cw = if cw > self.gcd {
                cw - self.gcd
            } else {
                self.max
            };
            cw = cw.min(ceiling);
            pos = 0;
        }
    }

    fn usable_max(&self, usable: &dyn Fn(usize) -> bool) -> Option<u32> {
        self.weights
            .iter()
            .enumerate()
            .filter(|&(pos, &w)| w > 0 && usable(pos))
            .map(|(_, &w)| w)
            .max()
    }

    fn standby(&self, usable: &dyn Fn(usize) -> bool) -> Option<usize> {
        let n = self.weights.len();
        if n == 0 {
            return None;
        }
        let start = self.standby.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|i| (start + i) % n)
            .find(|&pos| self.weights[pos] == 0 && usable(pos))
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn pack(cw: u32, last: usize) -> u64 {
    (u64::from(cw) << 32) | (last as u64 & 0xFFFF_FFFF)
}

fn unpack(state: u64) -> (u32, usize) {
    ((state >> 32) as u32, (state & 0xFFFF_FFFF) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sequence(rr: &RoundRobin, n: usize, usable: &dyn Fn(usize) -> bool) -> String {
        (0..n)
            .map(|_| rr.pick(usable).map_or('-', |p| (b'A' + p as u8) as char))
            .collect()
    }

    #[test]
    fn follows_the_lua_interleaving() {
        // A=3 B=2 C=1, starting after C at level 3: levels 2 (A B), 1 (A B C), 3 (A), 2 (A B)...
        let rr = RoundRobin::new(&[3, 2, 1], 2);
        assert_eq!(sequence(&rr, 12, &|_| true), "ABABCAABABCA");
    }

    #[test]
    fn uses_the_gcd_as_the_step() {
        let rr = RoundRobin::new(&[40, 20], 1);
        assert_eq!(sequence(&rr, 6, &|_| true), "ABAABA");
    }

    #[test]
    fn weight_zero_is_skipped_unless_nothing_else_is_usable() {
        let rr = RoundRobin::new(&[0, 1, 0, 2], 3);
        let seq = sequence(&rr, 30, &|_| true);
        assert!(!seq.contains('A') && !seq.contains('C'), "{seq}");
        assert_eq!(seq.matches('D').count(), 20);
        // Only weight-0 nodes usable: they take turns.
        let seq = sequence(&rr, 4, &|p| p == 0 || p == 2);
        assert_eq!(seq.matches('A').count(), 2, "{seq}");
        assert_eq!(seq.matches('C').count(), 2, "{seq}");
        assert_eq!(sequence(&rr, 1, &|_| false), "-");
    }

    #[test]
    fn all_zero_weights_rotate_evenly() {
        let rr = RoundRobin::new(&[0, 0, 0], 2);
        assert_eq!(sequence(&rr, 6, &|_| true), "ABCABC");
    }

    #[test]
    fn exclusion_keeps_the_order_of_the_remaining_nodes() {
        let full = RoundRobin::new(&[5, 3, 2, 1], 3);
        let expected: String = sequence(&full, 44, &|_| true).replace('A', "");
        let skipping = RoundRobin::new(&[5, 3, 2, 1], 3);
        assert_eq!(sequence(&skipping, expected.len(), &|p| p != 0), expected);
    }

    #[test]
    fn huge_weights_with_exclusions_do_not_spin() {
        let rr = RoundRobin::new(&[u32::MAX, 1, 7], 0);
        let seq = sequence(&rr, 16, &|p| p != 0);
        assert_eq!(seq.matches('B').count() + seq.matches('C').count(), 16);
        assert!(seq.contains('B'));
    }

    #[test]
    fn empty_group_picks_nothing() {
        let rr = RoundRobin::new(&[], 5);
        assert_eq!(rr.pick(&|_| true), None);
    }
}
