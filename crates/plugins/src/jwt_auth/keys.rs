//! Signature algorithms of jwt-auth and the keys that verify them: HMAC secrets for `HS*`, PEM
//! public keys for the rest (`apisix/plugins/jwt-auth/parser.lua`), verified with `ring`.
//!
//! Public keys are read from PEM: `PUBLIC KEY` (SubjectPublicKeyInfo: RSA, RSASSA-PSS, EC P-256
//! and P-384, Ed25519) or `RSA PUBLIC KEY` (PKCS#1). What `ring` cannot verify — ES512 (P-521),
//! Ed448, RSA moduli outside 2048–8192 bits — is refused when the consumer is written.

use ring::{hmac, signature};

/// The `alg` values of APISIX's consumer schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    HS256,
    HS384,
    HS512,
    RS256,
    RS384,
    RS512,
    ES256,
    ES384,
    ES512,
    PS256,
    PS384,
    PS512,
    EdDSA,
}

/// Every algorithm of APISIX's consumer schema, as its enum lists them.
pub const ALGORITHMS: [&str; 13] = [
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256",
    "PS384", "PS512", "EdDSA",
];

impl Alg {
    /// The algorithm named `name` (case-sensitive, as JWT headers spell it).
    pub fn parse(name: &str) -> Option<Alg> {
        Some(match name {
            "HS256" => Alg::HS256,
            "HS384" => Alg::HS384,
            "HS512" => Alg::HS512,
            "RS256" => Alg::RS256,
            "RS384" => Alg::RS384,
            "RS512" => Alg::RS512,
            "ES256" => Alg::ES256,
            "ES384" => Alg::ES384,
            "ES512" => Alg::ES512,
            "PS256" => Alg::PS256,
            "PS384" => Alg::PS384,
            "PS512" => Alg::PS512,
            "EdDSA" => Alg::EdDSA,
            _ => return None,
        })
    }

    /// The name JWT headers use.
    pub fn name(self) -> &'static str {
        ALGORITHMS[self as usize]
    }

    /// Whether the algorithm is keyed by a shared secret.
    pub fn is_hmac(self) -> bool {
        matches!(self, Alg::HS256 | Alg::HS384 | Alg::HS512)
    }

    fn hmac(self) -> Option<hmac::Algorithm> {
        match self {
            Alg::HS256 => Some(hmac::HMAC_SHA256),
            Alg::HS384 => Some(hmac::HMAC_SHA384),
            Alg::HS512 => Some(hmac::HMAC_SHA512),
            _ => None,
        }
    }
}

/// A public key as read from PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// PKCS#1 `RSAPublicKey` DER, usable for RS* and PS*.
    Rsa(Vec<u8>),
    /// PKCS#1 `RSAPublicKey` DER of an RSASSA-PSS-only key, usable for PS*.
    RsaPss(Vec<u8>),
    /// Uncompressed P-256 point.
    P256(Vec<u8>),
    /// Uncompressed P-384 point.
    P384(Vec<u8>),
    /// Raw Ed25519 key.
    Ed25519(Vec<u8>),
}

/// Verifies `signature` over `data` with an HMAC secret; false for a non-HS algorithm.
pub fn verify_hmac(alg: Alg, secret: &[u8], data: &[u8], sig: &[u8]) -> bool {
    match alg.hmac() {
        Some(a) => hmac::verify(&hmac::Key::new(a, secret), data, sig).is_ok(),
        None => false,
    }
}

/// Verifies `signature` over `data` with a public key; false when the key does not suit `alg`.
pub fn verify_public(alg: Alg, key: &PublicKey, data: &[u8], sig: &[u8]) -> bool {
    let (params, bytes): (&dyn signature::VerificationAlgorithm, &[u8]) = match (alg, key) {
        (Alg::RS256, PublicKey::Rsa(k)) => (&signature::RSA_PKCS1_2048_8192_SHA256, k),
        (Alg::RS384, PublicKey::Rsa(k)) => (&signature::RSA_PKCS1_2048_8192_SHA384, k),
        (Alg::RS512, PublicKey::Rsa(k)) => (&signature::RSA_PKCS1_2048_8192_SHA512, k),
        (Alg::PS256, PublicKey::Rsa(k) | PublicKey::RsaPss(k)) => {
            (&signature::RSA_PSS_2048_8192_SHA256, k)
        }
        (Alg::PS384, PublicKey::Rsa(k) | PublicKey::RsaPss(k)) => {
            (&signature::RSA_PSS_2048_8192_SHA384, k)
        }
        (Alg::PS512, PublicKey::Rsa(k) | PublicKey::RsaPss(k)) => {
            (&signature::RSA_PSS_2048_8192_SHA512, k)
        }
        (Alg::ES256, PublicKey::P256(k)) => (&signature::ECDSA_P256_SHA256_FIXED, k),
        (Alg::ES384, PublicKey::P384(k)) => (&signature::ECDSA_P384_SHA384_FIXED, k),
        (Alg::EdDSA, PublicKey::Ed25519(k)) => (&signature::ED25519, k),
        _ => return false,
    };
    signature::UnparsedPublicKey::new(params, bytes)
        .verify(data, sig)
        .is_ok()
}

