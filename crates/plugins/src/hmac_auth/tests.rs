//! hmac-auth: configurations, signatures of real requests, every failure, the body digest.

use bytes::Bytes;
use portico_model::Kind;

use super::*;
use crate::testing::{ctx_for, index, plugin};

/// `Sun, 06 Nov 1994 08:49:37 GMT` for `secs` since the epoch.
pub(crate) fn http_date(secs: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (days, rest) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
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

/// `Authorization: Signature …` for a request, signed with `secret`.
fn authorization(
    key_id: &str,
    secret: &str,
    algorithm: &str,
    headers: &[(&str, &str)],
    target: Option<(&str, &str)>,
) -> String {
    let mut names: Vec<String> = Vec::new();
    let mut lines = format!("{key_id}\n");
    if let Some((method, uri)) = target {
        names.push("@request-target".into());
        lines.push_str(&format!("{method} {uri}\n"));
    }
    for (name, value) in headers {
        names.push(name.to_string());
        lines.push_str(&format!("{name}: {value}\n"));
    }
    let alg = signature::algorithm(algorithm).expect("known algorithm");
    let sig = hmac::sign(&hmac::Key::new(alg, secret.as_bytes()), lines.as_bytes());
    format!(
        "Signature keyId=\"{key_id}\",algorithm=\"{algorithm}\",headers=\"{}\",signature=\"{}\"",
        names.join(" "),
        b64::encode_std(sig.as_ref())
    )
}

fn consumers() -> Arc<crate::ConsumerIndex> {
    index(
        &[
            json!({"username": "jack", "labels": {"custom_id": "c-1"},
                "plugins": {"hmac-auth": {"key_id": "jack-key", "secret_key": "jack-secret"}}}),
            json!({"username": "anon"}),
        ],
        &[(
            "jack",
            "cred-1",
            json!({"hmac-auth": {"key_id": "cred-key", "secret_key": "cred-secret"}}),
        )],
    )
}

struct Req {
    method: &'static str,
    uri: &'static str,
    headers: Vec<(String, String)>,
    body: Option<&'static [u8]>,
}

impl Req {
    fn get(uri: &'static str) -> Req {
        Req {
            method: "GET",
            uri,
            headers: Vec::new(),
            body: None,
        }
    }

    fn header(mut self, name: &str, value: impl Into<String>) -> Req {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// Dated now and signed by jack over `@request-target date`.
    fn signed(self) -> Req {
        let date = http_date(now());
        let auth = authorization(
            "jack-key",
            "jack-secret",
            "hmac-sha256",
            &[("date", &date)],
            Some((self.method, self.uri)),
        );
        self.header("Date", date).header("Authorization", auth)
    }
}

fn run(conf: Value, req: Req) -> (Ctx, Flow) {
    let p = plugin(NAME, conf);
    let mut builder = http::Request::builder().method(req.method).uri(req.uri);
    for (n, v) in &req.headers {
        builder = builder.header(n.as_str(), v.as_str());
    }
    let mut ctx = ctx_for(builder);
    if p.wants_request_body() {
        ctx.request_body = Some(Bytes::from_static(req.body.unwrap_or_default()));
    }
    ctx.set_consumers(consumers());
    let flow = p.rewrite(&mut ctx);
    (ctx, flow)
}

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
        Flow::Wait(_) => unreachable!("hmac-auth never waits"),
    }
}

fn body(msg: &str) -> String {
    format!("{{\"message\":\"{msg}\"}}\n")
}

fn refused(conf: Value, req: Req) -> String {
    let (status, text, www) = answer(&run(conf, req).1);
    assert_eq!(
        (status, www.as_str()),
        (401, "hmac realm=\"hmac\""),
        "{text}"
    );
    text
}

fn check(kind: Kind, conf: Value) -> Result<(), String> {
    let obj = match kind {
        Kind::Consumer => json!({"username": "jack", "plugins": {"hmac-auth": conf}}),
        _ => json!({"id": "1", "plugins": {"hmac-auth": conf}}),
    };
    portico_model::check(kind, &obj, &crate::registry())
}

