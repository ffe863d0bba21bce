//! `chash`: the consistent hash ring of lua-resty-balancer (`resty.chash` + `chash.c`), as
//! `apisix/balancer/chash.lua` builds it. Same nodes and same key give the same node as APISIX.
//!
//! Scheme:
//! * a node's id is `"host:port"` with every `:` replaced by a NUL byte (`[::1]:80` included);
//! * weights are divided by their gcd; a node gets `160 × weight` points;
//! * point `i` of a node hashes to `!update(crc32(id), le_bytes(hash of point i-1))`, where
//!   `update` is the raw table-driven CRC-32 step started from the register value `crc32(id)`,
//!   and point 0 uses `0u32` as the previous hash (`chash_point_init_crc`);
//! * a key maps to the last point whose hash is `<= crc32(key)`, or to the first point when the
//!   key hashes below every point (lua's `_find_id`; note: not a wrap to the last point);
//! * a retry, or an unhealthy node, continues with the following points (`picker:next`), so only
//!   the keys of an excluded node move, and they spread over the others.
//!
//! Differences, both on configs APISIX cannot serve either: a group whose weights are all 0 gets
//! one weight unit per node (APISIX builds an empty ring), and a group needing more than
//! [`MAX_POINTS`] points has its point counts scaled down proportionally (every node keeps its
//! first points, so most keys stay put). Weight-0 nodes own no points; they are used, chosen by
//! the key, only when no node with points is usable.

use crc32fast::Hasher;

/// Points per weight unit, as in `resty.chash` (`CONSISTENT_POINTS`).
pub(crate) const POINTS_PER_WEIGHT: u64 = 160;

/// Upper bound on the points of one ring (8 bytes each).
pub(crate) const MAX_POINTS: u64 = 1 << 20;

#[derive(Clone, Copy, Debug)]
struct Point {
    hash: u32,
    pos: u32,
}

/// The ring of one priority group: positions are group-local.
#[derive(Debug)]
pub(crate) struct Ring {
    points: Vec<Point>,
    /// Whether each position owns points (weight > 0 after normalisation).
    on_ring: Vec<bool>,
}

/// `crc32` of a request key, computed once per request and shared by all priority groups.
pub(crate) fn hash_key(key: &str) -> u32 {
    crc32fast::hash(key.as_bytes())
}

/// The ring id APISIX derives from a node address.
pub(crate) fn node_id(host: &str, port: u16) -> Vec<u8> {
    format!("{host}:{port}").replace(':', "\0").into_bytes()
}

impl Ring {
    /// Builds the ring of a group from `(id, weight)` pairs, in node order.
    pub(crate) fn new(members: &[(Vec<u8>, u32)]) -> Self {
        let all_zero = members.iter().all(|(_, w)| *w == 0);
        let weight = |w: u32| u64::from(if all_zero { 1 } else { w });
        let gcd = members
            .iter()
            .fold(0, |g, (_, w)| gcd(g, weight(*w)))
            .max(1);
        let total: u64 = members
            .iter()
            .map(|(_, w)| weight(*w) / gcd * POINTS_PER_WEIGHT)
            .sum();
        let count = |w: u32| {
            let n = weight(w) / gcd * POINTS_PER_WEIGHT;
            if total <= MAX_POINTS || n == 0 {
                n
            } else {
                // n * MAX_POINTS < 2^32 * 160 * 2^20 fits in u128 comfortably.
                ((u128::from(n) * u128::from(MAX_POINTS) / u128::from(total)) as u64).max(1)
            }
        };

        let mut points = Vec::with_capacity(total.min(MAX_POINTS + members.len() as u64) as usize);
        let mut on_ring = Vec::with_capacity(members.len());
        for (pos, (id, w)) in members.iter().enumerate() {
            let n = count(*w);
            on_ring.push(n > 0);
            // chash.c seeds the CRC register with the *finalised* crc32(id); crc32fast's
            // `new_with_initial` takes a finalised value and complements it, hence the `!`.
            let base = !crc32fast::hash(id);
            let mut prev = 0u32;
            for _ in 0..n {
                let mut h = Hasher::new_with_initial(base);
                h.update(&prev.to_le_bytes());
                prev = h.finalize();
                points.push(Point {
                    hash: prev,
                    pos: pos as u32,
                });
            }
        }
        points.sort_by_key(|p| (p.hash, p.pos));
        Ring { points, on_ring }
    }

    /// The node for a key hash: the first usable one from the key's point onwards.
    pub(crate) fn pick(&self, key_hash: u32, usable: &dyn Fn(usize) -> bool) -> Option<usize> {
        let mut verdicts = Verdicts::new(self.on_ring.len());
        let mut unusable_left = self.on_ring.iter().filter(|&&on| on).count();
        if !self.points.is_empty() {
            let after = self.points.partition_point(|p| p.hash <= key_hash);
            let start = after.saturating_sub(1);
            let (tail, head) = self.points.split_at(start);
            for point in head.iter().chain(tail) {
                let pos = point.pos as usize;
                match verdicts.get(pos) {
                    Some(true) => return Some(pos),
                    Some(false) => continue,
                    None => {}
                }
                let ok = usable(pos);
                verdicts.set(pos, ok);
                if ok {
                    return Some(pos);
                }
                unusable_left -= 1;
                if unusable_left == 0 {
                    break;
                }
            }
        }
        self.standby(key_hash, usable)
    }

