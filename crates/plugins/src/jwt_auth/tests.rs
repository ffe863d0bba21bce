//! jwt-auth: consumer checks, token sources, every algorithm, claims and failures, with tokens
//! signed here by `ring` (the RSA key is checked in under `testdata/`, made with openssl).

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use portico_model::Kind;
use ring::rand::SystemRandom;
use ring::signature::{self as sig, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};

use super::*;
use crate::testing::{ctx_for, get, index, plugin};

const RSA_PRIVATE: &str = include_str!("testdata/rsa2048.key.pem");
const RSA_PUBLIC: &str = include_str!("testdata/rsa2048.pub.pem");
const RSA_PUBLIC_PKCS1: &str = include_str!("testdata/rsa2048.pkcs1.pub.pem");
const RSA_1024_PUBLIC: &str = include_str!("testdata/rsa1024.pub.pem");
const P521_PUBLIC: &str = include_str!("testdata/p521.pub.pem");
const ED448_PUBLIC: &str = include_str!("testdata/ed448.pub.pem");

/// A signing key of the tests.
enum Signer {
    Hmac(Vec<u8>),
    Rsa(RsaKeyPair, &'static dyn sig::RsaEncoding),
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

fn pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).expect("test PEM")
}

fn pem(label: &str, der: &[u8]) -> String {
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

fn rsa(encoding: &'static dyn sig::RsaEncoding) -> Signer {
    let pair = RsaKeyPair::from_pkcs8(&pem_der(RSA_PRIVATE)).expect("test RSA key");
    Signer::Rsa(pair, encoding)
}

/// An EC key pair and its public key as a `PUBLIC KEY` PEM.
fn ecdsa(p384: bool) -> (Signer, String) {
    let rng = SystemRandom::new();
    let (alg, prefix) = if p384 {
        (
            &sig::ECDSA_P384_SHA384_FIXED_SIGNING,
            "3076301006072a8648ce3d020106052b81040022036200",
        )
    } else {
        (
            &sig::ECDSA_P256_SHA256_FIXED_SIGNING,
            "3059301306072a8648ce3d020106082a8648ce3d030107034200",
        )
    };
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("generate");
    let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).expect("pair");
    let mut spki = hex(prefix);
    spki.extend_from_slice(pair.public_key().as_ref());
    (Signer::Ecdsa(pair), pem("PUBLIC KEY", &spki))
}

fn ed25519() -> (Signer, String) {
    let rng = SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("generate");
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("pair");
    let mut spki = hex("302a300506032b6570032100");
    spki.extend_from_slice(pair.public_key().as_ref());
    (Signer::Ed25519(pair), pem("PUBLIC KEY", &spki))
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

/// A compact JWS with header `{"typ":"JWT","alg":alg}` over `payload`.
fn sign(alg: &str, payload: Value, key: &Signer) -> String {
    let header = json!({"typ": "JWT", "alg": alg});
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string())
    );
    let rng = SystemRandom::new();
    let signature = match key {
        Signer::Hmac(secret) => {
            let a = match alg {
                "HS384" => ring::hmac::HMAC_SHA384,
                "HS512" => ring::hmac::HMAC_SHA512,
                _ => ring::hmac::HMAC_SHA256,
            };
            ring::hmac::sign(&ring::hmac::Key::new(a, secret), signed.as_bytes())
                .as_ref()
                .to_vec()
        }
        Signer::Rsa(pair, encoding) => {
            let mut out = vec![0; pair.public().modulus_len()];
            pair.sign(*encoding, &rng, signed.as_bytes(), &mut out)
                .expect("rsa sign");
            out
        }
        Signer::Ecdsa(pair) => pair
            .sign(&rng, signed.as_bytes())
            .expect("ecdsa sign")
            .as_ref()
            .to_vec(),
        Signer::Ed25519(pair) => pair.sign(signed.as_bytes()).as_ref().to_vec(),
    };
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature))
}

fn hs(secret: &str) -> Signer {
    Signer::Hmac(secret.as_bytes().to_vec())
}

fn in_an_hour() -> i64 {
    now() + 3600
}

