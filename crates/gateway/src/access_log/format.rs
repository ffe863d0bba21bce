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
//! `null` for an absent value and numbers for `status`, `body_bytes_sent` and `request_time`;
//! strings are read as UTF-8 (a bad sequence becomes U+FFFD) and escaped as `serde_json` does.
//!
//! A line is written straight into the writer's buffer: numbers, addresses and times by small
//! digit writers, text escaped in place, `$time_local` rendered once per second. Nothing is
//! allocated per record (an IPv6 address goes through `Display`, still without allocating).

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use http::{HeaderValue, Method, Uri, Version};

use super::{AccessRecord, Format};
use crate::trace::{Try, TryAddr};

/// Room reserved before a line, so that its pieces rarely grow the buffer one by one.
const LINE_ROOM: usize = 512;

/// Formats records one after another; keeps what carries over from one to the next.
pub(super) struct Formatter {
    format: Format,
    ids: RequestIds,
    clock: LocalTime,
    /// Decoded Basic credentials, for `$remote_user`.
    scratch: Vec<u8>,
}

impl Formatter {
    pub fn new(format: Format) -> Formatter {
        Formatter {
            format,
            ids: RequestIds::new(),
            clock: LocalTime::default(),
            scratch: Vec::new(),
        }
    }

    /// Appends one line for `r` to `out`.
    pub fn write(&mut self, out: &mut Vec<u8>, r: &AccessRecord) {
        Line {
            out,
            ids: &mut self.ids,
            clock: &mut self.clock,
            scratch: &mut self.scratch,
        }
        .write(r, self.format);
    }
}

/// Appends one line for `r` to `out`, as a fresh [`Formatter`] would.
#[cfg(test)]
pub(super) fn write(out: &mut Vec<u8>, r: &AccessRecord, format: Format, ids: &mut RequestIds) {
    Line {
        out,
        ids,
        clock: &mut LocalTime::default(),
        scratch: &mut Vec::new(),
    }
    .write(r, format);
}

/// One line being written.
struct Line<'a> {
    out: &'a mut Vec<u8>,
    ids: &'a mut RequestIds,
    clock: &'a mut LocalTime,
    scratch: &'a mut Vec<u8>,
}

/// How a format writes text inside a value.
#[derive(Clone, Copy)]
enum Text {
    /// nginx's `escape=default`, byte by byte.
    Nginx,
    /// A JSON string's content, read as UTF-8.
    Json,
}

impl Text {
    /// A header value or a string, as it is.
    fn bytes(self, out: &mut Vec<u8>, v: &[u8]) {
        match self {
            Text::Nginx => escape(out, v),
            Text::Json => json_escape(out, v),
        }
    }

    /// Bytes read as UTF-8 text first (the client's request id).
    fn lossy(self, out: &mut Vec<u8>, v: &[u8]) {
        match self {
            Text::Nginx => lossy(v, |part| escape(out, part)),
            Text::Json => json_escape(out, v),
        }
    }
}

