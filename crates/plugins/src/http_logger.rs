//! http-logger: log entries POSTed in batches to an HTTP(S) server (APISIX priority 410;
//! `apisix/plugins/http-logger.lua`).
//!
//! Entries are [`log_entry`](crate::log_entry)'s (default, or `log_format` from the
//! configuration or `plugin_metadata/http-logger`), batched by the [`batch`](crate::batch)
//! processor and sent by a background task: one connection per batch, `POST` to `uri`'s path
//! and query with `Host` = `uri`'s host, `Content-Type: application/json` (`concat_method:
//! json`: a JSON array, or the single object when `batch_max_size` is 1) or `text/plain`
//! (`new_line`: one JSON object per line), and `Authorization: <auth_header>` when set. A
//! status of 400 or more, or no answer within `timeout` seconds, fails the batch (retried as
//! the batch options say). `https://` verifies the server's certificate only with
//! `ssl_verify`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use http::{Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use portico_model::schemas::defs::uri_def;
use portico_model::PluginSpec;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::batch::{self, BatchConfig, Batcher, SendFuture, Sink};
use crate::log_entry::{self, LogOptions};
use crate::{typed, BuildEnv, Ctx, Flow, Plugin};

/// Plugin name.
pub const NAME: &str = "http-logger";

/// The configuration schema.
pub fn schema() -> Value {
    let mut properties = log_entry::schema_properties();
    for (k, v) in [
        ("uri", uri_def()),
        ("auth_header", json!({"type": "string"})),
        (
            "timeout",
            json!({"type": "integer", "minimum": 1, "default": 3}),
        ),
        (
            "concat_method",
            json!({"type": "string", "default": "json", "enum": ["json", "new_line"]}),
        ),
        ("ssl_verify", json!({"type": "boolean", "default": false})),
    ] {
        properties.insert(k.into(), v);
    }
    properties.extend(batch::schema_properties("http logger"));
    json!({"type": "object", "properties": properties, "required": ["uri"]})
}

/// The plugin-metadata schema.
pub fn metadata_schema() -> Value {
    batch::wrap_metadata_schema(json!({
        "type": "object",
        "properties": {"log_format_extra": {"type": "object"}, "log_format": {"type": "object"}}
    }))
}

/// The registry row of http-logger.
pub fn spec() -> PluginSpec {
    PluginSpec {
        metadata_schema: Some(metadata_schema()),
        encrypt_fields: &["auth_header"],
        check: Some(log_entry::check),
        ..PluginSpec::new(NAME, 410, schema())
    }
}

fn three() -> u64 {
    3
}

fn json_method() -> String {
    "json".into()
}

#[derive(Debug, Deserialize)]
struct Config {
    uri: String,
    auth_header: Option<String>,
    #[serde(default = "three")]
    timeout: u64,
    #[serde(default = "json_method")]
    concat_method: String,
    #[serde(default)]
    ssl_verify: bool,
}

/// An http-logger instance.
#[derive(Debug)]
pub struct HttpLogger {
    options: LogOptions,
    batcher: Batcher,
}

/// The maximum pending entries of the plugin's metadata.
pub(crate) fn max_pending(metadata: Option<&Value>) -> usize {
    metadata
        .and_then(|m| m.get("max_pending_entries"))
        .and_then(Value::as_u64)
        .map_or(batch::DEFAULT_MAX_PENDING_ENTRIES, |n| n as usize)
}

/// Builds an instance.
pub fn build(conf: &Value, env: &BuildEnv<'_>) -> Result<Arc<dyn Plugin>, String> {
    let keys = [
        "uri",
        "auth_header",
        "timeout",
        "concat_method",
        "ssl_verify",
    ];
    let c: Config = typed(&only(conf, &keys))?;
    let target = Target::new(&c)?;
    let batcher = Batcher::new(
        BatchConfig::from_conf(conf)?,
        Arc::new(target),
        env.state.log_backlog.of(NAME),
        max_pending(env.metadata),
    );
    Ok(Arc::new(HttpLogger {
        options: LogOptions::new(conf, env.metadata)?,
        batcher,
    }))
}

/// Only the `keys` of `conf`.
pub(crate) fn only(conf: &Value, keys: &[&str]) -> Value {
    let mut out = serde_json::Map::new();
    for k in keys {
        if let Some(v) = conf.get(*k) {
            out.insert((*k).to_string(), v.clone());
        }
    }
    Value::Object(out)
}

