//! The management API (`/api/v1`): etcd resources, clusters, workspaces, gateway objects per
//! workspace, nodes and tokens; and the token-scoped Admin API front.
//!
//! System data (etcd resources, clusters, workspaces, tokens, control-plane registrations) lives
//! in the control plane's own store under `/portico/system/`. Each cluster's gateway objects live
//! in the store of its etcd resource under the cluster's prefix. Nothing is cached in memory but
//! connections, so several control planes against one store stay consistent.

mod auth;
mod clusters;
mod endpoints;
mod etcd;
mod nodes;
mod records;
mod schemas;
mod tokens;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use portico_model::{Keyring, Registry};
use portico_store::SharedStore;
use serde_json::Value;

pub use auth::{Principal, TokenScope};
pub use endpoints::openapi;
pub use nodes::{register_control_plane, NodeThresholds, NODE_CONTROL_DIR, NODE_DIR};

use crate::admin::request::{self, Call};
use crate::admin::{AdminError, AdminResult};
use crate::{AdminApi, AdminKey, Scope};
use endpoints::{endpoints, match_path, Op};

/// Where system data lives in the control plane's store.
pub const SYSTEM_PREFIX: &str = "/portico/system";

/// The etcd resource that stands for the control plane's own store.
pub const SYSTEM_RESOURCE: &str = "system";

/// How the control plane reaches its own store (for the "add a node" command).
#[derive(Clone, Debug, Default)]
pub struct SystemStoreInfo {
    /// etcd endpoints; empty for the embedded store.
    pub etcd_endpoints: Vec<String>,
}

type Reply = AdminResult<(StatusCode, Option<Value>)>;

/// The management API and the token-scoped Admin API of one control-plane process.
pub struct ManageApi {
    system: SharedStore,
    info: SystemStoreInfo,
    plugins: Arc<Registry>,
    keyring: Arc<Keyring>,
    /// Keys from the configuration: system scope.
    keys: Vec<AdminKey>,
    thresholds: NodeThresholds,
    /// Connections to registered etcd resources, by id, with the record's `update_time`.
    stores: tokio::sync::Mutex<HashMap<String, (i64, SharedStore)>>,
    /// One Admin API per (cluster, workspace), so writes of a workspace are serialised.
    admins: Mutex<HashMap<(String, String), Arc<AdminApi>>>,
}

impl ManageApi {
    pub fn new(
        system: SharedStore,
        info: SystemStoreInfo,
        plugins: Arc<Registry>,
        keyring: Arc<Keyring>,
        keys: Vec<AdminKey>,
        thresholds: NodeThresholds,
    ) -> ManageApi {
        ManageApi {
            system,
            info,
            plugins,
            keyring,
            keys,
            thresholds,
            stores: tokio::sync::Mutex::new(HashMap::new()),
            admins: Mutex::new(HashMap::new()),
        }
    }

    /// Answers one request on the admin listener: `/api/v1/*`, or `/apisix/admin/*` for the
    /// cluster and workspace the caller's token reaches.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<Full<Bytes>>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: std::fmt::Display,
    {
        let path = req.uri().path().to_string();
        if path == "/apisix/admin" || path.starts_with("/apisix/admin/") {
            return self.admin_front(req).await;
        }
        if !(path == "/api/v1" || path.starts_with("/api/v1/")) {
            return json_response(Err(AdminError::NoRoute));
        }
        let (parts, body) = req.into_parts();
        let body = match request::read_body(&parts.headers, body).await {
            Ok(b) => b,
            Err(e) => return json_response(Err(e)),
        };
        let call = Call {
            method: parts.method,
            segments: Vec::new(),
            query: request::parse_query(parts.uri.query().unwrap_or("")),
            headers: parts.headers,
            body,
        };
        if call.method == Method::GET && path == "/api/v1/openapi.json" {
            return json_response(Ok((StatusCode::OK, Some(openapi()))));
        }
        let result = match self.principal(&call).await {
            Ok(who) => self.dispatch(&who, &path, &call).await,
            Err(e) => Err(e),
        };
        json_response(result)
    }

    async fn dispatch(&self, who: &Principal, path: &str, call: &Call) -> Reply {
        if call.method != Method::GET && !who.may_write() {
            return Err(AdminError::Unauthorized("invalid method for role viewer"));
        }
        if let Some(rest) = objects_path(path) {
            return self.objects(who, rest, call).await;
        }
        let table = endpoints();
        let found = table
            .iter()
            .filter(|ep| ep.method == call.method)
            .find_map(|ep| match_path(ep.path, path).map(|p| (ep.op, p)));
        let Some((op, p)) = found else {
            let known_path = table.iter().any(|ep| match_path(ep.path, path).is_some());
            return Err(if known_path {
                AdminError::MethodNotSupported {
                    method: call.method.to_string(),
                    kind: "this path",
                }
            } else {
                AdminError::NotFound(format!("no such endpoint: {path}"))
            });
        };
        let arg = |i: usize| p.get(i).copied().unwrap_or_default();
        match op {
            Op::OpenApi => Ok((StatusCode::OK, Some(openapi()))),
            Op::ListEtcd => self.list_etcd(who).await,
            Op::GetEtcd => self.get_etcd(who, arg(0)).await,
            Op::PutEtcd => self.put_etcd(who, arg(0), call, false).await,
            Op::PatchEtcd => self.put_etcd(who, arg(0), call, true).await,
            Op::DeleteEtcd => self.delete_etcd(who, arg(0)).await,
            Op::ListClusters => self.list_clusters(who).await,
            Op::GetCluster => self.get_cluster(who, arg(0)).await,
            Op::PutCluster => self.put_cluster(who, arg(0), call, false).await,
            Op::PatchCluster => self.put_cluster(who, arg(0), call, true).await,
            Op::DeleteCluster => self.delete_cluster(who, arg(0), call).await,
            Op::ListWorkspaces => self.list_workspaces(who, arg(0)).await,
            Op::GetWorkspace => self.get_workspace(who, arg(0), arg(1)).await,
            Op::PutWorkspace => self.put_workspace(who, arg(0), arg(1), call, false).await,
            Op::PatchWorkspace => self.put_workspace(who, arg(0), arg(1), call, true).await,
            Op::DeleteWorkspace => self.delete_workspace(who, arg(0), arg(1)).await,
            Op::Objects => Err(AdminError::NotFound("not found".into())),
            Op::ListNodes => self.list_nodes(who, arg(0)).await,
            Op::DrainNode => self.set_drained(who, arg(0), arg(1), true).await,
            Op::UndrainNode => self.set_drained(who, arg(0), arg(1), false).await,
            Op::ListControlPlanes => self.list_control_planes(who).await,
            Op::ListTokens => self.list_tokens(who).await,
            Op::CreateToken => self.create_token(who, call).await,
            Op::DeleteToken => self.delete_token(who, arg(0)).await,
        }
    }

