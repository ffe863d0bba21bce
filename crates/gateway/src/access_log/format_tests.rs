use std::time::{Duration, Instant, UNIX_EPOCH};

use http::{HeaderValue, Method, Version};

use super::*;
use crate::trace::Try;

fn record() -> AccessRecord {
    let started = Instant::now();
    AccessRecord {
        remote_addr: "10.1.2.3".parse().unwrap(),
        authorization: Some(HeaderValue::from_static("Basic amFjazpwd2Q=")),
        time: UNIX_EPOCH + Duration::from_secs(971_186_136),
        http_host: Some(HeaderValue::from_static("api.example.com:9080")),
        request: Some((Method::GET, "/hello?a=1".parse().unwrap(), Version::HTTP_11)),
        status: 200,
        body_bytes_sent: 12,
        request_time: Duration::from_micros(5_400),
        http_referer: None,
        http_user_agent: Some(HeaderValue::from_static("curl/8.5 \"x\"")),
        tries: vec![
            Try {
                addr: TryAddr::Socket("10.0.0.1:80".parse().unwrap()),
                status: 502,
                started,
                took: Some(Duration::from_millis(1)),
            },
            Try {
                addr: TryAddr::Socket("10.0.0.2:80".parse().unwrap()),
                status: 200,
                started,
                took: Some(Duration::from_millis(3)),
            },
        ],
        upstream_scheme: "http",
        upstream_host: None,
        upstream_uri: Some("/hello?a=1".into()),
        request_id: Some(HeaderValue::from_static("req-1")),
    }
}

fn line(r: &AccessRecord, format: Format) -> String {
    let mut out = Vec::new();
    write(&mut out, r, format, &mut RequestIds::new());
    String::from_utf8(out).unwrap()
}

#[test]
fn default_format_is_apisix_main() {
    assert_eq!(
        line(&record(), Format::Default),
        "10.1.2.3 - jack [10/Oct/2000:13:55:36 +0000] api.example.com:9080 \"GET /hello?a=1 HTTP/1.1\" \
         200 12 0.005 \"-\" \"curl/8.5 \\x22x\\x22\" 10.0.0.1:80, 10.0.0.2:80 502, 200 0.001, 0.003 \
         \"http://api.example.com:9080/hello?a=1\" \"req-1\"\n"
    );
}

#[test]
fn json_has_the_same_fields_named_as_the_variables() {
    let text = line(&record(), Format::Json);
    assert!(text.ends_with("}\n"));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["remote_addr"], "10.1.2.3");
    assert_eq!(v["remote_user"], "jack");
    assert_eq!(v["time_local"], "10/Oct/2000:13:55:36 +0000");
    assert_eq!(v["request"], "GET /hello?a=1 HTTP/1.1");
    assert_eq!(v["status"], 200);
    assert_eq!(v["body_bytes_sent"], 12);
    assert_eq!(v["request_time"], 0.005);
    assert_eq!(v["http_referer"], serde_json::Value::Null);
    assert_eq!(v["http_user_agent"], "curl/8.5 \"x\"");
    assert_eq!(v["upstream_addr"], "10.0.0.1:80, 10.0.0.2:80");
    assert_eq!(v["upstream_status"], "502, 200");
    assert_eq!(v["upstream_response_time"], "0.001, 0.003");
    assert_eq!(v["upstream_host"], "api.example.com:9080");
    assert_eq!(v["upstream_uri"], "/hello?a=1");
    assert_eq!(v["apisix_request_id"], "req-1");
    assert_eq!(v.as_object().unwrap().len(), 17);
}