fn consumers(extra: &[Value]) -> Arc<crate::ConsumerIndex> {
    let mut all = vec![
        json!({"username": "jack", "labels": {"custom_id": "c-1"},
            "plugins": {"jwt-auth": {"key": "user-key", "secret": "my-secret-key"}}}),
        json!({"username": "anon"}),
    ];
    all.extend_from_slice(extra);
    index(
        &all,
        &[(
            "jack",
            "cred-1",
            json!({"jwt-auth": {"key": "cred-key", "secret": "cred-secret"}}),
        )],
    )
}

fn run_with(
    conf: Value,
    req: http::request::Builder,
    index: Arc<crate::ConsumerIndex>,
) -> (Ctx, Flow) {
    let p = plugin(NAME, conf);
    let mut ctx = ctx_for(req);
    ctx.set_consumers(index);
    let flow = p.rewrite(&mut ctx);
    (ctx, flow)
}

fn run(conf: Value, req: http::request::Builder) -> (Ctx, Flow) {
    run_with(conf, req, consumers(&[]))
}

/// Status, body and `WWW-Authenticate` of a rejection; `(0, "", "")` when the request passed.
fn answer(flow: &Flow) -> (u16, String, String) {
    match flow {
        Flow::Respond(r) => (
            r.status.as_u16(),
            String::from_utf8_lossy(&r.body).into_owned(),
            r.headers
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string(),
        ),
        Flow::Continue => (0, String::new(), String::new()),
        Flow::Wait(_) => unreachable!("jwt-auth never waits"),
    }
}

fn message(flow: &Flow) -> String {
    answer(flow).1
}

fn body(msg: &str) -> String {
    format!("{{\"message\":\"{msg}\"}}\n")
}

fn bearer(token: &str) -> http::request::Builder {
    get("/").header("Authorization", format!("Bearer {token}"))
}

fn consumer_check(conf: Value) -> Result<(), String> {
    portico_model::check(
        Kind::Consumer,
        &json!({"username": "jack", "plugins": {"jwt-auth": conf}}),
        &crate::registry(),
    )
}

fn route_check(conf: Value) -> Result<(), String> {
    portico_model::check(
        Kind::PluginConfig,
        &json!({"id": "1", "plugins": {"jwt-auth": conf}}),
        &crate::registry(),
    )
}

#[test]
fn algorithm_names_round_trip() {
    for name in ALGORITHMS {
        assert_eq!(Alg::parse(name).map(Alg::name), Some(name));
    }
    assert_eq!(Alg::parse("none"), None);
}

#[test]
fn consumer_configurations_are_checked() {
    let prefix =
        "invalid plugins configuration: failed to check the configuration of plugin jwt-auth err: ";
    assert_eq!(consumer_check(json!({"key": "k", "secret": "s"})), Ok(()));
    assert_eq!(
        consumer_check(json!({"key": "k"})),
        Err(format!(
            "{prefix}property \"secret\" is required when using HS based algorithms"
        ))
    );
    assert_eq!(
        consumer_check(json!({"key": "k", "secret": "not base64!", "base64_secret": true})),
        Err(format!(
            "{prefix}base64_secret required but the secret is not in base64 format"
        ))
    );
    assert_eq!(
        consumer_check(json!({"key": "k", "secret": "c2VjcmV0", "base64_secret": true})),
        Ok(())
    );
    assert!(consumer_check(json!({"secret": "s"}))
        .is_err_and(|e| e.ends_with("property \"key\" is required")));
    assert!(
        consumer_check(json!({"key": "k", "secret": "s", "algorithm": "none"}))
            .is_err_and(|e| e.contains("matches none of the enum values"))
    );
    // Asymmetric algorithms need a public key (APISIX's dependent schema).
    let e = consumer_check(json!({"key": "k", "algorithm": "RS256"})).unwrap_err();
    assert_eq!(
        e,
        format!("{prefix}failed to validate dependent schema for \"algorithm\": value should match only one schema, but matches none")
    );
    for (alg, key) in [
        ("RS256", RSA_PUBLIC.to_string()),
        ("RS512", RSA_PUBLIC_PKCS1.to_string()),
        ("PS384", RSA_PUBLIC.to_string()),
        ("ES256", ecdsa(false).1),
        ("ES384", ecdsa(true).1),
        ("EdDSA", ed25519().1),
    ] {
        assert_eq!(
            consumer_check(json!({"key": "k", "algorithm": alg, "public_key": key})),
            Ok(()),
            "{alg}"
        );
    }
    // What ring cannot verify is refused when written.
    let refused = |alg: &str, key: &str| {
        consumer_check(json!({"key": "k", "algorithm": alg, "public_key": key})).unwrap_err()
    };
    assert_eq!(
        refused("ES512", P521_PUBLIC),
        format!("{prefix}algorithm ES512 (ECDSA P-521) is not supported by Portico")
    );
    assert_eq!(
        refused("EdDSA", ED448_PUBLIC),
        format!("{prefix}Ed448 keys are not supported by Portico (Ed25519 is)")
    );
    assert_eq!(
        refused("RS256", RSA_1024_PUBLIC),
        format!("{prefix}RSA public keys must have 2048 to 8192 bits, this one has 1024")
    );
    assert_eq!(
        refused("ES256", RSA_PUBLIC),
        format!("{prefix}public_key is an RSA key, not a key for ES256")
    );
    assert_eq!(
        refused("RS256", "not a key"),
        format!("{prefix}public_key is not a PEM-encoded key")
    );
    assert_eq!(
        refused("RS256", RSA_PRIVATE),
        format!(
            "{prefix}public_key must be a PEM \"PUBLIC KEY\" or \"RSA PUBLIC KEY\", not \"PRIVATE KEY\""
        )
    );
}