    /// Weight-0 nodes, when no node on the ring is usable: chosen by the key, then in order.
    fn standby(&self, key_hash: u32, usable: &dyn Fn(usize) -> bool) -> Option<usize> {
        let n = self.on_ring.len();
        if n == 0 {
            return None;
        }
        let start = key_hash as usize % n;
        (0..n)
            .map(|i| (start + i) % n)
            .find(|&pos| !self.on_ring[pos] && usable(pos))
    }
}

/// Per-pick memo of the usability of each position, so that walking many points of the same
/// node calls the caller's predicate once per node.
enum Verdicts {
    Small { known: u64, ok: u64 },
    Large(Vec<Option<bool>>),
}

impl Verdicts {
    fn new(n: usize) -> Self {
        if n <= 64 {
            Verdicts::Small { known: 0, ok: 0 }
        } else {
            Verdicts::Large(vec![None; n])
        }
    }

    fn get(&self, pos: usize) -> Option<bool> {
        match self {
            Verdicts::Small { known, ok } => (known >> pos & 1 == 1).then_some(ok >> pos & 1 == 1),
            Verdicts::Large(v) => v.get(pos).copied().flatten(),
        }
    }

    fn set(&mut self, pos: usize, value: bool) {
        match self {
            Verdicts::Small { known, ok } => {
                *known |= 1 << pos;
                *ok |= u64::from(value) << pos;
            }
            Verdicts::Large(v) => {
                if let Some(slot) = v.get_mut(pos) {
                    *slot = Some(value);
                }
            }
        }
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(members: &[(&str, u32)]) -> Ring {
        let members: Vec<(Vec<u8>, u32)> = members
            .iter()
            .map(|(id, w)| (id.as_bytes().to_vec(), *w))
            .collect();
        Ring::new(&members)
    }

    fn count_keys(ring: &Ring, keys: u32, usable: &dyn Fn(usize) -> bool) -> Vec<u32> {
        let mut counts = vec![0; ring.on_ring.len()];
        for i in 1..=keys {
            if let Some(pos) = ring.pick(hash_key(&i.to_string()), usable) {
                counts[pos] += 1;
            }
        }
        counts
    }

    #[test]
    fn matches_lua_resty_chash_test_vector() {
        // lua-resty-balancer t/chash.t TEST 1: keys 1..100000 over server1=10, server2=2,
        // server3=1 give 75588 / 16114 / 8298 with 2080 points.
        let r = ring(&[("server1", 10), ("server2", 2), ("server3", 1)]);
        assert_eq!(r.points.len(), 2080);
        assert_eq!(count_keys(&r, 100_000, &|_| true), vec![75588, 16114, 8298]);
    }

    #[test]
    fn node_ids_use_nul_for_colons() {
        assert_eq!(node_id("127.0.0.1", 80), b"127.0.0.1\x0080");
        assert_eq!(node_id("[::1]", 8080), b"[\0\x001]\x008080");
    }

    #[test]
    fn excluded_node_keys_move_and_no_others() {
        let r = ring(&[("a", 1), ("b", 1), ("c", 1), ("d", 1)]);
        for i in 0..2_000 {
            let h = hash_key(&format!("user-{i}"));
            let before = r.pick(h, &|_| true).expect("usable nodes");
            let after = r.pick(h, &|p| p != 2).expect("usable nodes");
            if before == 2 {
                assert_ne!(after, 2);
            } else {
                assert_eq!(before, after);
            }
        }
    }

    #[test]
    fn weight_zero_nodes_are_a_last_resort() {
        let r = ring(&[("a", 0), ("b", 3), ("c", 0)]);
        assert_eq!(count_keys(&r, 1_000, &|_| true), vec![0, 1_000, 0]);
        let counts = count_keys(&r, 1_000, &|p| p != 1);
        assert_eq!(counts[0] + counts[2], 1_000);
        assert_eq!(r.pick(1, &|_| false), None);
        let all_zero = ring(&[("a", 0), ("b", 0)]);
        assert!(count_keys(&all_zero, 1_000, &|_| true)
            .iter()
            .all(|&c| c > 300));
    }

    #[test]
    fn oversized_rings_are_scaled_not_refused() {
        let r = ring(&[("big", u32::MAX), ("small", 1)]);
        assert!(r.points.len() as u64 <= MAX_POINTS + 2);
        assert!(r.on_ring.iter().all(|&on| on));
    }
}
