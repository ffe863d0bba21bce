//! Fast, non-cryptographic randomness for sampling decisions (proxy-mirror's `sample_ratio`,
//! percentages): a per-thread xorshift64* generator seeded from the operating system.

use std::cell::Cell;

thread_local! {
    static STATE: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness: the clock still differs per thread start.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        bytes = nanos.to_le_bytes();
    }
    u64::from_le_bytes(bytes) | 1
}

/// A random 64-bit number.
pub fn u64() -> u64 {
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    })
}

/// A random number in `[0, 1)`.
pub fn unit() -> f64 {
    (u64() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    #[test]
    fn unit_is_in_range_and_spread() {
        let n = 10_000;
        let below_half = (0..n).filter(|_| super::unit() < 0.5).count();
        assert!((4_500..5_500).contains(&below_half), "{below_half}");
        assert!((0..n).all(|_| (0.0..1.0).contains(&super::unit())));
    }
}
