//! IP addresses as text without the formatting machinery: `$remote_addr` is written on every
//! request by the forwarded headers and by rate-limit keys.

use std::net::IpAddr;

/// Writes `ip` as text into `out` (the longest IPv6 text fits); returns the length.
pub fn write_ip(ip: IpAddr, out: &mut [u8; 45]) -> usize {
    match ip {
        IpAddr::V4(v4) => {
            let mut len = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out[len] = b'.';
                    len += 1;
                }
                if octet >= 100 {
                    out[len] = b'0' + octet / 100;
                    len += 1;
                }
                if octet >= 10 {
                    out[len] = b'0' + octet / 10 % 10;
                    len += 1;
                }
                out[len] = b'0' + octet % 10;
                len += 1;
            }
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

/// Appends `ip` as text to `out`.
pub fn push_ip(ip: IpAddr, out: &mut String) {
    let mut text = [0u8; 45];
    let len = write_ip(ip, &mut text);
    // Digits, dots, colons and hex letters only: ASCII, pushed without a UTF-8 check.
    out.extend(text[..len].iter().map(|&b| char::from(b)));
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
}