#[test]
fn absent_values_print_a_dash_and_ids_are_generated() {
    let mut r = record();
    r.authorization = None;
    r.http_user_agent = None;
    r.tries.clear();
    r.upstream_uri = None;
    r.request_id = None;
    r.request = None;
    let text = line(&r, Format::Default);
    assert!(
        text.starts_with(
            "10.1.2.3 - - [10/Oct/2000:13:55:36 +0000] api.example.com:9080 \"-\" 200"
        ),
        "{text}"
    );
    assert!(
        text.contains("\"-\" \"-\" - - - \"http://api.example.com:9080\" \""),
        "{text}"
    );
    let id = text.trim_end().rsplit('"').nth(1).unwrap();
    assert_eq!(id.len(), 32, "{text}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
}

#[test]
fn control_and_non_ascii_bytes_are_escaped() {
    let mut out = Vec::new();
    escape(&mut out, b"a\\b\"c\n\xc3\xa9");
    assert_eq!(out, b"a\\x5Cb\\x22c\\x0A\\xC3\\xA9");
}

#[test]
fn remote_user_comes_from_basic_credentials_only() {
    assert_eq!(basic_user(b"Basic amFjazpwd2Q=").as_deref(), Some("jack"));
    assert_eq!(basic_user(b"basic amFjaw==").as_deref(), Some("jack"));
    assert_eq!(basic_user(b"Bearer abc"), None);
    assert_eq!(basic_user(b"Basic !!!"), None);
}

#[test]
fn time_local_handles_leap_years() {
    let t = UNIX_EPOCH + Duration::from_secs(1_709_210_096); // 2024-02-29 12:34:56 UTC
    assert_eq!(time_local(t), "29/Feb/2024:12:34:56 +0000");
    assert_eq!(time_local(UNIX_EPOCH), "01/Jan/1970:00:00:00 +0000");
}

/// A writer the test can read back.
#[derive(Clone, Default)]
struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn flush_returns_once_everything_queued_is_written() {
    let out = Shared::default();
    let destination = crate::access_log::Destination::Writer(Box::new(out.clone()));
    let config = crate::access_log::AccessLogConfig::new(destination, Format::Json);
    let log = crate::access_log::AccessLog::start(config).unwrap();
    for _ in 0..3 {
        log.send(record());
    }
    log.flush().await;
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    assert_eq!(text.lines().count(), 3, "{text}");
    assert_eq!(log.dropped(), 0);
}

/// A writer that holds its first write until the test opens it.
#[derive(Clone, Default)]
struct Gated {
    out: Shared,
    /// (a write is waiting, the gate is open)
    state: std::sync::Arc<(std::sync::Mutex<(bool, bool)>, std::sync::Condvar)>,
}

impl Gated {
    fn wait_for_a_write(&self) {
        let (lock, cvar) = &*self.state;
        let _held = cvar.wait_while(lock.lock().unwrap(), |s| !s.0).unwrap();
    }

    fn open(&self) {
        let (lock, cvar) = &*self.state;
        lock.lock().unwrap().1 = true;
        cvar.notify_all();
    }
}

impl std::io::Write for Gated {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let (lock, cvar) = &*self.state;
        let mut state = lock.lock().unwrap();
        state.0 = true;
        cvar.notify_all();
        drop(cvar.wait_while(state, |s| !s.1).unwrap());
        self.out.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn flush_waits_for_room_in_a_full_channel() {
    let gated = Gated::default();
    let destination = crate::access_log::Destination::Writer(Box::new(gated.clone()));
    let mut config = crate::access_log::AccessLogConfig::new(destination, Format::Default);
    config.capacity = 1;
    let log = crate::access_log::AccessLog::start(config).unwrap();
    log.send(record());
    // The writer holds the first record in a write; the second fills the channel.
    gated.wait_for_a_write();
    log.send(record());
    assert_eq!(log.dropped(), 0);
    let flushed = tokio::spawn({
        let log = log.clone();
        async move { log.flush().await }
    });
    gated.open();
    flushed.await.unwrap();
    let text = String::from_utf8(gated.out.0.lock().unwrap().clone()).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
}

/// The writer's CPU time to format one record.
/// `cargo test -p portico-gateway --release --lib format::tests::cost -- --ignored --nocapture`
#[test]
#[ignore = "a measurement, not a check"]
fn cost() {
    let cpu = || {
        let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
        Duration::from_nanos(
            text.split(' ')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0),
        )
    };
    let r = record();
    let mut ids = RequestIds::new();
    for format in [Format::Default, Format::Json] {
        let mut out = Vec::with_capacity(1 << 20);
        let start = cpu();
        for _ in 0..200_000 {
            out.clear();
            write(&mut out, std::hint::black_box(&r), format, &mut ids);
        }
        println!("{format:?}: {:?} per record", (cpu() - start) / 200_000);
    }
}

/// Byte strings that exercise the escapes: every single byte, then pseudo-random mixes of
/// ASCII, controls, quotes, valid multi-byte characters and broken sequences.
fn odd_strings() -> Vec<Vec<u8>> {
    let mut all: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
    let pieces: [&[u8]; 14] = [
        b"a",
        b"plain text/",
        b"\"",
        b"\\",
        b"\n\r\t\x08\x0c\x00\x1f\x7f",
        "é".as_bytes(),
        "€".as_bytes(),
        "😀".as_bytes(),
        b"\xc3",
        b"\xe2\x82",
        b"\xf0\x9f\x98",
        b"\x80\xbf",
        b"\xed\xa0\x80",
        b"\xc0\xaf\xff",
    ];
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    for _ in 0..2000 {
        let mut s = Vec::new();
        for _ in 0..(seed % 7) {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            s.extend_from_slice(pieces[(seed >> 33) as usize % pieces.len()]);
        }
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        all.push(s);
    }
    all
}

#[test]
fn nginx_escape_writes_each_odd_byte_as_hex() {
    for v in odd_strings() {
        let mut out = b"x".to_vec();
        escape(&mut out, &v);
        let expected: String = v
            .iter()
            .map(|&b| match b {
                b'"' | b'\\' | 0..=0x1f | 0x7f..=0xff => format!("\\x{b:02X}"),
                _ => char::from(b).to_string(),
            })
            .collect();
        assert_eq!(out, format!("x{expected}").as_bytes(), "{v:?}");
    }
}

#[test]
fn json_strings_are_escaped_as_serde_json_escapes_lossy_text() {
    for v in odd_strings() {
        let mut out = vec![b'"'];
        json_escape(&mut out, &v);
        out.push(b'"');
        let expected = serde_json::to_vec(&String::from_utf8_lossy(&v)).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&expected),
            "{v:?}"
        );
        assert_eq!(out, expected, "{v:?}");
    }
}

