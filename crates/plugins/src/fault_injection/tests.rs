//! fault-injection on real contexts.

use std::time::Instant;

use super::*;
use crate::testing::{ctx_for, get, plugin};

/// Runs `rewrite` to its end (waits included): the answer, if any, and the context.
async fn run(p: &Arc<dyn Plugin>, req: http::request::Builder) -> (Option<Reply>, Ctx) {
    let mut ctx = ctx_for(req);
    let mut flow = p.rewrite(&mut ctx);
    while let Flow::Wait(pending) = flow {
        let resume = pending.await;
        flow = resume(&mut ctx);
    }
    match flow {
        Flow::Respond(r) => (Some(r), ctx),
        _ => (None, ctx),
    }
}

#[tokio::test]
async fn abort_with_interpolated_body_and_headers() {
    let p = plugin(
        NAME,
        json!({"abort": {"http_status": 403, "body": "no $arg_name on ${uri}\n",
                         "headers": {"X-Fault": "for $arg_name", "X-Num": 1.5, "X-Int": 10}}}),
    );
    let (reply, ctx) = run(&p, get("/p?name=jo")).await;
    let reply = reply.expect("aborted");
    assert_eq!(reply.status, 403);
    assert_eq!(reply.body, b"no jo on /p\n");
    assert_eq!(reply.headers["content-type"], "text/plain; charset=utf-8");
    assert_eq!(ctx.response_headers["x-fault"], "for jo");
    assert_eq!(ctx.response_headers["x-num"], "1.5");
    assert_eq!(ctx.response_headers["x-int"], "10");
}

#[tokio::test]
async fn abort_without_body_is_the_nginx_page() {
    let p = plugin(NAME, json!({"abort": {"http_status": 502}}));
    let reply = run(&p, get("/")).await.0.expect("aborted");
    assert_eq!(reply.status, 502);
    assert!(String::from_utf8_lossy(&reply.body).contains("<title>502 Bad Gateway</title>"));
    let p = plugin(NAME, json!({"abort": {"http_status": 200, "body": ""}}));
    let reply = run(&p, get("/")).await.0.expect("aborted");
    assert_eq!((reply.status.as_u16(), reply.body.len()), (200, 0));
}

#[tokio::test]
async fn vars_are_an_or_of_rules() {
    let p = plugin(
        NAME,
        json!({"abort": {"http_status": 418, "body": "x", "vars": [
            [["arg_name", "==", "jack"], ["arg_age", "!", "<", 18]],
            [["http_apikey", "==", "api-key"]]
        ]}}),
    );
    let status = |r: Option<Reply>| r.map(|r| r.status.as_u16());
    assert_eq!(
        status(run(&p, get("/?name=jack&age=20")).await.0),
        Some(418)
    );
    assert_eq!(status(run(&p, get("/?name=jack&age=2")).await.0), None);
    assert_eq!(
        status(run(&p, get("/").header("apikey", "api-key")).await.0),
        Some(418)
    );
    assert_eq!(status(run(&p, get("/?name=rose")).await.0), None);
    // An empty list of rules matches nothing.
    let never = plugin(NAME, json!({"abort": {"http_status": 418, "vars": []}}));
    assert_eq!(status(run(&never, get("/")).await.0), None);
}

#[tokio::test]
async fn percentages_sample_requests() {
    let none = plugin(
        NAME,
        json!({"abort": {"http_status": 500, "percentage": 0}}),
    );
    let all = plugin(
        NAME,
        json!({"abort": {"http_status": 500, "percentage": 100}}),
    );
    let half = plugin(
        NAME,
        json!({"abort": {"http_status": 500, "percentage": 50}}),
    );
    let mut aborted = 0;
    for _ in 0..400 {
        assert!(run(&none, get("/")).await.0.is_none());
        assert!(run(&all, get("/")).await.0.is_some());
        aborted += usize::from(run(&half, get("/")).await.0.is_some());
    }
    assert!((120..280).contains(&aborted), "{aborted} of 400");
}

#[tokio::test]
async fn delay_then_abort() {
    let p = plugin(
        NAME,
        json!({"delay": {"duration": 0.1}, "abort": {"http_status": 503, "body": "late"}}),
    );
    let started = Instant::now();
    let reply = run(&p, get("/")).await.0.expect("aborted");
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert_eq!(reply.body, b"late");
    // A delay whose rules do not match does not wait.
    let p = plugin(
        NAME,
        json!({"delay": {"duration": 30, "vars": [[["arg_slow", "==", "1"]]]}}),
    );
    let mut ctx = ctx_for(get("/"));
    assert_eq!(p.rewrite(&mut ctx), Flow::Continue);
    assert!(matches!(
        p.rewrite(&mut ctx_for(get("/?slow=1"))),
        Flow::Wait(_)
    ));
}

#[test]
fn checks() {
    let registry = crate::registry();
    let check = |conf: Value| {
        portico_model::check(
            portico_model::Kind::PluginConfig,
            &json!({"id": "1", "plugins": {"fault-injection": conf}}),
            &registry,
        )
    };
    assert_eq!(check(json!({"delay": {"duration": 0.5}})), Ok(()));
    assert_eq!(
        check(json!({"abort": {"http_status": 200, "vars": [[["arg_a", "==", "1"]]]}})),
        Ok(())
    );
    for bad in [
        json!({}),
        json!({"abort": {"body": "x"}}),
        json!({"abort": {"http_status": 199}}),
        json!({"abort": {"http_status": 200, "percentage": 101}}),
        json!({"delay": {"duration": -1}}),
        json!({"delay": {"duration": 1, "vars": [1]}}),
        json!({"abort": {"http_status": 200, "headers": {}}}),
    ] {
        assert!(check(bad.clone()).is_err(), "{bad}");
    }
    assert_eq!(
        check(json!({"abort": {"http_status": 200, "vars": [[["arg_a", "=", "1"]]]}})),
        Err(
            "failed to check the configuration of plugin fault-injection err: invalid operator '='"
                .to_string()
        )
    );
    assert!(check(json!({"abort": {"http_status": 1000}})).is_err());
}
