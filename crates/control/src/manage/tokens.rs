//! API tokens: a key with a scope (system, one cluster, or one workspace) and a role (admin or
//! viewer). Only the key's SHA-256 is stored; the key is shown once, when the token is created.

use http::StatusCode;
use serde_json::{json, Value};

use super::auth::{key_hash, Principal};
use super::records::{self, now, strip};
use super::{schemas, ManageApi, Reply, SYSTEM_PREFIX};
use crate::admin::request::Call;
use crate::admin::{AdminError, AdminResult};

fn key(id: &str) -> String {
    format!("{SYSTEM_PREFIX}/tokens/{id}")
}

fn random_hex(n: usize) -> AdminResult<String> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes)
        .map_err(|e| AdminError::Unavailable(format!("no randomness available: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl ManageApi {
    pub(super) async fn list_tokens(&self, who: &Principal) -> Reply {
        who.check_system()?;
        let list: Vec<Value> = self
            .records(&format!("{SYSTEM_PREFIX}/tokens/"))
            .await?
            .into_iter()
            .map(|mut t| {
                strip(&mut t, &["key_hash"]);
                t
            })
            .collect();
        let total = list.len();
        Ok((StatusCode::OK, Some(json!({"list": list, "total": total}))))
    }

    pub(super) async fn create_token(&self, who: &Principal, call: &Call) -> Reply {
        who.check_system()?;
        let body = call
            .json_body()?
            .ok_or_else(|| AdminError::invalid("missing configurations"))?;
        records::validate(&schemas::token_body(), &body)?;
        let cluster = body.get("cluster").and_then(Value::as_str);
        let workspace = body.get("workspace").and_then(Value::as_str);
        if let Some(cluster) = cluster {
            self.cluster_record(cluster).await?;
            if let Some(ws) = workspace {
                if self.workspace_record(cluster, ws).await?.is_none() {
                    return Err(AdminError::invalid(format!(
                        "workspace {ws} not found in cluster {cluster}"
                    )));
                }
            }
        }
        let id = random_hex(8)?;
        let secret = format!("ptk_{}", random_hex(24)?);
        let mut value = body.clone();
        value["id"] = json!(id);
        value["key_hash"] = json!(key_hash(&secret));
        value["create_time"] = json!(now());
        self.write_record(&key(&id), &value, Some(0)).await?;
        strip(&mut value, &["key_hash"]);
        value["key"] = json!(secret);
        Ok((StatusCode::CREATED, Some(value)))
    }

    pub(super) async fn delete_token(&self, who: &Principal, id: &str) -> Reply {
        who.check_system()?;
        let deleted = self.system.delete(&key(id), None).await?;
        if deleted.prev.is_none() {
            return Err(AdminError::KeyNotFound);
        }
        Ok((StatusCode::OK, Some(json!({"deleted": "1", "id": id}))))
    }
}
