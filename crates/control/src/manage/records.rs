//! System records (etcd resources, clusters, workspaces, tokens) in the control plane's store:
//! read, list, validate, write with compare-and-swap.

use std::time::{SystemTime, UNIX_EPOCH};

use portico_store::{PutOptions, StoreError};
use serde_json::Value;

use super::{schemas, ManageApi};
use crate::admin::request::Call;
use crate::admin::{merge, AdminError, AdminResult};

/// A stored record and the revision to compare against when replacing it.
pub struct Record {
    pub value: Value,
    pub mod_revision: i64,
}

impl ManageApi {
    pub(crate) async fn record(&self, key: &str) -> AdminResult<Option<Record>> {
        let Some(kv) = self.system.get(key).await? else {
            return Ok(None);
        };
        let value = serde_json::from_slice(&kv.value).map_err(|e| {
            AdminError::Unavailable(format!("stored record {key} is not valid JSON: {e}"))
        })?;
        Ok(Some(Record {
            value,
            mod_revision: kv.mod_revision,
        }))
    }

    /// Every record under `prefix` (direct children only), in key order.
    pub(crate) async fn records(&self, prefix: &str) -> AdminResult<Vec<Value>> {
        let range = self.system.range(prefix).await?;
        Ok(range
            .kvs
            .iter()
            .filter(|kv| !kv.key[prefix.len()..].contains('/'))
            .filter_map(|kv| serde_json::from_slice(&kv.value).ok())
            .collect())
    }

    /// Writes a record; with `expect`, only if it did not change since it was read (`Some(0)`:
    /// only if it does not exist).
    pub(crate) async fn write_record(
        &self,
        key: &str,
        value: &Value,
        expect: Option<i64>,
    ) -> AdminResult<i64> {
        let opts = PutOptions {
            expect_mod_revision: expect,
            lease: None,
        };
        match self
            .system
            .put(key, value.to_string().into_bytes(), opts)
            .await
        {
            Ok(put) => Ok(put.revision),
            Err(StoreError::Conflict) => Err(AdminError::Invalid(format!(
                "{key} was changed by someone else meanwhile; read it again and retry"
            ))),
            Err(e) => Err(e.into()),
        }
    }
}

/// The unix time in seconds.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// Checks a body against its schema with the Admin API's messages.
pub fn validate(schema: &Value, body: &Value) -> AdminResult<()> {
    portico_model::schema::validate(schema, body)
        .map_err(|e| AdminError::invalid(format!("invalid configuration: {e}")))
}

/// Checks the id of a cluster, workspace, etcd resource or token.
pub fn check_name(what: &str, name: &str) -> AdminResult<()> {
    let ok = regex::Regex::new(schemas::name_pattern())
        .map(|re| re.is_match(name))
        .unwrap_or(false);
    if ok {
        Ok(())
    } else {
        Err(AdminError::invalid(format!(
            "invalid {what} id {name:?}: use 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit"
        )))
    }
}

/// The body of a PUT, or the stored value merged with the body of a PATCH.
pub fn body_or_merge(call: &Call, stored: Option<&Value>, patch: bool) -> AdminResult<Value> {
    let body = call
        .json_body()?
        .ok_or_else(|| AdminError::invalid("missing configurations"))?;
    if !body.is_object() {
        return Err(AdminError::invalid(
            "invalid configuration: the body must be a JSON object",
        ));
    }
    if !patch {
        return Ok(body);
    }
    let Some(stored) = stored else {
        return Err(AdminError::KeyNotFound);
    };
    let mut merged = stored.clone();
    merge::merge(&mut merged, body);
    Ok(merged)
}

/// Removes server-set and derived fields before a merged record is validated again.
pub fn strip(value: &mut Value, fields: &[&str]) {
    if let Value::Object(map) = value {
        for f in fields {
            map.remove(*f);
        }
    }
}
