//! The management API: etcd resources (against real etcd servers), clusters, workspaces with host
//! claims, gateway objects per workspace, tokens and their scopes through both APIs.

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use portico_control::manage::{NodeThresholds, SystemStoreInfo};
use portico_control::{AdminKey, ManageApi, Role};
use portico_model::Keyring;
use portico_store::embedded::EmbeddedStore;
use portico_store::etcd::{EtcdConfig, EtcdStore};
use portico_store::{SharedStore, Store};
use portico_testkit::EtcdServer;
use serde_json::{json, Value};

const KEY: &str = "system-admin-key";

struct Cp {
    api: ManageApi,
    store: SharedStore,
    _dir: tempfile::TempDir,
}

struct Answer {
    status: u16,
    body: Value,
}

impl Cp {
    async fn start() -> Cp {
        let dir = tempfile::tempdir().unwrap();
        let store: SharedStore =
            Arc::new(EmbeddedStore::open(&dir.path().join("store.db")).unwrap());
        let api = ManageApi::new(
            store.clone(),
            SystemStoreInfo::default(),
            Arc::new(portico_plugins::registry()),
            Arc::new(Keyring::new(vec!["k".into()]).unwrap()),
            vec![AdminKey {
                key: KEY.into(),
                role: Role::Admin,
            }],
            NodeThresholds::default(),
        );
        api.ensure_default_cluster("/portico/clusters/default")
            .await
            .unwrap();
        Cp {
            api,
            store,
            _dir: dir,
        }
    }

    async fn call_as(&self, key: &str, method: Method, path: &str, body: Option<Value>) -> Answer {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("x-api-key", key)
            .body(Full::new(Bytes::from(
                body.map(|b| b.to_string()).unwrap_or_default(),
            )))
            .unwrap();
        let resp = self.api.handle(req).await;
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
        Answer { status, body }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.call_as(KEY, method, path, body).await
    }
}

#[track_caller]
fn expect(a: &Answer, status: u16) -> &Value {
    assert_eq!(a.status, status, "{}", a.body);
    &a.body
}

#[tokio::test]
async fn openapi_document_lists_every_endpoint() {
    let cp = Cp::start().await;
    let doc = cp
        .call_as("", Method::GET, "/api/v1/openapi.json", None)
        .await;
    let doc = expect(&doc, 200);
    assert_eq!(doc["openapi"], "3.0.3");
    assert!(doc["paths"]["/api/v1/clusters/{cluster}"]["put"]["requestBody"].is_object());
    assert!(doc["paths"]["/api/v1/clusters/{cluster}/nodes/{node}/drain"]["post"].is_object());
    let unauth = cp.call_as("", Method::GET, "/api/v1/clusters", None).await;
    assert_eq!(unauth.status, 401);
}