impl Line<'_> {
    fn write(&mut self, r: &AccessRecord, format: Format) {
        self.out.reserve(LINE_ROOM);
        match format {
            Format::Default => self.default_line(r),
            Format::Json => self.json_line(r),
        }
    }

    fn default_line(&mut self, r: &AccessRecord) {
        let t = Text::Nginx;
        ip(self.out, r.remote_addr);
        self.out.extend_from_slice(b" - ");
        match remote_user(r, self.scratch) {
            Some(user) => lossy(user, |part| escape(self.out, part)),
            None => self.out.push(b'-'),
        }
        self.out.extend_from_slice(b" [");
        time_local_into(self.out, self.clock.text(r.time));
        self.out.extend_from_slice(b"] ");
        header_or_dash(self.out, &r.http_host);
        self.out.extend_from_slice(b" \"");
        match &r.request {
            Some(request) => request_line(self.out, request, t),
            None => self.out.push(b'-'),
        }
        self.out.extend_from_slice(b"\" ");
        status(self.out, r.status);
        self.out.push(b' ');
        decimal(self.out, r.body_bytes_sent);
        self.out.push(b' ');
        seconds(self.out, r.request_time);
        self.out.extend_from_slice(b" \"");
        header_or_dash(self.out, &r.http_referer);
        self.out.extend_from_slice(b"\" \"");
        header_or_dash(self.out, &r.http_user_agent);
        self.out.extend_from_slice(b"\" ");
        if r.tries.is_empty() {
            self.out.extend_from_slice(b"- - - ");
        } else {
            upstream_addr(self.out, &r.tries, t);
            self.out.push(b' ');
            upstream_status(self.out, &r.tries);
            self.out.push(b' ');
            upstream_response_time(self.out, &r.tries);
            self.out.push(b' ');
        }
        self.out.push(b'"');
        self.out.extend_from_slice(r.upstream_scheme.as_bytes());
        self.out.extend_from_slice(b"://");
        escape(self.out, upstream_host(r));
        escape(self.out, r.upstream_uri.as_deref().unwrap_or("").as_bytes());
        self.out.extend_from_slice(b"\" \"");
        self.request_id(r, t);
        self.out.extend_from_slice(b"\"\n");
    }

    fn json_line(&mut self, r: &AccessRecord) {
        let t = Text::Json;
        self.out.extend_from_slice(b"{\"remote_addr\":\"");
        ip(self.out, r.remote_addr);
        self.out.extend_from_slice(b"\",\"remote_user\":");
        match remote_user(r, self.scratch) {
            Some(user) => {
                self.out.push(b'"');
                json_escape(self.out, user);
                self.out.push(b'"');
            }
            None => self.out.extend_from_slice(b"null"),
        }
        self.out.extend_from_slice(b",\"time_local\":\"");
        time_local_into(self.out, self.clock.text(r.time));
        self.out.extend_from_slice(b"\",\"http_host\":");
        json_header(self.out, &r.http_host);
        self.out.extend_from_slice(b",\"request\":");
        match &r.request {
            Some(request) => {
                self.out.push(b'"');
                request_line(self.out, request, t);
                self.out.push(b'"');
            }
            None => self.out.extend_from_slice(b"null"),
        }
        self.out.extend_from_slice(b",\"status\":");
        status(self.out, r.status);
        self.out.extend_from_slice(b",\"body_bytes_sent\":");
        decimal(self.out, r.body_bytes_sent);
        self.out.extend_from_slice(b",\"request_time\":");
        seconds(self.out, r.request_time);
        self.out.extend_from_slice(b",\"http_referer\":");
        json_header(self.out, &r.http_referer);
        self.out.extend_from_slice(b",\"http_user_agent\":");
        json_header(self.out, &r.http_user_agent);
        if r.tries.is_empty() {
            self.out.extend_from_slice(
                b",\"upstream_addr\":null,\"upstream_status\":null,\"upstream_response_time\":null",
            );
        } else {
            self.out.extend_from_slice(b",\"upstream_addr\":\"");
            upstream_addr(self.out, &r.tries, t);
            self.out.extend_from_slice(b"\",\"upstream_status\":\"");
            upstream_status(self.out, &r.tries);
            self.out
                .extend_from_slice(b"\",\"upstream_response_time\":\"");
            upstream_response_time(self.out, &r.tries);
            self.out.push(b'"');
        }
        self.out.extend_from_slice(b",\"upstream_scheme\":\"");
        json_escape(self.out, r.upstream_scheme.as_bytes());
        self.out.extend_from_slice(b"\",\"upstream_host\":\"");
        json_escape(self.out, upstream_host(r));
        self.out.extend_from_slice(b"\",\"upstream_uri\":\"");
        json_escape(self.out, r.upstream_uri.as_deref().unwrap_or("").as_bytes());
        self.out.extend_from_slice(b"\",\"apisix_request_id\":\"");
        self.request_id(r, t);
        self.out.extend_from_slice(b"\"}\n");
    }

    /// `$apisix_request_id`: the client's, or a new random one.
    fn request_id(&mut self, r: &AccessRecord, t: Text) {
        match &r.request_id {
            Some(id) => t.lossy(self.out, id.as_bytes()),
            None => self.ids.write_next(self.out),
        }
    }
}

