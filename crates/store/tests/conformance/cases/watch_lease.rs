//! Watches (past, live, after compaction) and leases (expiry, keep-alive, revoke).

use std::time::Duration;

use portico_store::{EventKind, PutOptions, StoreError, WatchMessage};

use super::leased;
use crate::harness::{eventually, next_events, next_message, Backend, PATIENCE};

pub async fn watch_delivers_past_and_live_changes_in_order(b: &Backend) {
    let s = &*b.store;
    let (a, c) = (b.key("a"), b.key("c"));
    let first = s
        .put(&a, b"1".to_vec(), PutOptions::default())
        .await
        .expect("put");
    s.put(&c, b"2".to_vec(), PutOptions::default())
        .await
        .expect("put");
    let elsewhere = format!("{}-elsewhere", b.prefix.trim_end_matches('/'));
    s.put(&elsewhere, b"x".to_vec(), PutOptions::default())
        .await
        .expect("put");
    let del = s.delete(&a, None).await.expect("delete");

    let mut watch = s.watch(&b.prefix, first.revision).await.expect("watch");
    let past = next_events(&mut watch, 3).await;
    let kinds: Vec<_> = past.iter().map(|e| (e.kind, e.kv.key.as_str())).collect();
    assert_eq!(
        kinds,
        [
            (EventKind::Put, a.as_str()),
            (EventKind::Put, c.as_str()),
            (EventKind::Delete, a.as_str())
        ]
    );
    assert_eq!(past[0].kv.mod_revision, first.revision);
    assert_eq!(past[2].kv.mod_revision, del.revision);
    assert!(past
        .windows(2)
        .all(|w| w[0].kv.mod_revision < w[1].kv.mod_revision));
    assert_eq!(past[1].kv.value, b"2");

    let live = s
        .put(&a, b"3".to_vec(), PutOptions::default())
        .await
        .expect("put");
    let events = next_events(&mut watch, 1).await;
    assert_eq!(events[0].kv.mod_revision, live.revision);
    assert_eq!(
        (events[0].kv.value.as_slice(), events[0].kv.version),
        (&b"3"[..], 1)
    );
}

pub async fn watch_from_now_sees_only_new_changes(b: &Backend) {
    let s = &*b.store;
    s.put(&b.key("old"), b"old".to_vec(), PutOptions::default())
        .await
        .expect("put");
    let mut watch = s.watch(&b.prefix, 0).await.expect("watch");
    let put = s
        .put(&b.key("new"), b"new".to_vec(), PutOptions::default())
        .await
        .expect("put");
    let events = next_events(&mut watch, 1).await;
    assert_eq!(
        (events[0].kv.key.as_str(), events[0].kv.mod_revision),
        (b.key("new").as_str(), put.revision)
    );
}

pub async fn watch_from_a_compacted_revision_resyncs(b: &Backend) {
    let s = &*b.store;
    let (k1, k2) = (b.key("k1"), b.key("k2"));
    let first = s
        .put(&k1, b"a".to_vec(), PutOptions::default())
        .await
        .expect("put");
    s.put(&k2, b"b".to_vec(), PutOptions::default())
        .await
        .expect("put");
    let last = s
        .put(&k1, b"c".to_vec(), PutOptions::default())
        .await
        .expect("put");
    s.compact(last.revision).await.expect("compact");
    s.compact(first.revision)
        .await
        .expect("compacting an older revision again is a no-op");

    let mut watch = s.watch(&b.prefix, first.revision).await.expect("watch");
    match next_message(&mut watch).await {
        WatchMessage::Resync { revision, kvs } => {
            assert!(revision >= last.revision);
            let view: Vec<_> = kvs
                .iter()
                .map(|kv| (kv.key.as_str(), kv.value.as_slice()))
                .collect();
            assert_eq!(view, [(k1.as_str(), &b"c"[..]), (k2.as_str(), &b"b"[..])]);
        }
        other => panic!("expected a resync, got {other:?}"),
    }
    let next = s
        .put(&b.key("k3"), b"d".to_vec(), PutOptions::default())
        .await
        .expect("put");
    let events = next_events(&mut watch, 1).await;
    assert_eq!(events[0].kv.mod_revision, next.revision);
    // A watch from the compaction revision itself needs no resync.
    let mut from_compacted = s.watch(&b.prefix, last.revision).await.expect("watch");
    assert_eq!(
        next_events(&mut from_compacted, 2).await[1].kv.mod_revision,
        next.revision
    );
}

