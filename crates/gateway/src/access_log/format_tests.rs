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