/// `$remote_user`, decoded into `scratch`.
fn remote_user<'s>(r: &AccessRecord, scratch: &'s mut Vec<u8>) -> Option<&'s [u8]> {
    basic_user_into(r.authorization.as_ref()?.as_bytes(), scratch)
}

/// `$time_local`'s text: 26 bytes in the years 1000 to 9999, copied as a whole.
fn time_local_into(out: &mut Vec<u8>, text: &[u8]) {
    match text.first_chunk::<26>() {
        Some(usual) if text.len() == 26 => out.extend_from_slice(usual),
        _ => out.extend_from_slice(text),
    }
}

fn header_or_dash(out: &mut Vec<u8>, v: &Option<HeaderValue>) {
    match v {
        Some(v) => escape(out, v.as_bytes()),
        None => out.push(b'-'),
    }
}

fn json_header(out: &mut Vec<u8>, v: &Option<HeaderValue>) {
    match v {
        Some(v) => {
            out.push(b'"');
            json_escape(out, v.as_bytes());
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
}

/// `$request`: method, target and protocol.
fn request_line(out: &mut Vec<u8>, (method, uri, version): &(Method, Uri, Version), t: Text) {
    // A method is a token (`http` admits nothing else): nothing in it to escape.
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
    t.bytes(out, target.as_bytes());
    out.push(b' ');
    out.extend_from_slice(protocol(*version).as_bytes());
}

/// `$upstream_host`: the `Host` sent upstream, else the client's.
fn upstream_host(r: &AccessRecord) -> &[u8] {
    match &r.upstream_host {
        Some(host) => host.as_bytes(),
        None => r.http_host.as_ref().map_or(&[], |v| v.as_bytes()),
    }
}

/// Every try's value, joined with `, `.
fn join(out: &mut Vec<u8>, tries: &[Try], mut each: impl FnMut(&mut Vec<u8>, &Try)) {
    for (i, t) in tries.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b", ");
        }
        each(out, t);
    }
}

fn upstream_addr(out: &mut Vec<u8>, tries: &[Try], t: Text) {
    join(out, tries, |out, try_| match &try_.addr {
        TryAddr::Socket(addr) => socket_addr(out, *addr),
        TryAddr::Name(name) => t.bytes(out, name.as_bytes()),
    });
}

fn upstream_status(out: &mut Vec<u8>, tries: &[Try]) {
    join(out, tries, |out, t| status(out, t.status));
}

fn upstream_response_time(out: &mut Vec<u8>, tries: &[Try]) {
    join(out, tries, |out, t| {
        seconds(out, t.took.unwrap_or_default())
    });
}

/// Bytes that nginx's `escape=default` writes as `\xHH`: `"`, `\`, controls and non-ASCII.
const fn nginx_escapes() -> [bool; 256] {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = b == b'"' as usize || b == b'\\' as usize || b < 0x20 || b >= 0x7f;
        b += 1;
    }
    table
}
static NGINX_ESCAPES: [bool; 256] = nginx_escapes();

/// Bytes a JSON string cannot carry as they are (`"`, `\`, controls) or that need a UTF-8 check.
const fn json_specials() -> [bool; 256] {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = b == b'"' as usize || b == b'\\' as usize || b < 0x20 || b >= 0x80;
        b += 1;
    }
    table
}
static JSON_SPECIALS: [bool; 256] = json_specials();

/// Eight bytes at a time: each lane's high bit set where a byte of `x` is special. Exact as to
/// whether any lane is (a flagged lane may also flag the lanes above it).
mod lanes {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;

