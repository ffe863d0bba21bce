//! A compressed byte trie answering "which stored keys are prefixes of this key, longest first"
//! in one walk down the key: the lookup cost depends on the key length, not on how many keys are
//! stored. This is what lua-resty-radixtree does with rax (`raxSeek` + `raxUp`).
//!
//! The tree is built with owned nodes, then frozen into flat arrays in breadth-first order: the
//! children of a node are consecutive nodes, so their first bytes form one contiguous slice to
//! binary-search, and a lookup touches a few cache lines per level instead of chasing boxes.

/// Marks "no node" / "no value".
const NONE: u32 = u32::MAX;

/// The tree has more than `u32::MAX - 1` nodes, values or label bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooLarge;

/// An immutable radix tree from byte strings to values, built once with [`RadixTree::from_entries`].
#[derive(Debug, Clone)]
pub(crate) struct RadixTree<V> {
    /// Breadth-first; `nodes[0]` is the root, whose label is empty (value of the empty key).
    nodes: Vec<Node>,
    /// The first label byte of each node (0 for the root), indexed like `nodes`.
    first_bytes: Vec<u8>,
    /// Every label, concatenated.
    labels: Vec<u8>,
    values: Vec<V>,
}

#[derive(Debug, Clone, Copy)]
struct Node {
    label_start: u32,
    label_len: u32,
    /// Children are nodes `first_child .. first_child + child_count`, sorted by first byte.
    first_child: u32,
    child_count: u32,
    /// Index into `values`, or [`NONE`].
    value: u32,
    /// The nearest strict ancestor holding a value, or [`NONE`]; lets a lookup walk back up from
    /// the deepest match without remembering the path it came down.
    up: u32,
}

impl<V> RadixTree<V> {
    /// Builds a tree from `(key, value)` pairs; a repeated key keeps its last value.
    pub(crate) fn from_entries<K, I>(entries: I) -> Result<RadixTree<V>, TooLarge>
    where
        K: AsRef<[u8]>,
        I: IntoIterator<Item = (K, V)>,
    {
        let mut builder = Builder {
            nodes: vec![Owned::new(&[], None)],
        };
        for (key, value) in entries {
            builder.insert(key.as_ref(), value);
        }
        builder.freeze()
    }

    /// True when no key is stored.
    pub(crate) fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The values of all stored keys that are prefixes of `key` (the key itself included), from
    /// the longest key to the shortest. `key` is given as bytes so a caller can walk a string
    /// backwards (hosts are matched on their reversed text) without allocating.
    pub(crate) fn prefixes<I: IntoIterator<Item = u8>>(&self, key: I) -> Prefixes<'_, V> {
        let mut bytes = key.into_iter();
        let mut at = 0usize;
        while let Some(byte) = bytes.next() {
            let Some(node) = self.nodes.get(at) else {
                break;
            };
            let kids = node.first_child as usize..(node.first_child + node.child_count) as usize;
            let Some(Ok(slot)) = self
                .first_bytes
                .get(kids.clone())
                .map(|b| b.binary_search(&byte))
            else {
                break;
            };
            let child = kids.start + slot;
            let Some(c) = self.nodes.get(child) else {
                break;
            };
            // The first label byte is `byte`; the rest must follow in the key.
            let rest = c.label_start as usize + 1..(c.label_start + c.label_len) as usize;
            let label = self.labels.get(rest).unwrap_or_default();
            if !label.iter().all(|b| bytes.next() == Some(*b)) {
                break;
            }
            at = child;
        }
        let next = match self.nodes.get(at) {
            Some(node) if node.value != NONE => at as u32,
            Some(node) => node.up,
            None => NONE,
        };
        Prefixes { tree: self, next }
    }
}

/// Iterator returned by [`RadixTree::prefixes`].
pub(crate) struct Prefixes<'t, V> {
    tree: &'t RadixTree<V>,
    next: u32,
}

impl<'t, V> Iterator for Prefixes<'t, V> {
    type Item = &'t V;

    fn next(&mut self) -> Option<&'t V> {
        let node = self.tree.nodes.get(self.next as usize)?;
        self.next = node.up;
        self.tree.values.get(node.value as usize)
    }
}

/// A node of the tree under construction.
struct Owned<V> {
    label: Box<[u8]>,
    /// `(first label byte, node)`, sorted by byte.
    children: Vec<(u8, usize)>,
    value: Option<V>,
}

impl<V> Owned<V> {
    fn new(label: &[u8], value: Option<V>) -> Owned<V> {
        Owned {
            label: label.into(),
            children: Vec::new(),
            value,
        }
    }
}

struct Builder<V> {
    nodes: Vec<Owned<V>>,
}

impl<V> Builder<V> {
    fn insert(&mut self, key: &[u8], value: V) {
        let mut node = 0;
        let mut rest = key;
        loop {
            let Some(&first) = rest.first() else {
                self.nodes[node].value = Some(value);
                return;
            };
            let slot = match self.nodes[node]
                .children
                .binary_search_by_key(&first, |c| c.0)
            {
                Ok(slot) => slot,
                Err(slot) => {
                    let leaf = self.nodes.len();
                    self.nodes.push(Owned::new(rest, Some(value)));
                    self.nodes[node].children.insert(slot, (first, leaf));
                    return;
                }
            };
            let child = self.nodes[node].children[slot].1;
            let label = &self.nodes[child].label;
            let common = label.iter().zip(rest).take_while(|(a, b)| a == b).count();
            if common < label.len() {
                // Split the edge: parent -> mid (shared part) -> child (the remainder).
                let mid = self.nodes.len();
                let tail: Box<[u8]> = label[common..].into();
                let mut mid_node = Owned::new(&label[..common], None);
                mid_node.children.push((tail[0], child));
                self.nodes[child].label = tail;
                self.nodes.push(mid_node);
                self.nodes[node].children[slot].1 = mid;
                node = mid;
            } else {
                node = child;
            }
            rest = &rest[common..];
        }
    }

