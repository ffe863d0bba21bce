//! cors: preflight answers, headers on responses, origins by list, regex and metadata.

use http::Method;
use portico_model::{check, Kind};
use portico_testkit::upstream::{handlers, Upstream};
use serde_json::{json, Value};

use crate::common::{Harness, Reply};
use crate::{accepted, edit_under_traffic, refused, request, route, send, Traffic};

#[test]
fn cors_config_on_write() {
    accepted("cors", json!({}));
    accepted(
        "cors",
        json!({"allow_origins": "http://a.com,https://b.com:8081", "allow_credential": true,
        "allow_methods": "GET,POST", "allow_headers": "x-a", "expose_headers": "x-b"}),
    );
    accepted(
        "cors",
        json!({"allow_origins": "**", "allow_methods": "**", "allow_headers": "**", "allow_credential": true}),
    );
    let star = "failed to check the configuration of plugin cors err: you can not set '*' for other option when 'allow_credential' is true";
    assert_eq!(refused("cors", json!({"allow_credential": true})), star);
    assert_eq!(
        refused(
            "cors",
            json!({"allow_credential": true, "allow_origins": "**", "allow_methods": "**",
            "allow_headers": "**", "timing_allow_origins": "*"})
        ),
        star
    );
    assert_eq!(
        refused("cors", json!({"allow_origins": "a.com"})),
        "failed to check the configuration of plugin cors err: property \"allow_origins\" validation failed: failed to match pattern \"^(\\\\*|\\\\*\\\\*|null|\\\\w+://[^,]+(,\\\\w+://[^,]+)*)$\" with \"a.com\""
    );
    assert_eq!(
        refused("cors", json!({"allow_origins_by_regex": ["(bad"]})),
        "failed to check the configuration of plugin cors err: pcre_compile() failed: missing ) in \"(bad\""
    );
    assert_eq!(
        refused("cors", json!({"allow_origins_by_metadata": []})),
        "failed to check the configuration of plugin cors err: property \"allow_origins_by_metadata\" validation failed: expect array to have at least 1 items"
    );
    let registry = portico_plugins::registry();
    let meta = |conf: Value| check(Kind::PluginMetadata, &conf, &registry);
    assert_eq!(
        meta(json!({"id": "cors", "allow_origins": {"k": "http://a.com,http://b.com"}})),
        Ok(())
    );
    assert_eq!(
        meta(json!({"id": "cors", "allow_origins": {"k": "a.com"}})),
        Err("invalid configuration: property \"allow_origins\" validation failed: failed to validate additional property k: failed to match pattern \"^(\\\\*|\\\\*\\\\*|null|\\\\w+://[^,]+(,\\\\w+://[^,]+)*)$\" with \"a.com\"".into())
    );
    assert_eq!(registry.get("cors").map(|s| s.priority), Some(4000));
}

fn cors_summary(r: &Reply) -> String {
    format!(
        "{} {}",
        r.status.as_u16(),
        r.header("access-control-allow-origin").unwrap_or("-")
    )
}