#[test]
fn route_configurations_are_checked() {
    assert_eq!(route_check(json!({})), Ok(()));
    assert_eq!(
        route_check(
            json!({"header": "x-jwt", "query": "t", "cookie": "c", "hide_credentials": true,
            "key_claim_name": "iss", "store_in_ctx": true, "realm": "r", "anonymous_consumer": "anon",
            "claims_to_verify": ["exp", "nbf"]})
        ),
        Ok(())
    );
    for bad in [
        json!({"key_claim_name": ""}),
        json!({"claims_to_verify": ["iat"]}),
        json!({"claims_to_verify": ["exp", "exp"]}),
        json!({"realm": "a\"b"}),
        json!({"hide_credentials": "yes"}),
    ] {
        assert!(route_check(bad.clone()).is_err(), "{bad}");
    }
}

#[test]
fn missing_and_malformed_tokens() {
    let (_, flow) = run(json!({}), get("/"));
    assert_eq!(
        answer(&flow),
        (
            401,
            body("Missing JWT token in request"),
            "Bearer realm=\"jwt\"".into()
        )
    );
    for token in ["", "abc", "a.b.c", "x.y"] {
        let (_, flow) = run(json!({"realm": "mine"}), bearer(token));
        assert_eq!(
            answer(&flow),
            (
                401,
                body("JWT token invalid"),
                "Bearer realm=\"mine\"".into()
            ),
            "{token:?}"
        );
    }
    let no_key = sign("HS256", json!({"sub": "x"}), &hs("my-secret-key"));
    assert_eq!(
        message(&run(json!({}), bearer(&no_key)).1),
        body("missing user key in JWT token")
    );
    for key in [json!("nobody"), json!(7), json!(null)] {
        let token = sign("HS256", json!({"key": key}), &hs("my-secret-key"));
        assert_eq!(
            message(&run(json!({}), bearer(&token)).1),
            body("Invalid user key in JWT token")
        );
    }
}

#[test]
fn token_from_header_query_or_cookie() {
    let token = sign(
        "HS256",
        json!({"key": "user-key", "exp": in_an_hour()}),
        &hs("my-secret-key"),
    );
    for req in [
        bearer(&token),
        get("/").header("Authorization", format!("bearer {token}")),
        get("/").header("Authorization", token.clone()),
        get(&format!("/?jwt={token}")),
        get("/").header("Cookie", format!("a=1; jwt={token}")),
    ] {
        let (ctx, flow) = run(json!({}), req);
        assert_eq!(flow, Flow::Continue);
        assert_eq!(ctx.headers["x-consumer-username"], "jack");
        assert_eq!(ctx.headers["x-consumer-custom-id"], "c-1");
        assert!(ctx.headers.get("x-credential-identifier").is_none());
    }
    // Other names.
    let conf = json!({"header": "X-Token", "query": "t", "cookie": "c"});
    for req in [
        get("/").header("x-token", token.clone()),
        get(&format!("/?t={token}")),
        get("/").header("Cookie", format!("c={token}")),
    ] {
        assert_eq!(run(conf.clone(), req).1, Flow::Continue);
    }
    // The header wins over the query.
    let (_, flow) = run(
        json!({}),
        get(&format!("/?jwt={token}")).header("Authorization", "x"),
    );
    assert_eq!(message(&flow), body("JWT token invalid"));
}

