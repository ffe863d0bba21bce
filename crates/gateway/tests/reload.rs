//! Hot reload through a real node: config changes written through the real Admin API to an
//! embedded store reach the node by its watch, are swapped in while requests run, and never
//! fail a request; a request keeps the snapshot it started with.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::json;
use support::{eventually, route, Admin, Backend, Client, Node};

/// Route changes made while the load runs.
const CHANGES: usize = 1000;
/// Client tasks of the load, each on one keep-alive connection.
const CLIENTS: usize = 4;

#[derive(Default)]
struct Load {
    stop: AtomicBool,
    ok: AtomicUsize,
    failed: AtomicUsize,
}

/// Requests `/steady` over one keep-alive connection until told to stop; anything but a 200
/// from the backend is a failure.
async fn run_load(mut client: Client, load: Arc<Load>) {
    while !load.stop.load(Ordering::SeqCst) {
        match client.get("/steady").await {
            Ok((200, body)) if body == "steady" => load.ok.fetch_add(1, Ordering::SeqCst),
            other => {
                eprintln!("failed request: {other:?}");
                load.failed.fetch_add(1, Ordering::SeqCst)
            }
        };
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_route_changes_under_load_fail_no_request() {
    let (steady, other) = (
        Backend::start("steady").await,
        Backend::start("other").await,
    );
    let (store, _dir) = support::embedded_store();
    let mut admin = Admin::start(store.clone()).await;
    let node = Node::start(store, None).await;
    node.wait_applied(
        admin
            .put("routes/steady", route("/steady", &[&steady]))
            .await,
    )
    .await;

    let load = Arc::new(Load::default());
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| tokio::spawn(run_load(node.client(), load.clone())))
        .collect();
    eventually("the load runs", || async {
        load.ok.load(Ordering::SeqCst) > 0
    })
    .await;

    // Creates, updates and deletes of 20 routes next to the steady one, counting the swaps
    // seen (a lower bound: the channel keeps only the newest revision).
    let swaps = Arc::new(AtomicUsize::new(0));
    let mut applied = node.applied_channel();
    let seen = swaps.clone();
    let counter = tokio::spawn(async move {
        while applied.changed().await.is_ok() {
            seen.fetch_add(1, Ordering::SeqCst);
        }
    });
    let mut exists = [false; 20];
    let mut last = 0;
    for i in 0..CHANGES {
        let id = i % exists.len();
        let path = format!("routes/r{id}");
        last = if exists[id] && i % 4 == 3 {
            exists[id] = false;
            admin.delete(&path).await
        } else {
            exists[id] = true;
            admin
                .put(&path, route(&format!("/r{id}/{i}"), &[&other]))
                .await
        };
    }
    node.wait_applied(last).await;
    load.stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.await.expect("load task");
    }
    let (ok, failed) = (
        load.ok.load(Ordering::SeqCst),
        load.failed.load(Ordering::SeqCst),
    );
    assert_eq!(failed, 0, "{failed} of {} requests failed", ok + failed);
    assert!(ok >= 200, "only {ok} requests ran during the changes");

    // The node serves exactly the final config.
    let mut client = node.client();
    for (id, &present) in exists.iter().enumerate() {
        let i = (0..CHANGES)
            .rev()
            .find(|i| i % exists.len() == id)
            .expect("changed");
        let (status, body) = client.get(&format!("/r{id}/{i}")).await.expect("request");
        let want = if present { 200 } else { 404 };
        assert_eq!(status, want, "route r{id}: {body}");
    }
    counter.abort();
    let swaps = swaps.load(Ordering::SeqCst);
    assert!(swaps >= 10, "{CHANGES} changes came in only {swaps} swaps");
    eprintln!("{ok} requests, none failed, during {CHANGES} changes in {swaps} or more swaps");
}

