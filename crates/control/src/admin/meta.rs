//! Read-only Admin endpoints about plugins and schemas.

use http::{Method, StatusCode};
use portico_model::Kind;
use serde_json::{json, Map, Value};

use super::error::{AdminError, AdminResult};
use super::request::Call;
use super::AdminApi;

type Reply = AdminResult<(StatusCode, Option<Value>)>;

impl AdminApi {
    /// `/plugins/list`, `/plugins/<name>` and `/plugins?all=true`.
    pub(super) fn plugins_endpoint(&self, call: &Call) -> Reply {
        if call.method != Method::GET {
            return Err(AdminError::NotFound("not found".into()));
        }
        match call.segments.get(1).map(String::as_str) {
            Some("list") if call.segments.len() == 2 => {
                let stream = match call.query.get("subsystem").map(String::as_str) {
                    None | Some("http") => false,
                    Some("stream") => true,
                    Some(_) => {
                        return Err(AdminError::PlainInvalid("invalid subsystem passed".into()))
                    }
                };
                // Portico has no stream (L4) plugins.
                let names: Vec<&str> = if stream {
                    Vec::new()
                } else {
                    self.plugins.names_by_priority()
                };
                Ok((StatusCode::OK, Some(json!(names))))
            }
            Some(name) if call.segments.len() == 2 => self.plugin_schema(name, call),
            None if call.query.get("all").map(String::as_str) == Some("true") => {
                Ok((StatusCode::OK, Some(self.all_plugins())))
            }
            _ => Err(AdminError::NotFound("not found".into())),
        }
    }

    /// `/schema/<name>`, `/schema/plugins/<name>` and `POST /schema/validate/<resource>`.
    pub(super) fn schema_endpoint(&self, call: &Call) -> Reply {
        let segments: Vec<&str> = call.segments.iter().map(String::as_str).collect();
        match (&call.method, segments.as_slice()) {
            (&Method::GET, ["schema", "plugins", name]) => self.plugin_schema(name, call),
            (&Method::GET, ["schema", name]) => portico_model::core_schema(name)
                .map(|schema| (StatusCode::OK, Some(schema.clone())))
                .ok_or_else(|| AdminError::invalid(format!("not found schema: {name}"))),
            (&Method::POST, ["schema", "validate", resource]) => {
                let kind = Kind::from_segment(resource)
                    .filter(|k| *k != Kind::Credential)
                    .ok_or_else(|| {
                        AdminError::NotFound(format!("Unsupported resource type: {resource}"))
                    })?;
                let body = call
                    .json_body()?
                    .ok_or_else(|| AdminError::invalid("missing configurations"))?;
                portico_model::schema::validate(kind.schema(), &body)
                    .map_err(AdminError::Invalid)?;
                Ok((StatusCode::OK, None))
            }
            _ => Err(AdminError::NotFound("not found".into())),
        }
    }

    fn plugin_schema(&self, name: &str, call: &Call) -> Reply {
        match call.query.get("subsystem").map(String::as_str) {
            None | Some("http") => {}
            Some(other) => {
                return Err(AdminError::invalid(format!(
                    "unsupported subsystem: {other}"
                )))
            }
        }
        if self.plugins.get(name).is_none() {
            return Err(AdminError::NotFound(
                "plugin not found in subsystem http".into(),
            ));
        }
        let schema = match call.query.get("schema_type").map(String::as_str) {
            Some("consumer") => self
                .plugins
                .consumer_schema(name)
                .cloned()
                .ok_or_else(|| AdminError::invalid("not found schema"))?,
            Some("metadata") => self
                .plugins
                .metadata_schema(name)
                .cloned()
                .ok_or_else(|| AdminError::invalid("not found schema"))?,
            _ => self.plugins.injected_schema(name).unwrap_or_default(),
        };
        Ok((StatusCode::OK, Some(schema)))
    }

    fn all_plugins(&self) -> Value {
        let mut all = Map::new();
        for name in self.plugins.names_by_priority() {
            let Some(spec) = self.plugins.get(name) else {
                continue;
            };
            let mut entry = json!({
                "version": 0.1,
                "priority": spec.priority,
                "schema": self.plugins.injected_schema(name),
                "scope": "global",
            });
            if spec.auth {
                entry["type"] = json!("auth");
            }
            if let Some(schema) = self.plugins.consumer_schema(name) {
                entry["consumer_schema"] = schema.clone();
            }
            if let Some(schema) = self.plugins.metadata_schema(name) {
                entry["metadata_schema"] = schema.clone();
            }
            all.insert(name.to_string(), entry);
        }
        Value::Object(all)
    }
}
