//! The etcd v3 back end, over etcd's JSON gateway (HTTP/1.1 + JSON), the way APISIX talks to
//! etcd: no gRPC code generation, no protoc.
//!
//! Semantics worth knowing (etcd 3.4):
//! - A lease TTL below etcd's minimum is raised to it: `ceil(1.5 × election timeout)`, 2 s with
//!   the default 1 s election timeout. Expiry is checked about every 500 ms, so keys of an
//!   expired lease vanish up to a second after the TTL.
//! - Simple auth tokens expire after `--auth-token-ttl` (300 s) without use; the client then
//!   authenticates again by itself.
//! - Revisions start at 1 on a fresh cluster; the first write gets revision 2.

mod client;
mod tls;
mod watch;
mod wire;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;

use self::client::Client;
use self::wire::{
    b64, opt_kv, prefix_range, DeleteRangeResponse, LeaseResponse, PutResponse, RangeResponse,
    StreamMessage, TxnResponse,
};
use crate::{
    DeleteResult, KeyValue, LeaseId, PutOptions, PutResult, RangeResult, Result, Store, StoreError,
    Watch,
};

/// Keys fetched per request of a range; bigger ranges are read in pages at one revision.
const RANGE_PAGE: usize = 5_000;

/// TLS settings for `https://` endpoints. PEM text; see [`EtcdTls::from_files`].
#[derive(Clone, Default)]
pub struct EtcdTls {
    /// CA certificates that sign etcd's server certificates; `None`: the system's CA bundle.
    pub ca_pem: Option<String>,
    /// Client certificate chain, for etcd's `--client-cert-auth`.
    pub cert_pem: Option<String>,
    /// The private key of `cert_pem`.
    pub key_pem: Option<String>,
}

impl EtcdTls {
    /// Reads the PEM files that are given.
    pub fn from_files(ca: Option<&Path>, cert: Option<&Path>, key: Option<&Path>) -> Result<Self> {
        let read = |p: Option<&Path>| -> Result<Option<String>> {
            p.map(|p| {
                std::fs::read_to_string(p).map_err(|e| {
                    StoreError::Internal(format!("etcd tls: cannot read {}: {e}", p.display()))
                })
            })
            .transpose()
        };
        Ok(EtcdTls {
            ca_pem: read(ca)?,
            cert_pem: read(cert)?,
            key_pem: read(key)?,
        })
    }
}

impl std::fmt::Debug for EtcdTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdTls")
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "<pem>"))
            .field("cert_pem", &self.cert_pem.as_ref().map(|_| "<pem>"))
            .field("key_pem", &self.key_pem.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// How to reach an etcd cluster. Its `Debug` output hides the password and the TLS key.
#[derive(Clone)]
pub struct EtcdConfig {
    /// Client URLs of the members, `http://host:port` or `https://host:port`.
    pub endpoints: Vec<String>,
    /// User for etcd's authentication; `None` when auth is off.
    pub user: Option<String>,
    /// The user's password.
    pub password: Option<String>,
    /// TLS settings for `https://` endpoints.
    pub tls: Option<EtcdTls>,
    /// How long one call may take, failover between members included (default 5 s).
    pub timeout: Duration,
}

impl std::fmt::Debug for EtcdConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdConfig")
            .field("endpoints", &self.endpoints)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.tls)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl EtcdConfig {
    /// A configuration for `endpoints` without auth or TLS, with the default timeout.
    pub fn new<S: Into<String>>(endpoints: impl IntoIterator<Item = S>) -> EtcdConfig {
        EtcdConfig {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            ..EtcdConfig::default()
        }
    }
}

impl Default for EtcdConfig {
    fn default() -> Self {
        EtcdConfig {
            endpoints: vec!["http://127.0.0.1:2379".into()],
            user: None,
            password: None,
            tls: None,
            timeout: Duration::from_secs(5),
        }
    }
}

/// A store in an etcd v3 cluster. Cheap to clone; clones share connections.
#[derive(Clone)]
pub struct EtcdStore {
    client: Arc<Client>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore").finish_non_exhaustive()
    }
}

