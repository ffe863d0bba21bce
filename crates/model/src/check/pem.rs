//! A light sanity check of PEM certificates and private keys: the right block is there, its
//! body is base64 and the DER inside is one well-formed ASN.1 SEQUENCE. The data plane parses
//! them fully with rustls; this catches pasted garbage at write time with APISIX's messages.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

const CERT_LABELS: [&str; 3] = ["CERTIFICATE", "X509 CERTIFICATE", "TRUSTED CERTIFICATE"];
const KEY_LABELS: [&str; 4] = [
    "PRIVATE KEY",
    "RSA PRIVATE KEY",
    "EC PRIVATE KEY",
    "DSA PRIVATE KEY",
];

/// `failed to parse cert: ...` message of OpenSSL via `ngx.ssl.parse_pem_cert`.
pub(crate) const CERT_ERROR: &str = "failed to parse cert: PEM_read_bio_X509_AUX() failed";
/// `failed to parse key: ...` message of OpenSSL via `ngx.ssl.parse_pem_priv_key`.
pub(crate) const KEY_ERROR: &str = "failed to parse key: PEM_read_bio_PrivateKey() failed";

struct Block<'a> {
    label: &'a str,
    body: &'a str,
}

/// The PEM blocks of a text, in order; text outside blocks is ignored, as OpenSSL does.
fn blocks(text: &str) -> Vec<Block<'_>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + "-----BEGIN ".len()..];
        let Some(label_end) = after.find("-----") else {
            break;
        };
        let label = &after[..label_end];
        let body_start = &after[label_end + 5..];
        let end_marker = format!("-----END {label}-----");
        let Some(body_end) = body_start.find(&end_marker) else {
            break;
        };
        out.push(Block {
            label,
            body: &body_start[..body_end],
        });
        rest = &body_start[body_end + end_marker.len()..];
    }
    out
}

/// Whether a block body is base64 of one DER SEQUENCE whose length covers the whole body.
fn is_der_sequence(body: &str) -> bool {
    if body.contains(':') {
        // Encrypted legacy keys carry `Proc-Type:`/`DEK-Info:` headers: no passphrase here.
        return false;
    }
    let compact: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let Ok(der) = STANDARD.decode(compact.as_bytes()) else {
        return false;
    };
    if der.len() < 2 || der[0] != 0x30 {
        return false;
    }
    let (header, len) = match der[1] {
        n if n < 0x80 => (2, usize::from(n)),
        0x80 => return false,
        n => {
            let count = usize::from(n & 0x7f);
            if count > 4 || der.len() < 2 + count {
                return false;
            }
            let len = der[2..2 + count]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (2 + count, len)
        }
    };
    header + len == der.len()
}

/// Whether `text` holds at least one certificate and every certificate block is well formed.
pub(crate) fn is_certificate(text: &str) -> bool {
    let certs: Vec<_> = blocks(text)
        .into_iter()
        .filter(|b| CERT_LABELS.contains(&b.label))
        .collect();
    !certs.is_empty() && certs.iter().all(|b| is_der_sequence(b.body))
}

/// Whether the first private-key block of `text` is well formed.
pub(crate) fn is_private_key(text: &str) -> bool {
    blocks(text)
        .into_iter()
        .find(|b| KEY_LABELS.contains(&b.label) || b.label == "ENCRYPTED PRIVATE KEY")
        .is_some_and(|b| b.label != "ENCRYPTED PRIVATE KEY" && is_der_sequence(b.body))
}

/// `apisix/ssl.lua:validate`: the certificate must parse, then the key (when given).
pub(crate) fn validate_pair(cert: &str, key: Option<&str>) -> Result<(), String> {
    if !is_certificate(cert) {
        return Err(CERT_ERROR.to_string());
    }
    match key {
        Some(key) if !is_private_key(key) => Err(KEY_ERROR.to_string()),
        _ => Ok(()),
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Structurally valid PEM blocks (random DER payloads wrapped in a SEQUENCE).

    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;

    fn block(label: &str, payload_len: usize) -> String {
        let mut der = vec![0x30, 0x82, (payload_len >> 8) as u8, payload_len as u8];
        der.extend((0..payload_len).map(|i| (i % 251) as u8));
        let b64 = STANDARD.encode(der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .filter_map(|c| std::str::from_utf8(c).ok())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    }

    /// A certificate-shaped PEM block.
    pub(crate) fn cert() -> String {
        block("CERTIFICATE", 300)
    }

    /// A private-key-shaped PEM block.
    pub(crate) fn key() -> String {
        block("PRIVATE KEY", 200)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed_blocks_pass() {
        assert!(is_certificate(&fixtures::cert()));
        assert!(is_certificate(&format!(
            "subject=foo\n{}{}",
            fixtures::cert(),
            fixtures::cert()
        )));
        assert!(is_private_key(&fixtures::key()));
        assert!(is_private_key(
            &fixtures::key().replace("PRIVATE KEY", "EC PRIVATE KEY")
        ));
    }

    #[test]
    fn garbage_fails() {
        assert!(!is_certificate(&"x".repeat(200)));
        assert!(!is_certificate(&fixtures::key()));
        assert!(!is_private_key(&fixtures::cert()));
        let broken = fixtures::cert().replacen("MII", "MIJ", 1);
        assert!(!is_certificate(&broken));
        let truncated: String = fixtures::cert()
            .lines()
            .filter(|l| l.len() != 64 || l.starts_with("-----"))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(!is_certificate(&truncated));
        assert!(!is_private_key(
            &fixtures::key().replace("PRIVATE KEY", "ENCRYPTED PRIVATE KEY")
        ));
    }
}