#[test]
fn hide_credentials_removes_what_was_used() {
    let token = sign("HS256", json!({"key": "user-key"}), &hs("my-secret-key"));
    let conf = json!({"hide_credentials": true});
    let (ctx, flow) = run(conf.clone(), bearer(&token));
    assert_eq!(flow, Flow::Continue);
    assert!(ctx.headers.get("authorization").is_none());
    let (ctx, _) = run(conf.clone(), get(&format!("/p?a=1&jwt={token}&b=2")));
    assert_eq!(ctx.uri.to_string(), "/p?a=1&b=2");
    let (ctx, _) = run(
        conf.clone(),
        get("/").header("Cookie", format!("a=1; jwt={token}; b=2")),
    );
    assert_eq!(ctx.headers["cookie"], "a=1; b=2");
    let (ctx, _) = run(conf, get("/").header("Cookie", format!("jwt={token}")));
    assert!(ctx.headers.get("cookie").is_none());
    // Not hidden by default.
    let (ctx, _) = run(json!({}), bearer(&token));
    assert!(ctx.headers.get("authorization").is_some());
}

#[test]
fn signature_algorithm_and_claims_are_verified() {
    let verify = |token: &str| message(&run(json!({}), bearer(token)).1);
    let failed = body("failed to verify jwt");
    let wrong_secret = sign("HS256", json!({"key": "user-key"}), &hs("other"));
    assert_eq!(verify(&wrong_secret), failed);
    // The token's alg must be the consumer's (HS256 by default).
    let hs512 = sign("HS512", json!({"key": "user-key"}), &hs("my-secret-key"));
    assert_eq!(verify(&hs512), failed);
    let unsigned = sign("HS256", json!({"key": "user-key"}), &hs("my-secret-key"));
    let unsigned = &unsigned[..unsigned.rfind('.').expect("dot") + 1];
    assert_eq!(verify(unsigned), failed);
    let expired = sign(
        "HS256",
        json!({"key": "user-key", "exp": now() - 10}),
        &hs("my-secret-key"),
    );
    assert_eq!(verify(&expired), failed);
    let early = sign(
        "HS256",
        json!({"key": "user-key", "nbf": now() + 100}),
        &hs("my-secret-key"),
    );
    assert_eq!(verify(&early), failed);
    let no_exp = sign("HS256", json!({"key": "user-key"}), &hs("my-secret-key"));
    assert_eq!(verify(&no_exp), "");
    // claims_to_verify makes the listed claims mandatory.
    let (_, flow) = run(json!({"claims_to_verify": ["exp"]}), bearer(&no_exp));
    assert_eq!(message(&flow), failed);
}

#[test]
fn lifetime_grace_period_and_key_claim_name() {
    let graced = consumers(&[json!({"username": "slow", "plugins": {"jwt-auth": {
        "key": "slow-key", "secret": "s", "lifetime_grace_period": 60}}})]);
    let late = sign(
        "HS256",
        json!({"key": "slow-key", "exp": now() - 10}),
        &hs("s"),
    );
    let (ctx, flow) = run_with(json!({}), bearer(&late), graced.clone());
    assert_eq!(flow, Flow::Continue);
    assert_eq!(ctx.headers["x-consumer-username"], "slow");
    let too_late = sign(
        "HS256",
        json!({"key": "slow-key", "exp": now() - 100}),
        &hs("s"),
    );
    assert_eq!(
        message(&run_with(json!({}), bearer(&too_late), graced).1),
        body("failed to verify jwt")
    );
    let by_iss = sign("HS256", json!({"iss": "user-key"}), &hs("my-secret-key"));
    assert_eq!(
        run(json!({"key_claim_name": "iss"}), bearer(&by_iss)).1,
        Flow::Continue
    );
    assert_eq!(
        message(&run(json!({}), bearer(&by_iss)).1),
        body("missing user key in JWT token")
    );
}

