//! Compiling a [`Config`] into a [`Snapshot`], reusing what did not change.

use std::collections::HashMap;
use std::sync::Arc;

use portico_model::types::{self, SslType};
use portico_model::{Keyring, Kind, Registry};
use portico_plugins::RoutePlugins;
use portico_router::{RouteSpec, Router};
use serde_json::Value;

use crate::plugins::WorkspacePlugins;
use crate::route::{self, CompiledRoute, RouteEntry, RouteUpstream};
use crate::tls::{self, ServerCertSpec, SniTable};
use crate::upstream::{self, Timeouts, Upstream};
use crate::{Config, Item, Problem, Snapshot};

/// What a key below the cluster prefix names.
struct ObjectKey<'a> {
    workspace: &'a str,
    kind: Kind,
}

fn parse_key(key: &str) -> Option<ObjectKey<'_>> {
    let rest = key.strip_prefix("ws/")?;
    let mut parts = rest.splitn(4, '/');
    let workspace = parts.next()?;
    let kind = Kind::from_segment(parts.next()?)?;
    let id = parts.next()?;
    // Credentials live below their consumer: `consumers/<u>/credentials/<id>`.
    let kind = match (kind, parts.next()) {
        (Kind::Consumer, Some(sub)) if sub.starts_with("credentials/") => Kind::Credential,
        (_, Some(_)) => return None,
        (kind, None) => kind,
    };
    (!id.is_empty()).then_some(ObjectKey { workspace, kind })
}

/// The last path segment of a key: the object's id.
fn id_of(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

/// Compiles `config` at store `revision`. `previous` is the snapshot being replaced; parts whose
/// revision did not change are taken from it.
pub fn compile(
    config: &Config,
    revision: i64,
    previous: Option<&Snapshot>,
    plugins: &Registry,
    keyring: &Keyring,
) -> Snapshot {
    let mut problems = Vec::new();
    let decrypted = |kind: Kind, item: &Item| {
        let mut v = item.value.clone();
        portico_model::decrypt_secrets(kind, &mut v, plugins, keyring, false);
        v
    };

    // Certificates first: upstreams refer to client certificates by ssl id.
    let mut certs = HashMap::new();
    let mut sni = SniTable::default();
    let mut client_certs: HashMap<String, (String, String)> = HashMap::new();
    for (key, item) in config.iter() {
        let Some(ObjectKey {
            kind: Kind::Ssl, ..
        }) = parse_key(key)
        else {
            continue;
        };
        let ssl: types::Ssl = match types::parse(&decrypted(Kind::Ssl, item)) {
            Ok(ssl) => ssl,
            Err(e) => {
                problems.push(problem(key, e));
                continue;
            }
        };
        if !ssl.is_enabled() {
            continue;
        }
        if ssl.kind == SslType::Client {
            client_certs.insert(key.clone(), (ssl.cert.clone(), ssl.key.clone()));
            continue;
        }
        let reused = previous
            .and_then(|p| p.certs.get(key))
            .filter(|(rev, _, _)| *rev == item.mod_revision)
            .cloned();
        let entry = match reused {
            Some(entry) => entry,
            None => match server_cert(key, &ssl) {
                Ok(cert) => {
                    let names = ssl.sni_list().into_iter().map(str::to_string).collect();
                    (item.mod_revision, Arc::new(cert), names)
                }
                Err(e) => {
                    problems.push(problem(key, e));
                    continue;
                }
            },
        };
        sni.insert(&entry.2, entry.1.clone());
        certs.insert(key.clone(), entry);
    }

    // Named upstreams.
    let mut upstreams: HashMap<String, Arc<Upstream>> = HashMap::new();
    for (key, item) in config.iter() {
        let Some(ObjectKey {
            kind: Kind::Upstream,
            workspace,
        }) = parse_key(key)
        else {
            continue;
        };
        let prev = previous.and_then(|p| p.upstreams.get(key));
        if let Some(prev) = prev.filter(|u| u.mod_revision == item.mod_revision) {
            upstreams.insert(key.clone(), prev.clone());
            continue;
        }
        let value = decrypted(Kind::Upstream, item);
        match compile_upstream(
            key,
            item.mod_revision,
            &value,
            workspace,
            &client_certs,
            prev.map(|u| &**u),
        ) {
            Ok(u) => {
                upstreams.insert(key.clone(), Arc::new(u));
            }
            Err(e) => problems.push(problem(key, e)),
        }
    }

    // Plugin templates, global rules, consumers.
    let (plugin_cache, workspaces) = crate::plugins::compile(
        config,
        |key| parse_key(key).map(|k| (k.workspace, k.kind)),
        previous.map(|p| &p.plugins),
        plugins,
        &decrypted,
        &mut problems,
    );
    let no_plugins = WorkspacePlugins::default();

    // Routes.
    let mut routes = HashMap::new();
    let mut specs: Vec<RouteSpec<Arc<RouteEntry>>> = Vec::new();
    for (key, item) in config.iter() {
        let Some(ObjectKey {
            kind: Kind::Route,
            workspace,
        }) = parse_key(key)
        else {
            continue;
        };
        let reused = previous
            .and_then(|p| p.routes.get(key))
            .filter(|r| r.mod_revision == item.mod_revision)
            .cloned();
        let compiled = match reused {
            Some(r) => r,
            None => {
                let prev_inline = previous
                    .and_then(|p| p.routes.get(key))
                    .and_then(|r| r.inline_upstream.as_deref());
                let value = decrypted(Kind::Route, item);
                match compile_route(
                    key,
                    workspace,
                    item.mod_revision,
                    &value,
                    &client_certs,
                    prev_inline,
                ) {
                    Ok(Some(r)) => Arc::new(r),
                    Ok(None) => continue,
                    Err(e) => {
                        problems.push(problem(key, e));
                        continue;
                    }
                }
            }
        };
        if let Some(inline) = &compiled.inline_upstream {
            upstreams.insert(key.clone(), inline.clone());
        }
        let upstream = match (&compiled.upstream_id, &compiled.inline_upstream) {
            (Some(id), _) => {
                let upstream_key = format!("ws/{workspace}/upstreams/{id}");
                match upstreams.get(&upstream_key) {
                    Some(u) => RouteUpstream::Ready(u.clone()),
                    None => RouteUpstream::Missing(id.clone()),
                }
            }
            (None, Some(inline)) => RouteUpstream::Ready(inline.clone()),
            (None, None) => RouteUpstream::None,
        };
        let ws_plugins = workspaces.get(workspace).unwrap_or(&no_plugins);
        let entry = Arc::new(RouteEntry {
            route: compiled.clone(),
            upstream,
            plugins: Arc::new(RoutePlugins {
                route_id: Arc::from(compiled.id.as_str()),
                route_name: compiled.name.as_deref().map(Arc::from),
                global: ws_plugins.global.clone(),
                route: ws_plugins.template(compiled.plugin_config_id.as_deref()),
                consumers: ws_plugins.consumers.clone(),
            }),
        });
        let spec = &compiled.spec;
        specs.push(RouteSpec {
            id: entry,
            uris: spec.uris.clone(),
            hosts: spec.hosts.clone(),
            methods: spec.methods.clone(),
            remote_addrs: spec.remote_addrs.clone(),
            vars: spec.vars.clone(),
            priority: spec.priority,
        });
        routes.insert(key.clone(), compiled);
    }
    let router = match Router::build(specs) {
        Ok(router) => router,
        Err(e) => {
            problems.push(problem("routes", e.to_string()));
            crate::empty_router()
        }
    };
    for p in &problems {
        tracing::warn!("config object {} left out: {}", p.key, p.error);
    }
    Snapshot {
        revision,
        router,
        sni,
        upstreams,
        routes,
        certs,
        plugins: plugin_cache,
        problems,
    }
}

fn problem(key: &str, error: impl Into<String>) -> Problem {
    Problem {
        key: key.to_string(),
        error: error.into(),
    }
}

fn server_cert(key: &str, ssl: &types::Ssl) -> Result<tls::ServerCert, String> {
    let mut pairs = vec![(ssl.cert.as_str(), ssl.key.as_str())];
    pairs.extend(
        ssl.certs
            .iter()
            .map(String::as_str)
            .zip(ssl.keys.iter().map(String::as_str)),
    );
    let client = ssl.client.as_ref();
    let empty = Vec::new();
    tls::server_cert(&ServerCertSpec {
        id: id_of(key),
        pairs,
        client_ca: client.map(|c| c.ca.as_str()),
        skip_mtls_uri_regex: client.map_or(&empty, |c| &c.skip_mtls_uri_regex),
        protocols: &ssl.ssl_protocols,
    })
    .map_err(|e| e.to_string())
}

/// The client certificate of an upstream: inline, or an ssl object of type `client`.
fn client_identity<'a>(
    tls: Option<&'a types::UpstreamTls>,
    workspace: &str,
    client_certs: &'a HashMap<String, (String, String)>,
) -> Result<Option<(&'a str, &'a str)>, String> {
    let Some(tls) = tls else {
        return Ok(None);
    };
    if let Some(id) = &tls.client_cert_id {
        let key = format!("ws/{workspace}/ssls/{id}");
        return client_certs
            .get(&key)
            .map(|(c, k)| Some((c.as_str(), k.as_str())))
            .ok_or_else(|| format!("failed to fetch ssl info by ssl id [{id}], wrong ssl type"));
    }
    Ok(tls.client_cert.as_deref().zip(tls.client_key.as_deref()))
}