    fn below(x: u64, n: u8) -> u64 {
        x.wrapping_sub(ONES * u64::from(n)) & !x & HIGH
    }

    fn equal(x: u64, b: u8) -> u64 {
        let y = x ^ (ONES * u64::from(b));
        y.wrapping_sub(ONES) & !y & HIGH
    }

    /// `"`, `\`, controls, DEL and non-ASCII.
    #[inline(always)]
    pub fn nginx(x: u64) -> bool {
        let del_or_high = (x | ((x & !HIGH) + ONES)) & HIGH;
        (below(x, 0x20) | del_or_high | equal(x, b'"') | equal(x, b'\\')) != 0
    }

    /// `"`, `\`, controls and non-ASCII.
    #[inline(always)]
    pub fn json(x: u64) -> bool {
        (below(x, 0x20) | (x & HIGH) | equal(x, b'"') | equal(x, b'\\')) != 0
    }
}

/// The first byte of `v` that `table` marks, looking eight bytes at a time where `lanes` says
/// none is.
#[inline(always)]
fn first_special(v: &[u8], lanes: impl Fn(u64) -> bool, table: &[bool; 256]) -> Option<usize> {
    let mut from = 0;
    while let Some(word) = v[from..].first_chunk::<8>() {
        if lanes(u64::from_le_bytes(*word)) {
            break;
        }
        from += 8;
    }
    // The tail after clean words: its last eight bytes (overlapping clean ones) in one look.
    if from + 8 > v.len() && v.len() >= 8 {
        let last = v.len() - 8;
        if let Some(word) = v[last..].first_chunk::<8>() {
            if !lanes(u64::from_le_bytes(*word)) {
                return None;
            }
        }
    }
    v[from..]
        .iter()
        .position(|&b| table[usize::from(b)])
        .map(|at| from + at)
}

const UPPER_HEX: &[u8; 16] = b"0123456789ABCDEF";
const LOWER_HEX: &[u8; 16] = b"0123456789abcdef";

/// nginx's `escape=default`: `"`, `\`, control and non-ASCII bytes as `\xHH`.
fn escape(out: &mut Vec<u8>, mut v: &[u8]) {
    while let Some(at) = first_special(v, lanes::nginx, &NGINX_ESCAPES) {
        let b = v[at];
        out.extend_from_slice(&v[..at]);
        out.extend_from_slice(&[
            b'\\',
            b'x',
            UPPER_HEX[usize::from(b >> 4)],
            UPPER_HEX[usize::from(b & 15)],
        ]);
        v = &v[at + 1..];
    }
    out.extend_from_slice(v);
}

/// Calls `part` with `v` as UTF-8 text in pieces, U+FFFD in place of each bad sequence (as
/// `String::from_utf8_lossy` reads it).
fn lossy(v: &[u8], mut part: impl FnMut(&[u8])) {
    if v.is_ascii() {
        return part(v);
    }
    for chunk in v.utf8_chunks() {
        part(chunk.valid().as_bytes());
        if !chunk.invalid().is_empty() {
            part("\u{FFFD}".as_bytes());
        }
    }
}

/// The content of a JSON string for `v` read as UTF-8, escaped as `serde_json` escapes.
fn json_escape(out: &mut Vec<u8>, v: &[u8]) {
    match first_special(v, lanes::json, &JSON_SPECIALS) {
        None => out.extend_from_slice(v),
        Some(at) => {
            out.extend_from_slice(&v[..at]);
            lossy(&v[at..], |part| json_escape_text(out, part));
        }
    }
}

/// Escapes valid UTF-8: `"`, `\` and controls; other characters as they are.
fn json_escape_text(out: &mut Vec<u8>, mut v: &[u8]) {
    while let Some(at) = v.iter().position(|&b| b < 0x20 || b == b'"' || b == b'\\') {
        let b = v[at];
        out.extend_from_slice(&v[..at]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                LOWER_HEX[usize::from(b >> 4)],
                LOWER_HEX[usize::from(b & 15)],
            ]),
        }
        v = &v[at + 1..];
    }
    out.extend_from_slice(v);
}

