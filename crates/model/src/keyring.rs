//! Secrets at rest.
//!
//! Portico encrypts secret fields (plugin `encrypt_fields`, certificate keys, upstream client
//! keys) with **AES-256-GCM**, a fresh random 96-bit nonce per value, and stores
//! `base64(nonce || ciphertext || tag)` (standard alphabet, padded).
//!
//! This differs from APISIX on purpose. APISIX uses AES-CBC with each keyring entry as both key
//! and IV: the same plaintext always gives the same ciphertext, and nothing detects tampering.
//! GCM with random nonces leaks no equality and authenticates every value, so a wrong key or a
//! plaintext that merely looks like base64 is recognised (decryption fails) instead of yielding
//! garbage. Values written by APISIX can therefore not be read back; re-save them through the
//! Admin API.
//!
//! Keyring entries are arbitrary strings from configuration (APISIX's defaults are 16-character
//! strings); each is turned into a 256-bit key with SHA-256. The first entry encrypts; decryption
//! tries every entry, which allows key rotation. An empty keyring disables encryption.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha256};
use std::fmt;

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// The keys that encrypt and decrypt secret fields.
#[derive(Clone)]
pub struct Keyring {
    ciphers: Vec<Aes256Gcm>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("keys", &self.ciphers.len())
            .finish()
    }
}

impl Keyring {
    /// A keyring from configured key strings (the first one encrypts). An empty list gives a
    /// disabled keyring; an empty string in the list is refused, as a likely configuration slip.
    pub fn new(keys: Vec<String>) -> Result<Keyring, String> {
        let mut ciphers = Vec::with_capacity(keys.len());
        for (i, key) in keys.iter().enumerate() {
            if key.is_empty() {
                return Err(format!("keyring entry {} is empty", i + 1));
            }
            ciphers.push(Aes256Gcm::new(&Sha256::digest(key.as_bytes())));
        }
        Ok(Keyring { ciphers })
    }

    /// A keyring that leaves values in plaintext.
    pub fn disabled() -> Keyring {
        Keyring {
            ciphers: Vec::new(),
        }
    }

    /// Whether values are encrypted at all.
    pub fn enabled(&self) -> bool {
        !self.ciphers.is_empty()
    }

    /// Encrypts with the first key; with an empty keyring returns `plain` unchanged. Fails only
    /// when the system has no randomness to offer.
    pub fn encrypt(&self, plain: &str) -> Result<String, String> {
        let Some(cipher) = self.ciphers.first() else {
            return Ok(plain.to_string());
        };
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| format!("failed to get random bytes: {e}"))?;
        let sealed = cipher
            .encrypt(Nonce::from_slice(&nonce), plain.as_bytes())
            .map_err(|_| "failed to encrypt".to_string())?;
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(STANDARD.encode(out))
    }

    /// Decrypts with whichever key fits; `None` when the value is not ciphertext of this keyring
    /// (including when the keyring is empty).
    pub fn decrypt(&self, sealed: &str) -> Option<String> {
        let raw = STANDARD.decode(sealed.as_bytes()).ok()?;
        if raw.len() < NONCE_LEN + TAG_LEN {
            return None;
        }
        let (nonce, body) = raw.split_at(NONCE_LEN);
        self.ciphers
            .iter()
            .find_map(|c| c.decrypt(Nonce::from_slice(nonce), body).ok())
            .and_then(|plain| String::from_utf8(plain).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_random_nonces() {
        let ring = Keyring::new(vec!["qeddd145sfvddff3".into(), "edd1c9f0985e76a2".into()])
            .expect("keyring");
        let a = ring.encrypt("secret").expect("encrypt");
        let b = ring.encrypt("secret").expect("encrypt");
        assert_ne!(a, b);
        assert_eq!(ring.decrypt(&a).as_deref(), Some("secret"));
        assert_eq!(ring.decrypt("secret"), None);
        assert_eq!(ring.decrypt("c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"), None);
    }

    #[test]
    fn rotation_and_wrong_keys() {
        let old = Keyring::new(vec!["old".into()]).expect("keyring");
        let rotated = Keyring::new(vec!["new".into(), "old".into()]).expect("keyring");
        let sealed = old.encrypt("k").expect("encrypt");
        assert_eq!(rotated.decrypt(&sealed).as_deref(), Some("k"));
        assert_eq!(
            Keyring::new(vec!["other".into()])
                .expect("keyring")
                .decrypt(&sealed),
            None
        );
    }

    #[test]
    fn disabled_keyring_is_plaintext() {
        let ring = Keyring::disabled();
        assert!(!ring.enabled());
        assert_eq!(ring.encrypt("x").as_deref(), Ok("x"));
        assert!(Keyring::new(vec![String::new()]).is_err());
        assert!(!Keyring::new(Vec::new()).expect("keyring").enabled());
    }
}
