//! Keys: reads, writes, compare-and-swap, prefixes and revisions.

use portico_store::{EventKind, PutOptions, StoreError};

use super::cas;
use crate::harness::{next_events, Backend};

pub async fn put_get_delete_round_trip(b: &Backend) {
    let s = &*b.store;
    let key = b.key("route/1");
    let start = s.revision().await.expect("revision");
    assert!(s.get(&key).await.expect("get").is_none());

    let first = s
        .put(&key, b"v1".to_vec(), PutOptions::default())
        .await
        .expect("put");
    assert!(first.revision > start);
    assert!(first.prev.is_none());
    let kv = s.get(&key).await.expect("get").expect("key exists");
    assert_eq!(
        (kv.key.as_str(), kv.value.as_slice()),
        (key.as_str(), &b"v1"[..])
    );
    assert_eq!(
        (kv.create_revision, kv.mod_revision),
        (first.revision, first.revision)
    );
    assert_eq!((kv.version, kv.lease), (1, 0));

    let second = s
        .put(&key, b"v2".to_vec(), PutOptions::default())
        .await
        .expect("put");
    assert!(second.revision > first.revision);
    assert_eq!(
        second.prev.as_ref().map(|p| p.value.as_slice()),
        Some(&b"v1"[..])
    );
    let kv = s.get(&key).await.expect("get").expect("key exists");
    assert_eq!(kv.value, b"v2");
    assert_eq!(
        (kv.create_revision, kv.mod_revision),
        (first.revision, second.revision)
    );
    assert_eq!(kv.version, 2);

    let deleted = s.delete(&key, None).await.expect("delete");
    assert!(deleted.revision > second.revision);
    assert_eq!(deleted.prev.map(|p| p.value), Some(b"v2".to_vec()));
    assert!(s.get(&key).await.expect("get").is_none());
    let again = s.delete(&key, None).await.expect("delete a missing key");
    assert!(again.prev.is_none());
    assert!(again.revision >= deleted.revision);

    // A key written again after its delete starts a new life.
    let third = s
        .put(&key, b"v3".to_vec(), PutOptions::default())
        .await
        .expect("put");
    let kv = s.get(&key).await.expect("get").expect("key exists");
    assert_eq!((kv.create_revision, kv.version), (third.revision, 1));
}

pub async fn range_is_sorted_and_limited_to_the_prefix(b: &Backend) {
    let s = &*b.store;
    let mut last = 0;
    for name in ["b", "a", "c/d", "c", "A", "a/b"] {
        last = s
            .put(&b.key(name), name.into(), PutOptions::default())
            .await
            .expect("put")
            .revision;
    }
    // A sibling that shares the prefix without its trailing slash stays out.
    let sibling = format!("{}x", b.prefix.trim_end_matches('/'));
    s.put(&sibling, b"no".to_vec(), PutOptions::default())
        .await
        .expect("put");

    let range = s.range(&b.prefix).await.expect("range");
    let keys: Vec<&str> = range
        .kvs
        .iter()
        .map(|kv| &kv.key[b.prefix.len()..])
        .collect();
    assert_eq!(keys, ["A", "a", "a/b", "b", "c", "c/d"]);
    assert!(range.revision >= last);
    assert_eq!(range.kvs[1].value, b"a");
    assert!(s.range(&b.key("zzz")).await.expect("range").kvs.is_empty());
    s.delete(&sibling, None).await.expect("delete");
}

pub async fn range_over_ten_thousand_keys(b: &Backend) {
    const N: usize = 10_000;
    // Sixteen writers at a time: etcd batches concurrent writes into one disk sync.
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..16 {
        let store = b.store.clone();
        let prefix = b.prefix.clone();
        writers.spawn(async move {
            for i in (w..N).step_by(16) {
                let key = format!("{prefix}{i:05}");
                let value = format!("{{\"id\":{i}}}").into_bytes();
                store
                    .put(&key, value, PutOptions::default())
                    .await
                    .expect("put");
            }
        });
    }
    while let Some(done) = writers.join_next().await {
        done.expect("writer task");
    }
    let range = b.store.range(&b.prefix).await.expect("range");
    assert_eq!(range.kvs.len(), N);
    assert!(range.kvs.windows(2).all(|w| w[0].key < w[1].key), "sorted");
    assert_eq!(range.kvs[0].key, b.key("00000"));
    assert_eq!(
        range.kvs[N - 1].value,
        format!("{{\"id\":{}}}", N - 1).into_bytes()
    );
    assert!(range.kvs.iter().all(|kv| kv.mod_revision <= range.revision));
    let (deleted, _) = b
        .store
        .delete_prefix(&b.prefix)
        .await
        .expect("delete_prefix");
    assert_eq!(deleted, N);
}