#[test]
fn configurations() {
    assert_eq!(check(Kind::PluginConfig, json!({})), Ok(()));
    assert_eq!(
        check(
            Kind::PluginConfig,
            json!({"allowed_algorithms": ["hmac-sha1"], "clock_skew": 10,
                "signed_headers": ["date", "x-custom"], "validate_request_body": true,
                "max_req_body_size": 10, "hide_credentials": true, "realm": "r",
                "anonymous_consumer": "anon"})
        ),
        Ok(())
    );
    for bad in [
        json!({"allowed_algorithms": []}),
        json!({"allowed_algorithms": ["hmac-md5"]}),
        json!({"clock_skew": 0}),
        json!({"signed_headers": [""]}),
        json!({"max_req_body_size": 0}),
        json!({"realm": ""}),
    ] {
        assert!(check(Kind::PluginConfig, bad.clone()).is_err(), "{bad}");
    }
    assert_eq!(
        check(Kind::Consumer, json!({"key_id": "k", "secret_key": "s"})),
        Ok(())
    );
    assert_eq!(
        check(Kind::Consumer, json!({"key_id": "k"})),
        Err("invalid plugins configuration: failed to check the configuration of plugin hmac-auth err: property \"secret_key\" is required".into())
    );
    assert!(check(
        Kind::Consumer,
        json!({"key_id": "k".repeat(257), "secret_key": "s"})
    )
    .is_err());
}

#[test]
fn authenticates_a_signed_request() {
    let (ctx, flow) = run(json!({}), Req::get("/a?b=1").signed());
    assert_eq!(flow, Flow::Continue);
    assert_eq!(ctx.headers["x-consumer-username"], "jack");
    assert_eq!(ctx.headers["x-consumer-custom-id"], "c-1");
    assert!(ctx.headers.get("x-credential-identifier").is_none());
    assert!(ctx.headers.get("authorization").is_some());
    // Every algorithm, and a credential's key.
    for alg in ALGORITHMS {
        let date = http_date(now());
        let auth = authorization("cred-key", "cred-secret", alg, &[("date", &date)], None);
        let req = Req::get("/")
            .header("date", date)
            .header("authorization", auth);
        let (ctx, flow) = run(json!({}), req);
        assert_eq!(flow, Flow::Continue, "{alg}");
        assert_eq!(ctx.headers["x-consumer-username"], "jack");
        assert_eq!(ctx.headers["x-credential-identifier"], "cred-1");
    }
}

#[test]
fn authorization_header_problems_are_named() {
    assert_eq!(
        refused(json!({}), Req::get("/")),
        body("client request can't be validated: missing Authorization header")
    );
    assert_eq!(
        refused(json!({}), Req::get("/").header("Authorization", "Basic abc")),
        body("client request can't be validated: Authorization header does not start with 'Signature'")
    );
}

#[test]
fn every_other_failure_reads_the_same() {
    let date = http_date(now());
    let sign = |key: &str, secret: &str, alg: &str, headers: &[(&str, &str)]| {
        authorization(key, secret, alg, headers, Some(("GET", "/")))
    };
    let dated = |auth: String| {
        Req::get("/")
            .header("Date", date.clone())
            .header("Authorization", auth)
    };
    let cases: Vec<(&str, Value, Req)> = vec![
        (
            "no keyId",
            json!({}),
            Req::get("/").header("Authorization", "Signature signature=\"eA==\""),
        ),
        (
            "no algorithm",
            json!({}),
            Req::get("/").header("Authorization", "Signature keyId=\"jack-key\",signature=\"eA==\""),
        ),
        (
            "unknown key",
            json!({}),
            dated(sign("nobody", "jack-secret", "hmac-sha256", &[("date", &date)])),
        ),
        (
            "algorithm not allowed",
            json!({"allowed_algorithms": ["hmac-sha512"]}),
            dated(sign("jack-key", "jack-secret", "hmac-sha256", &[("date", &date)])),
        ),
        (
            "unknown algorithm",
            json!({}),
            dated(
                "Signature keyId=\"jack-key\",algorithm=\"hmac-md5\",headers=\"date\",signature=\"eA==\""
                    .to_string(),
            ),
        ),
        (
            "no date",
            json!({}),
            Req::get("/").header(
                "Authorization",
                sign("jack-key", "jack-secret", "hmac-sha256", &[]),
            ),
        ),
        (
            "bad date",
            json!({}),
            Req::get("/")
                .header("Date", "yesterday")
                .header("Authorization", sign("jack-key", "jack-secret", "hmac-sha256", &[("date", "yesterday")])),
        ),
        (
            "clock skew",
            json!({"clock_skew": 60}),
            {
                let old = http_date(now() - 120);
                Req::get("/")
                    .header("Date", old.clone())
                    .header("Authorization", sign("jack-key", "jack-secret", "hmac-sha256", &[("date", &old)]))
            },
        ),
        (
            "date not signed",
            json!({}),
            dated(sign("jack-key", "jack-secret", "hmac-sha256", &[])),
        ),
        (
            "required header not signed",
            json!({"signed_headers": ["date", "x-custom"]}),
            dated(sign("jack-key", "jack-secret", "hmac-sha256", &[("date", &date)])),
        ),
        (
            "wrong secret",
            json!({}),
            dated(sign("jack-key", "other", "hmac-sha256", &[("date", &date)])),
        ),
        (
            "signature of another target",
            json!({}),
            Req::get("/other").header("Date", date.clone()).header(
                "Authorization",
                sign("jack-key", "jack-secret", "hmac-sha256", &[("date", &date)]),
            ),
        ),
    ];
    for (what, conf, req) in cases {
        assert_eq!(
            refused(conf, req),
            body("client request can't be validated"),
            "{what}"
        );
    }
}