    /// The Admin API of one workspace of one cluster (created on first use).
    pub(crate) async fn admin_for(
        &self,
        cluster: &str,
        workspace: &str,
    ) -> AdminResult<Arc<AdminApi>> {
        let record = self.cluster_record(cluster).await?;
        if self.workspace_record(cluster, workspace).await?.is_none() {
            return Err(AdminError::NotFound(format!(
                "workspace {workspace} not found in cluster {cluster}"
            )));
        }
        let key = (cluster.to_string(), workspace.to_string());
        if let Some(api) = self.admins.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(api);
        }
        let store = self.cluster_store(&record).await?;
        let prefix = record
            .get("prefix")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let guard = Arc::new(clusters::HostClaims {
            system: self.system.clone(),
            cluster: cluster.to_string(),
        });
        let api = Arc::new(
            AdminApi::new(
                store,
                self.plugins.clone(),
                self.keyring.clone(),
                Vec::new(),
                Scope {
                    cluster_prefix: prefix,
                    workspace: workspace.to_string(),
                },
            )
            .with_host_policy(guard),
        );
        if let Ok(mut m) = self.admins.lock() {
            m.insert(key, api.clone());
        }
        Ok(api)
    }

    /// Forgets cached Admin APIs of a cluster (after it was deleted or its store changed).
    fn forget_cluster(&self, cluster: &str) {
        if let Ok(mut m) = self.admins.lock() {
            m.retain(|(c, _), _| c != cluster);
        }
    }

    /// `/api/v1/clusters/{c}/workspaces/{w}/{kind}...`: the Admin API of that workspace.
    async fn objects(&self, who: &Principal, rest: ObjectsPath<'_>, call: &Call) -> Reply {
        who.check_workspace(rest.cluster, rest.workspace)?;
        let api = self.admin_for(rest.cluster, rest.workspace).await?;
        let mut uri = format!("/apisix/admin/{}", rest.tail);
        if let Some(q) = call_query(call) {
            uri.push('?');
            uri.push_str(&q);
        }
        let mut req = Request::builder().method(call.method.clone()).uri(uri);
        if let Some(h) = req.headers_mut() {
            *h = call.headers.clone();
        }
        let req = req
            .body(Full::new(call.body.clone()))
            .map_err(|e| AdminError::invalid(format!("bad request: {e}")))?;
        let resp = api.handle(req).await;
        passthrough(resp).await
    }
}

/// A `/api/v1/clusters/{c}/workspaces/{w}/{kind}[/...]` path, split.
struct ObjectsPath<'a> {
    cluster: &'a str,
    workspace: &'a str,
    /// `{kind}[/...]`
    tail: &'a str,
}

fn objects_path(path: &str) -> Option<ObjectsPath<'_>> {
    let rest = path.strip_prefix("/api/v1/clusters/")?;
    let (cluster, rest) = rest.split_once('/')?;
    let rest = rest.strip_prefix("workspaces/")?;
    let (workspace, tail) = rest.split_once('/')?;
    (!cluster.is_empty() && !workspace.is_empty() && !tail.is_empty()).then_some(ObjectsPath {
        cluster,
        workspace,
        tail,
    })
}

fn call_query(call: &Call) -> Option<String> {
    if call.query.is_empty() {
        return None;
    }
    let pairs: Vec<String> = call
        .query
        .iter()
        .filter(|(k, _)| k.as_str() != "api_key")
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    (!pairs.is_empty()).then(|| pairs.join("&"))
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Hands an Admin API answer through unchanged (status and JSON body).
async fn passthrough(resp: Response<Full<Bytes>>) -> Reply {
    use http_body_util::BodyExt;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    if body.is_empty() {
        return Ok((status, None));
    }
    let value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    Ok((status, Some(value)))
}

/// Renders a management API answer.
pub(crate) fn json_response(result: Reply) -> Response<Full<Bytes>> {
    let (status, body) = match result {
        Ok((status, body)) => (status, body.map(|b| b.to_string()).unwrap_or_default()),
        Err(e) => (
            e.status(),
            e.body()
                .map(|b| b.to_string())
                .unwrap_or_else(|| e.to_string()),
        ),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

/// A short pause used when probing an etcd resource's health.
pub(crate) const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);