impl EtcdStore {
    /// Connects to the cluster: authenticates when a user is configured and reads the current
    /// revision, so an unreachable cluster ([`StoreError::Unavailable`]) or refused credentials
    /// ([`StoreError::Auth`]) show up here.
    pub async fn connect(cfg: EtcdConfig) -> Result<EtcdStore> {
        let client = Arc::new(Client::new(&cfg)?);
        client.authenticate().await?;
        let store = EtcdStore { client };
        store.revision().await?;
        Ok(store)
    }

    /// A store that does not contact etcd yet: for a data-plane node that must start (from its
    /// last-known-good config) while etcd is unreachable. Authentication happens on the first
    /// call that etcd refuses for want of a token.
    pub fn lazy(cfg: EtcdConfig) -> Result<EtcdStore> {
        Ok(EtcdStore {
            client: Arc::new(Client::new(&cfg)?),
        })
    }

    /// The version of the etcd member that answers (`/v3/maintenance/status`).
    pub async fn server_version(&self) -> Result<String> {
        #[derive(serde::Deserialize)]
        struct Status {
            #[serde(default)]
            version: String,
        }
        let status: Status = self
            .client
            .call("/v3/maintenance/status", &json!({}), true)
            .await?;
        Ok(status.version)
    }
}

/// Reads every key under `prefix` at one revision, page by page.
pub(crate) async fn range_all(client: &Client, prefix: &str) -> Result<RangeResult> {
    let (start, end) = prefix_range(prefix);
    let (mut key, end) = (start, b64(&end));
    let mut kvs = Vec::new();
    let mut revision = 0;
    loop {
        let mut body = json!({ "key": b64(&key), "range_end": end, "limit": RANGE_PAGE });
        if revision > 0 {
            body["revision"] = json!(revision.to_string());
        }
        let page: RangeResponse = client.call("/v3/kv/range", &body, true).await?;
        if revision == 0 {
            revision = page.header.revision;
        }
        let more = page.more;
        for kv in page.kvs {
            kvs.push(kv.into_kv()?);
        }
        match kvs.last() {
            Some(last) if more => {
                key = last.key.as_bytes().to_vec();
                key.push(0);
            }
            _ => return Ok(RangeResult { kvs, revision }),
        }
    }
}

