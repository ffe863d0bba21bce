//! Formatting records: nginx's `main` format as APISIX configures it (§6.6), and JSON lines.
//!
//! ```text
//! $remote_addr - $remote_user [$time_local] $http_host "$request" $status $body_bytes_sent
//! $request_time "$http_referer" "$http_user_agent" $upstream_addr $upstream_status
//! $upstream_response_time "$upstream_scheme://$upstream_host$upstream_uri" "$apisix_request_id"
//! ```
//!
//! As nginx does, an absent value prints `-`, and `"`, `\`, control and non-ASCII bytes print as
//! `\xHH` (`escape=default`). JSON lines carry the same fields under the variables' names, with
//! `null` for an absent value and numbers for `status`, `body_bytes_sent` and `request_time`.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use http::Version;

use super::{AccessRecord, Format};
use crate::trace::TryAddr;

/// Appends one line for `r` to `out`.
pub(super) fn write(out: &mut Vec<u8>, r: &AccessRecord, format: Format, ids: &mut RequestIds) {
    let f = Fields::of(r, ids);
    match format {
        Format::Default => default_line(out, &f),
        Format::Json => json_line(out, &f),
    }
}

/// Every field, as text (`None` = absent).
struct Fields<'a> {
    remote_addr: String,
    remote_user: Option<String>,
    time_local: String,
    http_host: Option<&'a [u8]>,
    request: Option<String>,
    status: u16,
    body_bytes_sent: u64,
    request_time: String,
    http_referer: Option<&'a [u8]>,
    http_user_agent: Option<&'a [u8]>,
    upstream_addr: Option<String>,
    upstream_status: Option<String>,
    upstream_response_time: Option<String>,
    upstream_scheme: &'static str,
    upstream_host: &'a [u8],
    upstream_uri: &'a str,
    request_id: String,
}