#[test]
fn request_ids_from_the_client_are_read_as_utf8_then_escaped() {
    for v in odd_strings() {
        let Ok(id) = HeaderValue::from_bytes(&v) else {
            continue;
        };
        let mut r = record();
        r.request_id = Some(id);
        let text = line(&r, Format::Default);
        let mut expected = Vec::new();
        escape(&mut expected, String::from_utf8_lossy(&v).as_bytes());
        let expected = format!("\"{}\"\n", String::from_utf8_lossy(&expected));
        assert!(text.ends_with(&expected), "{v:?}: {text}");
    }
}

#[test]
fn numbers_are_written_as_display_writes_them() {
    for n in [
        0,
        1,
        9,
        10,
        99,
        100,
        499,
        65_535,
        1 << 32,
        999_999_999_999,
        u64::MAX,
    ] {
        let mut out = Vec::new();
        decimal(&mut out, n);
        assert_eq!(out, n.to_string().as_bytes());
    }
    for d in [
        Duration::ZERO,
        Duration::from_micros(999),
        Duration::from_micros(1_000),
        Duration::from_micros(5_400),
        Duration::from_millis(59_999),
        Duration::from_nanos(1_000_999_999),
        Duration::from_secs(86_400 * 365),
        Duration::MAX,
    ] {
        let mut out = Vec::new();
        seconds(&mut out, d);
        let expected = format!("{}.{:03}", d.as_secs(), d.subsec_millis());
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }
}

