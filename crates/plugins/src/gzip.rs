//! gzip: compresses responses for clients that accept gzip (APISIX priority 995, header_filter
//! and body_filter; `apisix/plugins/gzip.lua` plus nginx's gzip filter it switches on).
//!
//! In `header_filter` the response is compressed when all of these hold:
//!
//! * the plugin's own checks: a `Content-Type` is present and, unless `types` is `"*"`, its
//!   media type (parameters stripped) is one of `types`; a known `Content-Length` is at least
//!   `min_length`; the request's HTTP version is at least `http_version`. When they pass and
//!   `vary` is set, `Vary: Accept-Encoding` is added — whether or not the client accepts gzip,
//!   as APISIX does;
//! * nginx's gzip filter: the status is 200, 403 or 404; the request is not `HEAD`; the response
//!   has no `Content-Encoding`; the request's `Accept-Encoding` names `gzip` without `q=0`; the
//!   request has no `Via` header (nginx's default `gzip_proxied off`).
//!
//! Then `Content-Encoding: gzip` is set, `Content-Length` and `Accept-Ranges` are removed, a
//! strong `ETag` becomes weak, and `body_filter` compresses the body as it streams
//! ([`Encoder`], level `comp_level`, output handed on in pieces of `buffers.size` bytes).
//!
//! nginx's gzip filter runs after every Lua body filter, so it compresses what response-rewrite
//! (899) made of the body, although gzip's priority is higher. A plugin that changes the body
//! after gzip decided takes the pending compression over with [`take_pending`] and compresses
//! its own output.

mod decoder;
mod encoder;

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::header::{
    HeaderValue, ACCEPT_ENCODING, ACCEPT_RANGES, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE,
    ETAG, VARY,
};
use http::{Method, StatusCode, Version};
use portico_model::PluginSpec;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{typed, BuildEnv, Ctx, Plugin, ResponseHead};

pub use decoder::Decoder;
pub use encoder::Encoder;

/// Plugin name.
pub const NAME: &str = "gzip";

/// APISIX priority.
const PRIORITY: i32 = 995;

/// The configuration schema (`apisix/plugins/gzip.lua`).
pub fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "types": {
                "anyOf": [
                    {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
                    {"enum": ["*"]}
                ],
                "default": ["text/html"]
            },
            "min_length": {"type": "integer", "minimum": 1, "default": 20},
            "comp_level": {"type": "integer", "minimum": 1, "maximum": 9, "default": 1},
            "http_version": {"enum": [1.1, 1.0], "default": 1.1},
            "buffers": {
                "type": "object",
                "properties": {
                    "number": {"type": "integer", "minimum": 1, "default": 32},
                    "size": {"type": "integer", "minimum": 1, "default": 4096}
                },
                "default": {"number": 32, "size": 4096}
            },
            "vary": {"type": "boolean"}
        }
    })
}

/// The registry row of gzip.
pub fn spec() -> PluginSpec {
    PluginSpec::new(NAME, PRIORITY, schema())
}

#[derive(Debug, Deserialize)]
struct Buffers {
    size: u64,
}

#[derive(Debug, Deserialize)]
struct Config {
    types: Value,
    min_length: u64,
    comp_level: u32,
    http_version: f64,
    buffers: Buffers,
    #[serde(default)]
    vary: bool,
}

/// A gzip instance.
#[derive(Debug)]
pub struct Gzip {
    /// `None` = every type (`"*"`).
    types: Option<Vec<String>>,
    min_length: u64,
    level: u32,
    /// HTTP/1.0 requests are compressed too.
    http10: bool,
    piece: usize,
    vary: bool,
}

/// Builds gzip from a checked configuration.
pub fn build(conf: &Value, _env: &BuildEnv<'_>) -> Result<Arc<dyn Plugin>, String> {
    let c: Config = typed(conf)?;
    let types = match &c.types {
        Value::Array(items) => Some(
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
        ),
        _ => None,
    };
    Ok(Arc::new(Gzip {
        types,
        min_length: c.min_length,
        level: c.comp_level,
        http10: c.http_version < 1.05,
        piece: usize::try_from(c.buffers.size).unwrap_or(usize::MAX),
        vary: c.vary,
    }))
}

