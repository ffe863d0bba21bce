//! Health-check thresholds (`upstream.checks`, §2.4.1) and the defaults of
//! `apisix/schema_def.lua:health_checker_active/passive`.

/// A set of HTTP status codes in 200..=599, the range the schema allows for `http_statuses`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct StatusSet([u64; 7]);

impl StatusSet {
    const FIRST: u16 = 200;
    const LAST: u16 = 599;

    /// The empty set.
    pub const fn empty() -> Self {
        StatusSet([0; 7])
    }

    /// The set of `codes`; codes outside 200..=599 are ignored (the schema rejects them).
    pub fn from_codes(codes: &[u16]) -> Self {
        codes.iter().copied().collect()
    }

    /// Adds `code`; returns whether it was in range and so is now in the set.
    pub fn insert(&mut self, code: u16) -> bool {
        let Some((word, bit)) = Self::slot(code) else {
            return false;
        };
        self.0[word] |= bit;
        true
    }

    /// Whether `code` is in the set.
    pub fn contains(&self, code: u16) -> bool {
        Self::slot(code).is_some_and(|(word, bit)| self.0[word] & bit != 0)
    }

    /// The codes in the set, ascending.
    pub fn codes(&self) -> impl Iterator<Item = u16> + '_ {
        (Self::FIRST..=Self::LAST).filter(|&c| self.contains(c))
    }

    fn slot(code: u16) -> Option<(usize, u64)> {
        if !(Self::FIRST..=Self::LAST).contains(&code) {
            return None;
        }
        let i = usize::from(code - Self::FIRST);
        Some((i / 64, 1 << (i % 64)))
    }
}

impl FromIterator<u16> for StatusSet {
    fn from_iter<I: IntoIterator<Item = u16>>(iter: I) -> Self {
        let mut set = StatusSet::empty();
        for code in iter {
            set.insert(code);
        }
        set
    }
}

impl std::fmt::Debug for StatusSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.codes()).finish()
    }
}

/// The thresholds of one kind of check (`checks.active` or `checks.passive`).
///
/// A node turns unhealthy when one failure counter reaches its threshold and healthy when the
/// success counter reaches `successes`; counts are consecutive (a success clears the failure
/// counters, a failure clears the success counter). A threshold of 0 disables its counter
/// (allowed for passive checks only by the schema). Ranges are the model's to validate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Thresholds {
    /// `healthy.http_statuses`: statuses that count as successes.
    pub healthy_statuses: StatusSet,
    /// `healthy.successes`.
    pub successes: u8,
    /// `unhealthy.http_statuses`: statuses that count as HTTP failures.
    pub unhealthy_statuses: StatusSet,
    /// `unhealthy.http_failures`.
    pub http_failures: u8,
    /// `unhealthy.tcp_failures`.
    pub tcp_failures: u8,
    /// `unhealthy.timeouts`.
    pub timeouts: u8,
}

impl Thresholds {
    /// `checks.active` defaults: healthy `[200, 302]` × 2; unhealthy
    /// `[429, 404, 500, 501, 502, 503, 504, 505]`, 5 HTTP failures, 2 TCP failures, 3 timeouts.
    pub fn active_defaults() -> Self {
        Thresholds {
            healthy_statuses: StatusSet::from_codes(&[200, 302]),
            successes: 2,
            unhealthy_statuses: StatusSet::from_codes(&[429, 404, 500, 501, 502, 503, 504, 505]),
            http_failures: 5,
            tcp_failures: 2,
            timeouts: 3,
        }
    }

    /// `checks.passive` defaults: healthy `[200..208, 226, 300..308]` × 5; unhealthy
    /// `[429, 500, 503]`, 5 HTTP failures, 2 TCP failures, 7 timeouts.
    pub fn passive_defaults() -> Self {
        Thresholds {
            healthy_statuses: (200..=208).chain([226]).chain(300..=308).collect(),
            successes: 5,
            unhealthy_statuses: StatusSet::from_codes(&[429, 500, 503]),
            http_failures: 5,
            tcp_failures: 2,
            timeouts: 7,
        }
    }
}

/// The thresholds of an upstream's checks. Probing itself (intervals, paths, timeouts,
/// concurrency) belongs to the data plane, which reports outcomes into a
/// [`HealthTable`](super::HealthTable).
///
/// `passive` applies to reports from proxied traffic even when `checks.passive` is absent: APISIX
/// then still reports failed tries of retries, with lua-resty-healthcheck's passive defaults
/// (the same as the schema's); whether to report response statuses at all is the data plane's
/// call (APISIX does only when `checks.passive` is configured).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HealthConfig {
    /// `checks.active`.
    pub active: Thresholds,
    /// `checks.passive`.
    pub passive: Thresholds,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            active: Thresholds::active_defaults(),
            passive: Thresholds::passive_defaults(),
        }
    }
}

/// The result of one probe (active) or one proxied attempt (passive).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// An HTTP response with this status: a success if in `healthy_statuses`, an HTTP failure if
    /// in `unhealthy_statuses` (or 0, an unparsable response), otherwise ignored.
    Status(u16),
    /// A success without a status: a TCP probe connected, or a TLS probe shook hands.
    Success,
    /// Connecting, sending or receiving failed (not a timeout). APISIX reports every failed try
    /// that did not end in a 504 as this.
    TcpFailure,
    /// The attempt timed out (APISIX: a failed try that ended in a 504).
    Timeout,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_sets_hold_the_schema_range_only() {
        let mut set = StatusSet::from_codes(&[200, 599, 199, 600, 0]);
        assert_eq!(set.codes().collect::<Vec<_>>(), vec![200, 599]);
        assert!(!set.insert(700));
        assert!(set.insert(404) && set.contains(404) && !set.contains(405));
        assert_eq!(format!("{set:?}"), "{200, 404, 599}");
    }

    #[test]
    fn defaults_follow_the_schema() {
        let cfg = HealthConfig::default();
        assert_eq!(
            cfg.active.unhealthy_statuses.codes().collect::<Vec<_>>(),
            vec![404, 429, 500, 501, 502, 503, 504, 505]
        );
        assert_eq!(cfg.passive.healthy_statuses.codes().count(), 9 + 1 + 9);
        assert!(cfg.passive.healthy_statuses.contains(226));
        assert_eq!((cfg.active.successes, cfg.passive.successes), (2, 5));
        assert_eq!((cfg.active.timeouts, cfg.passive.timeouts), (3, 7));
    }
}