#[test]
fn every_supported_algorithm() {
    let (p256, p256_pem) = ecdsa(false);
    let (p384, p384_pem) = ecdsa(true);
    let (ed, ed_pem) = ed25519();
    let cases: Vec<(&str, Signer, Value)> = vec![
        ("HS384", hs("s384"), json!({"secret": "s384"})),
        ("HS512", hs("s512"), json!({"secret": "s512"})),
        (
            "HS256",
            Signer::Hmac(b"raw\x00secret".to_vec()),
            json!({"secret": STANDARD.encode(b"raw\x00secret"), "base64_secret": true}),
        ),
        (
            "RS256",
            rsa(&sig::RSA_PKCS1_SHA256),
            json!({"public_key": RSA_PUBLIC}),
        ),
        (
            "RS384",
            rsa(&sig::RSA_PKCS1_SHA384),
            json!({"public_key": RSA_PUBLIC_PKCS1}),
        ),
        (
            "RS512",
            rsa(&sig::RSA_PKCS1_SHA512),
            json!({"public_key": RSA_PUBLIC}),
        ),
        (
            "PS256",
            rsa(&sig::RSA_PSS_SHA256),
            json!({"public_key": RSA_PUBLIC}),
        ),
        (
            "PS512",
            rsa(&sig::RSA_PSS_SHA512),
            json!({"public_key": RSA_PUBLIC}),
        ),
        ("ES256", p256, json!({"public_key": p256_pem})),
        ("ES384", p384, json!({"public_key": p384_pem})),
        ("EdDSA", ed, json!({"public_key": ed_pem})),
    ];
    for (i, (alg, signer, mut conf)) in cases.into_iter().enumerate() {
        let key = format!("key-{i}");
        conf["key"] = json!(key);
        conf["algorithm"] = json!(alg);
        assert_eq!(consumer_check(conf.clone()), Ok(()), "{alg}");
        let index =
            consumers(&[json!({"username": format!("u{i}"), "plugins": {"jwt-auth": conf}})]);
        let token = sign(alg, json!({"key": key, "exp": in_an_hour()}), &signer);
        let (ctx, flow) = run_with(json!({}), bearer(&token), index.clone());
        assert_eq!(flow, Flow::Continue, "{alg}");
        assert_eq!(ctx.headers["x-consumer-username"], format!("u{i}").as_str());
        // A flipped signature byte fails.
        let (signed, signature) = token.rsplit_once('.').expect("dot");
        let mut bytes = URL_SAFE_NO_PAD.decode(signature).expect("b64");
        bytes[0] ^= 1;
        let forged = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(bytes));
        let (_, flow) = run_with(json!({}), bearer(&forged), index);
        assert_eq!(message(&flow), body("failed to verify jwt"), "{alg}");
    }
}

#[test]
fn credentials_anonymous_and_store_in_ctx() {
    let token = sign("HS256", json!({"key": "cred-key"}), &hs("cred-secret"));
    let (ctx, flow) = run(
        json!({"store_in_ctx": true}),
        bearer(&token).header("X-Consumer-Custom-ID", "forged"),
    );
    assert_eq!(flow, Flow::Continue);
    assert_eq!(ctx.headers["x-consumer-username"], "jack");
    assert_eq!(ctx.headers["x-credential-identifier"], "cred-1");
    assert_eq!(ctx.headers["x-consumer-custom-id"], "c-1");
    assert_eq!(
        ctx.data.get::<JwtPayload>(),
        Some(&JwtPayload(json!({"key": "cred-key"})))
    );
    let (ctx, flow) = run(json!({"anonymous_consumer": "anon"}), get("/"));
    assert_eq!(flow, Flow::Continue);
    assert_eq!(ctx.headers["x-consumer-username"], "anon");
    assert!(ctx.data.get::<JwtPayload>().is_none());
    let (_, flow) = run(json!({"anonymous_consumer": "ghost"}), bearer("x.y.z"));
    assert_eq!(
        answer(&flow),
        (
            401,
            body("Invalid user authorization"),
            "Bearer realm=\"jwt\"".into()
        )
    );
}