/// "00" to "99".
const fn two_digit_pairs() -> [[u8; 2]; 100] {
    let mut pairs = [[0; 2]; 100];
    let mut n = 0;
    while n < 100 {
        pairs[n] = [b'0' + (n / 10) as u8, b'0' + (n % 10) as u8];
        n += 1;
    }
    pairs
}
static PAIRS: [[u8; 2]; 100] = two_digit_pairs();

/// Writes `n` in decimal into the end of `digits`; returns where it starts.
fn decimal_digits(digits: &mut [u8; 20], mut n: u64) -> usize {
    let mut at = digits.len();
    while n >= 100 {
        at -= 2;
        digits[at..at + 2].copy_from_slice(&PAIRS[(n % 100) as usize]);
        n /= 100;
    }
    if n >= 10 {
        at -= 2;
        digits[at..at + 2].copy_from_slice(&PAIRS[n as usize]);
    } else {
        at -= 1;
        digits[at] = b'0' + n as u8;
    }
    at
}

/// `n` in decimal.
fn decimal(out: &mut Vec<u8>, n: u64) {
    if n < 10 {
        return out.push(b'0' + n as u8);
    }
    let mut digits = [0u8; 20];
    let at = decimal_digits(&mut digits, n);
    out.extend_from_slice(&digits[at..]);
}

/// A status: three digits, as almost every one has.
fn status(out: &mut Vec<u8>, s: u16) {
    if (100..1000).contains(&s) {
        let [tens, ones] = PAIRS[usize::from(s % 100)];
        out.extend_from_slice(&[b'0' + (s / 100) as u8, tens, ones]);
    } else {
        decimal(out, s.into());
    }
}

/// Seconds with millisecond resolution, as nginx prints `$request_time`: `s.mmm`.
fn seconds(out: &mut Vec<u8>, d: Duration) {
    decimal(out, d.as_secs());
    let ms = d.subsec_millis() as usize;
    let [tens, ones] = PAIRS[ms % 100];
    out.extend_from_slice(&[b'.', b'0' + (ms / 100) as u8, tens, ones]);
}

/// Each octet's digits followed by a `.`, and the count of its digits.
const fn octets() -> [([u8; 4], u8); 256] {
    let mut table = [([0; 4], 0); 256];
    let mut n = 0;
    while n < 256 {
        let (h, t, o) = (
            b'0' + (n / 100) as u8,
            b'0' + (n / 10 % 10) as u8,
            b'0' + (n % 10) as u8,
        );
        table[n] = match n {
            0..=9 => ([o, b'.', 0, 0], 1),
            10..=99 => ([t, o, b'.', 0], 2),
            _ => ([h, t, o, b'.'], 3),
        };
        n += 1;
    }
    table
}
static OCTETS: [([u8; 4], u8); 256] = octets();

/// `a.b.c.d`, then `:port` when there is one.
fn ipv4(out: &mut Vec<u8>, ip: Ipv4Addr, port: Option<u16>) {
    // "255.255.255.255." then ":65535" at most, and room for the last octet's four bytes.
    let mut buf = [0u8; 24];
    let mut at = 0;
    for n in ip.octets() {
        let (text, len) = &OCTETS[usize::from(n)];
        buf[at..at + 4].copy_from_slice(text);
        at += usize::from(*len) + 1;
    }
    // Over the last octet's `.`.
    at -= 1;
    if let Some(port) = port {
        buf[at] = b':';
        let mut digits = [0u8; 20];
        let from = decimal_digits(&mut digits, port.into());
        let len = digits.len() - from;
        buf[at + 1..at + 1 + len].copy_from_slice(&digits[from..]);
        at += 1 + len;
    }
    out.extend_from_slice(&buf[..at]);
}

fn ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => ipv4(out, v4, None),
        // Rare enough for `Display` (which also knows the shortening rules).
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