#[tokio::test]
async fn a_request_started_on_the_old_snapshot_finishes_on_it() {
    let (old, new) = (Backend::start("old").await, Backend::start("new").await);
    new.release_slow(100);
    let (store, _dir) = support::embedded_store();
    let mut admin = Admin::start(store.clone()).await;
    let node = Node::start(store, None).await;
    node.wait_applied(admin.put("routes/1", route("/slow/*", &[&old])).await)
        .await;

    let mut slow_client = node.client();
    let slow = tokio::spawn(async move { slow_client.get("/slow/request").await });
    eventually("the slow request reached the old backend", || async {
        old.slow_arrived() == 1
    })
    .await;

    // Swap mid-request: the route now goes to the other backend, for new requests only.
    node.wait_applied(admin.put("routes/1", route("/slow/*", &[&new])).await)
        .await;
    let after = node.client().get("/slow/next").await.expect("request");
    assert_eq!(after, (200, "new".to_string()));
    // Then the route goes away altogether.
    node.wait_applied(admin.delete("routes/1").await).await;
    let gone = node.client().get("/slow/next").await.expect("request");
    assert_eq!(gone.0, 404);

    old.release_slow(1);
    let answer = tokio::time::timeout(support::PATIENCE, slow)
        .await
        .expect("the old request finishes")
        .expect("task");
    assert_eq!(answer, Ok((200, "old".to_string())));
    assert_eq!(
        old.slow_arrived(),
        1,
        "only the first request went to the old backend"
    );
}

#[tokio::test]
async fn the_applied_revision_and_the_copy_reach_the_store_revision_after_a_write() {
    let backend = Backend::start("b").await;
    let (store, dir) = support::embedded_store();
    let lkg = dir.path().join("node/last-known-good.json");
    let mut admin = Admin::start(store.clone()).await;
    let node = Node::start(store.clone(), Some(lkg.clone())).await;
    for i in 0..3 {
        let rev = admin
            .put(
                &format!("routes/{i}"),
                route(&format!("/p{i}"), &[&backend]),
            )
            .await;
        node.wait_applied(rev).await;
        assert_eq!(node.applied(), store.revision().await.expect("revision"));
        assert_eq!(node.gateway.snapshot().revision, rev);
        let (status, body) = node.client().get(&format!("/p{i}")).await.expect("request");
        assert_eq!((status, body.as_str()), (200, "b"));
    }
    let rev = node.applied();
    eventually(
        "the last-known-good copy has the applied revision",
        || async {
            let copy = std::fs::read(&lkg).ok();
            let doc: Option<serde_json::Value> = copy.and_then(|c| serde_json::from_slice(&c).ok());
            let items = |d: &serde_json::Value| d["items"].as_object().map(|o| o.len());
            doc.is_some_and(|d| d["revision"] == json!(rev) && items(&d) == Some(3))
        },
    )
    .await;

    // A key below the cluster prefix that holds no object (a node record): the revision is
    // applied, the snapshot is not even recompiled, and the copy does not take it in.
    let before = node.gateway.snapshot();
    let record = format!("{}/nodes/n1", support::CLUSTER);
    let put = store.put(&record, b"{}".to_vec(), Default::default()).await;
    node.wait_applied(put.expect("put").revision).await;
    assert!(Arc::ptr_eq(&before, &node.gateway.snapshot()));
    let copy: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&lkg).expect("copy")).expect("json");
    assert_eq!(copy["revision"], json!(rev));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steady_stream_of_changes_is_applied_every_debounce_window() {
    let backend = Backend::start("b").await;
    let (store, _dir) = support::embedded_store();
    let mut admin = Admin::start(store.clone()).await;
    let node = Node::start(store, None).await;
    node.wait_applied(admin.put("routes/0", route("/r0", &[&backend])).await)
        .await;

    // Changes a few milliseconds apart, never pausing for a whole debounce window (5 ms)...
    let writer = tokio::spawn(async move {
        let started = tokio::time::Instant::now();
        let mut writes = 0;
        while started.elapsed() < std::time::Duration::from_millis(600) {
            admin
                .put("routes/1", route(&format!("/r1/{writes}"), &[&backend]))
                .await;
            writes += 1;
        }
        (admin, writes)
    });
    // ...still reach the node while they go on.
    let mut seen = std::collections::BTreeSet::new();
    while !writer.is_finished() {
        seen.insert(node.applied());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (_admin, writes) = writer.await.expect("writer");
    eprintln!(
        "{writes} writes, {} revisions seen applied meanwhile",
        seen.len()
    );
    assert!(
        seen.len() >= 5,
        "only {} revisions applied during {writes} writes",
        seen.len()
    );
}