pub async fn put_compare_and_swap(b: &Backend) {
    let s = &*b.store;
    let key = b.key("upstream/1");
    let created = s
        .put(&key, b"v1".to_vec(), cas(0))
        .await
        .expect("create if absent");
    assert!(matches!(
        s.put(&key, b"x".to_vec(), cas(0)).await,
        Err(StoreError::Conflict)
    ));
    let wrong = created.revision + 1000;
    assert!(matches!(
        s.put(&key, b"x".to_vec(), cas(wrong)).await,
        Err(StoreError::Conflict)
    ));
    let updated = s
        .put(&key, b"v2".to_vec(), cas(created.revision))
        .await
        .expect("cas put");
    assert_eq!(updated.prev.map(|p| p.value), Some(b"v1".to_vec()));
    // The old revision no longer holds.
    let stale = s.put(&key, b"x".to_vec(), cas(created.revision)).await;
    assert!(matches!(stale, Err(StoreError::Conflict)));
    let kv = s.get(&key).await.expect("get").expect("exists");
    assert_eq!(
        (kv.value.as_slice(), kv.mod_revision),
        (&b"v2"[..], updated.revision)
    );
}

pub async fn delete_compare_and_swap(b: &Backend) {
    let s = &*b.store;
    let key = b.key("consumer/1");
    let put = s
        .put(&key, b"v".to_vec(), PutOptions::default())
        .await
        .expect("put");
    let conflict = s.delete(&key, Some(put.revision + 1000)).await;
    assert!(matches!(conflict, Err(StoreError::Conflict)));
    assert!(matches!(
        s.delete(&key, Some(0)).await,
        Err(StoreError::Conflict)
    ));
    assert!(
        s.get(&key).await.expect("get").is_some(),
        "a failed CAS deletes nothing"
    );
    let deleted = s
        .delete(&key, Some(put.revision))
        .await
        .expect("cas delete");
    assert!(deleted.revision > put.revision);
    assert_eq!(deleted.prev.map(|p| p.mod_revision), Some(put.revision));
    assert!(s.get(&key).await.expect("get").is_none());
    // "Only if absent" holds for a missing key and deletes nothing.
    let absent = s
        .delete(&key, Some(0))
        .await
        .expect("cas delete of a missing key");
    assert!(absent.prev.is_none());
}

pub async fn delete_prefix_removes_only_the_prefix(b: &Backend) {
    let s = &*b.store;
    let inside = b.key("ws/a/");
    for name in ["1", "2", "3/x"] {
        s.put(
            &format!("{inside}{name}"),
            b"v".to_vec(),
            PutOptions::default(),
        )
        .await
        .expect("put");
    }
    let outside = b.key("ws/ab");
    let kept = s
        .put(&outside, b"v".to_vec(), PutOptions::default())
        .await
        .expect("put");
    let mut watch = s.watch(&b.prefix, kept.revision + 1).await.expect("watch");
    let (count, revision) = s.delete_prefix(&inside).await.expect("delete_prefix");
    assert_eq!(count, 3);
    assert!(revision > kept.revision);
    assert!(s.range(&inside).await.expect("range").kvs.is_empty());
    assert!(s.get(&outside).await.expect("get").is_some());
    // All deletes share one revision.
    let events = next_events(&mut watch, 3).await;
    assert!(events
        .iter()
        .all(|e| e.kind == EventKind::Delete && e.kv.mod_revision == revision));
    let (none, _) = s
        .delete_prefix(&inside)
        .await
        .expect("delete_prefix of nothing");
    assert_eq!(none, 0);
}

pub async fn revision_is_monotonic(b: &Backend) {
    let s = &*b.store;
    let mut last = s.revision().await.expect("revision");
    assert!(last >= 1);
    for i in 0..20 {
        let put = s
            .put(
                &b.key(&format!("k{}", i % 3)),
                vec![i],
                PutOptions::default(),
            )
            .await;
        let written = put.expect("put").revision;
        assert!(written > last, "revision went from {last} to {written}");
        let now = s.revision().await.expect("revision");
        assert!(now >= written);
        last = written;
    }
    let range = s.range(&b.prefix).await.expect("range");
    assert!(range.revision >= last);
    assert!(matches!(
        s.put(&b.key("k0"), vec![], cas(1)).await,
        Err(StoreError::Conflict)
    ));
    assert!(s.revision().await.expect("revision") >= last);
}
