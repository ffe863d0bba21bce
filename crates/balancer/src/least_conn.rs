//! `least_conn`: the node with the least `(1 + in_flight) / weight`
//! (`apisix/balancer/least_conn.lua`).
//!
//! APISIX keeps a binary heap per upstream and priority level; with the handful of nodes an
//! upstream has, a linear scan over atomic counters is as fast and needs no lock. Ties are broken
//! by a rotating start so that idle nodes share sequential traffic. A node of weight 0 scores
//! infinity (APISIX's `1 / 0`): it is picked only when no weighted node is usable, and then the
//! one with fewest requests in flight.

use std::cmp::Ordering as Cmp;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Picker of one priority group: positions are group-local.
#[derive(Debug)]
pub(crate) struct LeastConn {
    weights: Vec<u32>,
    cursor: AtomicUsize,
}

impl LeastConn {
    pub(crate) fn new(weights: &[u32]) -> Self {
        LeastConn {
            weights: weights.to_vec(),
            cursor: AtomicUsize::new(0),
        }
    }

    /// The usable position with the lowest score; `in_flight` reads a position's counter.
    pub(crate) fn pick(
        &self,
        in_flight: &dyn Fn(usize) -> u32,
        usable: &dyn Fn(usize) -> bool,
    ) -> Option<usize> {
        let n = self.weights.len();
        if n == 0 {
            return None;
        }
        let start = self.cursor.fetch_add(1, Ordering::Relaxed) % n;
        let mut best: Option<(usize, u32)> = None;
        for pos in (0..n).map(|i| (start + i) % n) {
            if !usable(pos) {
                continue;
            }
            let load = in_flight(pos);
            let better = match best {
                None => true,
                Some((b, b_load)) => {
                    compare(load, self.weights[pos], b_load, self.weights[b]) == Cmp::Less
                }
            };
            if better {
                best = Some((pos, load));
            }
        }
        best.map(|(pos, _)| pos)
    }
}

/// Orders `(1 + a) / wa` against `(1 + b) / wb` exactly, weight 0 being infinity.
fn compare(a: u32, wa: u32, b: u32, wb: u32) -> Cmp {
    match (wa, wb) {
        (0, 0) => a.cmp(&b),
        (0, _) => Cmp::Greater,
        (_, 0) => Cmp::Less,
        _ => {
            let lhs = (u128::from(a) + 1) * u128::from(wb);
            let rhs = (u128::from(b) + 1) * u128::from(wa);
            lhs.cmp(&rhs)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefers_the_idle_node() {
        let lc = LeastConn::new(&[1, 1, 1]);
        let loads = [3, 0, 2];
        for _ in 0..6 {
            assert_eq!(lc.pick(&|p| loads[p], &|_| true), Some(1));
        }
    }

    #[test]
    fn weights_scale_the_score() {
        // (1+5)/3 = 2 beats (1+2)/1 = 3; weight-0 node never wins against weighted ones.
        let lc = LeastConn::new(&[3, 1, 0]);
        let loads = [5, 2, 0];
        assert_eq!(lc.pick(&|p| loads[p], &|_| true), Some(0));
        assert_eq!(lc.pick(&|p| loads[p], &|p| p != 0), Some(1));
        assert_eq!(lc.pick(&|p| loads[p], &|p| p == 2), Some(2));
        assert_eq!(lc.pick(&|p| loads[p], &|_| false), None);
    }

    #[test]
    fn ties_rotate() {
        let lc = LeastConn::new(&[2, 2, 2, 2]);
        let mut seen = [0; 4];
        for _ in 0..400 {
            if let Some(p) = lc.pick(&|_| 0, &|_| true) {
                seen[p] += 1;
            }
        }
        assert_eq!(seen, [100; 4]);
    }

    #[test]
    fn compare_handles_extremes() {
        assert_eq!(compare(u32::MAX, u32::MAX, 0, 1), Cmp::Greater);
        assert_eq!(compare(0, 0, 0, 0), Cmp::Equal);
        assert_eq!(compare(1, 0, 0, 0), Cmp::Greater);
    }
}
