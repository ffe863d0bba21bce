//! The client against real `redis-server` processes (started on free loopback ports).

use std::time::{Duration, Instant};

use portico_testkit::redis::SENTINEL_MASTER;
use portico_testkit::{RedisCluster, RedisSentinel, RedisServer, TestCerts};

use super::*;

fn endpoint(port: u16) -> Endpoint {
    Endpoint::new("127.0.0.1", port)
}

fn limits() -> Limits {
    Limits::default()
}

fn set(key: &str, value: &str) -> Cmd {
    Cmd::new("SET").arg(key).arg(value)
}

fn get(key: &str) -> Cmd {
    Cmd::new("GET").arg(key)
}

fn bulk(s: &str) -> Value {
    Value::Bulk(s.as_bytes().to_vec())
}

#[tokio::test]
async fn pipelined_commands_and_error_replies() {
    let redis = RedisServer::start();
    let pools = Pools::default();
    let server = pools.server(endpoint(redis.port()));
    let replies = server
        .pipeline(
            &[
                set("a", "1"),
                Cmd::new("INCRBY").arg("a").num(41),
                Cmd::new("LPUSH").arg("a").arg("x"),
                get("a"),
                get("missing"),
                Cmd::new("PING"),
            ],
            &limits(),
        )
        .await
        .expect("pipeline");
    assert_eq!(replies.len(), 6);
    assert_eq!(replies[0], Value::Simple("OK".into()));
    assert_eq!(replies[1], Value::Int(42));
    assert!(matches!(&replies[2], Value::Error(e) if e.starts_with("WRONGTYPE")));
    assert_eq!(replies[3], bulk("42"));
    assert_eq!(replies[4], Value::Nil);
    assert_eq!(replies[5], Value::Simple("PONG".into()));
    // An error reply leaves the connection usable: it went back to the pool.
    assert_eq!(server.idle(), 1);
    let err = server
        .query(&Cmd::new("NOSUCHCOMMAND"), &limits())
        .await
        .expect_err("refused");
    assert!(
        matches!(&err, Error::Server(e) if e.contains("unknown command")),
        "{err}"
    );
    assert_eq!(server.idle(), 1);
    // The same endpoint gets the same pool.
    assert!(Arc::ptr_eq(&server, &pools.server(endpoint(redis.port()))));
    assert_eq!(redis.cli_text(&["get", "a"]), "42");
}

#[tokio::test]
async fn concurrent_calls_use_several_connections() {
    let redis = RedisServer::start();
    let pools = Pools::default();
    let server = pools.server(endpoint(redis.port()));
    let calls = (0..20).map(|_| {
        let server = server.clone();
        tokio::spawn(async move {
            server
                .query(&Cmd::new("INCR").arg("n"), &limits())
                .await
                .expect("incr")
        })
    });
    for call in calls {
        call.await.expect("task");
    }
    assert_eq!(redis.cli_text(&["get", "n"]), "20");
    assert!(server.idle() >= 1);
    // The pool keeps at most `keepalive_pool` idle connections.
    let small = Limits {
        keepalive_pool: 1,
        ..limits()
    };
    server.query(&Cmd::new("PING"), &small).await.expect("ping");
    assert_eq!(server.idle(), 1);
}

