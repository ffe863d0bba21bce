//! The per-request set of nodes already attempted.

use crate::NodeIndex;

/// Nodes already attempted by one request, so that a retry goes elsewhere (APISIX's
/// `ctx.balancer_tried_servers`). Up to 64 nodes it lives inline without allocating.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tried {
    /// Nodes 0..64.
    low: u64,
    /// Nodes 64.., one bit each, allocated on first use.
    high: Vec<u64>,
}

impl Tried {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks `node` as attempted; returns whether it was new.
    pub fn insert(&mut self, node: NodeIndex) -> bool {
        let (word, bit) = split(node);
        let slot = if word == 0 {
            &mut self.low
        } else {
            if self.high.len() < word {
                self.high.resize(word, 0);
            }
            &mut self.high[word - 1]
        };
        let fresh = *slot & bit == 0;
        *slot |= bit;
        fresh
    }

    /// Whether `node` was attempted.
    pub fn contains(&self, node: NodeIndex) -> bool {
        let (word, bit) = split(node);
        let slot = if word == 0 {
            Some(&self.low)
        } else {
            self.high.get(word - 1)
        };
        slot.is_some_and(|w| w & bit != 0)
    }

    /// How many nodes were attempted.
    pub fn len(&self) -> usize {
        let high: u32 = self.high.iter().map(|w| w.count_ones()).sum();
        (self.low.count_ones() + high) as usize
    }

    /// Whether no node was attempted yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every attempt, keeping the allocation.
    pub fn clear(&mut self) {
        self.low = 0;
        self.high.iter_mut().for_each(|w| *w = 0);
    }
}

fn split(node: NodeIndex) -> (usize, u64) {
    let i = node.get();
    (i / 64, 1u64 << (i % 64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(i: usize) -> NodeIndex {
        NodeIndex::new(i).expect("small index")
    }

    #[test]
    fn remembers_small_and_large_indices() {
        let mut tried = Tried::new();
        assert!(tried.is_empty());
        assert!(tried.insert(idx(3)));
        assert!(!tried.insert(idx(3)));
        assert!(tried.insert(idx(200)));
        assert!(tried.contains(idx(3)) && tried.contains(idx(200)));
        assert!(!tried.contains(idx(4)) && !tried.contains(idx(130)) && !tried.contains(idx(9999)));
        assert_eq!(tried.len(), 2);
        tried.clear();
        assert!(tried.is_empty() && !tried.contains(idx(200)));
    }
}