impl Plugin for HttpLogger {
    fn name(&self) -> &'static str {
        NAME
    }

    fn priority(&self) -> i32 {
        410
    }

    fn access(&self, ctx: &mut Ctx) -> Flow {
        self.options.access(ctx);
        Flow::Continue
    }

    fn header_filter(&self, ctx: &mut Ctx) {
        self.options.header_filter(ctx);
    }

    fn body_filter(&self, ctx: &mut Ctx, chunk: &mut Bytes, eof: bool) {
        self.options.body_filter(ctx, chunk, eof);
    }

    fn log(&self, ctx: &Ctx) {
        let mut entry = self.options.entry(ctx);
        if !entry.contains_key("route_id") {
            entry.insert("route_id".into(), json!("no-matched"));
        }
        self.batcher.push(Value::Object(entry));
    }

    fn wants_request_body(&self) -> bool {
        self.options.wants_request_body()
    }
}

/// Where batches are POSTed.
#[derive(Debug)]
struct Target {
    /// Host as written in the URI (brackets of an IPv6 address removed).
    host: String,
    port: u16,
    path_and_query: String,
    auth: Option<String>,
    timeout: Duration,
    new_line: bool,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Target {
    fn new(c: &Config) -> Result<Target, String> {
        let uri: Uri = c
            .uri
            .parse()
            .map_err(|e| format!("invalid uri {}: {e}", c.uri))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            other => {
                return Err(format!(
                    "uri {}: scheme {} is not supported (http or https)",
                    c.uri,
                    other.unwrap_or("")
                ))
            }
        };
        let host = uri
            .host()
            .ok_or_else(|| format!("uri {} has no host", c.uri))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let path_and_query = uri
            .path_and_query()
            .map(|pq| pq.as_str())
            .filter(|pq| !pq.is_empty())
            .unwrap_or("/")
            .to_string();
        let tls = match https {
            true => Some(
                batch::client_config(c.ssl_verify)
                    .ok_or("the TLS client configuration could not be built")?,
            ),
            false => None,
        };
        Ok(Target {
            host,
            port,
            path_and_query,
            auth: c.auth_header.clone(),
            timeout: Duration::from_secs(c.timeout),
            new_line: c.concat_method == "new_line",
            tls,
        })
    }

    /// The body of a batch.
    fn encode(&self, entries: &[Value], batch_max_size: usize) -> String {
        if batch_max_size == 1 {
            if let Some(one) = entries.first() {
                return one.to_string();
            }
        }
        if self.new_line {
            entries
                .iter()
                .map(Value::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        } else {
            Value::Array(entries.to_vec()).to_string()
        }
    }

    async fn post(self: Arc<Self>, body: String) -> Result<(), String> {
        let (host, port) = (&self.host, self.port);
        let tcp = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| format!("failed to connect to host[{host}] port[{port}] {e}"))?;
        let _ = tcp.set_nodelay(true);
        let content_type = if self.new_line {
            "text/plain"
        } else {
            "application/json"
        };
        let mut req = Request::post(self.path_and_query.as_str())
            .header(HOST, host.as_str())
            .header(CONTENT_TYPE, content_type);
        if let Some(auth) = &self.auth {
            req = req.header(AUTHORIZATION, auth.as_str());
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("cannot build the request: {e}"))?;
        match &self.tls {
            Some(config) => {
                let name = rustls::pki_types::ServerName::try_from(host.clone())
                    .map_err(|e| format!("invalid server name {host}: {e}"))?;
                let tls = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| {
                        format!("failed to perform SSL with host[{host}] port[{port}] {e}")
                    })?;
                self.exchange(tls, req).await
            }
            None => self.exchange(tcp, req).await,
        }
    }

    async fn exchange<IO>(&self, io: IO, req: Request<Full<Bytes>>) -> Result<(), String>
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (host, port) = (&self.host, self.port);
        let failed = |e: &dyn std::fmt::Display| {
            format!("error while sending data to [{host}] port[{port}] {e}")
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| failed(&e))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let resp = sender.send_request(req).await.map_err(|e| failed(&e))?;
        let status = resp.status().as_u16();
        if status >= 400 {
            let body = resp
                .into_body()
                .collect()
                .await
                .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                .unwrap_or_default();
            return Err(format!(
                "server returned status code[{status}] host[{host}] port[{port}] body[{body}]"
            ));
        }
        Ok(())
    }
}

impl Sink for Target {
    fn send(self: Arc<Self>, entries: Arc<[Value]>, batch_max_size: usize) -> SendFuture {
        let body = self.encode(&entries, batch_max_size);
        Box::pin(async move {
            let (timeout, host, port) = (self.timeout, self.host.clone(), self.port);
            match tokio::time::timeout(timeout, self.post(body)).await {
                Ok(result) => result,
                Err(_) => Err(format!(
                    "timed out after {timeout:?} sending to host[{host}] port[{port}]"
                )),
            }
        })
    }
}

#[cfg(test)]
mod tests;
