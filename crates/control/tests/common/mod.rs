//! An in-process Admin API over a real embedded store in a temporary folder.
#![allow(dead_code)]

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use portico_control::{AdminApi, AdminKey, Role, Scope};
use portico_model::keyring::Keyring;
use portico_store::embedded::EmbeddedStore;
use portico_store::SharedStore;
use serde_json::Value;

pub const KEY: &str = "admin-key-for-tests";
pub const VIEWER: &str = "viewer-key-for-tests";
pub const PREFIX: &str = "/portico/clusters/default/ws/default";

pub struct Admin {
    pub api: Arc<AdminApi>,
    pub store: SharedStore,
    _dir: tempfile::TempDir,
}

/// One answer of the Admin API.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }

    /// `error_msg` of an error body.
    pub fn error(&self) -> String {
        self.json()["error_msg"]
            .as_str()
            .unwrap_or_else(|| panic!("no error_msg in {}", self.text))
            .to_string()
    }

    /// Asserts the status and returns self, for chaining.
    #[track_caller]
    pub fn expect(self, status: u16) -> Reply {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text);
        self
    }
}

impl Admin {
    pub async fn start() -> Admin {
        let dir = tempfile::tempdir().unwrap();
        let store: SharedStore =
            Arc::new(EmbeddedStore::open(&dir.path().join("store.db")).unwrap());
        let api = Self::api_over(store.clone());
        Admin {
            api,
            store,
            _dir: dir,
        }
    }

    /// A second Admin API over the same store (as a second control-plane process would be).
    pub fn api_over(store: SharedStore) -> Arc<AdminApi> {
        Arc::new(AdminApi::new(
            store,
            Arc::new(portico_plugins::registry()),
            Arc::new(Keyring::new(vec!["test-keyring-entry".into()]).unwrap()),
            vec![
                AdminKey {
                    key: KEY.into(),
                    role: Role::Admin,
                },
                AdminKey {
                    key: VIEWER.into(),
                    role: Role::Viewer,
                },
            ],
            Scope {
                cluster_prefix: "/portico/clusters/default".into(),
                workspace: "default".into(),
            },
        ))
    }

    /// Sends a request with the admin key; `body` is sent as is.
    pub async fn raw(&self, method: Method, path: &str, body: &str) -> Reply {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("x-api-key", KEY)
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap();
        self.send(req).await
    }

    pub async fn send(&self, req: Request<Full<Bytes>>) -> Reply {
        send_to(&self.api, req).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.raw(Method::GET, path, "").await
    }
    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.raw(Method::PUT, path, &body.to_string()).await
    }
    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.raw(Method::POST, path, &body.to_string()).await
    }
    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.raw(Method::PATCH, path, &body.to_string()).await
    }
    pub async fn delete(&self, path: &str) -> Reply {
        self.raw(Method::DELETE, path, "").await
    }

    /// The store's revision: unchanged revision = nothing was written.
    pub async fn revision(&self) -> i64 {
        self.store.revision().await.unwrap()
    }

    /// The raw stored bytes of an object, as text.
    pub async fn stored(&self, rel: &str) -> Option<String> {
        self.store
            .get(&format!("{PREFIX}/{rel}"))
            .await
            .unwrap()
            .map(|kv| String::from_utf8(kv.value).unwrap())
    }
}

pub async fn send_to(api: &AdminApi, req: Request<Full<Bytes>>) -> Reply {
    let resp = api.handle(req).await;
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        text: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// A minimal valid upstream.
pub fn upstream() -> Value {
    serde_json::json!({"type": "roundrobin", "nodes": {"127.0.0.1:1980": 1}})
}
