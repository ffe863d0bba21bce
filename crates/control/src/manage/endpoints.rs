//! The management API's endpoints, in one table. Dispatch and the OpenAPI document are both made
//! from this table, so the document cannot drift from what is served.

use http::Method;
use serde_json::{json, Map, Value};

use super::schemas;

/// What an endpoint does; each is handled in exactly one `match` arm of the dispatcher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    OpenApi,
    ListEtcd,
    GetEtcd,
    PutEtcd,
    PatchEtcd,
    DeleteEtcd,
    ListClusters,
    GetCluster,
    PutCluster,
    PatchCluster,
    DeleteCluster,
    ListWorkspaces,
    GetWorkspace,
    PutWorkspace,
    PatchWorkspace,
    DeleteWorkspace,
    Objects,
    ListNodes,
    DrainNode,
    UndrainNode,
    ListControlPlanes,
    ListTokens,
    CreateToken,
    DeleteToken,
}

/// One endpoint: method, path template (`{name}` segments), what it does, and its documentation.
pub struct Endpoint {
    pub method: Method,
    pub path: &'static str,
    pub op: Op,
    pub summary: &'static str,
    /// JSON Schema of the request body, when it takes one.
    pub body: Option<fn() -> Value>,
    /// JSON Schema of a successful answer.
    pub answer: fn() -> Value,
}

macro_rules! ep {
    ($m:ident $path:literal $op:ident, $summary:literal, $body:expr, $answer:expr) => {
        Endpoint {
            method: Method::$m,
            path: $path,
            op: Op::$op,
            summary: $summary,
            body: $body,
            answer: $answer,
        }
    };
}

/// Every endpoint under `/api/v1`.
pub fn endpoints() -> Vec<Endpoint> {
    vec![
        ep!(GET "/api/v1/openapi.json" OpenApi, "This document.", None, schemas::any),
        ep!(GET "/api/v1/etcd_resources" ListEtcd, "List etcd resources with their health.", None, schemas::etcd_list),
        ep!(GET "/api/v1/etcd_resources/{etcd}" GetEtcd, "Show an etcd resource and its health.", None, schemas::etcd_answer),
        ep!(PUT "/api/v1/etcd_resources/{etcd}" PutEtcd, "Register or replace an etcd resource. Passwords and keys are write-only.", Some(schemas::etcd_body), schemas::etcd_answer),
        ep!(PATCH "/api/v1/etcd_resources/{etcd}" PatchEtcd, "Edit an etcd resource (JSON merge).", Some(schemas::any_object), schemas::etcd_answer),
        ep!(DELETE "/api/v1/etcd_resources/{etcd}" DeleteEtcd, "Remove an etcd resource; refused while a cluster uses it.", None, schemas::deleted),
        ep!(GET "/api/v1/clusters" ListClusters, "List clusters with their status.", None, schemas::cluster_list),
        ep!(GET "/api/v1/clusters/{cluster}" GetCluster, "Show a cluster, its status and the command that adds a node.", None, schemas::cluster_answer),
        ep!(PUT "/api/v1/clusters/{cluster}" PutCluster, "Create a cluster bound to an etcd resource and key prefix, or edit its name, description and external address.", Some(schemas::cluster_body), schemas::cluster_answer),
        ep!(PATCH "/api/v1/clusters/{cluster}" PatchCluster, "Edit a cluster (JSON merge); the etcd resource and prefix cannot change.", Some(schemas::any_object), schemas::cluster_answer),
        ep!(DELETE "/api/v1/clusters/{cluster}" DeleteCluster, "Delete a cluster and wipe its prefix; needs ?confirm=<cluster id>. Running nodes keep serving their last config.", None, schemas::deleted),
        ep!(GET "/api/v1/clusters/{cluster}/workspaces" ListWorkspaces, "List the workspaces of a cluster.", None, schemas::workspace_list),
        ep!(GET "/api/v1/clusters/{cluster}/workspaces/{workspace}" GetWorkspace, "Show a workspace.", None, schemas::workspace),
        ep!(PUT "/api/v1/clusters/{cluster}/workspaces/{workspace}" PutWorkspace, "Create or replace a workspace and its claimed hosts.", Some(schemas::workspace_body), schemas::workspace),
        ep!(PATCH "/api/v1/clusters/{cluster}/workspaces/{workspace}" PatchWorkspace, "Edit a workspace (JSON merge).", Some(schemas::any_object), schemas::workspace),
        ep!(DELETE "/api/v1/clusters/{cluster}/workspaces/{workspace}" DeleteWorkspace, "Delete a workspace; refused while it holds objects.", None, schemas::deleted),
        ep!(GET "/api/v1/clusters/{cluster}/workspaces/{workspace}/{kind}" Objects, "List gateway objects of a kind (routes, upstreams, consumers, consumer_groups, plugin_configs, global_rules, ssls, plugin_metadata), with the Admin API's filters and pagination.", None, schemas::any),
        ep!(POST "/api/v1/clusters/{cluster}/workspaces/{workspace}/{kind}" Objects, "Create a gateway object with a generated id (kinds that allow it).", Some(schemas::any_object), schemas::any),
        ep!(GET "/api/v1/clusters/{cluster}/workspaces/{workspace}/{kind}/{id}" Objects, "Show a gateway object (APISIX v3 envelope).", None, schemas::any),
        ep!(PUT "/api/v1/clusters/{cluster}/workspaces/{workspace}/{kind}/{id}" Objects, "Create or replace a gateway object; validated exactly as by the Admin API.", Some(schemas::any_object), schemas::any),
        ep!(PATCH "/api/v1/clusters/{cluster}/workspaces/{workspace}/{kind}/{id}" Objects, "Edit a gateway object (JSON merge).", Some(schemas::any_object), schemas::any),
        ep!(DELETE "/api/v1/clusters/{cluster}/workspaces/{workspace}/{kind}/{id}" Objects, "Delete a gateway object (?force=true ignores references).", None, schemas::any),
        ep!(GET "/api/v1/clusters/{cluster}/nodes" ListNodes, "The cluster's data-plane nodes and their state.", None, schemas::node_list),
        ep!(POST "/api/v1/clusters/{cluster}/nodes/{node}/drain" DrainNode, "Drain a data-plane node: its readiness endpoint answers 503.", None, schemas::node),
        ep!(POST "/api/v1/clusters/{cluster}/nodes/{node}/undrain" UndrainNode, "Return a drained node to service.", None, schemas::node),
        ep!(GET "/api/v1/control_planes" ListControlPlanes, "The control-plane nodes running against this system store.", None, schemas::any),
        ep!(GET "/api/v1/tokens" ListTokens, "List API tokens (never their keys).", None, schemas::token_list),
        ep!(POST "/api/v1/tokens" CreateToken, "Create an API token with a scope and a role; the key is shown once.", Some(schemas::token_body), schemas::token),
        ep!(DELETE "/api/v1/tokens/{token}" DeleteToken, "Revoke an API token.", None, schemas::deleted),
    ]
}

