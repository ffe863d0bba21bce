//! A JWS in compact form and its registered claims (`apisix/plugins/jwt-auth/parser.lua` over
//! lua-resty-jwt's `load_jwt`).

use serde_json::Value;

use super::b64;

/// A parsed, not yet verified token.
#[derive(Debug)]
pub struct Jwt<'a> {
    /// The decoded header (`alg` is read from it).
    pub header: Value,
    /// The decoded payload (claims).
    pub payload: Value,
    /// `<header>.<payload>` as sent: what the signature covers.
    pub signed: &'a str,
    /// The signature segment as sent (base64url).
    pub signature: &'a str,
}

impl<'a> Jwt<'a> {
    /// Parses `header.payload.signature`: exactly three segments, header and payload non-empty,
    /// base64url (padding optional) of JSON. `None` = "JWT token invalid".
    pub fn parse(token: &'a str) -> Option<Jwt<'a>> {
        let (signed, signature) = token.rsplit_once('.')?;
        let (header, payload) = signed.split_once('.')?;
        if header.is_empty() || payload.is_empty() || payload.contains('.') {
            return None;
        }
        let json = |segment: &str| -> Option<Value> {
            serde_json::from_slice(&b64::decode_any(segment)?).ok()
        };
        Some(Jwt {
            header: json(header)?,
            payload: json(payload)?,
            signed,
            signature,
        })
    }

    /// The header's `alg`, if it is a string.
    pub fn alg(&self) -> Option<&str> {
        self.header.get("alg").and_then(Value::as_str)
    }

    /// The decoded signature (`ngx.base64.decode_base64url`).
    pub fn signature_bytes(&self) -> Option<Vec<u8>> {
        b64::decode_url(self.signature)
    }

    /// Checks `exp` and `nbf` at `now` (seconds) with `grace` seconds of leeway. With no
    /// `required` claims, each of the two is checked only when present; otherwise the listed
    /// ones must be present. The error is for the log (clients see "failed to verify jwt").
    pub fn verify_claims(&self, required: &[String], grace: i64, now: i64) -> Result<(), String> {
        const DEFAULT: [&str; 2] = ["nbf", "exp"];
        let names: Vec<&str> = if required.is_empty() {
            DEFAULT.to_vec()
        } else {
            required.iter().map(String::as_str).collect()
        };
        for name in names {
            let claim = match self.payload.get(name) {
                Some(claim) => claim,
                None if required.is_empty() => continue,
                None => return Err(format!("claim {name} is missing")),
            };
            let Some(value) = claim.as_f64() else {
                return Err(format!("claim {name} is not a number"));
            };
            let (now, grace) = (now as f64, grace as f64);
            match name {
                "nbf" if value >= now + grace => {
                    return Err(format!("'nbf' claim not valid until {value}"));
                }
                "exp" if value <= now - grace => {
                    return Err(format!("'exp' claim expired at {value}"));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn token(header: &Value, payload: &Value) -> String {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        format!(
            "{}.{}.c2ln",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(payload.to_string())
        )
    }

    #[test]
    fn parses_three_segments_of_json() {
        let t = token(&json!({"alg": "HS256"}), &json!({"key": "k"}));
        let jwt = Jwt::parse(&t).expect("valid");
        assert_eq!(jwt.alg(), Some("HS256"));
        assert_eq!(jwt.payload["key"], "k");
        assert_eq!(jwt.signature_bytes(), Some(b"sig".to_vec()));
        assert!(t.starts_with(jwt.signed));
        // An empty signature parses (and later fails to verify).
        let unsigned = t.trim_end_matches("c2ln");
        assert!(Jwt::parse(unsigned).is_some());
        for bad in [
            "abc",
            "a.b",
            "a.b.c.d",
            ".eyJrZXkiOiJrIn0.x",
            "eyJhbGciOiJIUzI1NiJ9..x",
            "bm90IGpzb24.bm90IGpzb24.x",
        ] {
            assert!(Jwt::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn claims_with_grace() {
        let now = 1_000_000;
        let jwt = |payload: Value| {
            let t = token(&json!({"alg": "HS256"}), &payload);
            let parsed = Jwt::parse(&t).expect("valid");
            (parsed.header, parsed.payload)
        };
        let check = |payload: Value, required: &[&str], grace: i64| {
            let (header, payload) = jwt(payload);
            let j = Jwt {
                header,
                payload,
                signed: "",
                signature: "",
            };
            let required: Vec<String> = required.iter().map(|s| s.to_string()).collect();
            j.verify_claims(&required, grace, now)
        };
        assert!(check(json!({}), &[], 0).is_ok());
        assert!(check(json!({"exp": now + 1}), &[], 0).is_ok());
        assert!(check(json!({"exp": now}), &[], 0).is_err());
        assert!(check(json!({"exp": now - 5}), &[], 10).is_ok());
        assert!(check(json!({"nbf": now - 1}), &[], 0).is_ok());
        assert!(check(json!({"nbf": now}), &[], 0).is_err());
        assert!(check(json!({"nbf": now + 5}), &[], 5).is_err());
        assert!(check(json!({"nbf": now + 5}), &[], 6).is_ok());
        assert!(check(json!({"exp": "soon"}), &[], 0).is_err());
        // Listed claims are required.
        assert_eq!(
            check(json!({"exp": now + 10}), &["exp", "nbf"], 0),
            Err("claim nbf is missing".to_string())
        );
        // ... and only those are checked.
        assert!(check(json!({"exp": now + 10, "nbf": now + 10}), &["exp"], 0).is_ok());
    }
}
