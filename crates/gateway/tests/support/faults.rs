//! Ways to break a node's link to its store: a TCP relay that can cut a node off etcd without
//! stopping etcd ([`Relay`]), and a store whose watches end early ([`EndingWatches`]).
//!
//! While a relay is cut, open connections are closed and new ones are closed right after being
//! accepted. An ending watch forwards at most a few messages of the real watch, then ends as a
//! store that closed the stream would; everything else goes to the real store.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use portico_store::{
    DeleteResult, KeyValue, LeaseId, PutOptions, PutResult, RangeResult, Result, SharedStore,
    Store, Watch,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinHandle};

struct Shared {
    cut: AtomicBool,
    conns: Mutex<Vec<AbortHandle>>,
}

/// Relays 127.0.0.1:`port()` to a target address.
pub struct Relay {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Relay {
    /// Starts relaying to `target`.
    pub async fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let addr = listener.local_addr().expect("relay addr");
        let shared = Arc::new(Shared {
            cut: AtomicBool::new(false),
            conns: Mutex::new(Vec::new()),
        });
        let task = tokio::spawn(accept(listener, target, shared.clone()));
        Relay { addr, shared, task }
    }

    /// `http://127.0.0.1:port`, for a store client.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Closes every relayed connection and refuses to relay until [`Relay::restore`].
    pub fn cut(&self) {
        let mut conns = self.shared.conns.lock().expect("lock");
        self.shared.cut.store(true, Ordering::SeqCst);
        for conn in conns.drain(..) {
            conn.abort();
        }
    }

    /// Relays again.
    pub fn restore(&self) {
        self.shared.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
    }
}

async fn accept(listener: TcpListener, target: SocketAddr, shared: Arc<Shared>) {
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else {
            continue;
        };
        // Checked under the lock that `cut` drains, so no connection slips through a cut.
        let mut conns = shared.conns.lock().expect("lock");
        if shared.cut.load(Ordering::SeqCst) {
            drop(inbound);
            continue;
        }
        let conn = tokio::spawn(async move {
            if let Ok(mut outbound) = TcpStream::connect(target).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
        conns.retain(|c| !c.is_finished());
        conns.push(conn.abort_handle());
    }
}

/// Wraps a store; its watches end after `messages` messages (0: at once).
#[derive(Debug)]
pub struct EndingWatches {
    inner: SharedStore,
    messages: usize,
    opened: Arc<AtomicUsize>,
}

impl EndingWatches {
    /// Wraps `inner`.
    pub fn new(inner: SharedStore, messages: usize) -> EndingWatches {
        EndingWatches {
            inner,
            messages,
            opened: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// A counter of the watches opened so far, readable after the store was handed away.
    pub fn opened(&self) -> Arc<AtomicUsize> {
        self.opened.clone()
    }
}

#[async_trait]
impl Store for EndingWatches {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        self.inner.get(key).await
    }

    async fn range(&self, prefix: &str) -> Result<RangeResult> {
        self.inner.range(prefix).await
    }

    async fn put(&self, key: &str, value: Vec<u8>, opts: PutOptions) -> Result<PutResult> {
        self.inner.put(key, value, opts).await
    }

    async fn delete(&self, key: &str, expect_mod_revision: Option<i64>) -> Result<DeleteResult> {
        self.inner.delete(key, expect_mod_revision).await
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<(usize, i64)> {
        self.inner.delete_prefix(prefix).await
    }

    async fn watch(&self, prefix: &str, from_revision: i64) -> Result<Watch> {
        self.opened.fetch_add(1, Ordering::SeqCst);
        let mut inner = self.inner.watch(prefix, from_revision).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let messages = self.messages;
        tokio::spawn(async move {
            for _ in 0..messages {
                let Some(message) = inner.next().await else {
                    return;
                };
                if tx.send(message).await.is_err() {
                    return;
                }
            }
        });
        Ok(Watch::new(rx, None))
    }

    async fn lease_grant(&self, ttl_secs: i64) -> Result<LeaseId> {
        self.inner.lease_grant(ttl_secs).await
    }

    async fn lease_keep_alive(&self, lease: LeaseId) -> Result<i64> {
        self.inner.lease_keep_alive(lease).await
    }

    async fn lease_revoke(&self, lease: LeaseId) -> Result<()> {
        self.inner.lease_revoke(lease).await
    }

    async fn compact(&self, revision: i64) -> Result<()> {
        self.inner.compact(revision).await
    }

    async fn revision(&self) -> Result<i64> {
        self.inner.revision().await
    }
}
