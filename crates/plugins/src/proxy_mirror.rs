//! proxy-mirror: sends a copy of each request (or a sample of them) to another server and ignores
//! its answer (APISIX priority 1010; `apisix/plugins/proxy-mirror.lua`).
//!
//! The copy has the upstream request's method, headers and body. Its target is the upstream
//! request's path and query, unless `path` is set: `path_concat_mode: replace` sends `path` with
//! the query, `prefix` sends `path` followed by the upstream path and query. The copy leaves once
//! the phases are done, alongside the real request, and never delays or changes the client's
//! response. The body is read whole for it (within the node's body limit).

use std::sync::Arc;

use portico_model::PluginSpec;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{typed, BuildEnv, Ctx, Flow, Mirror, Plugin, UpstreamPick};

/// Plugin name.
pub const NAME: &str = "proxy-mirror";

const PRIORITY: i32 = 1010;

/// The registry row of proxy-mirror.
pub fn spec() -> PluginSpec {
    PluginSpec::new(
        NAME,
        PRIORITY,
        json!({
            "type": "object",
            "properties": {
                "host": {
                    "type": "string",
                    "pattern": "^(http(s)?|grpc(s)?):\\/\\/([\\da-zA-Z.-]+|\\[[\\da-fA-F:]+\\])(:\\d+)?$"
                },
                "path": {"type": "string", "pattern": "^/[^?&]+$"},
                "path_concat_mode": {
                    "type": "string",
                    "default": "replace",
                    "enum": ["replace", "prefix"],
                    "description": "the concatenation mode for custom path"
                },
                "sample_ratio": {
                    "type": "number",
                    "minimum": 0.00001,
                    "maximum": 1,
                    "default": 1
                }
            },
            "required": ["host"]
        }),
    )
}

#[derive(Debug, Deserialize)]
struct Config {
    host: String,
    path: Option<String>,
    #[serde(default)]
    path_concat_mode: Option<String>,
    #[serde(default = "one")]
    sample_ratio: f64,
}

fn one() -> f64 {
    1.0
}

/// A proxy-mirror instance: the mirror's compiled upstream and where the copy goes.
pub struct ProxyMirror {
    upstream: UpstreamPick,
    path: Option<String>,
    prefix: bool,
    sample_ratio: f64,
}

impl std::fmt::Debug for ProxyMirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyMirror")
            .field("path", &self.path)
            .field("prefix", &self.prefix)
            .field("sample_ratio", &self.sample_ratio)
            .finish()
    }
}

/// The upstream configuration a mirror `host` stands for.
fn upstream_of(host: &str) -> Result<Value, String> {
    let (scheme, authority) = host
        .split_once("://")
        .ok_or_else(|| format!("invalid mirror host {host}"))?;
    let default_port = if scheme.ends_with('s') { 443 } else { 80 };
    let has_port = authority.rsplit_once(':').is_some_and(|(h, p)| {
        !h.ends_with(':') && p.bytes().all(|b| b.is_ascii_digit()) && !authority.ends_with(']')
    });
    let node = if has_port {
        authority.to_string()
    } else {
        format!("{authority}:{default_port}")
    };
    Ok(json!({"nodes": {node: 1}, "scheme": scheme, "pass_host": "pass", "retries": 0}))
}

/// Builds proxy-mirror from a checked configuration.
pub fn build(conf: &Value, env: &BuildEnv<'_>) -> Result<Arc<dyn Plugin>, String> {
    let c: Config = typed(conf)?;
    let builder = env
        .upstreams
        .ok_or("mirrors need a data plane to compile their target")?;
    let upstream = UpstreamPick::Built(builder.build(&upstream_of(&c.host)?)?);
    Ok(Arc::new(ProxyMirror {
        upstream,
        path: c.path,
        prefix: c.path_concat_mode.as_deref() == Some("prefix"),
        sample_ratio: c.sample_ratio,
    }))
}

impl ProxyMirror {
    fn target(&self, ctx: &Ctx) -> Option<String> {
        let path = self.path.as_ref()?;
        let current = ctx.upstream_uri.clone().unwrap_or_else(|| {
            ctx.uri
                .path_and_query()
                .map_or_else(|| "/".to_string(), |pq| pq.as_str().to_string())
        });
        Some(if self.prefix {
            format!("{path}{current}")
        } else {
            match ctx.query() {
                "" => path.clone(),
                q => format!("{path}?{q}"),
            }
        })
    }
}

impl Plugin for ProxyMirror {
    fn name(&self) -> &'static str {
        NAME
    }

    fn priority(&self) -> i32 {
        PRIORITY
    }

    fn wants_request_body(&self) -> bool {
        true
    }

    fn rewrite(&self, ctx: &mut Ctx) -> Flow {
        if self.sample_ratio < 1.0 && crate::random::unit() >= self.sample_ratio {
            return Flow::Continue;
        }
        ctx.mirror = Some(Box::new(Mirror {
            upstream: self.upstream.clone(),
            path_and_query: self.target(ctx),
        }));
        Flow::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_become_single_node_upstreams() {
        let up = upstream_of("http://127.0.0.1:1986").unwrap();
        assert_eq!(up["nodes"], json!({"127.0.0.1:1986": 1}));
        assert_eq!(up["scheme"], "http");
        let up = upstream_of("https://mirror.example.com").unwrap();
        assert_eq!(up["nodes"], json!({"mirror.example.com:443": 1}));
        let up = upstream_of("grpc://[::1]:50051").unwrap();
        assert_eq!(up["nodes"], json!({"[::1]:50051": 1}));
        let up = upstream_of("http://[::1]").unwrap();
        assert_eq!(up["nodes"], json!({"[::1]:80": 1}));
    }

    #[test]
    fn hosts_and_paths_are_checked() {
        let registry = crate::registry();
        let check = |conf: Value| {
            let t = json!({"id": "1", "plugins": {NAME: conf}});
            portico_model::check(portico_model::Kind::PluginConfig, &t, &registry)
        };
        assert!(check(json!({"host": "http://127.0.0.1:1986"})).is_ok());
        assert!(check(json!({"host": "http://127.0.0.1:1986/path"})).is_err());
        assert!(check(json!({"host": "ftp://127.0.0.1"})).is_err());
        assert!(check(json!({"host": "http://a", "path": "/a?b"})).is_err());
        assert!(check(json!({"host": "http://a", "sample_ratio": 0})).is_err());
        assert!(check(json!({})).is_err());
    }
}
