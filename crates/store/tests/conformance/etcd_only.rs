//! What only the etcd back end has to prove: authentication, outages, restarts and clusters.

use std::time::Duration;

use portico_store::etcd::{EtcdConfig, EtcdStore, EtcdTls};
use portico_store::{PutOptions, Store, StoreError, WatchMessage};
use portico_testkit::{EtcdCluster, EtcdServer, TestCerts};

use crate::harness::{connect, etcd_dedicated, next_events, PATIENCE};

fn with_user(endpoint: &str, user: Option<&str>, password: &str) -> EtcdConfig {
    let mut cfg = EtcdConfig::new([endpoint]);
    cfg.user = user.map(str::to_string);
    cfg.password = Some(password.to_string());
    cfg.timeout = Duration::from_secs(3);
    cfg
}

#[tokio::test]
async fn auth_with_user_and_password() {
    // Tokens unused for a second expire, so the client has to renew its token below.
    let etcd = tokio::task::spawn_blocking(|| {
        let etcd = EtcdServer::start_with(&["--auth-token-ttl=1"]);
        etcd.enable_auth("s3cret");
        etcd
    })
    .await
    .expect("start etcd");
    let endpoint = etcd.endpoint();

    let wrong = EtcdStore::connect(with_user(&endpoint, Some("root"), "wrong")).await;
    assert!(matches!(wrong, Err(StoreError::Auth(_))), "{wrong:?}");
    let anonymous = EtcdStore::connect(EtcdConfig::new([endpoint.clone()])).await;
    assert!(
        matches!(anonymous, Err(StoreError::Auth(_))),
        "{anonymous:?}"
    );

    let s = EtcdStore::connect(with_user(&endpoint, Some("root"), "s3cret"))
        .await
        .expect("connect");
    let mut watch = s.watch("/auth/", 0).await.expect("watch");
    s.put("/auth/k", b"v".to_vec(), PutOptions::default())
        .await
        .expect("put");
    assert_eq!(next_events(&mut watch, 1).await[0].kv.key, "/auth/k");
    // Let the token expire (etcd checks simple tokens once a second).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let kv = s.get("/auth/k").await.expect("get with a renewed token");
    assert_eq!(kv.map(|kv| kv.value), Some(b"v".to_vec()));
    s.put("/auth/k2", b"v".to_vec(), PutOptions::default())
        .await
        .expect("put");
    assert_eq!(next_events(&mut watch, 1).await[0].kv.key, "/auth/k2");
}

#[tokio::test]
async fn tls_with_a_client_certificate() {
    let (certs, etcd) = tokio::task::spawn_blocking(|| {
        let certs = TestCerts::generate();
        let etcd = EtcdServer::start_tls(&certs);
        (certs, etcd)
    })
    .await
    .expect("start etcd with TLS");
    assert!(etcd.endpoint().starts_with("https://"));
    let files = (Some(certs.ca.as_path()), Some(certs.client_cert.as_path()));
    let tls = EtcdTls::from_files(files.0, files.1, Some(&certs.client_key)).expect("read PEM");
    let mut cfg = EtcdConfig::new([etcd.endpoint()]);
    cfg.tls = Some(tls.clone());
    let s = EtcdStore::connect(cfg).await.expect("connect over TLS");
    let mut watch = s.watch("/tls/", 0).await.expect("watch");
    s.put("/tls/k", b"v".to_vec(), PutOptions::default())
        .await
        .expect("put");
    assert_eq!(next_events(&mut watch, 1).await[0].kv.key, "/tls/k");

    // Without a client certificate, or without trusting the CA, no connection.
    let without_cert = EtcdTls {
        cert_pem: None,
        key_pem: None,
        ..tls
    };
    let untrusted = EtcdTls::default();
    for tls in [without_cert, untrusted] {
        let mut cfg = EtcdConfig::new([etcd.endpoint()]);
        cfg.tls = Some(tls);
        cfg.timeout = Duration::from_millis(500);
        let refused = EtcdStore::connect(cfg).await;
        assert!(
            matches!(refused, Err(StoreError::Unavailable(_))),
            "{refused:?}"
        );
    }
}