#[tokio::test]
async fn auth_with_password_and_with_a_user() {
    let redis = RedisServer::start_with(&[
        "--requirepass",
        "s3cret",
        "--user",
        "alice",
        "on",
        ">wonder",
        "~*",
        "&*",
        "+@all",
    ]);
    let pools = Pools::default();
    let ping = Cmd::new("PING");
    let anonymous = pools.server(endpoint(redis.port()));
    let err = anonymous.query(&ping, &limits()).await.expect_err("NOAUTH");
    assert!(
        matches!(&err, Error::Server(e) if e.starts_with("NOAUTH")),
        "{err}"
    );

    let wrong = pools.server(Endpoint {
        password: Some("nope".into()),
        ..endpoint(redis.port())
    });
    let err = wrong.query(&ping, &limits()).await.expect_err("WRONGPASS");
    assert!(
        matches!(&err, Error::Server(e) if e.contains("AUTH failed")),
        "{err}"
    );
    assert_eq!(wrong.idle(), 0, "a connection that failed AUTH is not kept");

    let right = pools.server(Endpoint {
        password: Some("s3cret".into()),
        ..endpoint(redis.port())
    });
    assert_eq!(
        right.query(&ping, &limits()).await.expect("ping"),
        Value::Simple("PONG".into())
    );
    let alice = pools.server(Endpoint {
        username: Some("alice".into()),
        password: Some("wonder".into()),
        ..endpoint(redis.port())
    });
    let who = alice
        .query(&Cmd::new("ACL").arg("WHOAMI"), &limits())
        .await
        .expect("whoami");
    assert_eq!(who, bulk("alice"));
}

#[tokio::test]
async fn selects_the_database() {
    let redis = RedisServer::start();
    let pools = Pools::default();
    let db3 = pools.server(Endpoint {
        database: 3,
        ..endpoint(redis.port())
    });
    db3.query(&set("k", "in-3"), &limits()).await.expect("set");
    assert_eq!(redis.cli_text(&["-n", "3", "get", "k"]), "in-3");
    assert_eq!(redis.cli_text(&["-n", "0", "get", "k"]), "");
    let bad = pools.server(Endpoint {
        database: 100_000,
        ..endpoint(redis.port())
    });
    let err = bad
        .query(&get("k"), &limits())
        .await
        .expect_err("no such db");
    assert!(
        matches!(&err, Error::Server(e) if e.starts_with("SELECT failed")),
        "{err}"
    );
}

#[tokio::test]
async fn reconnects_after_a_restart() {
    let mut redis = RedisServer::start();
    let pools = Pools::default();
    let server = pools.server(endpoint(redis.port()));
    server.query(&set("k", "1"), &limits()).await.expect("set");
    assert_eq!(server.idle(), 1);
    redis.stop();
    let err = server.query(&get("k"), &limits()).await.expect_err("down");
    assert!(matches!(err, Error::Connect(_)), "{err}");
    redis.restart();
    // The pooled connection died with the old process; a new one is opened.
    assert_eq!(
        server.query(&get("k"), &limits()).await.expect("get"),
        Value::Nil
    );
    server.query(&set("k", "2"), &limits()).await.expect("set");
    redis.restart();
    assert_eq!(
        server.query(&get("k"), &limits()).await.expect("get"),
        Value::Nil
    );
}