#[tokio::test]
async fn etcd_resources_clusters_and_isolation_of_prefixes() {
    let etcd = EtcdServer::start();
    let cp = Cp::start().await;
    let bad = cp
        .call(
            Method::PUT,
            "/api/v1/etcd_resources/e1",
            Some(json!({"name": "x", "endpoints": ["not a url"]})),
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    let r = cp
        .call(Method::PUT, "/api/v1/etcd_resources/e1",
            Some(json!({"name": "primary", "endpoints": [etcd.endpoint()], "password": "s3cret", "user": "root"})))
        .await;
    let body = expect(&r, 201);
    assert_eq!(body["has_password"], true);
    assert!(body.get("password").is_none());
    let raw = String::from_utf8(
        cp.store
            .get("/portico/system/etcd_resources/e1")
            .await
            .unwrap()
            .unwrap()
            .value,
    )
    .unwrap();
    assert!(!raw.contains("s3cret"), "password stored in clear");
    // root/s3cret is not a user of this etcd (auth disabled): connecting with a user fails.
    cp.call(
        Method::PATCH,
        "/api/v1/etcd_resources/e1",
        Some(json!({"user": null, "password": ""})),
    )
    .await;
    let got = cp
        .call(Method::GET, "/api/v1/etcd_resources/e1", None)
        .await;
    let got = expect(&got, 200);
    assert_eq!(got["health"]["reachable"], true, "{got}");
    assert!(got["health"]["version"].as_str().unwrap().starts_with("3."));

    let c = cp
        .call(
            Method::PUT,
            "/api/v1/clusters/a",
            Some(json!({"name": "A", "etcd_resource": "e1"})),
        )
        .await;
    let c = expect(&c, 201);
    assert_eq!(c["prefix"], "/portico/clusters/a");
    assert_eq!(c["status"]["etcd_reachable"], true);
    assert!(c["add_node_command"]
        .as_str()
        .unwrap()
        .contains(&etcd.endpoint()));
    let overlap = cp
        .call(
            Method::PUT,
            "/api/v1/clusters/b",
            Some(json!({"name": "B", "etcd_resource": "e1", "prefix": "/portico/clusters/a/x"})),
        )
        .await;
    assert_eq!(overlap.status, 400, "{}", overlap.body);
    let moved = cp
        .call(
            Method::PATCH,
            "/api/v1/clusters/a",
            Some(json!({"prefix": "/elsewhere"})),
        )
        .await;
    assert_eq!(moved.status, 400);
    assert!(moved.body["error_msg"].as_str().unwrap().contains("fixed"));
    let renamed = cp
        .call(
            Method::PATCH,
            "/api/v1/clusters/a",
            Some(json!({"name": "A2", "external_address": "https://a.example.com"})),
        )
        .await;
    assert_eq!(expect(&renamed, 200)["name"], "A2");
    let in_use = cp
        .call(Method::DELETE, "/api/v1/etcd_resources/e1", None)
        .await;
    assert_eq!(in_use.status, 400);
    assert!(in_use.body["error_msg"]
        .as_str()
        .unwrap()
        .contains("cluster [a]"));

    // Objects of cluster a land in etcd under its prefix.
    let up = cp
        .call(
            Method::PUT,
            "/api/v1/clusters/a/workspaces/default/upstreams/1",
            Some(json!({"nodes": {"127.0.0.1:80": 1}})),
        )
        .await;
    expect(&up, 201);
    let etcd_store = EtcdStore::connect(EtcdConfig::new(vec![etcd.endpoint()]))
        .await
        .unwrap();
    assert!(etcd_store
        .get("/portico/clusters/a/ws/default/upstreams/1")
        .await
        .unwrap()
        .is_some());
    assert!(cp
        .store
        .get("/portico/clusters/a/ws/default/upstreams/1")
        .await
        .unwrap()
        .is_none());

    // Deleting needs confirmation and wipes the prefix.
    let unconfirmed = cp.call(Method::DELETE, "/api/v1/clusters/a", None).await;
    assert_eq!(unconfirmed.status, 400);
    expect(
        &cp.call(Method::DELETE, "/api/v1/clusters/a?confirm=a", None)
            .await,
        200,
    );
    assert!(etcd_store
        .range("/portico/clusters/a/")
        .await
        .unwrap()
        .kvs
        .is_empty());
    expect(
        &cp.call(Method::DELETE, "/api/v1/etcd_resources/e1", None)
            .await,
        200,
    );
}

#[tokio::test]
async fn workspaces_claim_hosts_and_scope_tokens() {
    let cp = Cp::start().await;
    let ws = |name: &str, hosts: Value| {
        (
            format!("/api/v1/clusters/default/workspaces/{name}"),
            json!({"hosts": hosts}),
        )
    };
    let (p, b) = ws("team-a", json!(["a.example.com", "*.shop.com"]));
    expect(&cp.call(Method::PUT, &p, Some(b)).await, 201);
    let (p, b) = ws("team-b", json!(["x.shop.com"]));
    let clash = cp.call(Method::PUT, &p, Some(b)).await;
    assert_eq!(clash.status, 400);
    assert!(
        clash.body["error_msg"].as_str().unwrap().contains("team-a"),
        "{}",
        clash.body
    );
    let (p, b) = ws("team-b", json!(["b.example.com"]));
    expect(&cp.call(Method::PUT, &p, Some(b)).await, 201);

    // Routes may use their own hosts, not another workspace's.
    let route =
        |host: &str| json!({"uri": "/x", "host": host, "upstream": {"nodes": {"127.0.0.1:80": 1}}});
    expect(
        &cp.call(
            Method::PUT,
            "/api/v1/clusters/default/workspaces/team-a/routes/1",
            Some(route("a.example.com")),
        )
        .await,
        201,
    );
    let stolen = cp
        .call(
            Method::PUT,
            "/api/v1/clusters/default/workspaces/team-b/routes/1",
            Some(route("a.example.com")),
        )
        .await;
    assert_eq!(stolen.status, 400);
    assert_eq!(
        stolen.body["error_msg"],
        "host a.example.com is claimed by workspace team-a"
    );
    let default_ws = cp
        .call(
            Method::PUT,
            "/api/v1/clusters/default/workspaces/default/routes/1",
            Some(route("y.shop.com")),
        )
        .await;
    assert_eq!(default_ws.status, 400);
    expect(
        &cp.call(
            Method::PUT,
            "/api/v1/clusters/default/workspaces/default/routes/2",
            Some(route("free.example.com")),
        )
        .await,
        201,
    );
    // A workspace cannot claim a host another workspace's routes already use.
    let (p, b) = ws("team-b", json!(["b.example.com", "free.example.com"]));
    assert_eq!(cp.call(Method::PUT, &p, Some(b)).await.status, 400);

    // References stay inside a workspace.
    expect(
        &cp.call(
            Method::PUT,
            "/api/v1/clusters/default/workspaces/team-a/upstreams/u",
            Some(json!({"nodes": {"127.0.0.1:80": 1}})),
        )
        .await,
        201,
    );
    let cross = cp
        .call(
            Method::PUT,
            "/api/v1/clusters/default/workspaces/team-b/routes/2",
            Some(json!({"uri": "/y", "upstream_id": "u"})),
        )
        .await;
    assert_eq!(cross.status, 400);
    assert_eq!(
        cross.body["error_msg"],
        "failed to fetch upstream info by upstream id [u], response code: 404"
    );
    let template = json!({"plugins": {"key-auth": {}}});
    let t_path = "/api/v1/clusters/default/workspaces/team-a/plugin_configs/t";
    expect(&cp.call(Method::PUT, t_path, Some(template)).await, 201);
    let cross = cp
        .call(
            Method::PUT,
            "/api/v1/clusters/default/workspaces/team-b/routes/3",
            Some(json!({"uri": "/z", "plugin_config_id": "t", "upstream": {"nodes": {"127.0.0.1:80": 1}}})),
        )
        .await;
    assert_eq!(cross.status, 400);
    assert_eq!(
        cross.body["error_msg"],
        "failed to fetch plugin config info by plugin config id [t], response code: 404"
    );

    // A workspace token sees and changes only its workspace, through both APIs.
    let t = cp
        .call(Method::POST, "/api/v1/tokens", Some(json!({"name": "ci-b", "role": "admin", "cluster": "default", "workspace": "team-b"})))
        .await;
    let token = expect(&t, 201)["key"].as_str().unwrap().to_string();
    let listed = cp.call(Method::GET, "/api/v1/tokens", None).await;
    assert!(
        listed.body["list"][0].get("key").is_none()
            && listed.body["list"][0].get("key_hash").is_none()
    );
    let mine = cp
        .call_as(&token, Method::GET, "/apisix/admin/routes", None)
        .await;
    assert_eq!(expect(&mine, 200)["total"], 0);
    let theirs = cp
        .call_as(
            &token,
            Method::GET,
            "/api/v1/clusters/default/workspaces/team-a/routes",
            None,
        )
        .await;
    assert_eq!(theirs.status, 403);
    let write_theirs = cp
        .call_as(
            &token,
            Method::DELETE,
            "/api/v1/clusters/default/workspaces/team-a/routes/1",
            None,
        )
        .await;
    assert_eq!(write_theirs.status, 403);
    expect(
        &cp.call_as(
            &token,
            Method::PUT,
            "/apisix/admin/routes/9",
            Some(route("b.example.com")),
        )
        .await,
        201,
    );
    let via_v1 = cp
        .call(
            Method::GET,
            "/api/v1/clusters/default/workspaces/team-b/routes/9",
            None,
        )
        .await;
    assert_eq!(expect(&via_v1, 200)["value"]["host"], "b.example.com");
    let other_ws_list = cp
        .call_as(
            &token,
            Method::GET,
            "/api/v1/clusters/default/workspaces",
            None,
        )
        .await;
    assert_eq!(expect(&other_ws_list, 200)["total"], 1);
    assert_eq!(
        cp.call_as(&token, Method::GET, "/api/v1/etcd_resources", None)
            .await
            .status,
        403
    );
    assert_eq!(
        cp.call_as(
            &token,
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "x", "role": "admin"}))
        )
        .await
        .status,
        403
    );

    // A viewer token reads only.
    let v = cp
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "ro", "role": "viewer", "cluster": "default"})),
        )
        .await;
    let viewer = expect(&v, 201)["key"].as_str().unwrap().to_string();
    assert_eq!(
        cp.call_as(
            &viewer,
            Method::GET,
            "/api/v1/clusters/default/workspaces/team-a/routes",
            None
        )
        .await
        .status,
        200
    );
    let denied = cp
        .call_as(
            &viewer,
            Method::PUT,
            "/apisix/admin/routes/5",
            Some(route("free.example.com")),
        )
        .await;
    assert_eq!(denied.status, 401);

    // A workspace with objects cannot be deleted.
    let busy = cp
        .call(
            Method::DELETE,
            "/api/v1/clusters/default/workspaces/team-a",
            None,
        )
        .await;
    assert_eq!(busy.status, 400);
    assert!(busy.body["error_msg"]
        .as_str()
        .unwrap()
        .contains("still holds"));
    // Revoked tokens stop working.
    let id = t.body["id"].as_str().unwrap();
    expect(
        &cp.call(Method::DELETE, &format!("/api/v1/tokens/{id}"), None)
            .await,
        200,
    );
    assert_eq!(
        cp.call_as(&token, Method::GET, "/apisix/admin/routes", None)
            .await
            .status,
        401
    );
}