#[tokio::test]
async fn an_unreachable_store_is_unavailable() {
    let port = portico_testkit::free_port();
    let mut cfg = EtcdConfig::new([format!("http://127.0.0.1:{port}")]);
    cfg.timeout = Duration::from_millis(500);
    match EtcdStore::connect(cfg).await {
        Err(StoreError::Unavailable(msg)) => assert!(msg.contains(&port.to_string()), "{msg}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }

    // A store whose etcd goes away answers Unavailable too, and recovers with it.
    let mut backend = etcd_dedicated("unavailable").await;
    let mut cfg = EtcdConfig::new([backend.etcd.as_ref().expect("etcd").endpoint()]);
    cfg.timeout = Duration::from_millis(500);
    let s = EtcdStore::connect(cfg).await.expect("connect");
    let etcd = backend.etcd.as_mut().expect("etcd");
    etcd.kill();
    assert!(matches!(s.get("/k").await, Err(StoreError::Unavailable(_))));
    etcd.restart();
    assert!(s.get("/k").await.expect("get after restart").is_none());
}

#[tokio::test]
async fn a_watch_survives_an_etcd_restart() {
    let mut backend = etcd_dedicated("restart").await;
    let s = backend.store.clone();
    let mut watch = s.watch("/r/", 0).await.expect("watch");
    s.put("/r/1", b"before".to_vec(), PutOptions::default())
        .await
        .expect("put");
    assert_eq!(next_events(&mut watch, 1).await[0].kv.value, b"before");

    let etcd = backend.etcd.as_mut().expect("etcd");
    etcd.kill();
    // The outage is reported once...
    match tokio::time::timeout(PATIENCE, watch.next()).await {
        Ok(Some(Err(StoreError::Unavailable(_)))) => {}
        other => panic!("expected Unavailable during the outage, got {other:?}"),
    }
    etcd.restart();
    // ...and afterwards the watch goes on from where it was, missing nothing.
    let a = s
        .put("/r/2", b"after".to_vec(), PutOptions::default())
        .await
        .expect("put");
    let b = s
        .put("/r/3", b"again".to_vec(), PutOptions::default())
        .await
        .expect("put");
    let events = next_events(&mut watch, 2).await;
    let revisions: Vec<i64> = events.iter().map(|e| e.kv.mod_revision).collect();
    assert_eq!(revisions, [a.revision, b.revision]);
}

#[tokio::test]
async fn a_three_member_cluster_survives_a_member_kill() {
    let mut cluster = tokio::task::spawn_blocking(|| EtcdCluster::start(3))
        .await
        .expect("start cluster");
    let leader = cluster.leader().expect("a leader");
    // The client talks to a follower first; that is the member killed first.
    let follower = (0..3).find(|i| *i != leader).expect("a follower");
    let mut endpoints = cluster.endpoints();
    endpoints.swap(0, follower);
    let s = connect(endpoints).await;
    let mut watch = s.watch("/c/", 0).await.expect("watch");
    let lease = s.lease_grant(30).await.expect("grant");
    let opts = PutOptions {
        lease: Some(lease),
        ..PutOptions::default()
    };
    s.put("/c/1", b"one".to_vec(), opts).await.expect("put");
    assert_eq!(next_events(&mut watch, 1).await[0].kv.key, "/c/1");

    cluster.member_mut(follower).kill();
    let two = s
        .put("/c/2", b"two".to_vec(), PutOptions::default())
        .await
        .expect("put");
    let range = s.range("/c/").await.expect("range");
    assert_eq!(range.kvs.len(), 2);
    assert!(range.revision >= two.revision);
    assert_eq!(s.lease_keep_alive(lease).await.expect("keep-alive"), 30);
    let three = s
        .put("/c/3", b"three".to_vec(), PutOptions::default())
        .await
        .expect("put");
    let events = next_events(&mut watch, 2).await;
    let revisions: Vec<i64> = events.iter().map(|e| e.kv.mod_revision).collect();
    assert_eq!(revisions, [two.revision, three.revision]);

    // Now the leader: writes fail while a new one is elected (callers retry), then go on.
    cluster.member_mut(follower).restart();
    cluster.member_mut(leader).kill();
    let four = put_retrying(&s, "/c/4").await;
    let five = put_retrying(&s, "/c/5").await;
    // A put that timed out during the election may have been applied too: look for the last.
    let mut seen = Vec::new();
    while seen.last() != Some(&five) {
        seen.push(next_events(&mut watch, 1).await[0].kv.mod_revision);
    }
    assert!(seen.contains(&four), "{seen:?} lacks {four}");

    // Compaction while a watch is behind: it resyncs instead of losing changes.
    s.compact(five).await.expect("compact");
    let mut late = s.watch("/c/", two.revision).await.expect("watch");
    match tokio::time::timeout(PATIENCE, late.next()).await {
        Ok(Some(Ok(WatchMessage::Resync { kvs, .. }))) => assert_eq!(kvs.len(), 5),
        other => panic!("expected a resync, got {other:?}"),
    }
}

/// Puts `key` until it succeeds (a cluster electing a leader answers `Unavailable`).
async fn put_retrying(s: &EtcdStore, key: &str) -> i64 {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match s.put(key, b"v".to_vec(), PutOptions::default()).await {
            Ok(put) => return put.revision,
            Err(StoreError::Unavailable(e)) if tokio::time::Instant::now() < deadline => {
                eprintln!("put {key}: {e}; retrying");
            }
            Err(e) => panic!("put {key}: {e}"),
        }
    }
}