#[test]
fn addresses_are_written_as_display_writes_them() {
    for text in [
        "0.0.0.0",
        "1.2.3.4",
        "9.10.99.100",
        "127.0.0.1",
        "255.255.255.255",
        "::1",
        "2001:db8::8a2e:370:7334",
        "::ffff:10.0.0.1",
    ] {
        let addr: IpAddr = text.parse().unwrap();
        let mut out = Vec::new();
        ip(&mut out, addr);
        assert_eq!(String::from_utf8(out).unwrap(), text);
        for port in [0, 80, 9080, 65_535] {
            let sock = SocketAddr::new(addr, port);
            let mut out = Vec::new();
            socket_addr(&mut out, sock);
            assert_eq!(String::from_utf8(out).unwrap(), sock.to_string());
        }
    }
}

#[test]
fn time_local_is_rendered_again_when_the_second_changes() {
    let mut clock = LocalTime::default();
    let base = UNIX_EPOCH + Duration::from_secs(971_186_136);
    assert_eq!(clock.text(base), b"10/Oct/2000:13:55:36 +0000");
    let same_second = base + Duration::from_millis(999);
    assert_eq!(clock.text(same_second), b"10/Oct/2000:13:55:36 +0000");
    let next_day = base + Duration::from_secs(37_464); // 2000-10-11 00:20:00
    assert_eq!(clock.text(next_day), b"11/Oct/2000:00:20:00 +0000");
    let last = UNIX_EPOCH + Duration::from_secs(253_402_300_799); // 9999-12-31 23:59:59
    assert_eq!(clock.text(last), b"31/Dec/9999:23:59:59 +0000");
    let after = last + Duration::from_secs(1);
    assert_eq!(clock.text(after), b"01/Jan/10000:00:00:00 +0000");
}

#[test]
fn one_formatter_writes_many_lines_as_fresh_ones_would() {
    let mut formatter = Formatter::new(Format::Default);
    let mut out = Vec::new();
    let mut r = record();
    for i in 0..3 {
        r.time = UNIX_EPOCH + Duration::from_millis(971_186_136_000 + 700 * i);
        formatter.write(&mut out, &r);
    }
    let text = String::from_utf8(out).unwrap();
    let times: Vec<&str> = text
        .lines()
        .map(|l| l.split_once('[').unwrap().1.split_once(']').unwrap().0)
        .collect();
    assert_eq!(
        times,
        [
            "10/Oct/2000:13:55:36 +0000",
            "10/Oct/2000:13:55:36 +0000",
            "10/Oct/2000:13:55:37 +0000"
        ]
    );
    assert_eq!(
        text.lines().next().unwrap(),
        line(&record(), Format::Default).trim_end()
    );
}

#[test]
fn generated_request_ids_are_32_lowercase_hex_digits() {
    let mut ids = RequestIds(7);
    let mut twin = RequestIds(7);
    let mut out = Vec::new();
    ids.write_next(&mut out);
    let expected = format!("{:016x}{:016x}", twin.word(), twin.word());
    assert_eq!(String::from_utf8(out).unwrap(), expected);
}

