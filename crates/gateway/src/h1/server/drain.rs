//! Telling the server's own connections that it drains, and waiting for them to end.
//!
//! A connection registers once ([`Drain::register`]); each time it waits idle between requests it
//! checks the flag and leaves its waker (stored only when it changed, which for a connection's
//! task is once), so the wait costs no allocation and no channel.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

/// Shared by a listener and its connections.
#[derive(Default)]
pub struct Drain {
    draining: AtomicBool,
    conns: Mutex<Vec<Weak<Watch>>>,
}

/// One connection's side.
pub struct Watch {
    drain: Arc<Drain>,
    waker: Mutex<Option<std::task::Waker>>,
}

impl Drain {
    pub fn new() -> Arc<Drain> {
        Arc::new(Drain::default())
    }

    /// A new connection's watch; it ends when the watch is dropped.
    pub fn register(self: &Arc<Drain>) -> Arc<Watch> {
        let watch = Arc::new(Watch {
            drain: self.clone(),
            waker: Mutex::new(None),
        });
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        if conns.len() == conns.capacity() {
            conns.retain(|w| w.strong_count() > 0);
        }
        conns.push(Arc::downgrade(&watch));
        watch
    }

    /// Tells every connection to drain; resolves once all have ended, or after `limit`.
    pub async fn drain(&self, limit: Duration) {
        self.draining.store(true, Ordering::Release);
        let wakers: Vec<_> = {
            let conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
            conns.iter().filter_map(Weak::upgrade).collect()
        };
        for watch in &wakers {
            if let Some(w) = watch.waker.lock().unwrap_or_else(|e| e.into_inner()).take() {
                w.wake();
            }
        }
        drop(wakers);
        let ended = async {
            loop {
                let open = {
                    let conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
                    conns.iter().any(|w| w.strong_count() > 0)
                };
                if !open {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        let _ = tokio::time::timeout(limit, ended).await;
    }
}

impl Watch {
    /// Whether the server drains.
    pub fn draining(&self) -> bool {
        self.drain.draining.load(Ordering::Acquire)
    }

    /// `Ready` when the server drains; otherwise the task is woken when it starts to.
    pub fn poll_draining(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.draining() {
            return Poll::Ready(());
        }
        let mut slot = self.waker.lock().unwrap_or_else(|e| e.into_inner());
        if !slot.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *slot = Some(cx.waker().clone());
        }
        drop(slot);
        // The flag may have been set between the check and the waker's storing.
        match self.draining() {
            true => Poll::Ready(()),
            false => Poll::Pending,
        }
    }
}
