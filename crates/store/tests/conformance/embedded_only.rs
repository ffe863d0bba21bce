//! What only the embedded store has to prove: its one file survives reopening, crashes, torn
//! writes and compaction, and slow watchers never hold writers up.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use portico_store::embedded::{EmbeddedConfig, EmbeddedStore};
use portico_store::{PutOptions, Store, StoreError, WatchMessage};

use crate::harness::{next_events, next_message, PATIENCE};

/// Set in the child process of the kill -9 test: the store file it writes to.
const CRASH_ENV: &str = "PORTICO_STORE_CRASH_WRITER";

fn open(path: &Path) -> EmbeddedStore {
    EmbeddedStore::open(path).expect("open store")
}

async fn put(s: &EmbeddedStore, key: &str, value: &str) -> i64 {
    let put = s.put(key, value.as_bytes().to_vec(), PutOptions::default());
    put.await.expect("put").revision
}

async fn value(s: &EmbeddedStore, key: &str) -> Option<String> {
    let kv = s.get(key).await.expect("get")?;
    Some(String::from_utf8(kv.value).expect("utf-8 value"))
}

#[tokio::test]
async fn reopen_keeps_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("data/store.db");
    let (lease, watch_from, revision) = {
        let s = open(&path);
        put(&s, "/a", "1").await;
        put(&s, "/b", "2").await;
        s.delete("/b", None).await.expect("delete");
        let watch_from = put(&s, "/c", "3").await;
        put(&s, "/c", "4").await;
        let lease = s.lease_grant(60).await.expect("grant");
        let opts = PutOptions {
            lease: Some(lease),
            ..PutOptions::default()
        };
        s.put("/d", b"5".to_vec(), opts)
            .await
            .expect("put with lease");
        s.compact(watch_from).await.expect("compact");
        (lease, watch_from, s.revision().await.expect("revision"))
    };
    let s = open(&path);
    assert_eq!(s.revision().await.expect("revision"), revision);
    assert_eq!(value(&s, "/a").await.as_deref(), Some("1"));
    assert_eq!(value(&s, "/b").await, None);
    let c = s.get("/c").await.expect("get").expect("c");
    assert_eq!(
        (c.value.as_slice(), c.version, c.create_revision),
        (&b"4"[..], 2, watch_from)
    );
    assert_eq!(
        s.get("/d").await.expect("get").map(|kv| kv.lease),
        Some(lease)
    );
    // The lease lives on with a fresh TTL; new leases get new ids.
    assert_eq!(s.lease_keep_alive(lease).await.expect("keep-alive"), 60);
    assert!(s.lease_grant(5).await.expect("grant") > lease);
    // The history since the last compaction is back, so a watch needs no resync.
    let mut watch = s.watch("/", watch_from).await.expect("watch");
    let events = next_events(&mut watch, 3).await;
    assert_eq!(events[0].kv.mod_revision, watch_from);
    let mut compacted = s.watch("/", watch_from - 1).await.expect("watch");
    assert!(matches!(
        next_message(&mut compacted).await,
        WatchMessage::Resync { .. }
    ));
}

#[tokio::test]
async fn torn_and_corrupt_tails_are_cut_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.db");
    {
        let s = open(&path);
        for i in 1..=3 {
            put(&s, &format!("/k{i}"), "v").await;
        }
    }
    let good_len = std::fs::metadata(&path).expect("metadata").len();
    // A header promising more bytes than were written: a crash in the middle of an append.
    append(&path, &[100, 0, 0, 0, 1, 2, 3, 4, 9, 9, 9]);
    let s = open(&path);
    assert_eq!(s.range("/").await.expect("range").kvs.len(), 3);
    drop(s);
    assert_eq!(std::fs::metadata(&path).expect("metadata").len(), good_len);

    // A whole record whose checksum does not match.
    append(&path, &[3, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3]);
    let s = open(&path);
    assert_eq!(s.range("/").await.expect("range").kvs.len(), 3);
    put(&s, "/k4", "v").await;
    drop(s);

    // Damage inside the last record: it goes, the ones before it stay.
    let mut bytes = std::fs::read(&path).expect("read");
    let last = bytes.len() - 2;
    bytes[last] ^= 0xff;
    std::fs::write(&path, &bytes).expect("write");
    let s = open(&path);
    let keys: Vec<String> = s
        .range("/")
        .await
        .expect("range")
        .kvs
        .into_iter()
        .map(|kv| kv.key)
        .collect();
    assert_eq!(keys, ["/k1", "/k2", "/k3"]);
}

fn append(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open");
    f.write_all(bytes).expect("append");
}

#[tokio::test]
async fn a_file_that_is_not_a_store_is_refused_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.db");
    std::fs::write(&path, "not a store, just notes\n").expect("write");
    match EmbeddedStore::open(&path) {
        Err(StoreError::Internal(msg)) => assert!(msg.contains("not a Portico store"), "{msg}"),
        other => panic!("expected an error, got {other:?}"),
    }
    assert_eq!(
        std::fs::read_to_string(&path).expect("read"),
        "not a store, just notes\n"
    );
}