fn socket_addr(out: &mut Vec<u8>, addr: SocketAddr) {
    match addr {
        SocketAddr::V4(v4) => ipv4(out, *v4.ip(), Some(v4.port())),
        SocketAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

/// `$remote_user`: the user name of HTTP Basic credentials, decoded into `scratch`.
fn basic_user_into<'s>(authorization: &[u8], scratch: &'s mut Vec<u8>) -> Option<&'s [u8]> {
    let value = std::str::from_utf8(authorization).ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    scratch.clear();
    base64::engine::general_purpose::STANDARD
        .decode_vec(token.trim(), scratch)
        .ok()?;
    // A `:` never belongs to a bad UTF-8 sequence: splitting before reading as text is the same.
    let user = match scratch.iter().position(|&b| b == b':') {
        Some(colon) => &scratch[..colon],
        None => &scratch[..],
    };
    Some(user)
}

/// [`basic_user_into`] as text.
#[cfg(test)]
fn basic_user(authorization: &[u8]) -> Option<String> {
    let mut scratch = Vec::new();
    basic_user_into(authorization, &mut scratch).map(|u| String::from_utf8_lossy(u).into_owned())
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

/// `$time_local` in UTC (`10/Oct/2000:13:55:36 +0000`), rendered again only when the second
/// changes.
#[derive(Default)]
struct LocalTime {
    /// The second since the epoch that `text` shows; `None` before the first.
    second: Option<u64>,
    text: Vec<u8>,
}

impl LocalTime {
    fn text(&mut self, t: SystemTime) -> &[u8] {
        let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if self.second != Some(secs) {
            self.render(secs);
        }
        &self.text
    }

    fn render(&mut self, secs: u64) {
        const MONTHS: &[u8; 36] = b"JanFebMarAprMayJunJulAugSepOctNovDec";
        let (days, rem) = (secs / 86_400, secs % 86_400);
        let (year, month, day) = civil_from_days(days);
        let two = |n: u64| [b'0' + (n / 10 % 10) as u8, b'0' + (n % 10) as u8];
        let text = &mut self.text;
        text.clear();
        text.extend_from_slice(&two(day.into()));
        text.push(b'/');
        let m = usize::from(month - 1) % 12 * 3;
        text.extend_from_slice(&MONTHS[m..m + 3]);
        text.push(b'/');
        decimal(text, year);
        text.push(b':');
        text.extend_from_slice(&two(rem / 3600));
        text.push(b':');
        text.extend_from_slice(&two(rem % 3600 / 60));
        text.push(b':');
        text.extend_from_slice(&two(rem % 60));
        text.extend_from_slice(b" +0000");
        self.second = Some(secs);
    }
}

/// `$time_local` of `t`, as text.
#[cfg(test)]
pub(super) fn time_local(t: SystemTime) -> String {
    String::from_utf8_lossy(LocalTime::default().text(t)).into_owned()
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

    /// Appends the next id.
    fn write_next(&mut self, out: &mut Vec<u8>) {
        let mut hex = [0u8; 32];
        for (half, word) in [self.word(), self.word()].into_iter().enumerate() {
            for (i, byte) in word.to_be_bytes().into_iter().enumerate() {
                let at = 16 * half + 2 * i;
                hex[at..at + 2].copy_from_slice(&HEX_PAIRS[usize::from(byte)]);
            }
        }
        out.extend_from_slice(&hex);
    }
}

/// "00" to "ff".
const fn hex_pairs() -> [[u8; 2]; 256] {
    let mut pairs = [[0; 2]; 256];
    let mut n = 0;
    while n < 256 {
        pairs[n] = [LOWER_HEX[n >> 4], LOWER_HEX[n & 15]];
        n += 1;
    }
    pairs
}
static HEX_PAIRS: [[u8; 2]; 256] = hex_pairs();

#[cfg(test)]
#[path = "format_tests.rs"]
mod tests;
