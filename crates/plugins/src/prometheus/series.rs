//! One series of request counters: its key (the label values as recorded) and its striped
//! atomics.

use std::cell::Cell;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::registry::{Masks, Observation, Source, LATENCY_BUCKETS_MS};

/// Index of `http_latency`'s `type` label values in [`Stripe::latency`].
pub(super) const REQUEST: usize = 0;
pub(super) const UPSTREAM: usize = 1;
pub(super) const APISIX: usize = 2;

/// The bucket boundaries in microseconds, the unit the histograms count in.
const BUCKETS_US: [u64; 15] = {
    let mut us = [0; 15];
    let mut i = 0;
    while i < 15 {
        us[i] = LATENCY_BUCKETS_MS[i] * 1000;
        i += 1;
    }
    us
};

/// The label values of a series, owned. `masks` are the labels the plugin's metadata disabled
/// when the request was counted (blanked when rendered).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct SeriesKey {
    pub workspace: Box<str>,
    pub route: Box<str>,
    pub matched_uri: Box<str>,
    pub matched_host: Box<str>,
    pub consumer: Box<str>,
    pub node: Option<IpAddr>,
    pub code: u16,
    pub source: Source,
    pub masks: Masks,
}

impl SeriesKey {
    /// Whether `o` belongs to this series.
    pub fn matches(&self, o: &Observation<'_>) -> bool {
        self.code == o.status
            && self.node == o.node
            && self.source == o.source
            && self.masks == o.masks
            && same(&self.route, o.route)
            && same(&self.workspace, o.workspace)
            && same(&self.matched_uri, o.matched_uri)
            && self.matched_host.eq_ignore_ascii_case(o.matched_host)
            && same(&self.consumer, o.consumer)
    }
}

/// String equality that skips `memcmp` for empty strings (empty labels are common).
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && (a.is_empty() || a.as_bytes() == b.as_bytes())
}

impl From<&Observation<'_>> for SeriesKey {
    fn from(o: &Observation<'_>) -> Self {
        SeriesKey {
            workspace: o.workspace.into(),
            route: o.route.into(),
            matched_uri: o.matched_uri.into(),
            // Hosts are labelled lower-cased, as APISIX's router keeps them.
            matched_host: o.matched_host.to_ascii_lowercase().into(),
            consumer: o.consumer.into(),
            node: o.node,
            code: o.status,
            source: o.source,
            masks: o.masks,
        }
    }
}

/// A latency histogram: per-bucket counts (not cumulative; the last is `+Inf`) and the sum.
#[derive(Default)]
pub(super) struct Hist {
    pub buckets: [AtomicU64; 16],
    pub sum_us: AtomicU64,
}

impl Hist {
    fn observe(&self, us: u64) {
        let i = BUCKETS_US.iter().position(|b| us <= *b).unwrap_or(15);
        if let Some(bucket) = self.buckets.get(i) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }
}

/// One thread group's share of a series, alone on its cache lines.
#[derive(Default)]
#[repr(align(128))]
pub(super) struct Stripe {
    pub latency: [Hist; 3],
    pub ingress: AtomicU64,
    pub egress: AtomicU64,
}

/// The counters of one label combination.
pub(super) struct Series {
    pub key: SeriesKey,
    pub stripes: Box<[Stripe]>,
}

impl Series {
    pub fn new(key: SeriesKey, stripes: usize) -> Series {
        Series {
            key,
            stripes: (0..stripes).map(|_| Stripe::default()).collect(),
        }
    }

    /// Adds one request to stripe `stripe`.
    pub fn record(&self, stripe: usize, o: &Observation<'_>) {
        let Some(s) = self.stripes.get(stripe) else {
            return;
        };
        let total = micros(o.total);
        s.latency[REQUEST].observe(total);
        let own = match o.upstream {
            Some(upstream) => {
                let upstream = micros(upstream);
                s.latency[UPSTREAM].observe(upstream);
                total.saturating_sub(upstream)
            }
            None => total,
        };
        s.latency[APISIX].observe(own);
        s.ingress.fetch_add(o.ingress, Ordering::Relaxed);
        s.egress.fetch_add(o.egress, Ordering::Relaxed);
    }

    /// The histogram `kind` summed over stripes: per-bucket counts (not cumulative; `+Inf`
    /// last) and the sum in microseconds.
    pub fn histogram(&self, kind: usize) -> ([u64; 16], u64) {
        let mut buckets = [0u64; 16];
        let mut sum = 0u64;
        for s in self.stripes.iter() {
            let h = &s.latency[kind];
            for (total, b) in buckets.iter_mut().zip(&h.buckets) {
                *total = total.wrapping_add(b.load(Ordering::Relaxed));
            }
            sum = sum.wrapping_add(h.sum_us.load(Ordering::Relaxed));
        }
        (buckets, sum)
    }

    /// Requests counted (the request histogram's count).
    pub fn count(&self) -> u64 {
        self.histogram(REQUEST)
            .0
            .iter()
            .fold(0, |a, b| a.wrapping_add(*b))
    }

    /// Bytes received and sent, summed over stripes.
    pub fn bandwidth(&self) -> (u64, u64) {
        self.stripes.iter().fold((0, 0), |(i, e), s| {
            (
                i + s.ingress.load(Ordering::Relaxed),
                e + s.egress.load(Ordering::Relaxed),
            )
        })
    }
}

fn micros(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// This thread's stripe number (threads are numbered as they first count something).
pub(super) fn stripe_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    INDEX.with(|i| {
        let mut v = i.get();
        if v == usize::MAX {
            v = NEXT.fetch_add(1, Ordering::Relaxed);
            i.set(v);
        }
        v
    })
}

/// The key's hash (FxHash words, then a final mix so that the top bits pick shards well).
pub(super) fn hash(o: &Observation<'_>) -> u64 {
    let mut h = Fx(0);
    for s in [o.workspace, o.route, o.matched_uri, o.consumer] {
        h.str(s);
    }
    h.str_lower(o.matched_host);
    match o.node {
        None => h.word(0),
        Some(IpAddr::V4(a)) => h.word(u64::from(u32::from(a)) | 1 << 32),
        Some(IpAddr::V6(a)) => {
            let v = u128::from(a);
            h.word(v as u64);
            h.word((v >> 64) as u64 | 1);
        }
    }
    let masks = o.masks.0;
    h.word(
        u64::from(o.status)
            | (o.source as u64) << 16
            | u64::from(masks[0]) << 24
            | u64::from(masks[1]) << 40,
    );
    h.word(u64::from(masks[2]));
    fmix(h.0)
}

struct Fx(u64);

impl Fx {
    fn word(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes(), false);
    }

    /// Hashes `s` as if ASCII-lower-cased.
    fn str_lower(&mut self, s: &str) {
        self.bytes(s.as_bytes(), true);
    }

    /// Eight bytes a word; the length goes into the last word's top byte (exactness is left to
    /// the key comparison).
    fn bytes(&mut self, b: &[u8], lower: bool) {
        let read = |c: &[u8]| {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            if lower {
                w.make_ascii_lowercase();
            }
            u64::from_le_bytes(w)
        };
        let mut chunks = b.chunks_exact(8);
        for c in &mut chunks {
            self.word(read(c));
        }
        self.word(read(chunks.remainder()) ^ (b.len() as u64).rotate_right(8));
    }
}

fn fmix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}
