//! IP addresses as text without the formatting machinery: `$remote_addr` is written on every
//! request by the forwarded headers and by rate-limit keys.

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr};

/// Writes `ip` as text into `out` (the longest IPv6 text fits); returns the length.
pub fn write_ip(ip: IpAddr, out: &mut [u8; 45]) -> usize {
    match ip {
        IpAddr::V4(v4) => {
            let mut len = 0;
            ipv4_text(v4, |b| {
                out[len] = b;
                len += 1;
            });
            len
        }
        IpAddr::V6(v6) => {
            use std::io::Write as _;
            let mut cursor = std::io::Cursor::new(&mut out[..]);
            let _ = write!(cursor, "{v6}");
            cursor.position() as usize
        }
    }
}

thread_local! {
    /// The last IPv4 address written on this thread and its text: the requests of one client
    /// (and of one connection) come one after another, as nginx keeps a connection's address
    /// text.
    static LAST_V4: RefCell<(Ipv4Addr, String)> =
        RefCell::new((Ipv4Addr::UNSPECIFIED, "0.0.0.0".to_string()));
}

/// Appends `ip` as text to `out`.
pub fn push_ip(ip: IpAddr, out: &mut String) {
    match ip {
        IpAddr::V4(v4) => LAST_V4.with_borrow_mut(|(last, text)| {
            if *last != v4 {
                text.clear();
                ipv4_text(v4, |b| text.push(char::from(b)));
                *last = v4;
            }
            out.push_str(text);
        }),
        IpAddr::V6(_) => {
            let mut text = [0u8; 45];
            let len = write_ip(ip, &mut text);
            // Digits, colons, dots and hex letters only.
            out.push_str(std::str::from_utf8(&text[..len]).unwrap_or_default());
        }
    }
}

/// The dotted-decimal text of `v4`, byte by byte.
#[inline]
fn ipv4_text(v4: Ipv4Addr, mut put: impl FnMut(u8)) {
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            put(b'.');
        }
        if octet >= 100 {
            put(b'0' + octet / 100);
        }
        if octet >= 10 {
            put(b'0' + octet / 10 % 10);
        }
        put(b'0' + octet % 10);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_display() {
        for text in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.255.9",
            "255.255.255.255",
            "::1",
            "2001:db8::8a2e:370:7334",
            "::ffff:192.0.2.1",
            "::ffff:1.2.3.4",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ] {
            let ip: IpAddr = text.parse().unwrap();
            let mut out = String::from("k:");
            push_ip(ip, &mut out);
            assert_eq!(out, format!("k:{ip}"));
        }
    }

    #[test]
    fn repeated_and_alternating_addresses() {
        let mut out = String::new();
        for text in [
            "10.0.0.1",
            "10.0.0.1",
            "192.168.1.20",
            "10.0.0.1",
            "::1",
            "10.0.0.1",
        ] {
            out.clear();
            push_ip(text.parse().unwrap(), &mut out);
            assert_eq!(out, text);
        }
    }
}