#[tokio::test]
async fn cors_preflight_and_responses() {
    let up = Upstream::start("echo", handlers::echo()).await;
    let gw = Harness::start(vec![
        (
            "ws/default/plugin_configs/cors",
            json!({"plugins": {"cors": {"allow_origins": "http://a.com,http://b.com",
                "allow_methods": "GET,POST", "allow_headers": "**", "expose_headers": "x-echo",
                "max_age": 600, "allow_credential": true, "timing_allow_origins": "http://b.com"}}}),
        ),
        ("ws/default/routes/1", route("/hello", &up.node(), "cors")),
    ])
    .await;
    // A preflight is answered by the gateway.
    let hits = up.hits();
    let preflight = send(
        &gw,
        Method::OPTIONS,
        "/hello",
        &[
            ("Origin", "http://b.com"),
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "x-one,x-two"),
        ],
        "",
    )
    .await;
    assert_eq!(preflight.status, 200);
    assert!(preflight.body.is_empty());
    assert_eq!(up.hits(), hits, "the upstream saw the preflight");
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some("http://b.com")
    );
    assert_eq!(
        preflight.header("access-control-allow-methods"),
        Some("GET,POST")
    );
    assert_eq!(
        preflight.header("access-control-allow-headers"),
        Some("x-one,x-two")
    );
    assert_eq!(
        preflight.header("access-control-expose-headers"),
        Some("x-echo")
    );
    assert_eq!(preflight.header("access-control-max-age"), Some("600"));
    assert_eq!(
        preflight.header("access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(
        preflight.header("timing-allow-origin"),
        Some("http://b.com")
    );
    assert_eq!(preflight.header("vary"), Some("Origin"));
    // Any OPTIONS request, preflight or not.
    assert_eq!(
        send(&gw, Method::OPTIONS, "/hello", &[], "").await.status,
        200
    );
    assert_eq!(up.hits(), hits);
    // Normal requests reach the upstream and get the headers on its response.
    let get = send(
        &gw,
        Method::GET,
        "/hello",
        &[
            ("Origin", "http://a.com"),
            ("Access-Control-Request-Headers", "x-r"),
        ],
        "",
    )
    .await;
    assert_eq!(get.status, 200);
    assert_eq!(get.echoed("origin").as_deref(), Some("http://a.com"));
    assert_eq!(
        get.header("access-control-allow-origin"),
        Some("http://a.com")
    );
    assert_eq!(get.header("access-control-allow-headers"), Some("x-r"));
    assert_eq!(get.header("timing-allow-origin"), None);
    // A disallowed origin is proxied without CORS headers.
    let other = send(
        &gw,
        Method::GET,
        "/hello",
        &[("Origin", "http://c.com")],
        "",
    )
    .await;
    assert_eq!(other.status, 200);
    assert_eq!(other.header("access-control-allow-origin"), None);
    assert_eq!(other.header("access-control-allow-methods"), None);
    assert_eq!(other.header("vary"), Some("Origin"));

    let traffic = Traffic::start(
        &gw,
        |url| {
            request(
                Method::GET,
                &format!("{url}/hello"),
                &[("Origin", "http://c.com")],
                "",
            )
        },
        cors_summary,
    );
    edit_under_traffic(traffic, "200 -", "200 *", || {
        gw.put(vec![(
            "ws/default/plugin_configs/cors",
            json!({"plugins": {"cors": {}}}),
        )]);
    })
    .await;
    let defaults = send(&gw, Method::GET, "/hello", &[], "").await;
    assert_eq!(defaults.header("access-control-allow-methods"), Some("*"));
    assert_eq!(defaults.header("access-control-allow-headers"), Some("*"));
    assert_eq!(defaults.header("access-control-max-age"), Some("5"));
    assert_eq!(defaults.header("access-control-expose-headers"), None);
    assert_eq!(defaults.header("access-control-allow-credentials"), None);
    assert_eq!(defaults.header("vary"), None);
}

#[tokio::test]
async fn cors_origins_by_regex_and_metadata() {
    let up = Upstream::start("echo", handlers::echo()).await;
    let gw = Harness::start(vec![
        (
            "plugin_metadata/cors",
            json!({"allow_origins": {"company": "https://company.com,https://www.company.com"}}),
        ),
        (
            "ws/default/plugin_configs/meta",
            json!({"plugins": {"cors": {"allow_origins_by_metadata": ["company"]}}}),
        ),
        (
            "ws/default/plugin_configs/re",
            json!({"plugins": {"cors": {"allow_origins_by_regex": [".*\\.test\\.com$"]}}}),
        ),
        ("ws/default/routes/1", route("/meta", &up.node(), "meta")),
        ("ws/default/routes/2", route("/re", &up.node(), "re")),
    ])
    .await;
    let origin = |o: &'static str| [("Origin", o)];
    let r = send(&gw, Method::GET, "/re", &origin("http://a.test.com"), "").await;
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://a.test.com")
    );
    let r = send(
        &gw,
        Method::GET,
        "/re",
        &origin("http://a.test.com.evil"),
        "",
    )
    .await;
    assert_eq!(r.header("access-control-allow-origin"), None);
    let r = send(
        &gw,
        Method::GET,
        "/meta",
        &origin("https://www.company.com"),
        "",
    )
    .await;
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://www.company.com")
    );
    let r = send(
        &gw,
        Method::GET,
        "/meta",
        &origin("https://partner.net"),
        "",
    )
    .await;
    assert_eq!(r.header("access-control-allow-origin"), None);

    // Editing the plugin metadata changes what the templates allow.
    let traffic = Traffic::start(
        &gw,
        |url| {
            request(
                Method::GET,
                &format!("{url}/meta"),
                &[("Origin", "https://partner.net")],
                "",
            )
        },
        cors_summary,
    );
    edit_under_traffic(traffic, "200 -", "200 https://partner.net", || {
        gw.put(vec![(
            "plugin_metadata/cors",
            json!({"allow_origins": {"company": "https://company.com,https://partner.net"}}),
        )]);
    })
    .await;
    let r = send(
        &gw,
        Method::GET,
        "/meta",
        &origin("https://www.company.com"),
        "",
    )
    .await;
    assert_eq!(r.header("access-control-allow-origin"), None);
}