impl<'a> Fields<'a> {
    fn of(r: &'a AccessRecord, ids: &mut RequestIds) -> Fields<'a> {
        let join = |f: &dyn Fn(&crate::trace::Try) -> String| {
            (!r.tries.is_empty()).then(|| r.tries.iter().map(f).collect::<Vec<_>>().join(", "))
        };
        let http_host = r.http_host.as_ref().map(|v| v.as_bytes());
        Fields {
            remote_addr: r.remote_addr.to_string(),
            remote_user: r
                .authorization
                .as_ref()
                .and_then(|v| basic_user(v.as_bytes())),
            time_local: time_local(r.time),
            http_host,
            request: r.request.as_ref().map(|(method, uri, version)| {
                let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
                format!("{method} {target} {}", protocol(*version))
            }),
            status: r.status,
            body_bytes_sent: r.body_bytes_sent,
            request_time: seconds(r.request_time),
            http_referer: r.http_referer.as_ref().map(|v| v.as_bytes()),
            http_user_agent: r.http_user_agent.as_ref().map(|v| v.as_bytes()),
            upstream_addr: join(&|t| match &t.addr {
                TryAddr::Socket(addr) => addr.to_string(),
                TryAddr::Name(name) => name.clone(),
            }),
            upstream_status: join(&|t| t.status.to_string()),
            upstream_response_time: join(&|t| seconds(t.took.unwrap_or_default())),
            upstream_scheme: r.upstream_scheme,
            upstream_host: match &r.upstream_host {
                Some(host) => host.as_bytes(),
                None => http_host.unwrap_or_default(),
            },
            upstream_uri: r.upstream_uri.as_deref().unwrap_or(""),
            request_id: match &r.request_id {
                Some(id) => String::from_utf8_lossy(id.as_bytes()).into_owned(),
                None => ids.next(),
            },
        }
    }
}

fn default_line(out: &mut Vec<u8>, f: &Fields<'_>) {
    let opt = |v: Option<&[u8]>, out: &mut Vec<u8>| match v {
        Some(v) => escape(out, v),
        None => out.push(b'-'),
    };
    let _ = write!(out, "{} - ", f.remote_addr);
    opt(f.remote_user.as_deref().map(str::as_bytes), out);
    let _ = write!(out, " [{}] ", f.time_local);
    opt(f.http_host, out);
    out.extend_from_slice(b" \"");
    opt(f.request.as_deref().map(str::as_bytes), out);
    let _ = write!(
        out,
        "\" {} {} {} \"",
        f.status, f.body_bytes_sent, f.request_time
    );
    opt(f.http_referer, out);
    out.extend_from_slice(b"\" \"");
    opt(f.http_user_agent, out);
    out.extend_from_slice(b"\" ");
    for v in [
        &f.upstream_addr,
        &f.upstream_status,
        &f.upstream_response_time,
    ] {
        opt(v.as_deref().map(str::as_bytes), out);
        out.push(b' ');
    }
    let _ = write!(out, "\"{}://", f.upstream_scheme);
    escape(out, f.upstream_host);
    escape(out, f.upstream_uri.as_bytes());
    out.extend_from_slice(b"\" \"");
    escape(out, f.request_id.as_bytes());
    out.extend_from_slice(b"\"\n");
}

fn json_line(out: &mut Vec<u8>, f: &Fields<'_>) {
    let s = |out: &mut Vec<u8>, key: &str, v: Option<&[u8]>| {
        let _ = write!(out, "\"{key}\":");
        match v {
            Some(v) => {
                let _ = serde_json::to_writer(&mut *out, &String::from_utf8_lossy(v));
            }
            None => out.extend_from_slice(b"null"),
        }
        out.push(b',');
    };
    fn b(v: &Option<String>) -> Option<&[u8]> {
        v.as_deref().map(str::as_bytes)
    }
    out.push(b'{');
    s(out, "remote_addr", Some(f.remote_addr.as_bytes()));
    s(out, "remote_user", b(&f.remote_user));
    s(out, "time_local", Some(f.time_local.as_bytes()));
    s(out, "http_host", f.http_host);
    s(out, "request", b(&f.request));
    let _ = write!(
        out,
        "\"status\":{},\"body_bytes_sent\":{},\"request_time\":{},",
        f.status, f.body_bytes_sent, f.request_time
    );
    s(out, "http_referer", f.http_referer);
    s(out, "http_user_agent", f.http_user_agent);
    s(out, "upstream_addr", b(&f.upstream_addr));
    s(out, "upstream_status", b(&f.upstream_status));
    s(out, "upstream_response_time", b(&f.upstream_response_time));
    s(out, "upstream_scheme", Some(f.upstream_scheme.as_bytes()));
    s(out, "upstream_host", Some(f.upstream_host));
    s(out, "upstream_uri", Some(f.upstream_uri.as_bytes()));
    s(out, "apisix_request_id", Some(f.request_id.as_bytes()));
    // Replace the trailing comma.
    out.pop();
    out.extend_from_slice(b"}\n");
}

/// nginx's `escape=default`: `"`, `\`, control and non-ASCII bytes as `\xHH`.
fn escape(out: &mut Vec<u8>, v: &[u8]) {
    for &b in v {
        if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
            let _ = write!(out, "\\x{b:02X}");
        } else {
            out.push(b);
        }
    }
}

/// `$remote_user`: the user name of HTTP Basic credentials.
fn basic_user(authorization: &[u8]) -> Option<String> {
    let value = std::str::from_utf8(authorization).ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .ok()?;
    let text = String::from_utf8_lossy(&decoded);
    let user = text.split_once(':').map_or(&*text, |(u, _)| u);
    Some(user.to_string())
}

fn protocol(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// Seconds with millisecond resolution, as nginx prints `$request_time`.
fn seconds(d: Duration) -> String {
    format!("{}.{:03}", d.as_secs(), d.subsec_millis())
}

/// `$time_local` in UTC: `10/Oct/2000:13:55:36 +0000`.
pub(super) fn time_local(t: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{day:02}/{}/{year}:{:02}:{:02}:{:02} +0000",
        MONTHS[usize::from(month - 1) % 12],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month 1-12, day 1-31) (Howard Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u8, u8) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Random request ids (nginx's `$request_id`: 32 hex digits), from a splitmix64 sequence.
pub(super) struct RequestIds(u64);

impl RequestIds {
    pub fn new() -> RequestIds {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        RequestIds(now ^ u64::from(std::process::id()).rotate_left(32))
    }

    fn word(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn next(&mut self) -> String {
        format!("{:016x}{:016x}", self.word(), self.word())
    }
}

#[cfg(test)]
#[path = "format_tests.rs"]
mod tests;