/// Reads the public key for `alg` from `pem`; the error says why it cannot verify `alg` here.
pub fn public_key_for(alg: Alg, pem: &str) -> Result<PublicKey, String> {
    if alg == Alg::ES512 {
        return Err("algorithm ES512 (ECDSA P-521) is not supported by Portico".into());
    }
    let key = parse_pem(pem)?;
    let fits = matches!(
        (alg, &key),
        (Alg::RS256 | Alg::RS384 | Alg::RS512, PublicKey::Rsa(_))
            | (
                Alg::PS256 | Alg::PS384 | Alg::PS512,
                PublicKey::Rsa(_) | PublicKey::RsaPss(_)
            )
            | (Alg::ES256, PublicKey::P256(_))
            | (Alg::ES384, PublicKey::P384(_))
            | (Alg::EdDSA, PublicKey::Ed25519(_))
    );
    if !fits {
        return Err(format!(
            "public_key is {}, not a key for {}",
            key.describe(),
            alg.name()
        ));
    }
    if let PublicKey::Rsa(der) | PublicKey::RsaPss(der) = &key {
        let bits = rsa_modulus_bits(der).ok_or("public_key holds a malformed RSA key")?;
        if !(2048..=8192).contains(&bits) {
            return Err(format!(
                "RSA public keys must have 2048 to 8192 bits, this one has {bits}"
            ));
        }
    }
    Ok(key)
}

impl PublicKey {
    fn describe(&self) -> &'static str {
        match self {
            PublicKey::Rsa(_) => "an RSA key",
            PublicKey::RsaPss(_) => "an RSASSA-PSS key",
            PublicKey::P256(_) => "an EC P-256 key",
            PublicKey::P384(_) => "an EC P-384 key",
            PublicKey::Ed25519(_) => "an Ed25519 key",
        }
    }
}

const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_RSA_PSS: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a];
const OID_EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_P521: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x23];
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];
const OID_ED448: &[u8] = &[0x2b, 0x65, 0x71];

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OID: u8 = 0x06;

/// Parses the first PEM block of `text`.
pub fn parse_pem(text: &str) -> Result<PublicKey, String> {
    let (label, der) = pem_block(text)?;
    match label {
        "PUBLIC KEY" => parse_spki(&der),
        "RSA PUBLIC KEY" => {
            rsa_modulus_bits(&der).ok_or("public_key holds a malformed RSA key")?;
            Ok(PublicKey::Rsa(der))
        }
        other => Err(format!(
            "public_key must be a PEM \"PUBLIC KEY\" or \"RSA PUBLIC KEY\", not \"{other}\""
        )),
    }
}

/// The label and decoded body of the first `-----BEGIN x-----` … `-----END x-----` block.
fn pem_block(text: &str) -> Result<(&str, Vec<u8>), String> {
    let not_pem = || "public_key is not a PEM-encoded key".to_string();
    let start = text.find("-----BEGIN ").ok_or_else(not_pem)?;
    let rest = &text[start + "-----BEGIN ".len()..];
    let label_end = rest.find("-----").ok_or_else(not_pem)?;
    let label = &rest[..label_end];
    let body = &rest[label_end + 5..];
    let end = body
        .find(&format!("-----END {label}-----"))
        .ok_or_else(not_pem)?;
    let b64: String = body[..end]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let der = super::b64::decode_std(&b64).ok_or_else(not_pem)?;
    Ok((label, der))
}

/// One DER element: tag, contents, and what follows it.
fn der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    match der(input)? {
        (t, body, rest) if t == tag => Some((body, rest)),
        _ => None,
    }
}

/// `SubjectPublicKeyInfo ::= SEQUENCE { SEQUENCE { OID, params }, BIT STRING }`.
fn parse_spki(input: &[u8]) -> Result<PublicKey, String> {
    let malformed = || "public_key is not a valid SubjectPublicKeyInfo".to_string();
    let (spki, _) = expect(input, SEQUENCE).ok_or_else(malformed)?;
    let (alg, rest) = expect(spki, SEQUENCE).ok_or_else(malformed)?;
    let (bits, _) = expect(rest, BIT_STRING).ok_or_else(malformed)?;
    let key = match bits.split_first() {
        Some((0, key)) => key.to_vec(),
        _ => return Err(malformed()),
    };
    let (oid, params) = expect(alg, OID).ok_or_else(malformed)?;
    match oid {
        OID_RSA => {
            rsa_modulus_bits(&key).ok_or_else(malformed)?;
            Ok(PublicKey::Rsa(key))
        }
        OID_RSA_PSS => {
            rsa_modulus_bits(&key).ok_or_else(malformed)?;
            Ok(PublicKey::RsaPss(key))
        }
        OID_EC => {
            let (curve, _) = expect(params, OID).ok_or_else(malformed)?;
            match curve {
                OID_P256 if key.len() == 65 && key[0] == 4 => Ok(PublicKey::P256(key)),
                OID_P384 if key.len() == 97 && key[0] == 4 => Ok(PublicKey::P384(key)),
                OID_P256 | OID_P384 => {
                    Err("public_key must hold an uncompressed EC point".to_string())
                }
                OID_P521 => Err("EC P-521 keys (ES512) are not supported by Portico".to_string()),
                _ => Err("public_key uses an EC curve Portico does not support".to_string()),
            }
        }
        OID_ED25519 if key.len() == 32 => Ok(PublicKey::Ed25519(key)),
        OID_ED448 => Err("Ed448 keys are not supported by Portico (Ed25519 is)".to_string()),
        _ => Err("public_key uses a key type Portico does not support".to_string()),
    }
}

/// Bit length of the modulus of a PKCS#1 `RSAPublicKey ::= SEQUENCE { n INTEGER, e INTEGER }`.
fn rsa_modulus_bits(input: &[u8]) -> Option<usize> {
    let (seq, _) = expect(input, SEQUENCE)?;
    let (n, rest) = expect(seq, INTEGER)?;
    expect(rest, INTEGER)?;
    let n = match n.iter().position(|b| *b != 0) {
        Some(i) => &n[i..],
        None => return Some(0),
    };
    Some(n.len() * 8 - n[0].leading_zeros() as usize)
}