/// Matches `path` against a template; returns the `{name}` values in order.
pub fn match_path<'a>(template: &str, path: &'a str) -> Option<Vec<&'a str>> {
    let mut params = Vec::new();
    let mut t = template.split('/');
    let mut p = path.split('/');
    loop {
        match (t.next(), p.next()) {
            (None, None) => return Some(params),
            (Some(ts), Some(ps)) if ts.starts_with('{') && !ps.is_empty() => params.push(ps),
            (Some(ts), Some(ps)) if ts == ps => {}
            _ => return None,
        }
    }
}

/// The OpenAPI 3 document of the management API.
pub fn openapi() -> Value {
    let mut paths = Map::new();
    for ep in endpoints() {
        let item = paths
            .entry(ep.path.to_string())
            .or_insert_with(|| json!({}));
        let params: Vec<Value> = ep
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let mut op = json!({
            "summary": ep.summary,
            "operationId": format!("{:?}{}", ep.op, ep.method.as_str().to_lowercase()),
            "parameters": params,
            "responses": {
                "200": {"description": "OK", "content": {"application/json": {"schema": (ep.answer)()}}},
                "400": {"$ref": "#/components/responses/Error"},
                "401": {"$ref": "#/components/responses/Error"},
                "403": {"$ref": "#/components/responses/Error"},
                "404": {"$ref": "#/components/responses/Error"},
                "503": {"$ref": "#/components/responses/Error"}
            },
            "security": [{"apiKey": []}]
        });
        if let Some(body) = ep.body {
            op["requestBody"] = json!({
                "required": true,
                "content": {"application/json": {"schema": body()}}
            });
        }
        item[ep.method.as_str().to_lowercase()] = op;
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Portico management API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Clusters, etcd resources, workspaces, gateway objects, nodes and tokens. Authenticate with the X-API-KEY header."
        },
        "paths": paths,
        "components": {
            "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "X-API-KEY"}},
            "responses": {"Error": {
                "description": "What went wrong",
                "content": {"application/json": {"schema": {
                    "type": "object",
                    "properties": {"error_msg": {"type": "string"}},
                    "required": ["error_msg"]
                }}}
            }}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_whole_paths_only() {
        assert_eq!(
            match_path("/api/v1/clusters/{cluster}", "/api/v1/clusters/a"),
            Some(vec!["a"])
        );
        assert_eq!(
            match_path("/api/v1/clusters/{cluster}", "/api/v1/clusters/"),
            None
        );
        assert_eq!(
            match_path("/api/v1/clusters/{cluster}", "/api/v1/clusters/a/b"),
            None
        );
        assert_eq!(
            match_path("/api/v1/clusters", "/api/v1/clusters"),
            Some(vec![])
        );
    }

    #[test]
    fn every_endpoint_is_documented_once_per_method() {
        let doc = openapi();
        let mut seen = std::collections::HashSet::new();
        for ep in endpoints() {
            assert!(
                seen.insert((ep.method.clone(), ep.path)),
                "duplicate {} {}",
                ep.method,
                ep.path
            );
            assert!(doc["paths"][ep.path][ep.method.as_str().to_lowercase()].is_object());
        }
    }
}