#[tokio::test]
async fn a_silent_server_times_out() {
    // Accepts connections (the kernel does) but never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("addr").port();
    let server = Server::new(endpoint(port));
    let short = Limits {
        timeout: Duration::from_millis(200),
        ..limits()
    };
    let started = Instant::now();
    let err = server
        .query(&Cmd::new("PING"), &short)
        .await
        .expect_err("timeout");
    assert!(matches!(err, Error::Timeout("read")), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(server.idle(), 0);
    drop(silent);
    // Nothing listens any more: the connection is refused.
    let err = server
        .query(&Cmd::new("PING"), &short)
        .await
        .expect_err("refused");
    assert!(matches!(err, Error::Connect(_)), "{err}");
}

#[tokio::test]
async fn scripts_run_by_sha_and_are_sent_again_after_a_flush() {
    let redis = RedisServer::start();
    let pools = Pools::default();
    let client = Client::Server(pools.server(endpoint(redis.port())));
    let script = Script::new("return redis.call('INCRBY', KEYS[1], ARGV[1])");
    let loaded = redis.cli_text(&[
        "script",
        "load",
        "return redis.call('INCRBY', KEYS[1], ARGV[1])",
    ]);
    assert_eq!(loaded, script.sha());
    let add = |n: i64| vec![n.to_string()];
    assert_eq!(
        client
            .eval(&script, "s", &add(2), &limits())
            .await
            .expect("evalsha"),
        Value::Int(2)
    );
    redis.cli_text(&["script", "flush"]);
    assert_eq!(
        client
            .eval(&script, "s", &add(3), &limits())
            .await
            .expect("eval"),
        Value::Int(5)
    );
    let failing = Script::new("return redis.error_reply('nope')");
    let err = client
        .eval(&failing, "s", &[], &limits())
        .await
        .expect_err("error reply");
    assert!(
        matches!(&err, Error::Server(e) if e.contains("nope")),
        "{err}"
    );
}

#[tokio::test]
async fn tls_with_and_without_verification() {
    let certs = TestCerts::generate();
    let redis = RedisServer::start_tls(&certs);
    let port = redis.tls_port().expect("tls port");
    let pools = Pools::default();
    let ping = Cmd::new("PING");
    let pong = Value::Simple("PONG".into());

    let unverified = pools.server(Endpoint {
        tls: Some(Tls::new(false).expect("tls")),
        ..endpoint(port)
    });
    assert_eq!(
        unverified.query(&ping, &limits()).await.expect("ping"),
        pong
    );

    let verified = pools.server(Endpoint {
        tls: Some(Tls::verifying_with(&certs.ca).expect("ca")),
        ..endpoint(port)
    });
    assert_eq!(verified.query(&ping, &limits()).await.expect("ping"), pong);

    let strangers = TestCerts::generate();
    let wrong_ca = pools.server(Endpoint {
        tls: Some(Tls::verifying_with(&strangers.ca).expect("ca")),
        ..endpoint(port)
    });
    let err = wrong_ca
        .query(&ping, &limits())
        .await
        .expect_err("untrusted");
    assert!(
        matches!(&err, Error::Tls(e) if e.contains("certificate")),
        "{err}"
    );

    // A plain client on the TLS port gets no RESP answer.
    let plain = pools.server(endpoint(port));
    assert!(plain.query(&ping, &limits()).await.is_err());
}

fn node_id(cluster: &RedisCluster, i: usize) -> String {
    cluster.node(i).cli_text(&["cluster", "myid"])
}

#[tokio::test]
async fn cluster_routes_by_slot_and_follows_moved_and_ask() {
    let cluster = RedisCluster::start(3);
    let pools = Pools::default();
    // Only one seed: the others are learnt from CLUSTER SLOTS.
    let seed = cluster.addrs()[0].clone();
    let (host, port) = parse_addr(&seed).expect("addr");
    let c = pools.cluster("test", vec![Endpoint::new(&host, port)]);
    let client = Client::Cluster(c.clone());
    let mut owners = std::collections::HashSet::new();
    for i in 0..30 {
        let key = format!("key-{i}");
        client
            .query(&key, &set(&key, &i.to_string()), &limits())
            .await
            .expect("set");
        let owner = c.owner_of(key.as_bytes()).expect("known owner");
        assert_eq!(owner, cluster.addrs()[cluster.node_of(&key)], "{key}");
        // The key really is on that node.
        let node = cluster.node(cluster.node_of(&key));
        assert_eq!(node.cli_text(&["get", &key]), i.to_string());
        owners.insert(owner);
    }
    assert_eq!(owners.len(), 3, "keys spread over the masters");

    // Move the slot of a fresh key from its owner to another master, ASK first.
    let key = "moving-key";
    let slot = key_slot(key.as_bytes()).to_string();
    client
        .query(key, &get(key), &limits())
        .await
        .expect("warm the map");
    let src = cluster.node_of(key);
    let dst = (src + 1) % 3;
    let (src_id, dst_id) = (node_id(&cluster, src), node_id(&cluster, dst));
    cluster
        .node(dst)
        .cli_text(&["cluster", "setslot", &slot, "importing", &src_id]);
    cluster
        .node(src)
        .cli_text(&["cluster", "setslot", &slot, "migrating", &dst_id]);
    // The source no longer has the key: it answers ASK, the client asks the target.
    client
        .query(key, &set(key, "moved"), &limits())
        .await
        .expect("set via ASK");
    assert_eq!(
        cluster
            .node(dst)
            .cli_text(&["cluster", "countkeysinslot", &slot]),
        "1"
    );
    // The migration ends: every node now says the target owns the slot.
    for i in 0..3 {
        cluster
            .node(i)
            .cli_text(&["cluster", "setslot", &slot, "node", &dst_id]);
    }
    // The client's map still names the source, which answers MOVED.
    assert_eq!(
        c.owner_of(key.as_bytes()),
        Some(cluster.addrs()[src].clone())
    );
    assert_eq!(
        client
            .query(key, &get(key), &limits())
            .await
            .expect("get via MOVED"),
        bulk("moved")
    );
    assert_eq!(
        c.owner_of(key.as_bytes()),
        Some(cluster.addrs()[dst].clone())
    );
    // Scripts are routed by their key too.
    let script = Script::new("return redis.call('GET', KEYS[1])");
    assert_eq!(
        client
            .eval(&script, key, &[], &limits())
            .await
            .expect("eval"),
        bulk("moved")
    );
}

#[tokio::test]
async fn cluster_unreachable_fails_cleanly() {
    let closed = portico_testkit::free_port();
    let pools = Pools::default();
    let c = pools.cluster("gone", vec![endpoint(closed)]);
    let err = Client::Cluster(c)
        .query("k", &get("k"), &limits())
        .await
        .expect_err("no node");
    assert!(matches!(err, Error::Connect(_)), "{err}");
}

#[tokio::test]
async fn sentinel_finds_the_master_and_follows_a_failover() {
    let group = RedisSentinel::start(Some("master-pw"), Some("sentinel-pw"));
    let pools = Pools::default();
    let sentinel = |password: &str| Endpoint {
        password: Some(password.into()),
        ..endpoint(group.sentinel.port())
    };
    let master = Endpoint {
        password: Some("master-pw".into()),
        ..Endpoint::new("", 0)
    };
    let s = pools.sentinel(
        SENTINEL_MASTER,
        vec![sentinel("sentinel-pw")],
        master.clone(),
    );
    let client = Client::Sentinel(s.clone());
    client
        .query("k", &set("k", "1"), &limits())
        .await
        .expect("set");
    assert_eq!(s.master_addr(), Some(group.first.addr()));
    assert_eq!(group.first.cli_text(&["get", "k"]), "1");

    group.failover();
    // The old master answers READONLY now: the sentinel is asked again, the write goes on.
    let incr = Cmd::new("INCR").arg("k");
    assert_eq!(
        client.query("k", &incr, &limits()).await.expect("incr"),
        Value::Int(2)
    );
    assert_eq!(s.master_addr(), Some(group.second.addr()));

    // A sentinel that refuses the password, an unknown master.
    let refused = pools.sentinel(SENTINEL_MASTER, vec![sentinel("wrong")], master.clone());
    let err = Client::Sentinel(refused)
        .query("k", &get("k"), &limits())
        .await
        .expect_err("sentinel auth");
    assert!(
        matches!(&err, Error::Server(e) if e.contains("AUTH failed")),
        "{err}"
    );
    let unknown = pools.sentinel("nobody", vec![sentinel("sentinel-pw")], master);
    let err = Client::Sentinel(unknown)
        .query("k", &get("k"), &limits())
        .await
        .expect_err("unknown master");
    assert!(
        matches!(&err, Error::Sentinel(e) if e.contains("does not know nobody")),
        "{err}"
    );
}

#[test]
fn pools_are_dropped_when_unused() {
    let pools = Pools::default();
    let a = pools.server(endpoint(1));
    let b = pools.server(Endpoint {
        password: Some("x".into()),
        ..endpoint(1)
    });
    assert!(!Arc::ptr_eq(&a, &b), "credentials are part of the pool key");
    let c = pools.cluster("n", vec![endpoint(2)]);
    assert_eq!(pools.len(), 3);
    drop((a, b, c));
    assert!(pools.is_empty());
    let debug = format!(
        "{:?}",
        Endpoint {
            password: Some("hidden".into()),
            ..endpoint(1)
        }
    );
    assert!(!debug.contains("hidden"), "{debug}");
}
