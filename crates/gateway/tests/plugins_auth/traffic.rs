//! Requests while the configuration changes: poll until an answer changes, and traffic on
//! another task whose statuses must switch once, whole.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;

use crate::common::{Harness, Reply};

/// Sends `make()` until `done(reply)` holds (the snapshot swap is synchronous, so this is
/// normally the first try).
pub async fn until(
    gw: &Harness,
    make: impl Fn() -> Request<Full<Bytes>>,
    done: impl Fn(&Reply) -> bool,
) -> Reply {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let reply = gw.send(make()).await;
        if done(&reply) || Instant::now() > deadline {
            return reply;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Requests sent over and over on another task, and the statuses they got, in order.
pub struct Traffic {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<u16>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Traffic {
    /// Starts sending `make(base_url)` until stopped, and returns once the first answers came.
    pub async fn start(
        gw: &Harness,
        make: impl Fn(&str) -> Request<Full<Bytes>> + Send + 'static,
    ) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (client, base) = (gw.client(), gw.url(""));
        let (flag, log) = (stop.clone(), seen.clone());
        let task = tokio::spawn(async move {
            while !flag.load(Ordering::SeqCst) {
                let resp = client.request(make(&base)).await.expect("gateway answers");
                let status = Reply::read(resp).await.status.as_u16();
                log.lock().expect("log").push(status);
            }
        });
        let traffic = Traffic { stop, seen, task };
        traffic.wait_for(|s| s.len() >= 3).await;
        traffic
    }

    /// Polls until the statuses seen so far satisfy `done` (at most 5 s).
    pub async fn wait_for(&self, done: impl Fn(&[u16]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !done(&self.seen.lock().expect("log")) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Once `after` was answered a few times, stops and asserts the statuses switched once
    /// from `before` to `after` (every request saw one configuration or the other, whole).
    pub async fn switched_once(self, before: u16, after: u16) {
        self.wait_for(|s| s.iter().filter(|x| **x == after).count() >= 3)
            .await;
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.expect("sender");
        let seen = self.seen.lock().expect("log").clone();
        let first_after = seen.iter().position(|s| *s == after).unwrap_or(seen.len());
        assert!(
            first_after > 0
                && first_after < seen.len()
                && seen[..first_after].iter().all(|s| *s == before)
                && seen[first_after..].iter().all(|s| *s == after),
            "expected {before}… then {after}…, saw {seen:?}"
        );
    }
}

/// Adds a header to a built request.
pub trait TapHeader {
    fn tap_header(self, name: &'static str, value: &str) -> Self;
}

impl TapHeader for Request<Full<Bytes>> {
    fn tap_header(mut self, name: &'static str, value: &str) -> Self {
        self.headers_mut()
            .insert(name, value.parse().expect("header value"));
        self
    }
}
