//! Back ends for the suite, and small helpers to wait for watch messages and conditions.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use portico_store::embedded::EmbeddedStore;
use portico_store::etcd::{EtcdConfig, EtcdStore};
use portico_store::{Event, SharedStore, Watch, WatchMessage};
use portico_testkit::EtcdServer;

/// How long a test waits for something that should happen in well under a second.
pub const PATIENCE: Duration = Duration::from_secs(15);

/// A store under test, with a key prefix of its own, and whatever keeps the back end alive.
pub struct Backend {
    pub store: SharedStore,
    /// Every key a test writes starts with this (unique per test, so tests can share an etcd).
    pub prefix: String,
    /// The etcd server of a test that needs one for itself.
    pub etcd: Option<EtcdServer>,
    _dir: Option<tempfile::TempDir>,
}

impl Backend {
    /// `prefix` + `name`.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }
}

/// An embedded store in a fresh temporary folder.
pub fn embedded(test: &str) -> Backend {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(&dir.path().join("store.db")).expect("open embedded store");
    Backend {
        store: Arc::new(store),
        prefix: format!("/conformance/{test}/"),
        etcd: None,
        _dir: Some(dir),
    }
}

/// One etcd for the whole test binary, started on first use. Tests keep to their own prefix;
/// the testkit's watchdog stops etcd when the test binary exits.
fn shared_etcd() -> &'static EtcdServer {
    static ETCD: OnceLock<EtcdServer> = OnceLock::new();
    ETCD.get_or_init(EtcdServer::start)
}

/// A store on the etcd shared by the tests of this binary.
pub async fn etcd_shared(test: &str) -> Backend {
    let endpoint = tokio::task::spawn_blocking(|| shared_etcd().endpoint())
        .await
        .expect("start etcd");
    Backend {
        store: Arc::new(connect(vec![endpoint]).await),
        prefix: format!("/conformance/{test}/"),
        etcd: None,
        _dir: None,
    }
}

/// A store on an etcd of its own (for tests that compact, restart or kill it).
pub async fn etcd_dedicated(test: &str) -> Backend {
    let etcd = tokio::task::spawn_blocking(EtcdServer::start)
        .await
        .expect("start etcd");
    Backend {
        store: Arc::new(connect(vec![etcd.endpoint()]).await),
        prefix: format!("/conformance/{test}/"),
        etcd: Some(etcd),
        _dir: None,
    }
}

/// Connects to `endpoints` with a short timeout.
pub async fn connect(endpoints: Vec<String>) -> EtcdStore {
    let mut cfg = EtcdConfig::new(endpoints);
    cfg.timeout = Duration::from_secs(5);
    EtcdStore::connect(cfg).await.expect("connect to etcd")
}

/// The next message of `watch`; panics on an error, the end of the watch, or a timeout.
pub async fn next_message(watch: &mut Watch) -> WatchMessage {
    match tokio::time::timeout(PATIENCE, watch.next()).await {
        Ok(Some(Ok(message))) => message,
        Ok(Some(Err(e))) => panic!("watch failed: {e}"),
        Ok(None) => panic!("watch ended"),
        Err(_) => panic!("no watch message within {PATIENCE:?}"),
    }
}

/// The next `n` events of `watch`, across as many messages as it takes. Transient errors
/// (`Unavailable` while the back end recovers) are skipped; a resync is a failure here.
pub async fn next_events(watch: &mut Watch, n: usize) -> Vec<Event> {
    let mut events = Vec::new();
    while events.len() < n {
        let message = match tokio::time::timeout(PATIENCE, watch.next()).await {
            Ok(Some(Ok(message))) => message,
            Ok(Some(Err(e))) => {
                eprintln!("watch reported a transient error: {e}");
                continue;
            }
            Ok(None) => panic!("watch ended after {} of {n} events", events.len()),
            Err(_) => panic!("only {} of {n} events within {PATIENCE:?}", events.len()),
        };
        match message {
            WatchMessage::Changes {
                revision,
                events: batch,
            } => {
                let last = batch.last().map_or(0, |e| e.kv.mod_revision);
                assert!(
                    revision >= last,
                    "message revision {revision} < event {last}"
                );
                events.extend(batch);
            }
            WatchMessage::Resync { revision, .. } => panic!("unexpected resync at {revision}"),
        }
    }
    assert_eq!(events.len(), n, "more events than expected: {events:?}");
    events
}

/// Polls `check` every 20 ms until it returns true; panics after `within`.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
