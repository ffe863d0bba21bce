//! request-id: gives every request an id (APISIX priority 12015, rewrite and header_filter
//! phases; `apisix/plugins/request-id.lua`).
//!
//! A non-empty `header_name` header of the client is kept; otherwise an id is generated with
//! `algorithm` and set on the request, so the upstream gets it. With `include_in_response` the
//! response gets the id too, unless it already carries a non-empty header of that name.
//!
//! Algorithms: `uuid` (random version 4), `uuidv7` (millisecond time, a per-millisecond counter,
//! random bits; monotonic across the node), `nanoid` (21 characters of `A-Za-z0-9_-`),
//! `range_id` (`length` characters drawn from `char_set`), `ksuid` (27 base62 characters: seconds
//! since 2014-05-13 and 16 random bytes).

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use http::header::{HeaderName, HeaderValue};
use portico_model::PluginSpec;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{typed, BuildEnv, Ctx, Flow, Plugin};

/// Plugin name.
pub const NAME: &str = "request-id";

/// `range_id.char_set`'s default, as APISIX spells it (`G` twice, no `J`).
const RANGE_CHARS: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIGKLMNOPQRSTUVWXYZ0123456789";

/// The registry row of request-id.
pub fn spec() -> PluginSpec {
    PluginSpec {
        check: Some(check),
        ..PluginSpec::new(NAME, 12015, schema())
    }
}

/// The configuration schema (APISIX `request-id.lua`).
pub fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "header_name": {"type": "string", "default": "X-Request-Id"},
            "include_in_response": {"type": "boolean", "default": true},
            "algorithm": {
                "type": "string",
                "enum": ["uuid", "nanoid", "range_id", "ksuid", "uuidv7"],
                "default": "uuid"
            },
            "range_id": {
                "type": "object",
                "properties": {
                    "length": {"type": "integer", "minimum": 6, "default": 16},
                    "char_set": {"type": "string", "minLength": 6, "default": RANGE_CHARS}
                },
                "default": {"length": 16, "char_set": RANGE_CHARS}
            }
        }
    })
}

/// Ids longer than this are refused (a header value nobody wants, and memory per request).
const MAX_RANGE_LENGTH: u64 = 8192;

fn check(conf: &Value) -> Result<(), String> {
    let name = conf
        .get("header_name")
        .and_then(Value::as_str)
        .unwrap_or("X-Request-Id");
    if HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(format!("invalid header_name: {name}"));
    }
    if conf
        .pointer("/range_id/length")
        .and_then(Value::as_u64)
        .is_some_and(|l| l > MAX_RANGE_LENGTH)
    {
        return Err(format!(
            "range_id.length above {MAX_RANGE_LENGTH} is not supported"
        ));
    }
    Ok(())
}

fn header_name() -> String {
    "X-Request-Id".to_string()
}

fn yes() -> bool {
    true
}

fn uuid() -> String {
    "uuid".to_string()
}

fn sixteen() -> usize {
    16
}

fn range_chars() -> String {
    RANGE_CHARS.to_string()
}

#[derive(Debug, Deserialize)]
struct RangeConfig {
    #[serde(default = "sixteen")]
    length: usize,
    #[serde(default = "range_chars")]
    char_set: String,
}

#[derive(Debug, Deserialize)]
struct Config {
    #[serde(default = "header_name")]
    header_name: String,
    #[serde(default = "yes")]
    include_in_response: bool,
    #[serde(default = "uuid")]
    algorithm: String,
    range_id: Option<RangeConfig>,
}

#[derive(Debug)]
enum Algorithm {
    Uuid,
    UuidV7,
    Nanoid,
    Range { length: usize, chars: Vec<char> },
    Ksuid,
}

