//! Keys and signatures for the auth tests: JWTs signed with `ring` (the RSA key made by the
//! `openssl` command line), hmac-auth `Authorization` values and HTTP dates.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{self as sig, EcdsaKeyPair, KeyPair, RsaKeyPair};
use serde_json::{json, Value};

/// Seconds since the epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A key that signs tokens.
pub enum Signer {
    /// HS256 with this secret.
    Hmac(&'static str),
    /// RS256.
    Rsa(RsaKeyPair),
    /// ES256.
    Ecdsa(EcdsaKeyPair),
}

/// A compact JWS: header `{"typ":"JWT","alg":alg}`, `payload`, signed with `key`.
pub fn jwt(alg: &str, payload: Value, key: &Signer) -> String {
    let header = json!({"typ": "JWT", "alg": alg});
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string())
    );
    let rng = SystemRandom::new();
    let signature = match key {
        Signer::Hmac(secret) => {
            let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
            ring::hmac::sign(&k, signed.as_bytes()).as_ref().to_vec()
        }
        Signer::Rsa(pair) => {
            let mut out = vec![0; pair.public().modulus_len()];
            pair.sign(&sig::RSA_PKCS1_SHA256, &rng, signed.as_bytes(), &mut out)
                .expect("rsa sign");
            out
        }
        Signer::Ecdsa(pair) => pair
            .sign(&rng, signed.as_bytes())
            .expect("ecdsa sign")
            .as_ref()
            .to_vec(),
    };
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// `der` as a PEM block labelled `label`.
pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("ascii"))
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// The DER inside a single-block PEM.
pub fn pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).expect("PEM body")
}

/// A P-256 key pair and its public key as a `PUBLIC KEY` PEM.
pub fn p256() -> (Signer, String) {
    let rng = SystemRandom::new();
    let alg = &sig::ECDSA_P256_SHA256_FIXED_SIGNING;
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("generate");
    let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).expect("pair");
    // SubjectPublicKeyInfo header of an id-ecPublicKey/prime256v1 key.
    let mut spki = vec![
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    spki.extend_from_slice(pair.public_key().as_ref());
    (Signer::Ecdsa(pair), pem("PUBLIC KEY", &spki))
}

/// A 2048-bit RSA key pair made by `openssl`, and its public key PEM.
pub fn rsa_from_openssl(dir: &std::path::Path) -> (Signer, String) {
    let key = dir.join("rsa.pem");
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("the openssl command line is installed");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let key_path = key.to_str().expect("utf-8 path");
    run(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        key_path,
    ]);
    let public = String::from_utf8(run(&["pkey", "-in", key_path, "-pubout"])).expect("PEM");
    let private = std::fs::read_to_string(&key).expect("key file");
    let pair = RsaKeyPair::from_pkcs8(&pem_der(&private)).expect("PKCS#8 RSA key");
    (Signer::Rsa(pair), public)
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` for `secs` since the epoch.
pub fn http_date(secs: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (days, rest) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(month - 1) as usize],
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// `SHA-256=<base64>` of a body, for the `Digest` header.
pub fn sha256_digest(body: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, body.as_bytes());
    format!("SHA-256={}", STANDARD.encode(d.as_ref()))
}

/// An hmac-auth `Authorization` value signed with hmac-sha256 over `@request-target date`
/// (and `digest` when given).
pub fn hmac_authorization(
    key_id: &str,
    secret: &str,
    method: &str,
    target: &str,
    date: &str,
    digest: Option<&str>,
) -> String {
    let mut names = vec!["@request-target", "date"];
    let mut lines = format!("{key_id}\n{method} {target}\ndate: {date}\n");
    if let Some(digest) = digest {
        names.push("digest");
        lines.push_str(&format!("digest: {digest}\n"));
    }
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let signature = STANDARD.encode(ring::hmac::sign(&key, lines.as_bytes()).as_ref());
    format!(
        "Signature keyId=\"{key_id}\",algorithm=\"hmac-sha256\",headers=\"{}\",signature=\"{signature}\"",
        names.join(" ")
    )
}
