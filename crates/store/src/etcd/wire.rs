//! The JSON shapes of etcd's v3 gateway (grpc-gateway over the etcd gRPC API).
//!
//! Keys and values are base64; int64 fields are JSON strings; fields with their zero value
//! (`0`, `false`, empty, the `PUT` event type) are left out, so every field defaults.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Deserializer};

use crate::{Event, EventKind, KeyValue, Result, StoreError};

/// Base64 of raw bytes, as the gateway wants keys and values.
pub(crate) fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

fn unb64(field: &str, s: &str) -> Result<Vec<u8>> {
    STANDARD
        .decode(s)
        .map_err(|e| StoreError::Internal(format!("etcd sent a {field} that is not base64: {e}")))
}

/// The `[key, range_end)` that covers every key starting with `prefix`. An empty prefix means
/// every key: etcd spells that `key = "\0", range_end = "\0"`.
pub(crate) fn prefix_range(prefix: &str) -> (Vec<u8>, Vec<u8>) {
    if prefix.is_empty() {
        return (vec![0], vec![0]);
    }
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return (prefix.as_bytes().to_vec(), end);
        }
    }
    (prefix.as_bytes().to_vec(), vec![0])
}

/// Accepts an int64 as a JSON string (how the gateway sends it) or a number.
fn de_i64<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        S(String),
        N(i64),
    }
    match Raw::deserialize(d)? {
        Raw::N(n) => Ok(n),
        Raw::S(s) => s.parse().map_err(serde::de::Error::custom),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Header {
    #[serde(deserialize_with = "de_i64")]
    pub revision: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct WireKv {
    pub key: String,
    pub value: String,
    #[serde(deserialize_with = "de_i64")]
    pub create_revision: i64,
    #[serde(deserialize_with = "de_i64")]
    pub mod_revision: i64,
    #[serde(deserialize_with = "de_i64")]
    pub version: i64,
    #[serde(deserialize_with = "de_i64")]
    pub lease: i64,
}

impl WireKv {
    pub(crate) fn into_kv(self) -> Result<KeyValue> {
        let key = String::from_utf8(unb64("key", &self.key)?)
            .map_err(|_| StoreError::Internal("etcd holds a key that is not UTF-8".into()))?;
        Ok(KeyValue {
            key,
            value: unb64("value", &self.value)?,
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
            version: self.version,
            lease: self.lease,
        })
    }
}

/// Converts an optional wire key-value.
pub(crate) fn opt_kv(kv: Option<WireKv>) -> Result<Option<KeyValue>> {
    kv.map(WireKv::into_kv).transpose()
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RangeResponse {
    pub header: Header,
    pub kvs: Vec<WireKv>,
    pub more: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct PutResponse {
    pub header: Header,
    pub prev_kv: Option<WireKv>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct DeleteRangeResponse {
    pub header: Header,
    #[serde(deserialize_with = "de_i64")]
    pub deleted: i64,
    pub prev_kvs: Vec<WireKv>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct TxnResponse {
    pub header: Header,
    pub succeeded: bool,
    pub responses: Vec<ResponseOp>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ResponseOp {
    pub response_put: Option<PutResponse>,
    pub response_delete_range: Option<DeleteRangeResponse>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct LeaseResponse {
    pub header: Header,
    #[serde(rename = "ID", deserialize_with = "de_i64")]
    pub id: i64,
    #[serde(rename = "TTL", deserialize_with = "de_i64")]
    pub ttl: i64,
    pub error: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct AuthenticateResponse {
    pub token: String,
}

/// A message of a streaming call (`/v3/watch`, `/v3/lease/keepalive`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct StreamMessage<T> {
    pub result: Option<T>,
    pub error: Option<StreamError>,
}

/// An error inside a stream, as grpc-gateway writes it.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct StreamError {
    pub grpc_code: i64,
    pub message: String,
}

/// The body of a failed unary call: `{"error": ..., "message": ..., "code": <gRPC code>}`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct GatewayError {
    pub message: String,
    pub error: String,
    pub code: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct WatchResponse {
    pub header: Header,
    pub created: bool,
    pub canceled: bool,
    #[serde(deserialize_with = "de_i64")]
    pub compact_revision: i64,
    pub cancel_reason: String,
    pub events: Vec<WireEvent>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct WireEvent {
    /// `"DELETE"`, or absent for a put.
    #[serde(rename = "type")]
    pub kind: String,
    pub kv: WireKv,
}

impl WireEvent {
    pub(crate) fn into_event(self) -> Result<Event> {
        let kind = match self.kind.as_str() {
            "" | "PUT" => EventKind::Put,
            "DELETE" => EventKind::Delete,
            other => {
                return Err(StoreError::Internal(format!(
                    "etcd sent an unknown event type {other:?}"
                )))
            }
        };
        Ok(Event {
            kind,
            kv: self.kv.into_kv()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ranges_follow_etcd() {
        assert_eq!(prefix_range("/a/"), (b"/a/".to_vec(), b"/a0".to_vec()));
        assert_eq!(prefix_range(""), (vec![0], vec![0]));
    }

    #[test]
    fn watch_events_parse_with_omitted_fields() {
        let raw = r#"{"result":{"header":{"revision":"6"},"events":[
            {"type":"DELETE","kv":{"key":"L2EveA==","mod_revision":"4"}},
            {"kv":{"key":"L2EveQ==","create_revision":"5","mod_revision":"5","version":"1","value":"aGk="}}]}}"#;
        let msg: StreamMessage<WatchResponse> = serde_json::from_str(raw).expect("parse");
        let result = msg.result.expect("result");
        assert_eq!(result.header.revision, 6);
        let events: Vec<Event> = (result.events.into_iter())
            .map(|e| e.into_event().expect("event"))
            .collect();
        assert_eq!(events[0].kind, EventKind::Delete);
        assert_eq!(events[0].kv.key, "/a/x");
        assert_eq!(events[1].kv.value, b"hi");
        assert_eq!(events[1].kv.version, 1);
    }
}
