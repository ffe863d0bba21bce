//! Admin list calls: filters (`name`, `label`, `uri`, `filter`) and pagination, as APISIX v3.

use http::StatusCode;
use portico_model::Kind;
use regex::Regex;
use serde_json::{json, Value};

use super::error::{AdminError, AdminResult};
use super::request::{parse_query, Call};
use super::AdminApi;

/// The fields the `filter=` parameter may compare, per resource (APISIX `list_filter_fields`).
const ROUTE_FILTER_FIELDS: [&str; 2] = ["service_id", "upstream_id"];

impl AdminApi {
    pub(super) async fn list(
        &self,
        kind: Kind,
        username: Option<&str>,
        call: &Call,
    ) -> AdminResult<(StatusCode, Option<Value>)> {
        let filters = Filters::parse(kind, call)?;
        let page = Page::parse(call)?;
        let prefix = self.collection_prefix(kind, username);
        let range = self.store.range(&prefix).await?;
        let mut items = Vec::with_capacity(range.kvs.len());
        for kv in &range.kvs {
            let rel = &kv.key[prefix.len()..];
            // Consumer lists leave out credentials, which live below their consumer.
            if rel.is_empty() || rel.contains('/') {
                continue;
            }
            let api_key = format!("/apisix{}", &kv.key[self.scope.objects_prefix().len()..]);
            let item = self.envelope(kind, kv, api_key)?;
            if filters.keep(&item["value"]) {
                items.push((kv.create_revision, item));
            }
        }
        let total = items.len();
        if let Some(page) = page {
            items.sort_by_key(|(created, _)| *created);
            items = items
                .into_iter()
                .skip((page.number - 1).saturating_mul(page.size))
                .take(page.size)
                .collect();
        }
        let list: Vec<Value> = items.into_iter().map(|(_, item)| item).collect();
        Ok((StatusCode::OK, Some(json!({"list": list, "total": total}))))
    }
}

struct Filters {
    name: Option<Regex>,
    label: Option<String>,
    uri: Option<Regex>,
    fields: Vec<(String, String)>,
}

impl Filters {
    fn parse(kind: Kind, call: &Call) -> AdminResult<Filters> {
        let regex = |param: &str| -> AdminResult<Option<Regex>> {
            call.query
                .get(param)
                .map(|re| {
                    Regex::new(re).map_err(|e| {
                        AdminError::invalid(format!("invalid regex in argument {param}: {e}"))
                    })
                })
                .transpose()
        };
        let fields = match call.query.get("filter") {
            Some(raw) if kind == Kind::Route => parse_query(raw)
                .into_iter()
                .filter(|(k, _)| ROUTE_FILTER_FIELDS.contains(&k.as_str()))
                .collect(),
            _ => Vec::new(),
        };
        Ok(Filters {
            name: regex("name")?,
            label: call.query.get("label").cloned(),
            uri: regex("uri")?,
            fields,
        })
    }

    fn keep(&self, value: &Value) -> bool {
        if let Some(re) = &self.name {
            match value.get("name").and_then(Value::as_str) {
                Some(name) if re.is_match(name) => {}
                _ => return false,
            }
        }
        if let Some(label) = &self.label {
            if value
                .pointer(&format!(
                    "/labels/{}",
                    label.replace('~', "~0").replace('/', "~1")
                ))
                .is_none()
            {
                return false;
            }
        }
        if let Some(re) = &self.uri {
            let uri = value.get("uri").and_then(Value::as_str).into_iter();
            let uris = value
                .get("uris")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str);
            if !uri.chain(uris).any(|u| re.is_match(u)) {
                return false;
            }
        }
        self.fields
            .iter()
            .all(|(field, wanted)| match value.get(field) {
                Some(Value::String(s)) => s == wanted,
                Some(other) => {
                    let text = other.to_string();
                    text == *wanted
                }
                None => false,
            })
    }
}

struct Page {
    number: usize,
    size: usize,
}

impl Page {
    /// Pagination applies only when both `page` and `page_size` are given as numbers.
    fn parse(call: &Call) -> AdminResult<Option<Page>> {
        let number = call.query.get("page").and_then(|p| p.parse::<i64>().ok());
        let size = call
            .query
            .get("page_size")
            .and_then(|p| p.parse::<i64>().ok());
        let (Some(number), Some(size)) = (number, size) else {
            return Ok(None);
        };
        if !(10..=500).contains(&size) {
            return Err(AdminError::PlainInvalid(
                "page_size must be between 10 and 500".into(),
            ));
        }
        Ok(Some(Page {
            number: number.max(1) as usize,
            size: size as usize,
        }))
    }
}
