//! The load-balancing algorithm of an upstream (`upstream.type`).

use std::fmt;
use std::str::FromStr;

/// The load-balancing algorithm of an upstream (`upstream.type`, default `roundrobin`).
///
/// Rules shared by every algorithm, applied by [`Balancer`](crate::Balancer):
/// * nodes are split into priority groups; a lower group is used only when every node of the
///   higher groups is excluded (unhealthy or already tried by the request);
/// * a node of weight 0 is used only when no node of positive weight in its group can be, except
///   under `ewma`, which ignores weights altogether as APISIX does;
/// * if every node of the upstream is unhealthy, health is ignored (§4.4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `roundrobin`: lua-resty-balancer's interleaved weighted round robin (LVS-style
    /// current-weight/gcd walk, random start node): over every cycle each node is picked exactly
    /// `weight / gcd` times, heavier nodes first at each weight level. Note this is *not* nginx's
    /// smooth WRR: the reference (§4.2) is explicit that APISIX uses the LVS sequence.
    #[default]
    RoundRobin,
    /// `chash`: lua-resty-balancer's consistent hash ring, keyed by a string the caller computes
    /// with [`HashKey`](crate::HashKey). Point layout and lookup are APISIX's, bit for bit; see
    /// the `chash` module docs.
    Chash,
    /// `ewma`: APISIX's exponentially weighted moving average of response time (decay 10 s,
    /// forgotten after 60 s idle) with power-of-two-choices; unmeasured nodes score 0 and are
    /// therefore preferred. Weights are ignored.
    Ewma,
    /// `least_conn`: the node with the least `(1 + in_flight) / weight`, in-flight requests being
    /// those the data plane reported started and not yet finished.
    LeastConn,
}

/// An `upstream.type` this crate does not implement.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown load balancing type {0:?}: expected one of roundrobin, chash, ewma, least_conn")]
pub struct UnknownKind(pub String);

impl Kind {
    /// Every algorithm, in the order APISIX documents them.
    pub const ALL: [Kind; 4] = [Kind::RoundRobin, Kind::Chash, Kind::Ewma, Kind::LeastConn];

    /// Parses an `upstream.type` value (case-sensitive, as in APISIX).
    ///
    /// APISIX's schema does not enumerate `type`: the Admin API stores any string and the request
    /// fails later with a 500 when `require("apisix.balancer." .. type)` fails (single-node
    /// upstreams skip the balancer and keep working). Portico rejects unknown values when the
    /// config is written instead, so callers validating an Admin API write should turn this error
    /// into a 400 that names the `type` field.
    pub fn parse(s: &str) -> Result<Kind, UnknownKind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownKind(s.to_owned()))
    }

    /// The APISIX name of the algorithm.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::RoundRobin => "roundrobin",
            Kind::Chash => "chash",
            Kind::Ewma => "ewma",
            Kind::LeastConn => "least_conn",
        }
    }
}

impl FromStr for Kind {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Kind::parse(s)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_apisix_name() {
        for kind in Kind::ALL {
            assert_eq!(Kind::parse(kind.as_str()), Ok(kind));
            assert_eq!(kind.to_string().parse::<Kind>(), Ok(kind));
        }
        assert_eq!(Kind::default(), Kind::RoundRobin);
    }

    #[test]
    fn refuses_unknown_names_with_a_clear_message() {
        for bad in ["", "RoundRobin", "random", "least-conn", "swrr"] {
            let err = Kind::parse(bad).expect_err("not an APISIX type");
            assert_eq!(err.0, bad);
        }
        let msg = Kind::parse("random").expect_err("unknown").to_string();
        assert_eq!(
            msg,
            "unknown load balancing type \"random\": expected one of roundrobin, chash, ewma, least_conn"
        );
    }
}
