//! real-ip on real contexts (cases from APISIX's `t/plugin/real-ip.t`).

use portico_expr::Vars;

use super::*;
use crate::testing::{ctx_for, get, plugin};

/// The `remote_addr` and `remote_port` after real-ip ran on `req` from `peer`.
fn client(conf: Value, req: http::request::Builder, peer: &str) -> (String, String) {
    let p = plugin(NAME, conf);
    let mut ctx = ctx_for(req);
    ctx.remote = peer.parse().expect("peer");
    assert_eq!(p.rewrite(&mut ctx), Flow::Continue);
    let var = |n: &str| ctx.var(n).map(|v| v.into_owned()).unwrap_or_default();
    assert_eq!(var("remote_addr"), ctx.remote.ip().to_string());
    (var("remote_addr"), var("remote_port"))
}

fn addr(conf: Value, req: http::request::Builder) -> String {
    client(conf, req, "127.0.0.1:40000").0
}

#[test]
fn from_a_header_variable() {
    let conf = json!({"source": "http_xff"});
    assert_eq!(
        addr(conf.clone(), get("/").header("xff", "1.1.1.1")),
        "1.1.1.1"
    );
    assert_eq!(
        client(
            conf.clone(),
            get("/").header("xff", "1.1.1.1:7090"),
            "127.0.0.1:1"
        ),
        ("1.1.1.1".to_string(), "7090".to_string())
    );
    assert_eq!(
        client(
            conf.clone(),
            get("/").header("xff", "1.1.1.1"),
            "127.0.0.1:1"
        ),
        ("1.1.1.1".to_string(), String::new())
    );
    assert_eq!(addr(conf.clone(), get("/").header("xff", "::2")), "::2");
    assert_eq!(addr(conf.clone(), get("/").header("xff", "[::2]")), "::2");
    assert_eq!(
        client(
            conf.clone(),
            get("/").header("xff", "[::2]:80"),
            "127.0.0.1:1"
        ),
        ("::2".to_string(), "80".to_string())
    );
    // Missing, bad address, bad port: unchanged.
    assert_eq!(addr(conf.clone(), get("/")), "127.0.0.1");
    assert_eq!(
        addr(conf.clone(), get("/").header("xff", "1.1.1.1.1")),
        "127.0.0.1"
    );
    assert_eq!(
        addr(conf.clone(), get("/").header("xff", "1.1.1.1:65536")),
        "127.0.0.1"
    );
    assert_eq!(
        addr(conf.clone(), get("/").header("xff", "1.1.1.1:0")),
        "127.0.0.1"
    );
    assert_eq!(
        addr(conf, get("/").header("xff", "example.com")),
        "127.0.0.1"
    );
    // Any variable: a query argument.
    assert_eq!(
        addr(json!({"source": "arg_realip"}), get("/?realip=2.2.2.2")),
        "2.2.2.2"
    );
}

#[test]
fn from_x_forwarded_for() {
    let conf = json!({"source": "http_x_forwarded_for"});
    assert_eq!(
        addr(conf.clone(), get("/").header("x-forwarded-for", "::1, ::2")),
        "::2"
    );
    assert_eq!(
        addr(
            conf.clone(),
            get("/")
                .header("x-forwarded-for", "::1")
                .header("x-forwarded-for", "3.3.3.3, 4.4.4.4")
        ),
        "4.4.4.4"
    );
    assert_eq!(
        addr(conf, get("/").header("x-forwarded-for", "5.5.5.5")),
        "5.5.5.5"
    );
}

#[test]
fn trusted_addresses_and_recursion() {
    let trusted = json!({"source": "http_x_forwarded_for",
                         "trusted_addresses": ["192.128.0.0/16", "127.0.0.0/24"]});
    let req = || get("/").header("x-forwarded-for", "1.1.1.1");
    // A peer outside the trusted addresses is not believed.
    assert_eq!(client(trusted.clone(), req(), "10.0.0.1:1").0, "10.0.0.1");
    assert_eq!(client(trusted.clone(), req(), "127.0.0.1:1").0, "1.1.1.1");
    // Without `recursive`: the last entry, trusted or not.
    let chain = || get("/").header("x-forwarded-for", "1.1.1.1, 192.128.1.1, 127.0.0.1");
    assert_eq!(addr(trusted.clone(), chain()), "127.0.0.1");
    // With it: the rightmost untrusted entry, or the first when all are trusted.
    let mut recursive = trusted;
    recursive["recursive"] = json!(true);
    assert_eq!(addr(recursive.clone(), chain()), "1.1.1.1");
    assert_eq!(
        addr(
            recursive.clone(),
            get("/").header("x-forwarded-for", "9.9.9.9, 8.8.8.8,192.128.1.1")
        ),
        "8.8.8.8"
    );
    assert_eq!(
        addr(
            recursive,
            get("/").header("x-forwarded-for", "127.0.0.2, 192.128.1.1")
        ),
        "127.0.0.2"
    );
}

#[test]
fn keeps_the_peer_in_realip_variables() {
    let p = plugin(NAME, json!({"source": "http_x_real_ip"}));
    let mut ctx = ctx_for(get("/").header("x-real-ip", "6.6.6.6:81"));
    ctx.remote = "10.1.1.1:5000".parse().expect("peer");
    assert_eq!(p.rewrite(&mut ctx), Flow::Continue);
    assert_eq!(ctx.remote, "6.6.6.6:81".parse().expect("addr"));
    assert_eq!(ctx.var("realip_remote_addr").as_deref(), Some("10.1.1.1"));
    assert_eq!(ctx.var("realip_remote_port").as_deref(), Some("5000"));
}

#[test]
fn parse_addr_follows_apisix() {
    assert_eq!(parse_addr("1.2.3.4"), ("1.2.3.4", None));
    assert_eq!(parse_addr("1.2.3.4:80"), ("1.2.3.4", Some(80.0)));
    assert_eq!(parse_addr("1.2.3.4:x"), ("1.2.3.4", None));
    assert_eq!(parse_addr("2001:db8::68"), ("2001:db8::68", None));
    assert_eq!(parse_addr("[::1]"), ("[::1]", None));
    assert_eq!(parse_addr("[::1]:8080"), ("[::1]", Some(8080.0)));
    assert_eq!(parse_addr("[::1"), ("[::1", None));
    assert_eq!(parse_addr("é:1"), ("é", Some(1.0)));
}

#[test]
fn checks() {
    let registry = crate::registry();
    let check = |conf: Value| {
        portico_model::check(
            portico_model::Kind::PluginConfig,
            &json!({"id": "1", "plugins": {"real-ip": conf}}),
            &registry,
        )
    };
    assert_eq!(
        check(
            json!({"source": "http_x_forwarded_for", "trusted_addresses": ["10.0.0.0/8", "::1"]})
        ),
        Ok(())
    );
    for bad in [
        json!({}),
        json!({"source": ""}),
        json!({"source": "x", "trusted_addresses": []}),
        json!({"source": "x", "trusted_addresses": ["not-an-ip"]}),
        json!({"source": "x", "recursive": 1}),
    ] {
        assert!(check(bad.clone()).is_err(), "{bad}");
    }
}
