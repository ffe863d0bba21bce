//! The host level of `radixtree_host_uri`: one URI table per route host, found by exact host
//! first, then by wildcard suffix from the longest to the shortest.
//!
//! APISIX stores each host reversed (`*.foo.com` -> `moc.oof.*`) in a radix tree, so a wildcard
//! host is a prefix of the reversed request host. The stored prefix is the text after the last
//! `*`: `*.foo.com` matches `a.foo.com` and `a.b.foo.com` but not `foo.com`, `*foo.com` matches
//! `foo.com` too, and `*` matches every host.

use std::collections::HashMap;

use crate::radix::{RadixTree, TooLarge};
use crate::table::{FastMap, UriTable, UriTableBuilder};

/// The URI table of one route host.
#[derive(Debug, Clone)]
pub(crate) struct HostEntry {
    /// The host as configured (lower-cased); reported as `matched_host`.
    pub(crate) pattern: Box<str>,
    pub(crate) table: UriTable,
}

/// An immutable host router.
#[derive(Debug, Clone)]
pub(crate) struct HostTable {
    exact: FastMap<Box<str>, HostEntry>,
    /// Keyed by the reversed suffix; several hosts share a key only if they differ before their
    /// last `*` (`a*.foo.com`, `*.foo.com`), longer host first, as lua-resty-radixtree sorts them.
    wildcard: RadixTree<Box<[HostEntry]>>,
}

impl HostTable {
    /// The URI tables to try for a request host (lower-case, without port), in order.
    pub(crate) fn candidates<'t>(&'t self, host: &str) -> impl Iterator<Item = &'t HostEntry> {
        let exact = if self.exact.is_empty() {
            None
        } else {
            self.exact.get(host)
        };
        // Most tables have no wildcard host: skip the walk down the reversed host.
        let wildcard =
            (!self.wildcard.is_empty()).then(|| self.wildcard.prefixes(host.bytes().rev()));
        exact
            .into_iter()
            .chain(wildcard.into_iter().flatten().flatten())
    }

    /// True when no route has a host.
    pub(crate) fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.wildcard.is_empty()
    }
}

/// Collects the URI tables of every route host.
#[derive(Debug, Default)]
pub(crate) struct HostTableBuilder {
    /// Lower-cased host -> (first-seen order, its table).
    hosts: HashMap<Box<str>, (usize, UriTableBuilder)>,
}

impl HostTableBuilder {
    /// The table collecting the routes of `host` (lower-cased here).
    pub(crate) fn table(&mut self, host: &str) -> &mut UriTableBuilder {
        let host = host.to_ascii_lowercase();
        let next = self.hosts.len();
        &mut self
            .hosts
            .entry(host.into_boxed_str())
            .or_insert_with(|| (next, UriTableBuilder::default()))
            .1
    }

    /// Freezes every table.
    pub(crate) fn build(self) -> Result<HostTable, TooLarge> {
        let mut exact = FastMap::default();
        let mut wildcard: HashMap<Box<[u8]>, Vec<(usize, HostEntry)>> = HashMap::new();
        for (pattern, (seen, builder)) in self.hosts {
            let entry = HostEntry {
                table: builder.build()?,
                pattern: pattern.clone(),
            };
            match pattern.rfind('*') {
                None => {
                    exact.insert(pattern, entry);
                }
                Some(star) => {
                    let key: Box<[u8]> = pattern[star + 1..].bytes().rev().collect();
                    wildcard.entry(key).or_default().push((seen, entry));
                }
            }
        }
        let wildcard = wildcard.into_iter().map(|(key, mut entries)| {
            entries.sort_by(|(seen_a, a), (seen_b, b)| {
                b.pattern
                    .len()
                    .cmp(&a.pattern.len())
                    .then(seen_a.cmp(seen_b))
            });
            let entries: Box<[HostEntry]> = entries.into_iter().map(|(_, e)| e).collect();
            (key, entries)
        });
        Ok(HostTable {
            exact,
            wildcard: RadixTree::from_entries(wildcard)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(patterns: &[&str]) -> HostTable {
        let mut builder = HostTableBuilder::default();
        for p in patterns {
            builder.table(p);
        }
        builder.build().unwrap_or_else(|_| panic!("too large"))
    }

    fn order(table: &HostTable, host: &str) -> Vec<String> {
        table
            .candidates(host)
            .map(|e| e.pattern.to_string())
            .collect()
    }

    #[test]
    fn exact_then_longest_wildcard_suffix() {
        let t = hosts(&["*", "*.com", "*.foo.com", "a.foo.com", "*.b.foo.com"]);
        assert_eq!(
            order(&t, "a.foo.com"),
            ["a.foo.com", "*.foo.com", "*.com", "*"]
        );
        assert_eq!(
            order(&t, "x.b.foo.com"),
            ["*.b.foo.com", "*.foo.com", "*.com", "*"]
        );
        assert_eq!(order(&t, "foo.com"), ["*.com", "*"]);
        assert_eq!(order(&t, "example.org"), ["*"]);
    }

    #[test]
    fn hosts_are_lower_cased_and_merged() {
        let mut builder = HostTableBuilder::default();
        builder.table("Foo.COM");
        builder.table("foo.com");
        builder.table("*.Bar.com");
        let t = builder.build().unwrap_or_else(|_| panic!("too large"));
        assert_eq!(order(&t, "foo.com"), ["foo.com"]);
        assert_eq!(order(&t, "x.bar.com"), ["*.bar.com"]);
    }

    #[test]
    fn star_without_dot_is_a_plain_suffix() {
        let t = hosts(&["*foo.com", "a*.foo.com", "*.foo.com"]);
        assert_eq!(order(&t, "foo.com"), ["*foo.com"]);
        assert_eq!(order(&t, "xfoo.com"), ["*foo.com"]);
        assert_eq!(
            order(&t, "a.foo.com"),
            ["a*.foo.com", "*.foo.com", "*foo.com"]
        );
    }
}
