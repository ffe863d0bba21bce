//! Base64 the way nginx decodes it (`ngx.decode_base64`, `ngx.base64.decode_base64url`): the
//! input counts up to its first `=`, every character before must be of the alphabet, a length
//! of 4n+1 is invalid, and leftover bits are ignored. Shared by jwt-auth and hmac-auth.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine;

const LENIENT: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_decode_padding_mode(DecodePaddingMode::RequireNone)
    .with_decode_allow_trailing_bits(true);

const NGX_STD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
const NGX_URL: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

fn before_padding(text: &str) -> &str {
    text.split('=').next().unwrap_or_default()
}

/// `ngx.decode_base64`: the standard alphabet.
pub fn decode_std(text: &str) -> Option<Vec<u8>> {
    NGX_STD.decode(before_padding(text)).ok()
}

/// `ngx.base64.decode_base64url`: the URL-safe alphabet.
pub fn decode_url(text: &str) -> Option<Vec<u8>> {
    NGX_URL.decode(before_padding(text)).ok()
}

/// lua-resty-jwt's segment decoding: `-`/`_` read as `+`/`/`, so either alphabet (or a mix)
/// decodes.
pub fn decode_any(text: &str) -> Option<Vec<u8>> {
    let std: String = text
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    decode_std(&std)
}

/// `ngx.encode_base64`: the standard alphabet with padding.
pub fn encode_std(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_like_nginx() {
        assert_eq!(decode_std("aGk="), Some(b"hi".to_vec()));
        assert_eq!(decode_std("aGk"), Some(b"hi".to_vec()));
        // Everything after the first `=` is ignored.
        assert_eq!(decode_std("aGk=!!"), Some(b"hi".to_vec()));
        assert_eq!(decode_std("a"), None);
        assert_eq!(decode_std("a-b_"), None);
        assert_eq!(decode_url("a-b_"), Some(vec![0x6b, 0xe6, 0xff]));
        assert_eq!(decode_url("a+b/"), None);
        assert_eq!(decode_any("a-b/"), Some(vec![0x6b, 0xe6, 0xff]));
        assert_eq!(encode_std(b"hi"), "aGk=");
    }
}
