//! A set of IP addresses and CIDRs (lua-resty-ipmatcher), shared by the `ipmatch` operator and
//! by route `remote_addrs`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A compiled list of IPv4/IPv6 addresses and CIDRs, e.g. `["10.0.0.0/8", "::1"]`.
///
/// Networks are grouped by prefix length and kept sorted, so a lookup costs one binary search
/// per distinct prefix length (at most 33 for IPv4, 129 for IPv6), whatever the list size.
/// A CIDR with host bits set (`10.1.2.3/8`) is masked, as lua-resty-ipmatcher does. An IPv4
/// client never matches an IPv6 entry and vice versa (`::ffff:1.2.3.4` is IPv6).
#[derive(Debug, Clone, Default)]
pub struct IpMatcher {
    v4: Vec<(u32, Vec<u32>)>,
    v6: Vec<(u32, Vec<u128>)>,
}

impl IpMatcher {
    /// Compiles addresses (`1.2.3.4`, `::1`) and CIDRs (`10.0.0.0/8`, `fe80::/10`). The error is
    /// lua-resty-ipmatcher's `invalid ip address: <entry>`.
    pub fn new<S: AsRef<str>>(entries: &[S]) -> Result<IpMatcher, String> {
        let mut matcher = IpMatcher::default();
        for entry in entries {
            let entry = entry.as_ref();
            let invalid = || format!("invalid ip address: {entry}");
            let (addr, bits) = match entry.split_once('/') {
                Some((addr, bits)) => (addr, Some(bits.parse::<u32>().map_err(|_| invalid())?)),
                None => (entry, None),
            };
            if let Ok(v4) = addr.parse::<Ipv4Addr>() {
                let bits = bits.unwrap_or(32);
                if bits > 32 {
                    return Err(invalid());
                }
                insert(&mut matcher.v4, bits, u32::from(v4) & mask4(bits));
            } else if let Ok(v6) = addr.parse::<Ipv6Addr>() {
                let bits = bits.unwrap_or(128);
                if bits > 128 {
                    return Err(invalid());
                }
                insert(&mut matcher.v6, bits, u128::from(v6) & mask6(bits));
            } else {
                return Err(invalid());
            }
        }
        for (_, nets) in matcher.v4.iter_mut() {
            nets.sort_unstable();
            nets.dedup();
        }
        for (_, nets) in matcher.v6.iter_mut() {
            nets.sort_unstable();
            nets.dedup();
        }
        Ok(matcher)
    }

    /// Whether `ip` is one of the addresses or inside one of the CIDRs.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(ip) => {
                let ip = u32::from(ip);
                self.v4
                    .iter()
                    .any(|(bits, nets)| nets.binary_search(&(ip & mask4(*bits))).is_ok())
            }
            IpAddr::V6(ip) => {
                let ip = u128::from(ip);
                self.v6
                    .iter()
                    .any(|(bits, nets)| nets.binary_search(&(ip & mask6(*bits))).is_ok())
            }
        }
    }

    /// True when the list has no entries (such a matcher matches nothing).
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }
}

fn insert<N>(groups: &mut Vec<(u32, Vec<N>)>, bits: u32, net: N) {
    match groups.iter_mut().find(|(b, _)| *b == bits) {
        Some((_, nets)) => nets.push(net),
        None => groups.push((bits, vec![net])),
    }
}

fn mask4(bits: u32) -> u32 {
    u32::MAX.checked_shl(32 - bits).unwrap_or(0)
}

fn mask6(bits: u32) -> u128 {
    u128::MAX.checked_shl(128 - bits).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }

    #[test]
    fn matches_addresses_and_cidrs_of_both_families() {
        let m = IpMatcher::new(&["10.0.0.0/8", "192.168.1.7", "2001:db8::/32", "::1"])
            .expect("valid list");
        assert!(m.contains(ip("10.200.3.4")));
        assert!(m.contains(ip("192.168.1.7")));
        assert!(!m.contains(ip("192.168.1.8")));
        assert!(!m.contains(ip("11.0.0.1")));
        assert!(m.contains(ip("2001:db8:ffff::1")));
        assert!(m.contains(ip("::1")));
        assert!(!m.contains(ip("::2")));
        assert!(!m.contains(ip("::ffff:10.0.0.1")));
    }

    #[test]
    fn masks_host_bits_and_supports_match_all() {
        let m = IpMatcher::new(&["10.1.2.3/8"]).expect("valid");
        assert!(m.contains(ip("10.9.9.9")));
        let all = IpMatcher::new(&["0.0.0.0/0", "::/0"]).expect("valid");
        assert!(all.contains(ip("8.8.8.8")));
        assert!(all.contains(ip("2001::1")));
    }

    #[test]
    fn rejects_bad_entries() {
        for bad in ["1.2.3", "1.2.3.4/33", "::1/129", "1.2.3.4/x", "host", ""] {
            assert_eq!(
                IpMatcher::new(&[bad]).err(),
                Some(format!("invalid ip address: {bad}"))
            );
        }
    }
}
