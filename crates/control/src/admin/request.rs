//! What the Admin API reads off an HTTP request: path segments, query, key, body.

use std::collections::HashMap;

use bytes::Bytes;
use http::{HeaderMap, Method};
use http_body_util::BodyExt;

use super::error::{AdminError, AdminResult};

/// APISIX's Admin body limit: 1.5 MiB.
pub const MAX_BODY: usize = 1024 * 1024 * 3 / 2;

/// Bodies past the limit are drained up to this size so the error can say how large they were.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

/// One Admin API call, decoded.
#[derive(Debug)]
pub struct Call {
    pub method: Method,
    /// Percent-decoded segments after `/apisix/admin/`.
    pub segments: Vec<String>,
    pub query: HashMap<String, String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Call {
    /// The admin key, looked up as APISIX does: `?api_key=`, then `X-API-KEY`, then the
    /// `x_api_key` cookie.
    pub fn api_key(&self) -> Option<String> {
        if let Some(k) = self.query.get("api_key") {
            return Some(k.clone());
        }
        if let Some(k) = self.headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
            return Some(k.to_string());
        }
        self.headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == "x_api_key")
            .map(|(_, value)| value.to_string())
    }

    /// The body as JSON, whatever `Content-Type` says (as APISIX: `curl -d` sends a form type).
    /// `None` when there is no body at all.
    pub fn json_body(&self) -> AdminResult<Option<serde_json::Value>> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        serde_json::from_slice(&self.body)
            .map(Some)
            .map_err(|e| AdminError::BadJson {
                message: e.to_string(),
                raw: String::from_utf8_lossy(&self.body).into_owned(),
            })
    }
}

/// Reads the body, refusing more than [`MAX_BODY`] bytes with APISIX's message.
pub async fn read_body<B>(headers: &HeaderMap, body: B) -> AdminResult<Bytes>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::fmt::Display,
{
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(len) = declared.filter(|len| *len > MAX_BODY) {
        return Err(too_large(len));
    }
    let mut body = std::pin::pin!(body);
    let mut buf = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| AdminError::invalid(format!("invalid request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            seen += data.len();
            if seen <= MAX_BODY {
                buf.extend_from_slice(&data);
            } else if seen > DRAIN_LIMIT {
                break;
            }
        }
    }
    if seen > MAX_BODY {
        return Err(too_large(seen));
    }
    Ok(Bytes::from(buf))
}

fn too_large(len: usize) -> AdminError {
    AdminError::invalid(format!(
        "invalid request body: request size {len} is greater than the maximum size {MAX_BODY} allowed"
    ))
}

/// Splits `a=b&c=d` into a map, percent-decoding names and values; the first value of a name wins.
pub fn parse_query(query: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        out.entry(percent_decode(name, true))
            .or_insert_with(|| percent_decode(value, true));
    }
    out
}

/// Decodes `%XX` escapes (and `+` as space in query strings). Invalid escapes stay as they are.
pub fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_is_decoded_and_first_value_wins() {
        let q = parse_query("name=a%20b&page=1&name=x&label=+k&flag");
        assert_eq!(q["name"], "a b");
        assert_eq!(q["page"], "1");
        assert_eq!(q["label"], " k");
        assert_eq!(q["flag"], "");
    }

    #[test]
    fn broken_escapes_are_kept() {
        assert_eq!(percent_decode("100%", false), "100%");
        assert_eq!(percent_decode("%zz%41", false), "%zzA");
        assert_eq!(percent_decode("a+b", false), "a+b");
    }
}
