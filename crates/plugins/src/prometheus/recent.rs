//! The series of the last label sets a thread counted, per prometheus instance: a request
//! whose labels equal those of a recent one is counted into that series without hashing its
//! labels or searching the registry.
//!
//! The cache is per thread (no lock, no atomics to find an entry) and small: the label sets of
//! one route repeat from request to request (status, node and consumer change rarely), and a
//! miss costs only what the registry lookup costs anyway. An entry belongs to one instance
//! (its workspace, disabled labels and registry are fixed) by the instance's number, which is
//! never reused.

use std::cell::RefCell;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::registry::{Observation, Registry, Source};
use super::series::Series;

/// Label sets remembered per thread.
const ENTRIES: usize = 4;

/// A number for a new instance, unique in this process.
pub(super) fn instance_number() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// One label set and its series.
struct Entry {
    instance: u64,
    /// The route label's string, held so that its address is not reused while compared by it.
    route: Arc<str>,
    matched_uri: Box<str>,
    matched_host: Box<str>,
    consumer: Box<str>,
    node: Option<IpAddr>,
    status: u16,
    source: Source,
    series: Arc<Series>,
}

impl Entry {
    /// Whether a request of `instance` with these labels belongs to this entry's series. The
    /// route label is compared by address first (the route's own string, request after
    /// request), then by text.
    fn matches(&self, instance: u64, route: &Arc<str>, o: &Observation<'_>) -> bool {
        self.instance == instance
            && self.status == o.status
            && self.node == o.node
            && self.source == o.source
            && (Arc::ptr_eq(&self.route, route) || same(&self.route, o.route))
            && same(&self.matched_uri, o.matched_uri)
            && same(&self.matched_host, o.matched_host)
            && same(&self.consumer, o.consumer)
    }
}

/// String equality that skips `memcmp` for empty strings (empty labels are common).
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && (a.is_empty() || a.as_bytes() == b.as_bytes())
}

#[derive(Default)]
struct Recent {
    entries: [Option<Entry>; ENTRIES],
    /// The entry the next miss replaces.
    next: usize,
}

thread_local! {
    static RECENT: RefCell<Recent> = RefCell::default();
}

/// Counts `o`, a request of instance `instance` whose route label is `route` (`o.route`), into
/// `registry`.
pub(super) fn observe(registry: &Registry, instance: u64, route: &Arc<str>, o: &Observation<'_>) {
    RECENT.with_borrow_mut(|recent| {
        let hit = recent
            .entries
            .iter()
            .flatten()
            .find(|e| e.matches(instance, route, o));
        if let Some(entry) = hit {
            registry.record(&entry.series, o);
            return;
        }
        let series = registry.series_for(o);
        registry.record(&series, o);
        let at = recent.next;
        recent.next = (at + 1) % ENTRIES;
        recent.entries[at] = Some(Entry {
            instance,
            route: route.clone(),
            matched_uri: o.matched_uri.into(),
            matched_host: o.matched_host.into(),
            consumer: o.consumer.into(),
            node: o.node,
            status: o.status,
            source: o.source,
            series,
        });
    });
}