#[async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let body = json!({ "key": b64(key.as_bytes()) });
        let answer: RangeResponse = self.client.call("/v3/kv/range", &body, true).await?;
        opt_kv(answer.kvs.into_iter().next())
    }

    async fn range(&self, prefix: &str) -> Result<RangeResult> {
        // A page can hit a compaction of the revision pinned by the first page: start over.
        let mut tries = 0;
        loop {
            match range_all(&self.client, prefix).await {
                Err(StoreError::Compacted { .. }) if tries < 3 => tries += 1,
                other => return other,
            }
        }
    }

    async fn put(&self, key: &str, value: Vec<u8>, opts: PutOptions) -> Result<PutResult> {
        let lease = opts.lease.unwrap_or(0);
        let put = json!({
            "key": b64(key.as_bytes()),
            "value": b64(&value),
            "lease": lease.to_string(),
            "prev_kv": true,
        });
        let with_lease = |e: StoreError| match e {
            StoreError::LeaseNotFound(_) => StoreError::LeaseNotFound(lease),
            e => e,
        };
        let Some(expected) = opts.expect_mod_revision else {
            let answer: PutResponse =
                (self.client.call("/v3/kv/put", &put, false).await).map_err(with_lease)?;
            let prev = opt_kv(answer.prev_kv)?;
            let revision = answer.header.revision;
            return Ok(PutResult { revision, prev });
        };
        let answer = self
            .txn(key, expected, json!({ "request_put": put }))
            .await
            .map_err(with_lease)?;
        let put = answer.responses.into_iter().find_map(|r| r.response_put);
        Ok(PutResult {
            revision: answer.header.revision,
            prev: opt_kv(put.and_then(|p| p.prev_kv))?,
        })
    }

    async fn delete(&self, key: &str, expect_mod_revision: Option<i64>) -> Result<DeleteResult> {
        let delete = json!({ "key": b64(key.as_bytes()), "prev_kv": true });
        let (revision, deleted) = match expect_mod_revision {
            None => {
                let answer: DeleteRangeResponse = self
                    .client
                    .call("/v3/kv/deleterange", &delete, false)
                    .await?;
                (answer.header.revision, Some(answer))
            }
            Some(expected) => {
                let request = json!({ "request_delete_range": delete });
                let answer = self.txn(key, expected, request).await?;
                let deleted = (answer.responses.into_iter()).find_map(|r| r.response_delete_range);
                (answer.header.revision, deleted)
            }
        };
        let prev = deleted.and_then(|d| d.prev_kvs.into_iter().next());
        Ok(DeleteResult {
            revision,
            prev: opt_kv(prev)?,
        })
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<(usize, i64)> {
        let (key, end) = prefix_range(prefix);
        let body = json!({ "key": b64(&key), "range_end": b64(&end) });
        let answer: DeleteRangeResponse =
            self.client.call("/v3/kv/deleterange", &body, false).await?;
        Ok((answer.deleted.max(0) as usize, answer.header.revision))
    }

    async fn watch(&self, prefix: &str, from_revision: i64) -> Result<Watch> {
        let from = if from_revision <= 0 {
            self.revision().await? + 1
        } else {
            from_revision
        };
        watch::start(self.client.clone(), prefix, from).await
    }

    async fn lease_grant(&self, ttl_secs: i64) -> Result<LeaseId> {
        let body = json!({ "TTL": ttl_secs.to_string(), "ID": "0" });
        let answer: LeaseResponse = self.client.call("/v3/lease/grant", &body, false).await?;
        if !answer.error.is_empty() || answer.id == 0 {
            return Err(StoreError::Internal(format!(
                "etcd refused a lease of {ttl_secs} s: {}",
                answer.error
            )));
        }
        Ok(answer.id)
    }

    async fn lease_keep_alive(&self, lease: LeaseId) -> Result<i64> {
        let body = json!({ "ID": lease.to_string() });
        let answer: StreamMessage<LeaseResponse> =
            self.client.call("/v3/lease/keepalive", &body, true).await?;
        if let Some(error) = answer.error {
            return Err(StoreError::Internal(format!(
                "etcd keep-alive of lease {lease}: {}",
                error.message
            )));
        }
        // etcd answers an unknown or expired lease with a TTL of 0 (left out).
        match answer.result {
            Some(r) if r.ttl > 0 => Ok(r.ttl),
            _ => Err(StoreError::LeaseNotFound(lease)),
        }
    }

    async fn lease_revoke(&self, lease: LeaseId) -> Result<()> {
        let body = json!({ "ID": lease.to_string() });
        let revoked = self
            .client
            .call::<LeaseResponse>("/v3/lease/revoke", &body, false);
        match revoked.await {
            Ok(_) => Ok(()),
            Err(StoreError::LeaseNotFound(_)) => Err(StoreError::LeaseNotFound(lease)),
            Err(e) => Err(e),
        }
    }

    async fn compact(&self, revision: i64) -> Result<()> {
        let body = json!({ "revision": revision.to_string() });
        let compacted = self
            .client
            .call::<serde_json::Value>("/v3/kv/compaction", &body, true);
        match compacted.await {
            // Already compacted at or after `revision`: what was asked for holds.
            Ok(_) | Err(StoreError::Compacted { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn revision(&self) -> Result<i64> {
        let body = json!({ "key": b64(&[0]), "count_only": true });
        let answer: RangeResponse = self.client.call("/v3/kv/range", &body, true).await?;
        Ok(answer.header.revision)
    }
}

impl EtcdStore {
    /// Runs `request` if `key`'s mod revision is `expected` (0: the key does not exist, as etcd
    /// reports a missing key's mod revision as 0); [`StoreError::Conflict`] otherwise.
    async fn txn(
        &self,
        key: &str,
        expected: i64,
        request: serde_json::Value,
    ) -> Result<TxnResponse> {
        let body = json!({
            "compare": [{
                "key": b64(key.as_bytes()),
                "target": "MOD",
                "result": "EQUAL",
                "mod_revision": expected.to_string(),
            }],
            "success": [request],
        });
        let answer: TxnResponse = self.client.call("/v3/kv/txn", &body, false).await?;
        if !answer.succeeded {
            return Err(StoreError::Conflict);
        }
        Ok(answer)
    }
}