/// gzip's decision for one response, kept in [`Ctx::data`] for the body filters.
#[derive(Debug)]
pub struct Deferred {
    encoder: Encoder,
    /// `Content-Encoding: gzip` is set: the body filters compress. Otherwise gzip held back
    /// because the response was already encoded; a later plugin that decodes it may take over.
    applied: bool,
}

impl Deferred {
    /// Whether gzip set `Content-Encoding: gzip` (the body as it stands is not encoded); false
    /// when it held back because the response already had a `Content-Encoding`.
    pub fn applied(&self) -> bool {
        self.applied
    }

    /// The encoder for the body the taking plugin produces.
    pub fn into_encoder(self) -> Encoder {
        self.encoder
    }
}

/// The per-request slot (Clone for [`Ctx::data`]; only one request touches it), and which
/// gzip instance filled it (a gzip in the global rules and one in the route's template must not
/// both compress).
#[derive(Clone, Debug)]
struct Slot {
    owner: usize,
    pending: Arc<Mutex<Option<Deferred>>>,
}

/// Takes over gzip's compression of this response, for a plugin that replaces or decodes the
/// body in its `header_filter` after gzip's ran (nginx compresses the final body). The caller
/// sets `Content-Encoding: gzip` again if it clears it, when [`status_compressible`] still holds,
/// and compresses its output with [`Deferred::into_encoder`]. `None`: gzip does not compress this
/// response.
pub fn take_pending(ctx: &mut Ctx) -> Option<Deferred> {
    let slot = ctx.data.get::<Slot>()?;
    let taken = slot
        .pending
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    taken
}

/// Drops gzip's pending compression (a later plugin changed the status to one nginx does not
/// compress): the `Content-Encoding: gzip` gzip set is removed and the body passes as it is.
pub fn cancel(ctx: &mut Ctx) {
    if let Some(p) = take_pending(ctx) {
        if p.applied {
            if let Some(head) = ctx.response.as_mut() {
                head.headers.remove(CONTENT_ENCODING);
            }
        }
    }
}

/// Whether nginx's gzip filter compresses responses of this status (200, 403, 404).
pub fn status_compressible(status: StatusCode) -> bool {
    matches!(status.as_u16(), 200 | 403 | 404)
}

/// `ngx_http_gzip_accept_encoding` + `ngx_http_gzip_quantity`: a `gzip` token (case-insensitive,
/// delimited by start/`,`/space and end/`,`/`;`/space) not followed by a zero `q`.
pub fn accepts_gzip(accept_encoding: &str) -> bool {
    let lower = accept_encoding.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let mut from = 0;
    while let Some(at) = lower[from..].find("gzip").map(|i| i + from) {
        from = at + 4;
        let before_ok = at == 0 || matches!(bytes[at - 1], b',' | b' ');
        let after = bytes.get(at + 4).copied();
        let after_ok = matches!(after, None | Some(b',' | b';' | b' '));
        if !(before_ok && after_ok) {
            continue;
        }
        return !zero_quality(&lower[at + 4..]);
    }
    false
}

/// Whether the parameters after a coding (`;q=0`, `; q=0.000`) give it quality zero.
fn zero_quality(rest: &str) -> bool {
    let params = rest.split(',').next().unwrap_or_default();
    for param in params.split(';').skip(1) {
        if let Some(q) = param.trim().strip_prefix("q=") {
            let q = q.trim();
            let zero = q.starts_with('0')
                && q.len() <= 5
                && q[1..]
                    .strip_prefix('.')
                    .map_or(q.len() == 1, |d| d.bytes().all(|b| b == b'0'));
            return zero;
        }
    }
    false
}