/// Random bytes from the operating system, or from the fast generator if it has none.
fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    if getrandom::fill(&mut out).is_err() {
        for chunk in out.chunks_mut(8) {
            let r = crate::random::u64().to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn uuid_text(b: &[u8; 16]) -> String {
    format!(
        "{}-{}-{}-{}-{}",
        hex(&b[0..4]),
        hex(&b[4..6]),
        hex(&b[6..8]),
        hex(&b[8..10]),
        hex(&b[10..16])
    )
}

fn uuid_v4() -> String {
    let mut b = random_bytes::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    uuid_text(&b)
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The uuidv7 state: the last millisecond used, the counter within it, its random bytes.
static V7: Mutex<(u64, u32, [u8; 7])> = Mutex::new((0, 0, [0; 7]));

/// `core.utils.generate_uuid_v7`: 48 bits of milliseconds, version 7 with the top 12 bits of an
/// 18-bit per-millisecond counter, variant with its low 6 bits, then 7 random bytes drawn once
/// per millisecond.
fn uuid_v7() -> String {
    let mut state = V7.lock().unwrap_or_else(|e| e.into_inner());
    let mut ms = unix_ms();
    if ms > state.0 {
        *state = (ms, 0, random_bytes::<7>());
    } else {
        ms = state.0;
        state.1 += 1;
        if state.1 > 0x3ffff {
            // The counter ran out: move on to the next millisecond.
            ms = state.0 + 1;
            *state = (ms, 0, random_bytes::<7>());
        }
    }
    let (seq, r) = (state.1, state.2);
    drop(state);
    let mut b = [0u8; 16];
    b[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    let version = 0x7000 | (seq >> 6) as u16;
    b[6..8].copy_from_slice(&version.to_be_bytes());
    b[8] = 0x80 | (seq & 0x3f) as u8;
    b[9..].copy_from_slice(&r);
    uuid_text(&b)
}

const NANOID_ALPHABET: &[u8; 64] =
    b"-_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

fn nanoid() -> String {
    random_bytes::<21>()
        .iter()
        .map(|b| NANOID_ALPHABET[usize::from(b & 63)] as char)
        .collect()
}

fn range_id(length: usize, chars: &[char]) -> String {
    (0..length)
        .map(|_| chars[(crate::random::u64() % chars.len() as u64) as usize])
        .collect()
}

/// KSUID's epoch (2014-05-13T16:53:20Z).
const KSUID_EPOCH: u64 = 1_400_000_000;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn ksuid() -> String {
    let secs = unix_ms() / 1000;
    let stamp = secs.saturating_sub(KSUID_EPOCH) as u32;
    let mut bytes = [0u8; 20];
    bytes[..4].copy_from_slice(&stamp.to_be_bytes());
    bytes[4..].copy_from_slice(&random_bytes::<16>());
    // Base62 of the 160-bit big-endian number, left-padded with '0' to 27 digits.
    let mut digits = Vec::with_capacity(27);
    let mut number: Vec<u32> = bytes.iter().map(|b| u32::from(*b)).collect();
    while number.iter().any(|d| *d != 0) {
        let mut rem = 0u32;
        for d in number.iter_mut() {
            let acc = rem * 256 + *d;
            *d = acc / 62;
            rem = acc % 62;
        }
        digits.push(BASE62[rem as usize]);
    }
    while digits.len() < 27 {
        digits.push(b'0');
    }
    digits.reverse();
    String::from_utf8_lossy(&digits).into_owned()
}

impl Algorithm {
    fn generate(&self) -> String {
        match self {
            Algorithm::Uuid => uuid_v4(),
            Algorithm::UuidV7 => uuid_v7(),
            Algorithm::Nanoid => nanoid(),
            Algorithm::Range { length, chars } => range_id(*length, chars),
            Algorithm::Ksuid => ksuid(),
        }
    }
}

/// The ids request-id instances gave the request, by header name (for `header_filter`).
#[derive(Debug, Clone, Default)]
struct Ids(Vec<(HeaderName, Vec<HeaderValue>)>);

/// A request-id instance.
#[derive(Debug)]
pub struct RequestId {
    header: HeaderName,
    include_in_response: bool,
    algorithm: Algorithm,
}

/// Builds request-id from a checked configuration.
pub fn build(conf: &Value, _env: &BuildEnv<'_>) -> Result<Arc<dyn Plugin>, String> {
    let c: Config = typed(conf)?;
    let algorithm = match c.algorithm.as_str() {
        "uuidv7" => Algorithm::UuidV7,
        "nanoid" => Algorithm::Nanoid,
        "ksuid" => Algorithm::Ksuid,
        "range_id" => {
            let r = c.range_id.unwrap_or(RangeConfig {
                length: sixteen(),
                char_set: range_chars(),
            });
            let chars: Vec<char> = r.char_set.chars().collect();
            if chars.is_empty() {
                return Err("range_id.char_set is empty".to_string());
            }
            Algorithm::Range {
                length: r.length,
                chars,
            }
        }
        _ => Algorithm::Uuid,
    };
    Ok(Arc::new(RequestId {
        header: HeaderName::from_bytes(c.header_name.as_bytes())
            .map_err(|_| format!("invalid header_name: {}", c.header_name))?,
        include_in_response: c.include_in_response,
        algorithm,
    }))
}

fn non_empty(values: &[HeaderValue]) -> bool {
    values.first().is_some_and(|v| !v.is_empty())
}

impl Plugin for RequestId {
    fn name(&self) -> &'static str {
        NAME
    }

    fn priority(&self) -> i32 {
        12015
    }

    fn rewrite(&self, ctx: &mut Ctx) -> Flow {
        let sent: Vec<HeaderValue> = ctx.headers.get_all(&self.header).iter().cloned().collect();
        let values = if non_empty(&sent) {
            sent
        } else {
            let id = self.algorithm.generate();
            match HeaderValue::from_str(&id) {
                Ok(v) => {
                    ctx.headers.insert(self.header.clone(), v.clone());
                    vec![v]
                }
                Err(_) => {
                    // A char_set with control characters: nothing valid to send.
                    tracing::warn!("request-id: generated id is not a valid header value");
                    return Flow::Continue;
                }
            }
        };
        if self.include_in_response {
            let ids = ctx.data.get_or_insert_default::<Ids>();
            ids.0.retain(|(name, _)| *name != self.header);
            ids.0.push((self.header.clone(), values));
        }
        Flow::Continue
    }

    fn header_filter(&self, ctx: &mut Ctx) {
        if !self.include_in_response {
            return;
        }
        let Some(values) = ctx
            .data
            .get::<Ids>()
            .and_then(|ids| ids.0.iter().find(|(name, _)| *name == self.header))
            .map(|(_, values)| values.clone())
        else {
            return;
        };
        let Some(head) = ctx.response.as_mut() else {
            return;
        };
        let present: Vec<HeaderValue> =
            head.headers.get_all(&self.header).iter().cloned().collect();
        if non_empty(&present) {
            return;
        }
        head.headers.remove(&self.header);
        for v in values {
            head.headers.append(self.header.clone(), v);
        }
    }
}

#[cfg(test)]
mod tests;
