//! One URI router (lua-resty-radixtree instance): exact paths in a hash map, prefixes in a radix
//! tree, and per stored path the candidate list in match order.

use std::collections::HashMap;

use crate::pattern::{Pattern, Stored};
use crate::radix::{RadixTree, TooLarge};

/// A candidate under a stored path: which route, through which of its patterns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot {
    pub(crate) route: u32,
    pub(crate) pattern: u32,
    /// Whether the pattern has a full-path check; saves reading the pattern when it has none.
    pub(crate) checked: bool,
}

/// The hash map of the lookups on the request path: foldhash hashes a path several times faster
/// than std's SipHash, and its per-process random seed keeps collisions out of a client's reach
/// (clients only look keys up; the keys come from the configuration).
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// An immutable URI router.
#[derive(Debug, Clone)]
pub(crate) struct UriTable {
    exact: FastMap<Box<str>, Box<[Slot]>>,
    prefix: RadixTree<Box<[Slot]>>,
}

impl UriTable {
    /// The first candidate `accept` takes: the exact path's list first, then the list of every
    /// stored prefix of `path` from the longest to the shortest. `accept` checks the route
    /// conditions and the pattern's full-path check.
    pub(crate) fn find(&self, path: &str, mut accept: impl FnMut(Slot) -> bool) -> Option<Slot> {
        if let Some(slots) = self.exact.get(path) {
            if let Some(slot) = slots.iter().copied().find(|s| accept(*s)) {
                return Some(slot);
            }
        }
        self.prefix
            .prefixes(path.bytes())
            .find_map(|slots| slots.iter().copied().find(|s| accept(*s)))
    }
}

/// A candidate waiting for its list to be sorted.
#[derive(Debug, Clone, Copy)]
struct Pending {
    slot: Slot,
    priority: i64,
    pattern_len: usize,
}

/// Collects candidates in insertion order, then sorts and freezes them into a [`UriTable`].
#[derive(Debug, Default)]
pub(crate) struct UriTableBuilder {
    exact: HashMap<Box<str>, Vec<Pending>>,
    prefix: HashMap<Box<str>, Vec<Pending>>,
}

impl UriTableBuilder {
    /// Registers route `slot.route` under `pattern`; calls must come in route order.
    pub(crate) fn add(&mut self, pattern: &Pattern, slot: Slot, priority: i64) {
        let pending = Pending {
            slot,
            priority,
            pattern_len: pattern.text().len(),
        };
        let (map, key) = match pattern.stored() {
            Stored::Exact(key) => (&mut self.exact, key),
            Stored::Prefix(key) => (&mut self.prefix, key),
        };
        match map.get_mut(key) {
            Some(list) => list.push(pending),
            None => {
                map.insert(key.into(), vec![pending]);
            }
        }
    }

    /// Sorts every list the way lua-resty-radixtree's `sort_route` keeps them: `priority`
    /// descending, then pattern length descending, then insertion order (the sort is stable).
    pub(crate) fn build(self) -> Result<UriTable, TooLarge> {
        Ok(UriTable {
            exact: self
                .exact
                .into_iter()
                .map(|(key, list)| (key, sorted(list)))
                .collect(),
            prefix: RadixTree::from_entries(
                self.prefix
                    .into_iter()
                    .map(|(key, list)| (key.into_boxed_bytes(), sorted(list))),
            )?,
        })
    }
}

fn sorted(mut list: Vec<Pending>) -> Box<[Slot]> {
    list.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then(b.pattern_len.cmp(&a.pattern_len))
    });
    list.into_iter().map(|p| p.slot).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(routes: &[(&str, i64)]) -> (UriTable, Vec<Pattern>) {
        let mut builder = UriTableBuilder::default();
        let mut patterns = Vec::new();
        for (i, (uri, priority)) in routes.iter().enumerate() {
            let pattern = Pattern::compile(uri).unwrap_or_else(|e| panic!("{uri}: {e}"));
            let slot = Slot {
                route: i as u32,
                pattern: i as u32,
                checked: pattern.has_check(),
            };
            builder.add(&pattern, slot, *priority);
            patterns.push(pattern);
        }
        (
            builder.build().unwrap_or_else(|_| panic!("too large")),
            patterns,
        )
    }

    /// Every candidate for `path` in match order, as route numbers.
    fn order(routes: &[(&str, i64)], path: &str) -> Vec<u32> {
        let (table, patterns) = table(routes);
        let mut seen = Vec::new();
        table.find(path, |slot| {
            if patterns[slot.pattern as usize].accepts(path) {
                seen.push(slot.route);
            }
            false
        });
        seen
    }

    #[test]
    fn exact_list_then_longest_prefix_first() {
        let routes = [("/a/*", 10), ("/a/b/*", 0), ("/a/b", -5), ("/*", 99)];
        assert_eq!(order(&routes, "/a/b"), [2, 0, 3]);
        assert_eq!(order(&routes, "/a/b/c"), [1, 0, 3]);
        assert_eq!(order(&routes, "/x"), [3]);
    }

    #[test]
    fn same_stored_path_orders_by_priority_length_then_insertion() {
        let routes = [
            ("/p*", 0),
            ("/p*/x/*", 0),
            ("/p*", 1),
            ("/p*", 0),
            ("/p*/*", 0),
        ];
        // Prefix `/p` holds all five: priority 1 first, then longer patterns, then insertion.
        assert_eq!(order(&routes, "/p*/x/y"), [2, 1, 4, 0, 3]);
        // The full-path checks of `/p*/x/*` and `/p*/*` reject `/pq`.
        assert_eq!(order(&routes, "/pq"), [2, 0, 3]);
    }
}
