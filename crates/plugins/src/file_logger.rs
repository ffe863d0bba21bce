//! file-logger: one JSON line per request appended to a file (APISIX priority 399;
//! `apisix/plugins/file-logger.lua`).
//!
//! * `path` (or `plugin_metadata/file-logger` `path`): the file, created if missing, opened for
//!   appending when the plugin instance is built — a missing folder or a permission problem
//!   leaves the object out with `failed to open file: <path>, error info: <why>`;
//! * entries are [`log_entry`](crate::log_entry)'s (default, or `log_format` from the
//!   configuration or the metadata);
//! * `match`: a list of rules; the request is logged when one of them matches (none when the
//!   list is empty, as in APISIX);
//! * lines are written by a background task, never on the request's path; one `write` per
//!   line or group of lines, so lines of concurrent writers never interleave.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use portico_expr::Expr;
use portico_model::PluginSpec;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::log_entry::{self, LogOptions, LogVars};
use crate::{BuildEnv, Ctx, Flow, Plugin};

/// Plugin name.
pub const NAME: &str = "file-logger";

/// Lines gathered into one write at most (bytes).
const WRITE_CHUNK: usize = 1 << 20;

/// The configuration schema.
pub fn schema() -> Value {
    let mut properties = log_entry::schema_properties();
    properties.insert("path".into(), json!({"type": "string"}));
    properties.insert(
        "match".into(),
        json!({"type": "array", "maxItems": 20, "items": {"type": "array"}}),
    );
    json!({"type": "object", "properties": properties})
}

/// The plugin-metadata schema.
pub fn metadata_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "path": {"type": "string"},
            "log_format": {"type": "object"},
            "log_format_extra": {"type": "object"}
        }
    })
}

/// The registry row of file-logger.
pub fn spec() -> PluginSpec {
    PluginSpec {
        metadata_schema: Some(metadata_schema()),
        check: Some(check),
        ..PluginSpec::new(NAME, 399, schema())
    }
}

fn check(conf: &Value) -> Result<(), String> {
    if let Some(rule) = conf.get("match") {
        Expr::compile(rule)
            .map_err(|e| format!("failed to validate the 'match' expression: {e}"))?;
        for m in rule.as_array().into_iter().flatten() {
            Expr::compile(m)
                .map_err(|e| format!("failed to validate the 'match' expression: {e}"))?;
        }
    }
    log_entry::check(conf)
}

/// A file-logger instance.
#[derive(Debug)]
pub struct FileLogger {
    options: LogOptions,
    /// `match`: log only when one of these holds.
    matches: Option<Vec<Expr>>,
    writer: Writer,
}

/// Builds an instance: opens the file.
pub fn build(conf: &Value, env: &BuildEnv<'_>) -> Result<Arc<dyn Plugin>, String> {
    let path = conf
        .get("path")
        .or_else(|| env.metadata.and_then(|m| m.get("path")))
        .and_then(Value::as_str)
        .ok_or("property \"path\" is not set in either the plugin conf or the metadata")?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("failed to open file: {path}, error info: {e}"))?;
    let matches = match conf.get("match").and_then(Value::as_array) {
        Some(rules) => Some(
            rules
                .iter()
                .map(Expr::compile)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("failed to validate the 'match' expression: {e}"))?,
        ),
        None => None,
    };
    Ok(Arc::new(FileLogger {
        options: LogOptions::new(conf, env.metadata)?,
        matches,
        writer: Writer {
            path: path.to_string(),
            file: Mutex::new(Some(file)),
            tx: OnceLock::new(),
        },
    }))
}

impl Plugin for FileLogger {
    fn name(&self) -> &'static str {
        NAME
    }

    fn priority(&self) -> i32 {
        399
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
        if let Some(rules) = &self.matches {
            let vars = LogVars::new(ctx);
            if !rules.iter().any(|r| r.eval(&vars)) {
                return;
            }
        }
        let mut line = Value::Object(self.options.entry(ctx)).to_string();
        line.push('\n');
        self.writer.push(line);
    }

    fn wants_request_body(&self) -> bool {
        self.options.wants_request_body()
    }
}

/// Appends lines to the file from a background task (started with the first line).
#[derive(Debug)]
struct Writer {
    path: String,
    /// The open file until the task takes it.
    file: Mutex<Option<std::fs::File>>,
    tx: OnceLock<mpsc::UnboundedSender<String>>,
}

impl Writer {
    fn push(&self, line: String) {
        let tx = self.tx.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            let file = self.file.lock().unwrap_or_else(|e| e.into_inner()).take();
            match (file, tokio::runtime::Handle::try_current()) {
                (Some(file), Ok(handle)) => {
                    handle.spawn(write_lines(self.path.clone(), file, rx));
                }
                _ => tracing::error!("file-logger {}: cannot start its writer", self.path),
            }
            tx
        });
        if tx.send(line).is_err() {
            tracing::error!("file-logger {}: writer stopped; entry dropped", self.path);
        }
    }
}

/// Writes what arrives until every sender is gone.
async fn write_lines(path: String, file: std::fs::File, mut rx: mpsc::UnboundedReceiver<String>) {
    let file = Arc::new(file);
    while let Some(mut buf) = rx.recv().await {
        while buf.len() < WRITE_CHUNK {
            match rx.try_recv() {
                Ok(more) => buf.push_str(&more),
                Err(_) => break,
            }
        }
        let f = file.clone();
        let written = tokio::task::spawn_blocking(move || (&*f).write_all(buf.as_bytes())).await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!("failed to write file: {path}, error info: {e}"),
            Err(e) => tracing::error!("failed to write file: {path}, error info: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn match_rules_are_checked() {
        assert!(check(&json!({"match": [[["arg_name", "==", "jack"]]]})).is_ok());
        let err = check(&json!({"match": [[["arg_name", "=", "jack"]]]})).unwrap_err();
        assert!(
            err.starts_with("failed to validate the 'match' expression: "),
            "{err}"
        );
    }

    #[test]
    fn a_file_that_cannot_be_opened_is_refused_at_build_time() {
        let f = crate::testing::Fixture::new();
        let conf = json!({"path": "/nonexistent-folder/x/access.log"});
        let err = f
            .compiler()
            .entry(crate::Conf {
                name: NAME,
                conf: &conf,
                owner: "ws/default/plugin_configs/t",
            })
            .unwrap_err();
        assert!(
            err.contains("failed to open file: /nonexistent-folder/x/access.log, error info: "),
            "{err}"
        );
        let err = f
            .compiler()
            .entry(crate::Conf {
                name: NAME,
                conf: &json!({}),
                owner: "ws/default/plugin_configs/t",
            })
            .unwrap_err();
        assert!(err.contains("property \"path\" is not set"), "{err}");
    }
}
