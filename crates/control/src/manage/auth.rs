//! Who is calling: the configured keys reach the whole system; API tokens reach the system, one
//! cluster, or one workspace, as admin or viewer. Every check of what a caller may see or change
//! goes through [`Principal`].

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::Full;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{json_response, ManageApi, SYSTEM_PREFIX};
use crate::admin::request::{self, Call};
use crate::admin::{AdminError, AdminResult};
use crate::Role;

/// How far a token reaches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenScope {
    System,
    Cluster(String),
    Workspace(String, String),
}

/// An authenticated caller.
#[derive(Clone, Debug)]
pub struct Principal {
    pub scope: TokenScope,
    pub role: Role,
}

impl Principal {
    pub fn may_write(&self) -> bool {
        self.role == Role::Admin
    }

    /// System-wide objects (etcd resources, tokens, new clusters).
    pub fn check_system(&self) -> AdminResult<()> {
        match self.scope {
            TokenScope::System => Ok(()),
            _ => Err(forbidden("this needs a system-wide token")),
        }
    }

    /// Whether the caller sees `cluster` at all.
    pub fn reaches_cluster(&self, cluster: &str) -> bool {
        match &self.scope {
            TokenScope::System => true,
            TokenScope::Cluster(c) | TokenScope::Workspace(c, _) => c == cluster,
        }
    }

    /// The cluster as a whole (its settings, workspaces, nodes).
    pub fn check_cluster(&self, cluster: &str) -> AdminResult<()> {
        match &self.scope {
            TokenScope::System => Ok(()),
            TokenScope::Cluster(c) if c == cluster => Ok(()),
            _ => Err(forbidden(&format!(
                "this token does not reach cluster {cluster}"
            ))),
        }
    }

    /// Whether the caller sees `workspace` of `cluster`.
    pub fn reaches_workspace(&self, cluster: &str, workspace: &str) -> bool {
        match &self.scope {
            TokenScope::Workspace(c, w) => c == cluster && w == workspace,
            _ => self.reaches_cluster(cluster),
        }
    }

    /// The objects of one workspace.
    pub fn check_workspace(&self, cluster: &str, workspace: &str) -> AdminResult<()> {
        if self.reaches_workspace(cluster, workspace) {
            Ok(())
        } else {
            Err(forbidden(&format!(
                "this token does not reach workspace {workspace} of cluster {cluster}"
            )))
        }
    }

    /// The (cluster, workspace) the APISIX-compatible Admin API serves for this caller.
    pub fn admin_target(&self) -> (String, String) {
        match &self.scope {
            TokenScope::System => ("default".into(), "default".into()),
            TokenScope::Cluster(c) => (c.clone(), "default".into()),
            TokenScope::Workspace(c, w) => (c.clone(), w.clone()),
        }
    }
}

fn forbidden(msg: &str) -> AdminError {
    AdminError::Forbidden(msg.to_string())
}

/// The SHA-256 of a token key, hex: what is stored instead of the key.
pub fn key_hash(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl ManageApi {
    /// Authenticates a call by its key (`X-API-KEY`, `?api_key=` or the `x_api_key` cookie).
    pub(crate) async fn principal(&self, call: &Call) -> AdminResult<Principal> {
        let Some(given) = call.api_key() else {
            return Err(AdminError::Unauthorized("missing apikey"));
        };
        if let Some(k) = self.keys.iter().find(|k| same(&k.key, &given)) {
            return Ok(Principal {
                scope: TokenScope::System,
                role: k.role,
            });
        }
        let hash = key_hash(&given);
        let tokens = self
            .system
            .range(&format!("{SYSTEM_PREFIX}/tokens/"))
            .await?;
        for kv in &tokens.kvs {
            let Ok(token) = serde_json::from_slice::<Value>(&kv.value) else {
                continue;
            };
            if token.get("key_hash").and_then(Value::as_str) != Some(hash.as_str()) {
                continue;
            }
            let role = match token.get("role").and_then(Value::as_str) {
                Some("admin") => Role::Admin,
                _ => Role::Viewer,
            };
            let text = |f: &str| token.get(f).and_then(Value::as_str).map(str::to_string);
            let scope = match (text("cluster"), text("workspace")) {
                (Some(c), Some(w)) => TokenScope::Workspace(c, w),
                (Some(c), None) => TokenScope::Cluster(c),
                _ => TokenScope::System,
            };
            return Ok(Principal { scope, role });
        }
        Err(AdminError::Unauthorized("wrong apikey"))
    }

    /// `/apisix/admin/*`: authenticate, then serve the Admin API of the caller's workspace.
    pub(crate) async fn admin_front<B>(&self, req: Request<B>) -> Response<Full<Bytes>>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: std::fmt::Display,
    {
        let (parts, body) = req.into_parts();
        // Probes and CORS preflights need no key (as in APISIX).
        let open = parts.method == Method::OPTIONS
            || (parts.method == Method::HEAD
                && parts.uri.path().trim_end_matches('/') == "/apisix/admin");
        let body = match request::read_body(&parts.headers, body).await {
            Ok(b) => b,
            Err(e) => return json_response(Err(e)),
        };
        let call = Call {
            method: parts.method.clone(),
            segments: Vec::new(),
            query: request::parse_query(parts.uri.query().unwrap_or("")),
            headers: parts.headers.clone(),
            body: body.clone(),
        };
        let (cluster, workspace) = if open {
            ("default".to_string(), "default".to_string())
        } else {
            let who = match self.principal(&call).await {
                Ok(who) => who,
                Err(e) => return json_response(Err(e)),
            };
            if parts.method != Method::GET && !who.may_write() {
                return json_response(Err(AdminError::Unauthorized(
                    "invalid method for role viewer",
                )));
            }
            who.admin_target()
        };
        let api = match self.admin_for(&cluster, &workspace).await {
            Ok(api) => api,
            Err(e) => return json_response(Err(e)),
        };
        api.handle(Request::from_parts(parts, Full::new(body)))
            .await
    }
}

/// Compares two keys in time that depends on the length only.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}
