//! A real gateway in this process, on 127.0.0.1:0 (plain and TLS listeners), serving a snapshot
//! compiled from the objects a test lists — the same `portico_snapshot::compile` a node runs on
//! what the Admin API stored:
//!
//! ```ignore
//! let up = Upstream::start("a", handlers::echo()).await;
//! let gw = Harness::start(vec![
//!     ("ws/default/upstreams/1", json!({"nodes": {up.node(): 1}})),
//!     ("ws/default/routes/1", json!({"uri": "/hello", "upstream_id": "1"})),
//! ]).await;
//! assert_eq!(gw.get("/hello").await.status, 200);
//! gw.put(vec![("ws/default/routes/1", json!({"uri": "/bye", "upstream_id": "1"}))]);
//! ```
#![allow(dead_code)]

pub mod net;
pub mod prometheus;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use portico_gateway::access_log::AccessLog;
use portico_gateway::{ClientLimits, Gateway};
use portico_model::Keyring;
use portico_snapshot::{Config, Item, Snapshot};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// A running gateway and the config it serves.
pub struct Harness {
    pub gateway: Arc<Gateway>,
    /// The plain HTTP listener (HTTP/1.1 and h2c).
    pub addr: SocketAddr,
    /// The TLS listener (certificates from `ssls` objects).
    pub tls_addr: SocketAddr,
    config: Mutex<Config>,
    revision: AtomicI64,
    client: Client<HttpConnector, Full<Bytes>>,
    stop: watch::Sender<bool>,
}

impl Harness {
    /// A gateway with default client limits serving `objects` (`(key, json)` below the cluster
    /// prefix, e.g. `ws/default/routes/1`). Panics if an object does not compile.
    pub async fn start<K: AsRef<str>>(objects: Vec<(K, Value)>) -> Harness {
        Harness::start_with(ClientLimits::default(), objects).await
    }

    /// The same with other client limits.
    pub async fn start_with<K: AsRef<str>>(
        limits: ClientLimits,
        objects: Vec<(K, Value)>,
    ) -> Harness {
        Harness::serve(Gateway::new(Snapshot::empty(), limits), objects).await
    }

    /// The same with default limits and an access log.
    pub async fn start_logged<K: AsRef<str>>(log: AccessLog, objects: Vec<(K, Value)>) -> Harness {
        let gateway = Gateway::with_access_log(Snapshot::empty(), ClientLimits::default(), log);
        Harness::serve(gateway, objects).await
    }

    /// Serves `objects` with `gateway` on new listeners.
    pub async fn serve<K: AsRef<str>>(gateway: Arc<Gateway>, objects: Vec<(K, Value)>) -> Harness {
        let plain = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let tls = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let (addr, tls_addr) = (
            plain.local_addr().expect("addr"),
            tls.local_addr().expect("addr"),
        );
        let (stop, _) = watch::channel(false);
        for (listener, is_tls) in [(plain, false), (tls, true)] {
            let mut stopped = stop.subscribe();
            let shutdown = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            tokio::spawn(portico_gateway::server::serve(
                gateway.clone(),
                listener,
                is_tls,
                shutdown,
            ));
        }
        let h = Harness {
            gateway,
            addr,
            tls_addr,
            config: Mutex::new(Config::new()),
            revision: AtomicI64::new(0),
            client: Client::builder(TokioExecutor::new()).build_http(),
            stop,
        };
        h.put(objects);
        h
    }

    /// Adds or replaces objects and swaps in the recompiled snapshot (requests in flight keep
    /// theirs). Panics if an object does not compile.
    pub fn put<K: AsRef<str>>(&self, objects: Vec<(K, Value)>) {
        let rev = self.revision.fetch_add(1, Ordering::SeqCst) + 1;
        let mut config = self.config.lock().expect("config");
        for (key, value) in objects {
            let item = Item {
                mod_revision: rev,
                value,
            };
            config.insert(key.as_ref().to_string(), item);
        }
        self.swap(&config, rev);
    }

    /// Removes an object and swaps in the recompiled snapshot.
    pub fn delete(&self, key: &str) {
        let rev = self.revision.fetch_add(1, Ordering::SeqCst) + 1;
        let mut config = self.config.lock().expect("config");
        config.remove(key);
        self.swap(&config, rev);
    }

    fn swap(&self, config: &Config, rev: i64) {
        let previous = self.gateway.snapshot();
        let snapshot = portico_snapshot::compile(
            config,
            rev,
            Some(&previous),
            &portico_plugins::registry(),
            &Keyring::disabled(),
        );
        assert!(
            snapshot.problems.is_empty(),
            "config did not compile: {:?}",
            snapshot.problems
        );
        self.gateway.swap(Arc::new(snapshot));
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A request builder for `path` on the plain listener.
    pub fn request(&self, method: Method, path: &str) -> http::request::Builder {
        Request::builder().method(method).uri(self.url(path))
    }

    /// A handle on the pooled HTTP/1.1 client (keep-alive connections shared by its clones).
    pub fn client(&self) -> Client<HttpConnector, Full<Bytes>> {
        self.client.clone()
    }

    /// `GET path` over the pooled HTTP/1.1 client.
    pub async fn get(&self, path: &str) -> Reply {
        let req = self.request(Method::GET, path).body(Full::default());
        self.send(req.expect("request")).await
    }

    /// Sends a request over the pooled HTTP/1.1 client and reads the whole response.
    pub async fn send(&self, req: Request<Full<Bytes>>) -> Reply {
        let resp = self.client.request(req).await.expect("gateway answers");
        Reply::read(resp).await
    }
}

impl Harness {
    /// Begins the graceful shutdown of the listeners (as dropping the harness does).
    pub fn shut_down(&self) {
        self.stop.send_replace(true);
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

/// A whole response.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub trailers: Option<HeaderMap>,
}

impl Reply {
    /// Reads a response to its end (trailers included).
    pub async fn read<B>(resp: http::Response<B>) -> Reply
    where
        B: hyper::body::Body,
        B::Error: std::fmt::Debug,
    {
        let (parts, body) = resp.into_parts();
        let collected = body.collect().await.expect("response body");
        Reply {
            status: parts.status,
            version: parts.version,
            headers: parts.headers,
            trailers: collected.trailers().cloned(),
            body: collected.to_bytes(),
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (what an echo upstream answered).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The header the echo upstream received under `name`.
    pub fn echoed(&self, name: &str) -> Option<String> {
        self.json()["headers"][name].as_str().map(str::to_string)
    }

    /// Which upstream answered (the echo's `server`).
    pub fn server(&self) -> String {
        self.json()["server"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// The nginx-style page of a gateway error: `<title>502 Bad Gateway</title>`.
pub fn assert_error_page(reply: &Reply, status: u16, title: &str) {
    assert_eq!(reply.status.as_u16(), status, "{}", reply.text());
    assert_eq!(reply.header("content-type"), Some("text/html"));
    assert!(
        reply
            .text()
            .contains(&format!("<title>{status} {title}</title>")),
        "{}",
        reply.text()
    );
}

/// An upstream object with `nodes` (`"host:port"` → weight) and other fields merged in.
pub fn upstream(nodes: &[(&str, u32)], extra: Value) -> Value {
    let nodes: serde_json::Map<String, Value> = nodes
        .iter()
        .map(|(n, w)| (n.to_string(), Value::from(*w)))
        .collect();
    let mut up = serde_json::json!({ "nodes": nodes });
    if let (Some(o), Some(extra)) = (up.as_object_mut(), extra.as_object()) {
        o.extend(extra.clone());
    }
    up
}
