//! Watches of the embedded store: one small task per watch that reads the shared history.
//!
//! Writers never wait for watchers: they only bump the revision in a `tokio::sync::watch`. Each
//! watch task then copies the new events of its prefix from the history into its own bounded
//! channel. A task whose consumer is slow waits on its full channel while the history moves on;
//! when it next reads, the revisions it needs may be gone, and it sends a
//! [`WatchMessage::Resync`] with the current content instead.

use std::sync::{Arc, Weak};

use tokio::sync::{mpsc, oneshot, watch};

use super::state::State;
use super::writer::Shared;
use crate::{StoreError, Watch, WatchMessage};

type Sender = mpsc::Sender<Result<WatchMessage, StoreError>>;

/// Starts a watch of `prefix` from `from_revision` (`<= 0`: from the next revision on).
pub(super) fn start(
    shared: &Arc<Shared>,
    prefix: &str,
    from_revision: i64,
    buffer: usize,
) -> Watch {
    let (tx, rx) = mpsc::channel(buffer);
    let (cancel_tx, cancel_rx) = oneshot::channel();
    let revisions = shared.revision.subscribe();
    let next = if from_revision <= 0 {
        shared.read().revision + 1
    } else {
        from_revision
    };
    let task = WatchTask {
        shared: Arc::downgrade(shared),
        revisions,
        prefix: prefix.to_string(),
        next,
        tx,
    };
    tokio::spawn(task.run(cancel_rx));
    Watch::new(rx, Some(cancel_tx))
}

struct WatchTask {
    /// Weak, so open watches do not keep a dropped store alive; they end with it.
    shared: Weak<Shared>,
    revisions: watch::Receiver<i64>,
    prefix: String,
    /// The first revision not delivered yet.
    next: i64,
    tx: Sender,
}

impl WatchTask {
    async fn run(mut self, mut cancel: oneshot::Receiver<()>) {
        loop {
            // Mark the current revision seen before reading, so a write that lands after the
            // read wakes us up again.
            self.revisions.borrow_and_update();
            let message = match self.shared.upgrade() {
                Some(shared) => self.collect(&shared.read()),
                None => return,
            };
            if let Some(message) = message {
                tokio::select! {
                    sent = self.tx.send(Ok(message)) => if sent.is_err() { return },
                    _ = &mut cancel => return,
                }
                continue;
            }
            tokio::select! {
                changed = self.revisions.changed() => if changed.is_err() { return },
                _ = &mut cancel => return,
                _ = self.tx.closed() => return,
            }
        }
    }

    /// What to deliver now: the changes since `next`, or a resync when they are no longer kept.
    fn collect(&mut self, st: &State) -> Option<WatchMessage> {
        if self.next > st.revision {
            return None;
        }
        let message = match st.events_since(self.next, &self.prefix) {
            Some(events) if events.is_empty() => None,
            Some(events) => Some(WatchMessage::Changes {
                revision: st.revision,
                events,
            }),
            None => Some(WatchMessage::Resync {
                revision: st.revision,
                kvs: st.range(&self.prefix),
            }),
        };
        self.next = st.revision + 1;
        message
    }
}
