//! SSL object checks (`apisix/ssl.lua:check_ssl_conf`). Keys must be plaintext here: callers
//! that merge a PATCH onto a stored object decrypt it first.

use super::pem::validate_pair;
use crate::schema::validate_in_place;
use serde_json::Value;

/// Validates an SSL object in place.
pub(crate) fn check(conf: &mut Value) -> Result<(), String> {
    validate_in_place(crate::Kind::Ssl.schema(), conf)
        .map_err(|e| format!("invalid configuration: {e}"))?;
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    if let Some(cert) = text(conf, "cert") {
        validate_pair(&cert, text(conf, "key").as_deref())?;
    }
    if conf.get("type").and_then(Value::as_str) == Some("client") {
        return Ok(());
    }
    let list = |k: &str| -> Vec<Value> {
        conf.get(k)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let (certs, keys) = (list("certs"), list("keys"));
    if certs.len() != keys.len() {
        return Err("mismatched number of certs and keys".to_string());
    }
    for (i, (cert, key)) in certs.iter().zip(&keys).enumerate() {
        validate_pair(cert.as_str().unwrap_or_default(), key.as_str())
            .map_err(|e| format!("failed to handle cert-key pair[{}]: {e}", i + 1))?;
    }
    if let Some(ca) = conf
        .get("client")
        .and_then(|c| c.get("ca"))
        .and_then(Value::as_str)
    {
        validate_pair(ca, None).map_err(|e| format!("failed to validate client_cert: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::pem::fixtures::{cert, key};
    use super::*;
    use serde_json::json;

    fn err(v: Value) -> String {
        check(&mut v.clone()).expect_err("should fail")
    }

    #[test]
    fn server_certificates() {
        assert!(
            check(&mut json!({"id": "1", "cert": cert(), "key": key(), "sni": "example.com"}))
                .is_ok()
        );
        assert!(check(
            &mut json!({"cert": cert(), "key": key(), "snis": ["*.example.com", "a.com"]})
        )
        .is_ok());
        assert_eq!(
            err(json!({"cert": cert(), "key": key()})),
            "invalid configuration: then clause did not match"
        );
        assert_eq!(
            err(json!({"cert": cert(), "key": key(), "snis": []})),
            "invalid configuration: property \"snis\" validation failed: expect array to have at least 1 items"
        );
        assert_eq!(
            err(json!({"cert": cert(), "key": key(), "sni": "a.com", "name": "x"})),
            "invalid configuration: additional properties forbidden, found name"
        );
    }

    #[test]
    fn client_certificates_need_no_sni() {
        assert!(check(&mut json!({"type": "client", "cert": cert(), "key": key()})).is_ok());
        assert_eq!(
            err(json!({"type": "client", "cert": cert()})),
            "invalid configuration: else clause did not match"
        );
    }

    #[test]
    fn pem_and_pairs() {
        let bad = "x".repeat(200);
        assert_eq!(
            err(json!({"cert": bad, "key": key(), "sni": "a.com"})),
            "failed to parse cert: PEM_read_bio_X509_AUX() failed"
        );
        assert_eq!(
            err(json!({"cert": cert(), "key": "k".repeat(100), "sni": "a.com"})),
            "failed to parse key: PEM_read_bio_PrivateKey() failed"
        );
        assert_eq!(
            err(
                json!({"cert": cert(), "key": key(), "sni": "a.com", "certs": [cert()], "keys": []})
            ),
            "mismatched number of certs and keys"
        );
        assert_eq!(
            err(json!({"cert": cert(), "key": key(), "sni": "a.com", "certs": [cert()], "keys": ["k".repeat(100)]})),
            "failed to handle cert-key pair[1]: failed to parse key: PEM_read_bio_PrivateKey() failed"
        );
        assert_eq!(
            err(
                json!({"cert": cert(), "key": key(), "sni": "a.com", "client": {"ca": "c".repeat(200)}})
            ),
            "failed to validate client_cert: failed to parse cert: PEM_read_bio_X509_AUX() failed"
        );
        assert_eq!(
            err(json!({"cert": cert(), "key": key(), "sni": "a.com", "ssl_protocols": ["SSLv3"]})),
            "invalid configuration: property \"ssl_protocols\" validation failed: failed to validate item 1: matches none of the enum values"
        );
    }
}
