//! The variables a log entry reads (`$var` in `log_format`, and the `include_*_expr` and
//! `match` rules), over a finished request.
//!
//! Besides every request variable of [`Ctx`] (`crate::vars`): `status`, `request_time`,
//! `upstream_addr`, `upstream_status`, `upstream_response_time`, `request_length`,
//! `body_bytes_sent`, `bytes_sent`, `time_iso8601`, `time_local`, `msec`, `hostname`,
//! `request` (the request line), `sent_http_<name>` (response headers), `request_body`,
//! `resp_body` (when a logger collected it); `http_<name>` reads the request headers as the
//! logger's `access` phase saw them once the proxy has taken them.

use std::borrow::Cow;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use portico_expr::Vars;

use super::{captured_ref, Captured};
use crate::Ctx;

/// This machine's host name (`HOSTNAME`, else `/etc/hostname`, else `localhost`), read once.
pub fn hostname() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into())
    })
}

/// The variables of a finished request, for one logger.
pub struct LogVars<'a> {
    ctx: &'a Ctx,
    captured: Option<&'a Captured>,
    /// The logger whose collected response body `resp_body` is.
    body_of: Option<u64>,
    now: SystemTime,
}

impl<'a> LogVars<'a> {
    /// The variables of `ctx`, as of now.
    pub fn new(ctx: &'a Ctx) -> LogVars<'a> {
        LogVars {
            ctx,
            captured: captured_ref(ctx),
            body_of: None,
            now: SystemTime::now(),
        }
    }

    /// `resp_body` is what logger `id` collected.
    pub(crate) fn with_body(mut self, id: u64) -> LogVars<'a> {
        self.body_of = Some(id);
        self
    }

    pub(crate) fn captured(&self) -> Option<&'a Captured> {
        self.captured
    }

    /// The collected response body, when the whole body was sent: its last `body_filter`
    /// call came, or as many bytes went out as its `Content-Length` said (the proxy may end a
    /// body of known length without that last call).
    pub(crate) fn resp_body(&self) -> Option<String> {
        let captured = self.captured?;
        let sent_whole = captured
            .resp_headers
            .as_ref()
            .and_then(|h| h.get(http::header::CONTENT_LENGTH))
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|len| len == self.ctx.log.body_bytes_sent);
        let whole = |b: &super::RespBody| b.wanted && (b.complete || sent_whole);
        let body = match self.body_of {
            Some(id) => captured.bodies.iter().find(|(i, _)| *i == id),
            None => captured.bodies.iter().find(|(_, b)| whole(b)),
        };
        body.map(|(_, b)| b)
            .filter(|b| whole(b))
            .map(|b| String::from_utf8_lossy(&b.data).into_owned())
    }

    fn request_header(&self, rest: &str) -> Option<Cow<'a, str>> {
        let headers = match self.captured.and_then(|c| c.req_headers.as_ref()) {
            Some(h) if self.ctx.headers.is_empty() => h,
            _ => &self.ctx.headers,
        };
        let name = rest.replace('_', "-").to_ascii_lowercase();
        headers
            .get(name.as_str())
            .and_then(|v| v.to_str().ok())
            .map(Cow::Borrowed)
    }

    fn response_header(&self, rest: &str) -> Option<Cow<'a, str>> {
        let headers = self.captured?.resp_headers.as_ref()?;
        let name = rest.replace('_', "-").to_ascii_lowercase();
        headers
            .get(name.as_str())
            .and_then(|v| v.to_str().ok())
            .map(Cow::Borrowed)
    }
}

/// Seconds with millisecond precision, as nginx prints times (`0.005`).
fn seconds(d: Duration) -> String {
    format!("{}.{:03}", d.as_secs(), d.subsec_millis())
}

impl Vars for LogVars<'_> {
    fn var(&self, name: &str) -> Option<Cow<'_, str>> {
        let ctx = self.ctx;
        if let Some(v) = ctx.var_override(name) {
            return Some(Cow::Borrowed(v));
        }
        if let Some(rest) = name.strip_prefix("http_") {
            return self.request_header(rest);
        }
        if let Some(rest) = name.strip_prefix("sent_http_") {
            return self.response_header(rest);
        }
        let log = &ctx.log;
        let owned = |s: String| Some(Cow::Owned(s));
        match name {
            "status" => owned(ctx.response.as_ref()?.status.as_u16().to_string()),
            "request_time" => owned(seconds(
                portico_clock::now().saturating_duration_since(log.started),
            )),
            "upstream_addr" => owned(log.upstream_addr?.to_string()),
            "upstream_status" => owned(log.upstream_status?.to_string()),
            "upstream_response_time" => owned(seconds(log.upstream_latency?)),
            "request_length" => owned(log.request_length.to_string()),
            "body_bytes_sent" => owned(log.body_bytes_sent.to_string()),
            "bytes_sent" => {
                let head = self.captured.map_or(0, |c| c.head_bytes);
                owned((head + log.body_bytes_sent).to_string())
            }
            "time_iso8601" => owned(iso8601(self.now)),
            "time_local" => owned(time_local(self.now)),
            "msec" => {
                let d = self.now.duration_since(UNIX_EPOCH).unwrap_or_default();
                owned(seconds(d))
            }
            "hostname" => Some(Cow::Borrowed(hostname())),
            "request" => {
                let version = ctx.var("server_protocol")?;
                owned(format!(
                    "{} {} {version}",
                    ctx.method,
                    ctx.real_request_uri()
                ))
            }
            "request_body" => {
                let body = self
                    .captured
                    .and_then(|c| c.req_body.as_ref())
                    .or(ctx.request_body.as_ref())?;
                owned(String::from_utf8_lossy(body).into_owned())
            }
            "resp_body" => owned(self.resp_body()?),
            _ => ctx.var(name),
        }
    }
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar.
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// (year, month, day, hour, minute, second) in UTC.
fn parts(t: SystemTime) -> (i64, u32, u32, u64, u64, u64) {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (y, m, d) = civil((secs / 86_400) as i64);
    let rem = secs % 86_400;
    (y, m, d, rem / 3600, rem % 3600 / 60, rem % 60)
}

/// `$time_iso8601`: `2024-06-13T15:19:34+00:00` (UTC).
pub fn iso8601(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s) = parts(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}+00:00")
}

/// `$time_local`: `13/Jun/2024:15:19:34 +0000` (UTC).
pub fn time_local(t: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, mo, d, h, mi, s) = parts(t);
    let month = MONTHS[(mo as usize).saturating_sub(1) % 12];
    format!("{d:02}/{month}/{y:04}:{h:02}:{mi:02}:{s:02} +0000")
}