    /// Lays the nodes out breadth-first (iteratively: keys may be thousands of bytes deep) and
    /// links every node to its nearest valued ancestor.
    fn freeze(mut self) -> Result<RadixTree<V>, TooLarge> {
        let index = |n: usize| u32::try_from(n).ok().filter(|n| *n != NONE).ok_or(TooLarge);
        let mut tree = RadixTree {
            nodes: Vec::with_capacity(self.nodes.len()),
            first_bytes: Vec::with_capacity(self.nodes.len()),
            labels: Vec::new(),
            values: Vec::new(),
        };
        // (old index, up of the new node); a node's children are queued together, so they get
        // consecutive new indices, the first being `tree.nodes.len() + queue.len()` at queue time.
        let mut queue = std::collections::VecDeque::from([(0usize, NONE)]);
        while let Some((old, up)) = queue.pop_front() {
            let at = index(tree.nodes.len())?;
            let owned = &mut self.nodes[old];
            let value = match owned.value.take() {
                Some(v) => {
                    tree.values.push(v);
                    index(tree.values.len() - 1)?
                }
                None => NONE,
            };
            let up_for_children = if value == NONE { up } else { at };
            let first_child = index(tree.nodes.len() + 1 + queue.len())?;
            let child_count = index(owned.children.len())?;
            queue.extend(owned.children.iter().map(|(_, c)| (*c, up_for_children)));
            tree.first_bytes
                .push(owned.label.first().copied().unwrap_or(0));
            let label_start = index(tree.labels.len())?;
            tree.labels.extend_from_slice(&owned.label);
            tree.nodes.push(Node {
                label_start,
                label_len: index(owned.label.len())?,
                first_child,
                child_count,
                value,
                up,
            });
        }
        index(tree.labels.len())?;
        Ok(tree)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build<K: AsRef<[u8]>, V>(entries: impl IntoIterator<Item = (K, V)>) -> RadixTree<V> {
        RadixTree::from_entries(entries).unwrap_or_else(|_| panic!("too large"))
    }

    fn tree(keys: &[&str]) -> RadixTree<String> {
        build(keys.iter().map(|k| (k.as_bytes(), k.to_string())))
    }

    fn prefixes(tree: &RadixTree<String>, key: &str) -> Vec<String> {
        tree.prefixes(key.bytes()).cloned().collect()
    }

    #[test]
    fn finds_every_stored_prefix_longest_first() {
        let t = tree(&["/", "/api/", "/api/users/", "/apix", "/b", ""]);
        assert_eq!(
            prefixes(&t, "/api/users/42"),
            ["/api/users/", "/api/", "/", ""]
        );
        assert_eq!(prefixes(&t, "/api/user"), ["/api/", "/", ""]);
        assert_eq!(prefixes(&t, "/apix/y"), ["/apix", "/", ""]);
        assert_eq!(prefixes(&t, "/ap"), ["/", ""]);
        assert_eq!(prefixes(&t, "x"), [""]);
        assert_eq!(prefixes(&t, "/b"), ["/b", "/", ""]);
    }

    #[test]
    fn splits_edges_in_any_insertion_order() {
        let t = tree(&["/abcdef", "/abc", "/abx", "/a"]);
        assert_eq!(prefixes(&t, "/abcdefg"), ["/abcdef", "/abc", "/a"]);
        assert_eq!(prefixes(&t, "/abcde"), ["/abc", "/a"]);
        assert_eq!(prefixes(&t, "/abx"), ["/abx", "/a"]);
        assert!(prefixes(&t, "/b").is_empty());
    }

    #[test]
    fn walks_reversed_keys() {
        let t = build([(b"moc.oof.".as_slice(), 1), (b"moc.".as_slice(), 2)]);
        let hits: Vec<i32> = t.prefixes("a.b.foo.com".bytes().rev()).copied().collect();
        assert_eq!(hits, [1, 2]);
        let hits: Vec<i32> = t.prefixes("foo.com".bytes().rev()).copied().collect();
        assert_eq!(hits, [2]);
    }

    #[test]
    fn empty_tree_and_repeated_keys() {
        let empty: RadixTree<u8> = build(Vec::<(&[u8], u8)>::new());
        assert!(empty.is_empty());
        assert_eq!(empty.prefixes("abc".bytes()).count(), 0);
        let t = build([("a", 1), ("a", 2)]);
        assert_eq!(t.prefixes("ab".bytes()).copied().collect::<Vec<_>>(), [2]);
    }

    #[test]
    fn deep_chains_do_not_recurse() {
        let keys: Vec<String> = (1..5000).map(|n| "a".repeat(n)).collect();
        let t = build(keys.iter().map(|k| (k.as_bytes(), k.len())));
        assert_eq!(t.prefixes("a".repeat(6000).bytes()).count(), 4999);
        assert_eq!(t.prefixes("a".repeat(6000).bytes()).next(), Some(&4999));
    }
}
