//! tcp-logger: log entries sent in batches over TCP (APISIX priority 405;
//! `apisix/plugins/tcp-logger.lua`).
//!
//! Entries are [`log_entry`](crate::log_entry)'s, batched by the [`batch`](crate::batch)
//! processor. Each batch goes over a connection of its own to `host:port` (TLS with `tls`;
//! `tls_options` is the server name sent, as OpenResty's `sslhandshake` takes it; the
//! certificate is not verified, as in APISIX), as APISIX writes it: a JSON array of the
//! entries, or the single entry's object when `batch_max_size` is 1, then the connection is
//! closed. Connecting and sending are bounded by `timeout` milliseconds each.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use portico_model::PluginSpec;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::batch::{self, BatchConfig, Batcher, SendFuture, Sink};
use crate::http_logger::{max_pending, only};
use crate::log_entry::{self, LogOptions};
use crate::{typed, BuildEnv, Ctx, Flow, Plugin};

/// Plugin name.
pub const NAME: &str = "tcp-logger";

/// The configuration schema.
pub fn schema() -> Value {
    let mut properties = log_entry::schema_properties();
    for (k, v) in [
        ("host", json!({"type": "string"})),
        ("port", json!({"type": "integer", "minimum": 0})),
        ("tls", json!({"type": "boolean", "default": false})),
        ("tls_options", json!({"type": "string"})),
        (
            "timeout",
            json!({"type": "integer", "minimum": 1, "default": 1000}),
        ),
    ] {
        properties.insert(k.into(), v);
    }
    properties.extend(batch::schema_properties("tcp logger"));
    json!({"type": "object", "properties": properties, "required": ["host", "port"]})
}

/// The plugin-metadata schema.
pub fn metadata_schema() -> Value {
    crate::http_logger::metadata_schema()
}

/// The registry row of tcp-logger.
pub fn spec() -> PluginSpec {
    PluginSpec {
        metadata_schema: Some(metadata_schema()),
        check: Some(check),
        ..PluginSpec::new(NAME, 405, schema())
    }
}

fn check(conf: &Value) -> Result<(), String> {
    if conf
        .get("port")
        .and_then(Value::as_u64)
        .is_some_and(|p| p > 65535)
    {
        return Err("port must be at most 65535".into());
    }
    log_entry::check(conf)
}

fn thousand() -> u64 {
    1000
}

#[derive(Debug, Deserialize)]
struct Config {
    host: String,
    port: u16,
    #[serde(default)]
    tls: bool,
    tls_options: Option<String>,
    #[serde(default = "thousand")]
    timeout: u64,
}

/// A tcp-logger instance.
#[derive(Debug)]
pub struct TcpLogger {
    options: LogOptions,
    batcher: Batcher,
}

/// Builds an instance.
pub fn build(conf: &Value, env: &BuildEnv<'_>) -> Result<Arc<dyn Plugin>, String> {
    let keys = ["host", "port", "tls", "tls_options", "timeout"];
    let c: Config = typed(&only(conf, &keys))?;
    let tls = match c.tls {
        true => {
            let name = c.tls_options.clone().unwrap_or_else(|| c.host.clone());
            let name = rustls::pki_types::ServerName::try_from(name.clone())
                .map_err(|e| format!("invalid TLS server name {name}: {e}"))?;
            let config = batch::client_config(false)
                .ok_or("the TLS client configuration could not be built")?;
            Some((config, name))
        }
        false => None,
    };
    let server = Server {
        host: c.host,
        port: c.port,
        timeout: Duration::from_millis(c.timeout),
        tls,
    };
    Ok(Arc::new(TcpLogger {
        options: LogOptions::new(conf, env.metadata)?,
        batcher: Batcher::new(
            BatchConfig::from_conf(conf)?,
            Arc::new(server),
            env.state.log_backlog.of(NAME),
            max_pending(env.metadata),
        ),
    }))
}

impl Plugin for TcpLogger {
    fn name(&self) -> &'static str {
        NAME
    }

    fn priority(&self) -> i32 {
        405
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
        self.batcher.push(Value::Object(self.options.entry(ctx)));
    }

    fn wants_request_body(&self) -> bool {
        self.options.wants_request_body()
    }
}

/// Where batches go.
#[derive(Debug)]
struct Server {
    host: String,
    port: u16,
    timeout: Duration,
    tls: Option<(
        Arc<rustls::ClientConfig>,
        rustls::pki_types::ServerName<'static>,
    )>,
}

/// The bytes of one batch.
fn encode(entries: &[Value], batch_max_size: usize) -> String {
    match entries {
        [one] if batch_max_size == 1 => one.to_string(),
        _ => Value::Array(entries.to_vec()).to_string(),
    }
}

impl Server {
    async fn deliver(self: Arc<Self>, data: String) -> Result<(), String> {
        let (host, port, timeout) = (&self.host, self.port, self.timeout);
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            format!("{what} TCP server: host[{host}] port[{port}] err: {e}")
        };
        let tcp = tokio::time::timeout(timeout, TcpStream::connect((host.as_str(), port)))
            .await
            .map_err(|e| fail("failed to connect to", &e))?
            .map_err(|e| fail("failed to connect to", &e))?;
        match &self.tls {
            Some((config, name)) => {
                let connect =
                    tokio_rustls::TlsConnector::from(config.clone()).connect(name.clone(), tcp);
                let tls = tokio::time::timeout(timeout, connect)
                    .await
                    .map_err(|e| fail("failed to perform TLS handshake to", &e))?
                    .map_err(|e| fail("failed to perform TLS handshake to", &e))?;
                self.write(tls, data).await
            }
            None => self.write(tcp, data).await,
        }
    }

    async fn write<IO: AsyncWrite + Unpin>(&self, mut io: IO, data: String) -> Result<(), String> {
        let (host, port) = (&self.host, self.port);
        let sent = tokio::time::timeout(self.timeout, async {
            io.write_all(data.as_bytes()).await?;
            io.shutdown().await
        })
        .await;
        match sent {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!(
                "failed to send data to TCP server: host[{host}] port[{port}] err: {e}"
            )),
            Err(e) => Err(format!(
                "failed to send data to TCP server: host[{host}] port[{port}] err: {e}"
            )),
        }
    }
}

impl Sink for Server {
    fn send(self: Arc<Self>, entries: Arc<[Value]>, batch_max_size: usize) -> SendFuture {
        let data = encode(&entries, batch_max_size);
        Box::pin(self.deliver(data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_json_arrays_or_one_object() {
        let entries = [json!({"a": 1}), json!({"b": 2})];
        assert_eq!(encode(&entries, 10), r#"[{"a":1},{"b":2}]"#);
        assert_eq!(encode(&entries[..1], 1), r#"{"a":1}"#);
        assert_eq!(encode(&entries[..1], 5), r#"[{"a":1}]"#);
    }

    #[test]
    fn ports_past_65535_are_refused() {
        assert!(check(&json!({"host": "h", "port": 70000})).is_err());
        assert!(check(&json!({"host": "h", "port": 5140})).is_ok());
    }
}