pub async fn lease_expiry_deletes_keys(b: &Backend) {
    let s = &*b.store;
    let lease = s.lease_grant(1).await.expect("grant");
    assert!(lease > 0);
    let key = b.key("nodes/dp-1");
    s.put(&key, b"alive".to_vec(), leased(lease))
        .await
        .expect("put with lease");
    assert_eq!(
        s.get(&key).await.expect("get").map(|kv| kv.lease),
        Some(lease)
    );
    let mut watch = s.watch(&b.prefix, 0).await.expect("watch");
    // Back ends may raise a TTL to their minimum (etcd 3.4: 2 s by default); ask which it is.
    let ttl = s.lease_keep_alive(lease).await.expect("keep-alive");
    assert!(ttl >= 1);
    let within = Duration::from_secs(ttl as u64 + 5);
    eventually(within, "the leased key to vanish", || async {
        s.get(&key).await.expect("get").is_none()
    })
    .await;
    let events = next_events(&mut watch, 1).await;
    assert_eq!(
        (events[0].kind, events[0].kv.key.as_str()),
        (EventKind::Delete, key.as_str())
    );
    assert!(
        matches!(s.lease_keep_alive(lease).await, Err(StoreError::LeaseNotFound(id)) if id == lease)
    );
}

pub async fn lease_keep_alive_extends(b: &Backend) {
    let s = &*b.store;
    let lease = s.lease_grant(1).await.expect("grant");
    let key = b.key("nodes/dp-2");
    s.put(&key, b"alive".to_vec(), leased(lease))
        .await
        .expect("put with lease");
    let ttl = s.lease_keep_alive(lease).await.expect("keep-alive");
    // Keep it alive for twice its TTL, refreshing every third of it.
    let until = tokio::time::Instant::now() + Duration::from_millis(2000 * ttl as u64);
    while tokio::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(333 * ttl as u64)).await;
        assert_eq!(s.lease_keep_alive(lease).await.expect("keep-alive"), ttl);
    }
    assert!(
        s.get(&key).await.expect("get").is_some(),
        "a refreshed lease keeps its keys"
    );
    s.lease_revoke(lease).await.expect("revoke");
    assert!(matches!(
        s.lease_keep_alive(lease).await,
        Err(StoreError::LeaseNotFound(_))
    ));
}

pub async fn lease_revoke_deletes_keys_at_once(b: &Backend) {
    let s = &*b.store;
    let lease = s.lease_grant(60).await.expect("grant");
    let (k1, k2) = (b.key("nodes/a"), b.key("nodes/b"));
    s.put(&k1, b"1".to_vec(), leased(lease)).await.expect("put");
    s.put(&k2, b"2".to_vec(), leased(lease)).await.expect("put");
    let unleased = b.key("nodes/c");
    s.put(&unleased, b"3".to_vec(), PutOptions::default())
        .await
        .expect("put");
    let mut watch = s.watch(&b.prefix, 0).await.expect("watch");
    s.lease_revoke(lease).await.expect("revoke");
    assert!(s.get(&k1).await.expect("get").is_none());
    assert!(s.get(&k2).await.expect("get").is_none());
    assert!(s.get(&unleased).await.expect("get").is_some());
    let events = tokio::time::timeout(PATIENCE, next_events(&mut watch, 2))
        .await
        .expect("events");
    assert!(events.iter().all(|e| e.kind == EventKind::Delete));
    assert_eq!(
        events[0].kv.mod_revision, events[1].kv.mod_revision,
        "one revision"
    );
    assert!(
        matches!(s.lease_revoke(lease).await, Err(StoreError::LeaseNotFound(id)) if id == lease)
    );
    let unknown = s.put(&k1, b"x".to_vec(), leased(lease)).await;
    assert!(matches!(unknown, Err(StoreError::LeaseNotFound(id)) if id == lease));
    assert!(s.get(&k1).await.expect("get").is_none(), "nothing written");
}
