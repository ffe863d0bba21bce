//! TLS on both sides of the gateway: certificates chosen by SNI among `ssls` objects (§2.7, §8),
//! client certificates (`client.ca`, `skip_mtls_uri_regex`), and HTTPS / mTLS towards upstreams.

mod common;

use bytes::Bytes;
use common::net::{der, served_cert, Cert, TlsClient};
use common::{assert_error_page, upstream, Harness, Reply};
use http::Request;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use portico_testkit::upstream::{handlers, TlsSettings, Upstream};
use portico_testkit::TestCerts;
use serde_json::json;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// One HTTP/1.1 GET over an established TLS connection.
async fn get_over(
    tls: TlsStream<TcpStream>,
    host: &str,
    path: &str,
) -> Result<Reply, hyper::Error> {
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(conn);
    let req = Request::get(path)
        .header("host", host)
        .body(Full::<Bytes>::default())
        .expect("request");
    Ok(Reply::read(sender.send_request(req).await?).await)
}

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).expect("PEM file")
}

#[tokio::test]
async fn sni_picks_the_certificate_exact_before_one_label_wildcards() {
    let (wild, exact, other, off) = (
        Cert::self_signed("*.test.com"),
        Cert::self_signed("a.test.com"),
        Cert::self_signed("other.example"),
        Cert::self_signed("off.example"),
    );
    let gw = Harness::start(vec![
        (
            "ws/default/ssls/1",
            json!({"sni": "*.test.com", "cert": wild.cert, "key": wild.key}),
        ),
        (
            "ws/default/ssls/2",
            json!({"snis": ["a.test.com"], "cert": exact.cert, "key": exact.key}),
        ),
        (
            "ws/default/ssls/3",
            json!({"sni": "other.example", "cert": other.cert, "key": other.key}),
        ),
        (
            "ws/default/ssls/4",
            json!({"sni": "off.example", "cert": off.cert, "key": off.key, "status": 0}),
        ),
    ])
    .await;
    let served = |sni: &'static str| {
        let addr = gw.tls_addr;
        async move {
            TlsClient::new(sni)
                .connect(addr)
                .await
                .map(|tls| served_cert(&tls))
        }
    };
    assert_eq!(served("a.test.com").await.unwrap(), der(&exact.cert));
    assert_eq!(served("b.test.com").await.unwrap(), der(&wild.cert));
    assert_eq!(served("B.TEST.com").await.unwrap(), der(&wild.cert));
    assert_eq!(served("other.example").await.unwrap(), der(&other.cert));
    // A wildcard covers exactly one label; nothing else matches: the handshake fails.
    assert!(served("x.a.test.com").await.is_err());
    assert!(served("unknown.example").await.is_err());
    assert!(
        served("off.example").await.is_err(),
        "a disabled ssl is not used"
    );
}

#[tokio::test]
async fn client_certificates_are_required_where_client_ca_is_set() {
    let pki = TestCerts::generate();
    let server = Cert::self_signed("mtls.test");
    let plain = Cert::self_signed("plain.test");
    let up = Upstream::start("echo", handlers::echo()).await;
    let gw = Harness::start(vec![
        (
            "ws/default/ssls/mtls",
            json!({
                "sni": "mtls.test", "cert": server.cert, "key": server.key,
                "client": {"ca": read(&pki.ca), "skip_mtls_uri_regex": ["^/public/.*"]},
            }),
        ),
        (
            "ws/default/ssls/plain",
            json!({"sni": "plain.test", "cert": plain.cert, "key": plain.key}),
        ),
        (
            "ws/default/routes/1",
            json!({"uri": "/*", "upstream": upstream(&[(&up.node(), 1)], json!({}))}),
        ),
    ])
    .await;
    let anonymous = TlsClient::new("mtls.test");
    let signed =
        TlsClient::new("mtls.test").with_identity(&read(&pki.client_cert), &read(&pki.client_key));
    let stranger = Cert::self_signed("stranger");
    let unsigned = TlsClient::new("mtls.test").with_identity(&stranger.cert, &stranger.key);

    let tls = anonymous.connect(gw.tls_addr).await.unwrap();
    let reply = get_over(tls, "mtls.test", "/private").await.unwrap();
    assert_error_page(&reply, 400, "Bad Request");

    let tls = signed.connect(gw.tls_addr).await.unwrap();
    let reply = get_over(tls, "mtls.test", "/private").await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.echoed("x-forwarded-proto").unwrap(), "https");

    // skip_mtls_uri_regex exempts URIs.
    let tls = anonymous.connect(gw.tls_addr).await.unwrap();
    assert_eq!(
        get_over(tls, "mtls.test", "/public/x")
            .await
            .unwrap()
            .status,
        200
    );

    // A certificate the CA did not sign is refused in the handshake.
    let refused = match unsigned.connect(gw.tls_addr).await {
        Err(_) => true,
        Ok(tls) => get_over(tls, "mtls.test", "/private").await.is_err(),
    };
    assert!(refused, "an unsigned client certificate was accepted");

    // The Host names an mTLS certificate: a handshake under another name does not get around it.
    let tls = TlsClient::new("plain.test")
        .connect(gw.tls_addr)
        .await
        .unwrap();
    let reply = get_over(tls, "mtls.test", "/private").await.unwrap();
    assert_eq!(reply.status, 400);
    let tls = TlsClient::new("plain.test")
        .connect(gw.tls_addr)
        .await
        .unwrap();
    assert_eq!(
        get_over(tls, "plain.test", "/private")
            .await
            .unwrap()
            .status,
        200
    );
}

#[tokio::test]
async fn https_and_mtls_towards_upstreams() {
    let pki = TestCerts::generate();
    let tls = |client_ca: Option<String>| TlsSettings {
        cert: read(&pki.server_cert),
        key: read(&pki.server_key),
        client_ca,
    };
    let open = Upstream::https("open", tls(None), handlers::echo()).await;
    let strict = Upstream::https("strict", tls(Some(read(&pki.ca))), handlers::echo()).await;
    let identity = json!({
        "client_cert": read(&pki.client_cert),
        "client_key": read(&pki.client_key),
    });
    let https = |node: &str, extra: serde_json::Value| {
        let mut fields = json!({"scheme": "https"});
        if let (Some(f), Some(e)) = (fields.as_object_mut(), extra.as_object()) {
            f.extend(e.clone());
        }
        upstream(&[(node, 1)], fields)
    };
    let gw = Harness::start(vec![
        (
            "ws/default/routes/1",
            json!({"uri": "/open", "upstream": https(&open.node(), json!({}))}),
        ),
        (
            "ws/default/routes/2",
            json!({"uri": "/anon", "upstream": https(&strict.node(), json!({}))}),
        ),
        (
            "ws/default/routes/3",
            json!({"uri": "/mtls", "upstream": https(&strict.node(), json!({"tls": identity}))}),
        ),
    ])
    .await;
    let reply = gw.get("/open").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["client_cert"], false);

    let reply = gw.get("/anon").await;
    assert_eq!(
        reply.status, 502,
        "the upstream requires a client certificate"
    );

    let reply = gw.get("/mtls").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.server(), "strict");
    assert_eq!(reply.json()["client_cert"], true);
}