/// `ngx_http_weak_etag`: `"x"` becomes `W/"x"`; a weak one stays; anything else is dropped.
fn weaken_etag(head: &mut ResponseHead) {
    let Some(etag) = head.headers.get(ETAG) else {
        return;
    };
    let bytes = etag.as_bytes();
    if bytes.starts_with(b"W/") {
        return;
    }
    let weak = bytes
        .starts_with(b"\"")
        .then(|| HeaderValue::from_bytes(&[b"W/".as_slice(), bytes].concat()).ok())
        .flatten();
    match weak {
        Some(v) => {
            head.headers.insert(ETAG, v);
        }
        None => {
            head.headers.remove(ETAG);
        }
    }
}

impl Gzip {
    /// This instance's identity within a request (its address; the chain holding it outlives
    /// the request).
    fn id(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    /// The plugin's own checks (`gzip.lua:header_filter`).
    fn plugin_matches(&self, ctx: &Ctx, head: &ResponseHead) -> bool {
        let Some(content_type) = head.headers.get(CONTENT_TYPE) else {
            return false;
        };
        if let Some(types) = &self.types {
            let text = String::from_utf8_lossy(content_type.as_bytes());
            let media = text.split(';').next().unwrap_or_default();
            // Compared as written, like APISIX (no case folding, no trimming).
            if !types.iter().any(|t| t == media) {
                return false;
            }
        }
        let length = head
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if length.is_some_and(|l| l < self.min_length) {
            return false;
        }
        ctx.version != Version::HTTP_10 || self.http10
    }

    /// nginx's gzip filter checks (`ngx_http_gzip_header_filter`, `ngx_http_gzip_ok`).
    fn client_accepts(ctx: &Ctx, head: &ResponseHead) -> bool {
        if !status_compressible(head.status) || ctx.method == Method::HEAD {
            return false;
        }
        if ctx.headers.contains_key(http::header::VIA) {
            return false;
        }
        let accept = ctx
            .headers
            .get_all(ACCEPT_ENCODING)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect::<Vec<_>>()
            .join(", ");
        accepts_gzip(&accept)
    }
}

impl Plugin for Gzip {
    fn name(&self) -> &'static str {
        NAME
    }

    fn priority(&self) -> i32 {
        PRIORITY
    }

    fn header_filter(&self, ctx: &mut Ctx) {
        // A gzip of the global rules decided already.
        if ctx.data.get::<Slot>().is_some() {
            return;
        }
        let Some(head) = ctx.response.as_ref() else {
            return;
        };
        if !self.plugin_matches(ctx, head) {
            return;
        }
        let accepts = Gzip::client_accepts(ctx, head);
        let encoded = head
            .headers
            .get(CONTENT_ENCODING)
            .is_some_and(|v| !v.is_empty());
        let Some(head) = ctx.response.as_mut() else {
            return;
        };
        if self.vary {
            head.headers
                .append(VARY, HeaderValue::from_static("Accept-Encoding"));
        }
        if !accepts {
            return;
        }
        if !encoded {
            head.headers
                .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            head.headers.remove(CONTENT_LENGTH);
            head.headers.remove(ACCEPT_RANGES);
            weaken_etag(head);
        }
        let pending = Deferred {
            encoder: Encoder::new(self.level, self.piece),
            applied: !encoded,
        };
        ctx.data.insert(Slot {
            owner: self.id(),
            pending: Arc::new(Mutex::new(Some(pending))),
        });
    }

    fn body_filter(&self, ctx: &mut Ctx, chunk: &mut Bytes, eof: bool) {
        let Some(slot) = ctx.data.get::<Slot>().filter(|s| s.owner == self.id()) else {
            return;
        };
        let mut guard = slot.pending.lock().unwrap_or_else(|e| e.into_inner());
        let Some(pending) = guard.as_mut().filter(|p| p.applied) else {
            return;
        };
        let out = pending.encoder.push(chunk);
        *chunk = if eof {
            let end = pending.encoder.finish();
            let mut all = Vec::with_capacity(out.len() + end.len());
            all.extend_from_slice(&out);
            all.extend_from_slice(&end);
            Bytes::from(all)
        } else {
            out
        };
    }
}

#[cfg(test)]
mod tests;
