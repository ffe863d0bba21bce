//! `ewma`: APISIX's latency-aware balancer (`apisix/balancer/ewma.lua`, after ingress-nginx).
//!
//! Each node keeps an exponentially weighted moving average of the response time the data plane
//! reports (APISIX: `upstream_connect_time + upstream_response_time` of completed requests). With
//! `Δt` the time since the node's last sample and `w = exp(-Δt / 10 s)`:
//! * a sample `rtt` updates the average to `ewma × w + rtt × (1 - w)` (the first sample, or one
//!   after 60 s of silence, sets it to `rtt`);
//! * a node's score at pick time is `ewma × w`, so a slow node drifts back toward 0 and gets
//!   traffic again; after 60 s without samples it is forgotten (APISIX's shm TTL) and scores 0.
//!
//! A pick draws two distinct usable nodes at random and takes the lower score (the first on a
//! tie); nodes never measured score 0 and are preferred. Weights are ignored. This is plain EWMA
//! as APISIX does it, not Finagle's peak-EWMA (no jump to a sample above the average).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::rng::Rng;

/// Decay time of the average (`DECAY_TIME`).
pub(crate) const DECAY: Duration = Duration::from_secs(10);
/// Samples older than this are forgotten (`SHM_TTL`).
pub(crate) const TTL: Duration = Duration::from_secs(60);

const NEVER: i64 = i64::MIN;

/// The latency average of one node. Readers never lock; writers serialise on a mutex so that no
/// sample is lost (APISIX takes a `resty.lock` for updates and reads without one, too).
#[derive(Debug)]
pub(crate) struct EwmaCell {
    /// `f64` seconds.
    ewma: AtomicU64,
    /// Microseconds since `epoch` of the last sample (may be negative), [`NEVER`] if none.
    touched: AtomicI64,
    epoch: Instant,
    update: Mutex<()>,
}

impl EwmaCell {
    pub(crate) fn new() -> Self {
        EwmaCell {
            ewma: AtomicU64::new(0f64.to_bits()),
            touched: AtomicI64::new(NEVER),
            epoch: Instant::now(),
            update: Mutex::new(()),
        }
    }

    /// The decayed average at `now`, in seconds; 0 if never measured or forgotten.
    pub(crate) fn score(&self, now: Instant) -> f64 {
        let touched = self.touched.load(Ordering::Acquire);
        let ewma = f64::from_bits(self.ewma.load(Ordering::Acquire));
        match self.weight(touched, now) {
            Some(w) => ewma * w,
            None => 0.0,
        }
    }

    /// Folds a response time observed at `now` into the average.
    pub(crate) fn observe(&self, rtt: Duration, now: Instant) {
        // A poisoned lock only means another reporter panicked mid-update; the data is two
        // independent atomics, so carry on.
        let _guard = self.update.lock().unwrap_or_else(|e| e.into_inner());
        let touched = self.touched.load(Ordering::Acquire);
        let rtt = rtt.as_secs_f64();
        let ewma = match self.weight(touched, now) {
            Some(w) => f64::from_bits(self.ewma.load(Ordering::Acquire)) * w + rtt * (1.0 - w),
            None => rtt,
        };
        self.ewma.store(ewma.to_bits(), Ordering::Release);
        self.touched.store(self.micros(now), Ordering::Release);
    }

    /// The decay factor since `touched`, `None` if there is no live sample.
    fn weight(&self, touched: i64, now: Instant) -> Option<f64> {
        if touched == NEVER {
            return None;
        }
        let elapsed = self.micros(now).saturating_sub(touched).max(0) as f64 / 1e6;
        (elapsed <= TTL.as_secs_f64()).then(|| (-elapsed / DECAY.as_secs_f64()).exp())
    }

    fn micros(&self, at: Instant) -> i64 {
        let signed = |d: Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
        match at.checked_duration_since(self.epoch) {
            Some(after) => signed(after),
            None => -signed(self.epoch.duration_since(at)),
        }
    }
}

/// Power of two choices among the usable positions `0..n` of a group.
pub(crate) fn pick(
    n: usize,
    score: &dyn Fn(usize) -> f64,
    usable: &dyn Fn(usize) -> bool,
    rng: &Rng,
) -> Option<usize> {
    let mut small = [0usize; 64];
    let large: Vec<usize>;
    let candidates: &[usize] = if n <= small.len() {
        let mut k = 0;
        for pos in (0..n).filter(|&p| usable(p)) {
            small[k] = pos;
            k += 1;
        }
        &small[..k]
    } else {
        large = (0..n).filter(|&p| usable(p)).collect();
        &large
    };
    match candidates {
        [] => None,
        [only] => Some(*only),
        _ => {
            let k = candidates.len();
            let a = rng.below(k);
            let mut b = rng.below(k - 1);
            if b >= a {
                b += 1;
            }
            let (a, b) = (candidates[a], candidates[b]);
            Some(if score(a) > score(b) { b } else { a })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn first_sample_sets_the_average_and_later_ones_blend() {
        let cell = EwmaCell::new();
        let t0 = Instant::now();
        assert_eq!(cell.score(t0), 0.0);
        cell.observe(100 * MS, t0);
        assert!((cell.score(t0) - 0.1).abs() < 1e-9);
        // 10 s later: w = e^-1, so 0.1 e^-1 + 0.5 (1 - e^-1).
        let t1 = t0 + DECAY;
        cell.observe(500 * MS, t1);
        let expected = 0.1 * (-1f64).exp() + 0.5 * (1.0 - (-1f64).exp());
        assert!((cell.score(t1) - expected).abs() < 1e-9);
    }

    #[test]
    fn scores_decay_and_expire() {
        let cell = EwmaCell::new();
        let t0 = Instant::now();
        cell.observe(Duration::from_secs(1), t0);
        let later = cell.score(t0 + Duration::from_secs(20));
        assert!((later - (-2f64).exp()).abs() < 1e-9);
        assert_eq!(cell.score(t0 + TTL + Duration::from_secs(1)), 0.0);
        cell.observe(200 * MS, t0 + Duration::from_secs(120));
        assert!((cell.score(t0 + Duration::from_secs(120)) - 0.2).abs() < 1e-9);
    }

    #[test]
    fn instants_before_the_cell_was_made_work() {
        let early = Instant::now();
        let cell = EwmaCell::new();
        cell.observe(50 * MS, early);
        assert!((cell.score(early + Duration::from_secs(10)) - 0.05 * (-1f64).exp()).abs() < 1e-6);
    }

    #[test]
    fn two_choices_take_the_lower_score() {
        let rng = Rng::seeded(1);
        let scores = [0.5, 0.1, 0.9];
        for _ in 0..50 {
            // Any two of three: the slowest never wins.
            assert_ne!(pick(3, &|p| scores[p], &|_| true, &rng), Some(2));
        }
        assert_eq!(pick(3, &|p| scores[p], &|p| p == 2, &rng), Some(2));
        assert_eq!(pick(3, &|p| scores[p], &|_| false, &rng), None);
        let many = pick(100, &|p| p as f64, &|p| p >= 98, &rng);
        assert_eq!(many, Some(98));
    }
}
