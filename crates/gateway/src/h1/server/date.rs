//! The `Date` header of responses: rendered once a second per thread (IMF-fixdate, RFC 9110
//! §5.6.7), copied into each response head.

use std::cell::RefCell;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Length of an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub const LEN: usize = 29;

struct Cached {
    text: [u8; LEN],
    /// When the second changes.
    next: Option<Instant>,
}

thread_local! {
    static CACHED: RefCell<Cached> = const { RefCell::new(Cached { text: [b' '; LEN], next: None }) };
}

/// Appends the current date to `dst`; `now` is the caller's reading of the clock.
pub fn append(dst: &mut Vec<u8>, now: Instant) {
    CACHED.with(|c| {
        let mut c = c.borrow_mut();
        if c.next.is_none_or(|next| now >= next) {
            let wall = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            c.text = render(wall.as_secs());
            let to_next = Duration::from_secs(1) - Duration::from_nanos(wall.subsec_nanos().into());
            c.next = Some(now + to_next);
        }
        dst.extend_from_slice(&c.text);
    });
}

/// The IMF-fixdate of `secs` seconds after the Unix epoch.
pub fn render(secs: u64) -> [u8; LEN] {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil(days as i64);
    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    out[..3].copy_from_slice(DAYS[(days % 7) as usize]);
    two(&mut out[5..7], day as u64);
    out[8..11].copy_from_slice(MONTHS[(month - 1) as usize]);
    let year = year.clamp(0, 9999) as u64;
    two(&mut out[12..14], year / 100);
    two(&mut out[14..16], year % 100);
    two(&mut out[17..19], rem / 3600);
    two(&mut out[20..22], rem % 3600 / 60);
    two(&mut out[23..25], rem % 60);
    out
}

fn two(dst: &mut [u8], n: u64) {
    dst[0] = b'0' + (n / 10 % 10) as u8;
    dst[1] = b'0' + (n % 10) as u8;
}

/// Year, month (1–12) and day (1–31) of a day count since 1970-01-01 (the proleptic Gregorian
/// calendar, by eras of 400 years).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_imf_fixdates() {
        assert_eq!(&render(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(&render(784_111_777), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(&render(951_782_400), b"Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(&render(1_795_733_999), b"Thu, 26 Nov 2026 22:59:59 GMT");
        assert_eq!(&render(4_102_444_800), b"Fri, 01 Jan 2100 00:00:00 GMT");
    }

    #[test]
    fn the_cached_date_is_rendered_once_a_second() {
        let next = || CACHED.with(|c| c.borrow().next).unwrap();
        let now = Instant::now();
        let mut first = Vec::new();
        append(&mut first, now);
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(
            first == render(wall) || first == render(wall - 1),
            "{first:?}"
        );
        let due = next();
        assert!(due > now && due <= now + Duration::from_secs(1));
        let mut again = Vec::new();
        append(&mut again, now + Duration::from_millis(1));
        assert_eq!(
            (first, due),
            (again, next()),
            "within the second: the cached text"
        );
        append(&mut Vec::new(), due);
        assert!(next() > due, "past the second: rendered anew");
    }
}