#[tokio::test]
async fn file_compaction_keeps_content_in_one_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.db");
    let config = EmbeddedConfig {
        compact_min_bytes: 16 << 10,
        ..EmbeddedConfig::default()
    };
    let filler = "x".repeat(500);
    let revision = {
        let s = EmbeddedStore::open_with(&path, config.clone()).expect("open");
        let mut watch = s.watch("/", 0).await.expect("watch");
        for round in 0..200 {
            for k in 0..10 {
                put(&s, &format!("/k{k}"), &format!("{round}:{filler}")).await;
            }
        }
        // The watch saw every write, compactions of the file in between.
        assert_eq!(next_events(&mut watch, 2000).await.len(), 2000);
        s.revision().await.expect("revision")
    };
    let len = std::fs::metadata(&path).expect("metadata").len();
    assert!(
        len < 64 << 10,
        "1 MiB of writes to 5 KiB of data left a {len}-byte file"
    );
    let files: Vec<_> = std::fs::read_dir(dir.path()).expect("ls").collect();
    assert_eq!(files.len(), 1, "one file, no leftovers");
    let s = EmbeddedStore::open_with(&path, config).expect("reopen");
    assert_eq!(s.revision().await.expect("revision"), revision);
    let kv = s.get("/k9").await.expect("get").expect("k9");
    assert_eq!(
        (kv.version, kv.value),
        (200, format!("199:{filler}").into_bytes())
    );
}

#[tokio::test]
async fn a_slow_watcher_gets_a_resync_and_never_blocks_writers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = EmbeddedConfig {
        history_limit: 16,
        watch_buffer: 1,
        ..EmbeddedConfig::default()
    };
    let s = EmbeddedStore::open_with(&dir.path().join("store.db"), config).expect("open");
    let mut watch = s.watch("/", 0).await.expect("watch");
    let writes = async {
        for i in 0..200 {
            put(&s, &format!("/k{}", i % 50), &i.to_string()).await;
        }
    };
    tokio::time::timeout(PATIENCE, writes)
        .await
        .expect("writers went on");
    let expected: BTreeMap<String, Vec<u8>> = (s.range("/").await.expect("range").kvs)
        .into_iter()
        .map(|kv| (kv.key, kv.value))
        .collect();
    let (mut view, mut resyncs) = (BTreeMap::new(), 0);
    while view != expected {
        match next_message(&mut watch).await {
            WatchMessage::Resync { kvs, .. } => {
                resyncs += 1;
                view = kvs.into_iter().map(|kv| (kv.key, kv.value)).collect();
            }
            WatchMessage::Changes { events, .. } => {
                for e in events {
                    match e.kind {
                        portico_store::EventKind::Put => view.insert(e.kv.key, e.kv.value),
                        portico_store::EventKind::Delete => view.remove(&e.kv.key),
                    };
                }
            }
        }
    }
    assert!(
        resyncs > 0,
        "the watcher fell behind the history, so it must have resynced"
    );
}

#[tokio::test]
async fn watches_end_when_the_store_is_dropped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(&dir.path().join("store.db"));
    let mut watch = s.watch("/", 0).await.expect("watch");
    drop(s);
    let end = tokio::time::timeout(PATIENCE, watch.next())
        .await
        .expect("watch ends");
    assert!(end.is_none());
}

/// The child of `kill_9_during_a_burst_of_writes`: writes until killed, printing every write
/// that was acknowledged. Does nothing in a normal test run.
#[test]
fn crash_writer() {
    let Some(path) = std::env::var_os(CRASH_ENV) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        // A low compaction threshold, so the kill also lands in file compactions.
        let config = EmbeddedConfig {
            compact_min_bytes: 32 << 10,
            ..EmbeddedConfig::default()
        };
        let s = EmbeddedStore::open_with(Path::new(&path), config).expect("open");
        let mut out = std::io::stdout().lock();
        for i in 0u64.. {
            // Overwrites of a few keys, and every tenth write a key of its own.
            let key = if i % 10 == 0 {
                format!("/unique/{i}")
            } else {
                format!("/hot/{}", i % 20)
            };
            let value = format!("{i}:{}", "v".repeat((i % 300) as usize));
            s.put(&key, value.into_bytes(), PutOptions::default())
                .await
                .expect("put");
            writeln!(out, "ACK {i}").expect("stdout");
            out.flush().expect("stdout");
        }
    });
}

#[tokio::test]
async fn kill_9_during_a_burst_of_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.db");
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "embedded_only::crash_writer",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the writer");
    let stdout = child.stdout.take().expect("stdout");
    let kill_after = 1500 + (std::process::id() % 1000) as u64;
    let mut acked = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read");
        if let Some(i) = line.strip_prefix("ACK ") {
            acked.push(i.parse::<u64>().expect("number"));
            if acked.len() as u64 == kill_after {
                child.kill().expect("SIGKILL the writer");
            }
        }
    }
    child.wait().expect("reap");
    assert!(
        acked.len() as u64 >= kill_after,
        "the writer died early after {}",
        acked.len()
    );

    let s = open(&path);
    let mut latest: BTreeMap<String, u64> = BTreeMap::new();
    for &i in &acked {
        let key = if i % 10 == 0 {
            format!("/unique/{i}")
        } else {
            format!("/hot/{}", i % 20)
        };
        latest.insert(key, i);
    }
    for (key, acked_i) in latest {
        let stored = value(&s, &key)
            .await
            .unwrap_or_else(|| panic!("acknowledged {key} lost"));
        let stored_i: u64 = stored
            .split(':')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("value");
        // A write after the last acknowledged one may have reached the disk before the kill.
        assert!(
            stored_i >= acked_i,
            "{key}: acknowledged write {acked_i}, found {stored_i}"
        );
    }
    // The file is whole again: it takes new writes and reopens.
    put(&s, "/after", "crash").await;
    drop(s);
    assert_eq!(
        value(&open(&path), "/after").await.as_deref(),
        Some("crash")
    );
}
