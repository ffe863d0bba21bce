//! A node and a real etcd that goes away: the node keeps serving through an outage and catches
//! up after it without a restart, starts from its last-known-good copy when etcd is down, and
//! resyncs when the revisions it missed were compacted meanwhile.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use portico_store::etcd::{EtcdConfig, EtcdStore};
use portico_store::SharedStore;
use portico_testkit::EtcdServer;
use support::{eventually, route, Admin, Backend, EndingWatches, Node, Relay};

async fn start_etcd() -> EtcdServer {
    tokio::task::spawn_blocking(EtcdServer::start)
        .await
        .expect("start etcd")
}

/// A store on `endpoint` whose calls give up after a second.
async fn etcd_store(endpoint: String) -> SharedStore {
    let mut config = EtcdConfig::new([endpoint]);
    config.timeout = Duration::from_secs(1);
    Arc::new(EtcdStore::connect(config).await.expect("connect to etcd"))
}

/// `GET path` on a fresh connection: the status.
async fn status(node: &Node, path: &str) -> u16 {
    node.client()
        .get(path)
        .await
        .map_or(0, |(status, _)| status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_serves_through_an_etcd_outage_and_follows_again_after_it() {
    let backend = Backend::start("b").await;
    let mut etcd = start_etcd().await;
    let store = etcd_store(etcd.endpoint()).await;
    let mut admin = Admin::start(store.clone()).await;
    let node = Node::start(store.clone(), None).await;
    node.wait_applied(admin.put("routes/1", route("/before", &[&backend])).await)
        .await;

    tokio::task::block_in_place(|| etcd.kill());
    // Long enough for the watch to notice (its stream breaks at once) and retry a few times.
    let mut client = node.client();
    for _ in 0..20 {
        let (status, body) = client
            .get("/before")
            .await
            .expect("request during the outage");
        assert_eq!((status, body.as_str()), (200, "b"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    tokio::task::block_in_place(|| etcd.restart());
    let rev = admin.put("routes/2", route("/after", &[&backend])).await;
    node.wait_applied(rev).await;
    assert_eq!(status(&node, "/after").await, 200);
    assert_eq!(status(&node, "/before").await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_while_etcd_is_down_serves_its_last_known_good_copy() {
    let backend = Backend::start("b").await;
    let mut etcd = start_etcd().await;
    let store = etcd_store(etcd.endpoint()).await;
    let mut admin = Admin::start(store.clone()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let lkg = dir.path().join("last-known-good.json");

    let first = Node::start(store.clone(), Some(lkg.clone())).await;
    let rev = admin.put("routes/1", route("/kept", &[&backend])).await;
    first.wait_applied(rev).await;
    eventually("the copy is written", || async {
        let copy = std::fs::read(&lkg).ok();
        let doc: Option<serde_json::Value> = copy.and_then(|c| serde_json::from_slice(&c).ok());
        doc.is_some_and(|d| d["revision"] == serde_json::json!(rev))
    })
    .await;
    drop(first);

    tokio::task::block_in_place(|| etcd.kill());
    let second = Node::start(store.clone(), Some(lkg.clone())).await;
    second.wait_applied(rev).await;
    let (code, body) = second.client().get("/kept").await.expect("request");
    assert_eq!((code, body.as_str()), (200, "b"));

    // Once etcd is back, the same node follows it without a restart.
    tokio::task::block_in_place(|| etcd.restart());
    let rev = admin.put("routes/2", route("/fresh", &[&backend])).await;
    second.wait_applied(rev).await;
    assert_eq!(status(&second, "/fresh").await, 200);
    assert_eq!(status(&second, "/kept").await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_while_etcd_compacts_resyncs_on_reconnect() {
    let backend = Backend::start("b").await;
    let etcd = start_etcd().await;
    let direct = etcd_store(etcd.endpoint()).await;
    let target: SocketAddr = format!("127.0.0.1:{}", etcd.client_port())
        .parse()
        .expect("etcd address");
    let relay = Relay::start(target).await;
    let mut admin = Admin::start(direct.clone()).await;
    // The node reaches etcd through the relay only.
    let node = Node::start(etcd_store(relay.endpoint()).await, None).await;
    admin.put("routes/keep", route("/keep", &[&backend])).await;
    let rev = admin.put("routes/gone", route("/gone", &[&backend])).await;
    node.wait_applied(rev).await;

    relay.cut();
    admin.delete("routes/gone").await;
    for i in 0..5 {
        admin
            .put("routes/new", route(&format!("/new/{i}"), &[&backend]))
            .await;
    }
    let last = direct.revision().await.expect("revision");
    direct.compact(last).await.expect("compact");
    // Cut off, the node still serves what it had.
    assert_eq!(status(&node, "/gone").await, 200);
    assert!(node.applied() < last);

    relay.restore();
    node.wait_applied(last).await;
    assert_eq!(status(&node, "/new/4").await, 200);
    assert_eq!(status(&node, "/new/3").await, 404);
    assert_eq!(status(&node, "/gone").await, 404);
    assert_eq!(status(&node, "/keep").await, 200);
}

#[tokio::test]
async fn a_node_whose_watches_end_reads_the_store_again_without_hammering_it() {
    let backend = Backend::start("b").await;
    let (store, _dir) = support::embedded_store();
    let mut admin = Admin::start(store.clone()).await;

    // Watches that end after one message: every change still arrives.
    let one = EndingWatches::new(store.clone(), 1);
    let opened = one.opened();
    let node = Node::start(Arc::new(one), None).await;
    for i in 0..5 {
        let rev = admin
            .put(
                &format!("routes/{i}"),
                route(&format!("/r{i}"), &[&backend]),
            )
            .await;
        node.wait_applied(rev).await;
        assert_eq!(status(&node, &format!("/r{i}")).await, 200);
    }
    assert!(
        opened.load(Ordering::SeqCst) >= 5,
        "the watch was not reopened"
    );
    drop(node);

    // Watches that end at once: the node still serves, and backs off between attempts.
    let none = EndingWatches::new(store.clone(), 0);
    let opened = none.opened();
    let node = Node::start(Arc::new(none), None).await;
    node.wait_applied(store.revision().await.expect("revision"))
        .await;
    assert_eq!(status(&node, "/r4").await, 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let attempts = opened.load(Ordering::SeqCst);
    assert!((2..=8).contains(&attempts), "{attempts} watches in 1.5 s");
}