#[test]
fn odd_values_in_both_formats() {
    let mut r = record();
    r.remote_addr = "2001:db8::1".parse().unwrap();
    // "j\"é\xff:pw" in Basic credentials: the user is read as UTF-8 text.
    r.authorization = Some(HeaderValue::from_static("Basic aiLDqf86cHc="));
    r.http_host = None;
    r.request = Some((
        Method::from_bytes(b"PURGE").unwrap(),
        "/a%20b".parse().unwrap(),
        Version::HTTP_2,
    ));
    r.status = 499;
    r.body_bytes_sent = 0;
    r.request_time = Duration::from_millis(12_345);
    r.http_referer = Some(HeaderValue::from_bytes(b"http://r/\xe9\\").unwrap());
    r.http_user_agent = Some(HeaderValue::from_bytes(b"ua\t1").unwrap());
    r.tries[0].addr = TryAddr::Name("node \"a\"".into());
    r.tries[1].addr = TryAddr::Socket("[::1]:8080".parse().unwrap());
    r.tries[1].took = None;
    r.upstream_scheme = "https";
    r.upstream_host = Some("inner.test".into());
    r.upstream_uri = Some("/x?q=\"1\"".into());
    r.request_id = Some(HeaderValue::from_bytes(b"id\xff").unwrap());
    assert_eq!(
        line(&r, Format::Default),
        "2001:db8::1 - j\\x22\\xC3\\xA9\\xEF\\xBF\\xBD [10/Oct/2000:13:55:36 +0000] - \
         \"PURGE /a%20b HTTP/2.0\" 499 0 12.345 \"http://r/\\xE9\\x5C\" \"ua\\x091\" \
         node \\x22a\\x22, [::1]:8080 502, 200 0.001, 0.000 \
         \"https://inner.test/x?q=\\x221\\x22\" \"id\\xEF\\xBF\\xBD\"\n"
    );
    assert_eq!(
        line(&r, Format::Json),
        "{\"remote_addr\":\"2001:db8::1\",\"remote_user\":\"j\\\"é\u{FFFD}\",\
         \"time_local\":\"10/Oct/2000:13:55:36 +0000\",\"http_host\":null,\
         \"request\":\"PURGE /a%20b HTTP/2.0\",\"status\":499,\"body_bytes_sent\":0,\
         \"request_time\":12.345,\"http_referer\":\"http://r/\u{FFFD}\\\\\",\
         \"http_user_agent\":\"ua\\t1\",\"upstream_addr\":\"node \\\"a\\\", [::1]:8080\",\
         \"upstream_status\":\"502, 200\",\"upstream_response_time\":\"0.001, 0.000\",\
         \"upstream_scheme\":\"https\",\"upstream_host\":\"inner.test\",\
         \"upstream_uri\":\"/x?q=\\\"1\\\"\",\"apisix_request_id\":\"id\u{FFFD}\"}\n"
    );
    r.tries.clear();
    r.request = None;
    r.request_id = None;
    let json: serde_json::Value = serde_json::from_str(&line(&r, Format::Json)).unwrap();
    assert_eq!(json["request"], serde_json::Value::Null);
    assert_eq!(json["upstream_addr"], serde_json::Value::Null);
    assert_eq!(json["upstream_status"], serde_json::Value::Null);
    assert_eq!(json["upstream_response_time"], serde_json::Value::Null);
    assert_eq!(json["apisix_request_id"].as_str().map(str::len), Some(32));
}

#[test]
fn escapes_are_found_wherever_they_sit_in_a_value() {
    let specials = [0x00, 0x09, 0x1f, b'"', b'\\', 0x7f, 0x80, 0xc3, 0xff];
    let plain = [b' ', b'!', b'#', b'[', b']', b'~', b'a', b'0'];
    for len in 0..=25 {
        for at in 0..len {
            for (&special, &filler) in specials.iter().zip(plain.iter().cycle()) {
                let mut v = vec![filler; len];
                v[at] = special;
                let mut out = Vec::new();
                escape(&mut out, &v);
                let expected: Vec<u8> = v
                    .iter()
                    .flat_map(|&b| match b == special {
                        true => format!("\\x{b:02X}").into_bytes(),
                        false => vec![b],
                    })
                    .collect();
                assert_eq!(out, expected, "{v:?}");
                let mut out = Vec::new();
                json_escape(&mut out, &v);
                let expected = serde_json::to_string(&String::from_utf8_lossy(&v)).unwrap();
                assert_eq!(out, &expected.as_bytes()[1..expected.len() - 1], "{v:?}");
            }
        }
        let clean: Vec<u8> = (0x20..0x7f).cycle().skip(len * 3).take(len).collect();
        let mut out = Vec::new();
        escape(&mut out, &clean);
        let expected: Vec<u8> = clean
            .iter()
            .flat_map(|&b| match b {
                b'"' | b'\\' => format!("\\x{b:02X}").into_bytes(),
                _ => vec![b],
            })
            .collect();
        assert_eq!(out, expected, "{clean:?}");
    }
}