fn compile_upstream(
    key: &str,
    mod_revision: i64,
    value: &Value,
    workspace: &str,
    client_certs: &HashMap<String, (String, String)>,
    previous: Option<&Upstream>,
) -> Result<Upstream, String> {
    let config: types::Upstream = types::parse(value)?;
    let identity = client_identity(config.tls.as_ref(), workspace, client_certs)?;
    upstream::compile(key, mod_revision, config.clone(), identity, previous)
}

/// A route's own parts; `None` for a disabled route (`status: 0`).
fn compile_route(
    key: &str,
    workspace: &str,
    mod_revision: i64,
    value: &Value,
    client_certs: &HashMap<String, (String, String)>,
    previous_inline: Option<&Upstream>,
) -> Result<Option<CompiledRoute>, String> {
    let route: types::Route = types::parse(value)?;
    if !route.is_enabled() {
        return Ok(None);
    }
    let spec = route::spec(&route)?;
    let inline_upstream = match &route.upstream {
        Some(config) => {
            let identity = client_identity(config.tls.as_ref(), workspace, client_certs)?;
            Some(Arc::new(upstream::compile(
                key,
                mod_revision,
                config.clone(),
                identity,
                previous_inline,
            )?))
        }
        None => None,
    };
    Ok(Some(CompiledRoute {
        key: key.to_string(),
        workspace: workspace.to_string(),
        id: id_of(key).to_string(),
        name: route.name.clone(),
        mod_revision,
        timeout: route.timeout.as_ref().map(Timeouts::from),
        enable_websocket: route.enable_websocket.unwrap_or(false),
        upstream_id: route.upstream_id.as_ref().map(|id| id.0.clone()),
        inline_upstream,
        plugin_config_id: route.plugin_config_id.as_ref().map(|id| id.0.clone()),
        spec,
    }))
}
