//! The APISIX-compatible Admin API (`/apisix/admin/*`).
//!
//! One [`AdminApi`] serves one workspace of one cluster: its objects live under
//! `<cluster prefix>/ws/<workspace>/<kind>/<id>` in the store. Responses use APISIX v3's envelopes
//! and report keys as APISIX does (`/apisix/<kind>/<id>`), so APISIX clients work unchanged.

mod error;
mod integrity;
mod list;
pub(crate) mod merge;
mod meta;
pub(crate) mod request;
mod resource;

use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use portico_model::keyring::Keyring;
use portico_model::Registry;
use portico_store::SharedStore;
use serde_json::Value;

pub use error::{AdminError, AdminResult};

/// Decides whether routes of a workspace may use some hosts (workspaces claim hostnames).
pub trait HostPolicy: Send + Sync {
    /// Checks the hosts of a route about to be written in `workspace`; the error says which host
    /// is claimed by whom.
    fn check<'a>(
        &'a self,
        workspace: &'a str,
        hosts: &'a [String],
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>>;
}
use request::Call;

/// What a key may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Every method.
    Admin,
    /// `GET` only.
    Viewer,
}

/// One accepted admin key.
#[derive(Clone, Debug)]
pub struct AdminKey {
    pub key: String,
    pub role: Role,
}

/// Where the objects served by one [`AdminApi`] live.
#[derive(Clone, Debug)]
pub struct Scope {
    /// The cluster's key prefix, e.g. `/portico/clusters/default`.
    pub cluster_prefix: String,
    /// The workspace name, e.g. `default`.
    pub workspace: String,
}

impl Scope {
    /// `<cluster prefix>/ws/<workspace>`: the parent of every object key of this workspace.
    pub fn objects_prefix(&self) -> String {
        format!("{}/ws/{}", self.cluster_prefix, self.workspace)
    }
}

/// The Admin API of one workspace.
pub struct AdminApi {
    store: SharedStore,
    plugins: Arc<Registry>,
    keyring: Arc<Keyring>,
    keys: Vec<AdminKey>,
    scope: Scope,
    /// Writes of this workspace are validated and stored one at a time, so a reference check and
    /// the write that relies on it cannot interleave with another write of this process.
    write_lock: tokio::sync::Mutex<()>,
    server_header: HeaderValue,
    hosts: Option<Arc<dyn HostPolicy>>,
}

impl AdminApi {
    /// An Admin API over `store`. With no keys, every call is allowed (APISIX's
    /// `admin_key_required: false`).
    pub fn new(
        store: SharedStore,
        plugins: Arc<Registry>,
        keyring: Arc<Keyring>,
        keys: Vec<AdminKey>,
        scope: Scope,
    ) -> Self {
        AdminApi {
            store,
            plugins,
            keyring,
            keys,
            scope,
            write_lock: tokio::sync::Mutex::new(()),
            server_header: HeaderValue::from_static(concat!("Portico/", env!("CARGO_PKG_VERSION"))),
            hosts: None,
        }
    }

    /// Checks the hosts of every route written through this API with `policy`.
    pub fn with_host_policy(mut self, policy: Arc<dyn HostPolicy>) -> Self {
        self.hosts = Some(policy);
        self
    }

    /// Answers one HTTP request addressed to the admin listener.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<Full<Bytes>>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: std::fmt::Display,
    {
        let (parts, body) = req.into_parts();
        let path = parts.uri.path();
        let Some(rest) = admin_rest(path) else {
            return self.respond(Err(AdminError::NoRoute));
        };
        if parts.method == Method::OPTIONS {
            return self.cors_preflight();
        }
        let segments: Vec<String> = rest
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| request::percent_decode(s, false))
            .collect();
        if parts.method == Method::HEAD && segments.is_empty() {
            return self.respond(Ok((StatusCode::OK, None)));
        }
        let body = match request::read_body(&parts.headers, body).await {
            Ok(body) => body,
            Err(e) => return self.respond(Err(e)),
        };
        let call = Call {
            method: parts.method,
            segments,
            query: request::parse_query(parts.uri.query().unwrap_or("")),
            headers: parts.headers,
            body,
        };
        let result = match self.check_key(&call) {
            Ok(()) => self.dispatch(&call).await,
            Err(e) => Err(e),
        };
        self.respond(result)
    }

    fn check_key(&self, call: &Call) -> AdminResult<()> {
        if self.keys.is_empty() {
            return Ok(());
        }
        let Some(given) = call.api_key() else {
            return Err(AdminError::Unauthorized("missing apikey"));
        };
        let Some(key) = self.keys.iter().find(|k| constant_time_eq(&k.key, &given)) else {
            return Err(AdminError::Unauthorized("wrong apikey"));
        };
        if key.role == Role::Viewer && call.method != Method::GET {
            return Err(AdminError::Unauthorized("invalid method for role viewer"));
        }
        Ok(())
    }

    async fn dispatch(&self, call: &Call) -> AdminResult<(StatusCode, Option<Value>)> {
        let first = call.segments.first().map(String::as_str);
        match (first, &call.method) {
            (None, _) => Err(AdminError::NoRoute),
            (Some("plugins"), _) => self.plugins_endpoint(call),
            (Some("schema"), _) => self.schema_endpoint(call),
            _ => self.resource(call).await,
        }
    }

    fn respond(&self, result: AdminResult<(StatusCode, Option<Value>)>) -> Response<Full<Bytes>> {
        let (status, body, json) = match result {
            Ok((status, body)) => (
                status,
                body.map(|b| b.to_string().into_bytes()).unwrap_or_default(),
                true,
            ),
            Err(e) => match e.body() {
                Some(body) => (e.status(), body.to_string().into_bytes(), true),
                None => (e.status(), plain_body(&e), false),
            },
        };
        let mut resp = Response::new(Full::new(Bytes::from(body)));
        *resp.status_mut() = status;
        let headers = resp.headers_mut();
        let content_type = if json {
            "application/json"
        } else {
            "text/plain"
        };
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        self.common_headers(headers);
        resp
    }

    fn cors_preflight(&self) -> Response<Full<Bytes>> {
        let mut resp = Response::new(Full::new(Bytes::new()));
        let headers = resp.headers_mut();
        self.common_headers(headers);
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("POST, GET, PUT, OPTIONS, DELETE, PATCH"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("*"),
        );
        resp
    }

    fn common_headers(&self, headers: &mut http::HeaderMap) {
        headers.insert(header::SERVER, self.server_header.clone());
        headers.insert("x-api-version", HeaderValue::from_static("v3"));
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("*"),
        );
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("3600"),
        );
    }
}

/// The part of `path` after `/apisix/admin`, or `None` when the path is not an Admin path.
fn admin_rest(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/apisix/admin")?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

fn plain_body(e: &AdminError) -> Vec<u8> {
    match e {
        AdminError::NoRoute => b"404 Not Found\n".to_vec(),
        other => other.to_string().into_bytes(),
    }
}

/// Compares two keys in time that depends on the length only.
fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}
