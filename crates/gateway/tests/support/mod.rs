//! What the node tests share: a real data-plane node (gateway + `node::follow` + listener on
//! 127.0.0.1:0), the real Admin API over a real store, tiny HTTP backends whose health the test
//! controls, a keep-alive HTTP client, and a TCP relay that can cut a node off its store.
#![allow(dead_code, unused_imports)] // each test binary uses a different part

mod backend;
mod faults;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use portico_control::{AdminApi, Scope};
use portico_gateway::node::{self, NodeSettings};
use portico_gateway::{ClientLimits, Gateway};
use portico_model::{Keyring, Registry};
use portico_snapshot::Snapshot;
use portico_store::SharedStore;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use backend::Backend;
pub use faults::{EndingWatches, Relay};

/// The cluster prefix the Admin API writes under and the nodes follow.
pub const CLUSTER: &str = "/portico/clusters/default";
/// How long a test waits for something that normally takes well under a second.
pub const PATIENCE: Duration = Duration::from_secs(15);

/// Waits until `check` holds, polling every 20 ms; panics with `what` after [`PATIENCE`].
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An embedded store in a temporary folder (kept alive by the returned folder).
pub fn embedded_store() -> (SharedStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.db");
    let store = portico_store::embedded::EmbeddedStore::open(&path).expect("open store");
    (Arc::new(store), dir)
}

/// A data-plane node: a gateway following the store, serving on an ephemeral port.
pub struct Node {
    pub gateway: Arc<Gateway>,
    /// The proxy listener.
    pub addr: SocketAddr,
    applied: watch::Receiver<i64>,
    tasks: Vec<JoinHandle<()>>,
}

impl Node {
    /// Starts a node following `store`, keeping its last-known-good copy at `lkg`.
    pub async fn start(store: SharedStore, lkg: Option<PathBuf>) -> Node {
        let gateway = Gateway::new(Snapshot::empty(), ClientLimits::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let (applied_tx, applied) = watch::channel(0);
        let settings = NodeSettings {
            cluster_prefix: CLUSTER.into(),
            last_known_good: lkg,
            debounce: Duration::from_millis(5),
        };
        let plugins = Arc::new(Registry::new(Vec::new()));
        let keyring = Arc::new(Keyring::disabled());
        let follow = node::follow(
            gateway.clone(),
            store,
            settings,
            plugins,
            keyring,
            applied_tx,
        );
        let serve = portico_gateway::server::serve(
            gateway.clone(),
            listener,
            false,
            std::future::pending(),
        );
        Node {
            gateway,
            addr,
            applied,
            tasks: vec![tokio::spawn(follow), tokio::spawn(serve)],
        }
    }

    /// The revision of the snapshot the node serves.
    pub fn applied(&self) -> i64 {
        *self.applied.borrow()
    }

    /// The channel on which the node publishes the revision of each snapshot it swaps in.
    pub fn applied_channel(&self) -> watch::Receiver<i64> {
        self.applied.clone()
    }

    /// Waits until the node has applied `revision` (or a later one), told by its watch channel.
    pub async fn wait_applied(&self, revision: i64) {
        let mut applied = self.applied.clone();
        let reached = tokio::time::timeout(PATIENCE, applied.wait_for(|r| *r >= revision)).await;
        let now = *self.applied.borrow();
        assert!(
            matches!(reached, Ok(Ok(_))),
            "node applied revision {now}, never {revision}"
        );
    }

    /// A keep-alive client of the proxy.
    pub fn client(&self) -> Client {
        Client::new(self.addr)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The Admin API of the default workspace over `store`, without keys, on an ephemeral port.
pub struct Admin {
    store: SharedStore,
    client: Client,
    task: JoinHandle<()>,
}

impl Admin {
    /// Starts the Admin API listener.
    pub async fn start(store: SharedStore) -> Admin {
        let scope = Scope {
            cluster_prefix: CLUSTER.into(),
            workspace: "default".into(),
        };
        let plugins = Arc::new(Registry::new(Vec::new()));
        let keyring = Arc::new(Keyring::disabled());
        let api = AdminApi::new(store.clone(), plugins, keyring, Vec::new(), scope);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind admin");
        let addr = listener.local_addr().expect("admin addr");
        let serve = portico_control::server::serve(listener, Arc::new(api), std::future::pending());
        Admin {
            store,
            client: Client::new(addr),
            task: tokio::spawn(serve),
        }
    }

    /// `PUT /apisix/admin/<path>` with `body`; panics unless accepted. Returns the store
    /// revision after the write (the test is the only writer).
    pub async fn put(&mut self, path: &str, body: Value) -> i64 {
        self.call("PUT", path, Some(body)).await
    }

    /// `DELETE /apisix/admin/<path>`; panics unless accepted. Returns the store revision.
    pub async fn delete(&mut self, path: &str) -> i64 {
        self.call("DELETE", path, None).await
    }

    async fn call(&mut self, method: &str, path: &str, body: Option<Value>) -> i64 {
        let uri = format!("/apisix/admin/{path}");
        let (status, text) = (self.client.send(method, &uri, body).await)
            .unwrap_or_else(|e| panic!("{method} {uri}: {e}"));
        assert!(status < 300, "{method} {uri}: {status} {text}");
        self.store.revision().await.expect("store revision")
    }
}

impl Drop for Admin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An HTTP/1.1 client on one keep-alive connection, opened on first use and again after an
/// error. Every error is returned, none retried: the tests count them.
pub struct Client {
    addr: SocketAddr,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Client {
    /// A client of `addr`.
    pub fn new(addr: SocketAddr) -> Client {
        Client { addr, sender: None }
    }

    /// `GET path`: status and body.
    pub async fn get(&mut self, path: &str) -> Result<(u16, String), String> {
        self.send("GET", path, None).await
    }

    /// One request; a JSON body is sent with its content type.
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, String), String> {
        let result = self.try_send(method, path, body).await;
        if result.is_err() {
            self.sender = None;
        }
        result
    }

    async fn try_send(
        &mut self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, String), String> {
        let sender = match &mut self.sender {
            Some(sender) => sender,
            None => self.sender.insert(connect(self.addr).await?),
        };
        sender
            .ready()
            .await
            .map_err(|e| format!("connection: {e}"))?;
        let mut req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "test.local");
        let bytes = match body {
            Some(json) => {
                req = req.header("content-type", "application/json");
                Bytes::from(json.to_string())
            }
            None => Bytes::new(),
        };
        let req = req.body(Full::new(bytes)).map_err(|e| e.to_string())?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("request: {e}"))?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await;
        let body = body.map_err(|e| format!("response body: {e}"))?.to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

async fn connect(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>, String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(conn);
    Ok(sender)
}

/// A route `/<id>` (and below) to `nodes` with round robin.
pub fn route(uri: &str, nodes: &[&Backend]) -> Value {
    serde_json::json!({
        "uri": uri,
        "upstream": {"type": "roundrobin", "nodes": node_map(nodes)},
    })
}

/// `{"127.0.0.1:port": 1, ...}`.
pub fn node_map(nodes: &[&Backend]) -> Value {
    nodes.iter().map(|b| (b.node(), Value::from(1))).collect()
}