#[test]
fn signed_headers_and_request_target() {
    let date = http_date(now());
    let auth = authorization(
        "jack-key",
        "jack-secret",
        "hmac-sha512",
        &[("date", &date), ("x-custom", "v")],
        Some(("POST", "/p?q=1")),
    );
    let mut req = Req::get("/p?q=1")
        .header("Date", date.clone())
        .header("X-Custom", "v")
        .header("Authorization", auth);
    req.method = "POST";
    let conf =
        json!({"signed_headers": ["date", "x-custom"], "allowed_algorithms": ["hmac-sha512"]});
    let (ctx, flow) = run(conf.clone(), req);
    assert_eq!(flow, Flow::Continue);
    assert_eq!(ctx.headers["x-consumer-username"], "jack");
    // A changed header value breaks the signature.
    let auth = authorization(
        "jack-key",
        "jack-secret",
        "hmac-sha512",
        &[("date", &date), ("x-custom", "v")],
        None,
    );
    let req = Req::get("/")
        .header("Date", date)
        .header("X-Custom", "changed")
        .header("Authorization", auth);
    assert_eq!(
        refused(conf, req),
        body("client request can't be validated")
    );
}

#[test]
fn request_body_digest() {
    let conf = json!({"validate_request_body": true});
    assert!(plugin(NAME, conf.clone()).wants_request_body());
    assert!(!plugin(NAME, json!({})).wants_request_body());
    let digest = |body: &[u8]| {
        format!(
            "SHA-256={}",
            b64::encode_std(digest::digest(&digest::SHA256, body).as_ref())
        )
    };
    let with_body = |body: &'static [u8], digest: Option<String>| {
        let mut req = Req::get("/").signed();
        req.body = Some(body);
        match digest {
            Some(d) => req.header("Digest", d),
            None => req,
        }
    };
    let (_, flow) = run(conf.clone(), with_body(b"hello", Some(digest(b"hello"))));
    assert_eq!(flow, Flow::Continue);
    assert_eq!(
        refused(conf.clone(), with_body(b"hello", Some(digest(b"other")))),
        body("client request can't be validated")
    );
    assert_eq!(
        refused(conf.clone(), with_body(b"hello", None)),
        body("client request can't be validated")
    );
    // An empty body has a digest too.
    let (_, flow) = run(conf, with_body(b"", Some(digest(b""))));
    assert_eq!(flow, Flow::Continue);
    // Over max_req_body_size: 413, no challenge.
    let small = json!({"validate_request_body": true, "max_req_body_size": 4});
    let (_, flow) = run(small, with_body(b"hello", Some(digest(b"hello"))));
    assert_eq!(
        answer(&flow),
        (
            413,
            body("request size 5 is greater than the maximum size 4 allowed"),
            String::new()
        )
    );
}

#[test]
fn hide_credentials_and_anonymous_consumer() {
    let (ctx, flow) = run(json!({"hide_credentials": true}), Req::get("/").signed());
    assert_eq!(flow, Flow::Continue);
    assert!(ctx.headers.get("authorization").is_none());
    let conf = json!({"anonymous_consumer": "anon", "hide_credentials": true});
    let (ctx, flow) = run(conf, Req::get("/").header("Authorization", "Signature x"));
    assert_eq!(flow, Flow::Continue);
    assert_eq!(ctx.headers["x-consumer-username"], "anon");
    assert!(ctx.headers.get("authorization").is_none());
    let (status, text, www) = answer(
        &run(
            json!({"anonymous_consumer": "ghost", "realm": "r"}),
            Req::get("/"),
        )
        .1,
    );
    assert_eq!(
        (status, text.as_str(), www.as_str()),
        (
            401,
            body("Invalid user authorization").as_str(),
            "hmac realm=\"r\""
        )
    );
}

#[test]
fn dates_round_trip() {
    for secs in [0, 784_111_777, 951_825_600, 2_147_483_647, now()] {
        assert_eq!(signature::parse_http_time(&http_date(secs)), Some(secs));
    }
    assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
}
