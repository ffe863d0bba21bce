//! Watches over the gateway's `/v3/watch`: a streaming response of JSON objects
//! `{"result": {...}}`, one per etcd `WatchResponse`.
//!
//! One task per watch owns the stream. It remembers the next revision it has to deliver; after a
//! failure (member killed, network cut, cluster without leader) it reports one
//! [`StoreError::Unavailable`] per outage, then reconnects with backoff to the next endpoint and
//! resumes from that revision. When etcd says the revision was compacted meanwhile, it reads the
//! whole prefix and sends a [`WatchMessage::Resync`].

use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use super::client::{is_token_error, unavailable, Client};
use super::wire::{b64, prefix_range, StreamMessage, WatchResponse};
use crate::{Event, Result, StoreError, Watch, WatchMessage};

/// Messages buffered per watch; a slow consumer slows the stream, etcd buffers the rest.
const BUFFER: usize = 64;
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Starts a watch of `prefix` from revision `from` (> 0). Returns once etcd created it, so a
/// watch that cannot be created (unreachable cluster, refused credentials) fails here.
pub(crate) async fn start(client: Arc<Client>, prefix: &str, from: i64) -> Result<Watch> {
    let (tx, rx) = mpsc::channel(BUFFER);
    let (cancel_tx, cancel_rx) = oneshot::channel();
    let (ready_tx, ready_rx) = oneshot::channel();
    let timeout = client.timeout;
    let task = WatchTask {
        client,
        prefix: prefix.to_string(),
        next: from,
        tx,
        ready: Some(ready_tx),
        in_outage: false,
    };
    tokio::spawn(task.run(cancel_rx));
    // Opening the stream has its own timeout; this one covers a stream that opens but never
    // confirms the watch. Dropping `cancel_tx` on failure stops the task.
    match tokio::time::timeout(timeout * 2, ready_rx).await {
        Ok(Ok(Ok(()))) => Ok(Watch::new(rx, Some(cancel_tx))),
        Ok(Ok(Err(e))) => Err(e),
        Ok(Err(_)) => Err(StoreError::Internal("the watch task ended".into())),
        Err(_) => Err(StoreError::Unavailable(format!(
            "etcd did not confirm the watch of {prefix:?} within {:?}",
            timeout * 2
        ))),
    }
}

struct WatchTask {
    client: Arc<Client>,
    prefix: String,
    /// The first revision not delivered yet.
    next: i64,
    tx: mpsc::Sender<Result<WatchMessage>>,
    /// Told once the first stream was created (or could not be).
    ready: Option<oneshot::Sender<Result<()>>>,
    /// Whether the current outage was already reported.
    in_outage: bool,
}

/// How one stream ended.
enum End {
    /// The consumer dropped the watch.
    Cancelled,
    /// Open a new stream right away (after a resync or a new token).
    Reconnect,
    Failed(StoreError),
}

impl WatchTask {
    async fn run(mut self, mut cancel: oneshot::Receiver<()>) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let end = tokio::select! {
                end = self.stream_once() => end,
                _ = &mut cancel => End::Cancelled,
            };
            match end {
                End::Cancelled => return,
                End::Reconnect => backoff = Duration::from_millis(100),
                End::Failed(error) => {
                    if let Some(ready) = self.ready.take() {
                        let _ = ready.send(Err(error));
                        return;
                    }
                    tracing::debug!(prefix = %self.prefix, %error, "etcd watch interrupted");
                    if !self.in_outage {
                        self.in_outage = true;
                        backoff = Duration::from_millis(100);
                        if self.tx.send(Err(error)).await.is_err() {
                            return;
                        }
                    }
                    self.client.rotate(self.client.current_endpoint());
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = &mut cancel => return,
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Opens one stream from `next` and forwards what it delivers until it ends.
    async fn stream_once(&mut self) -> End {
        let (key, end) = prefix_range(&self.prefix);
        let body = json!({ "create_request": {
            "key": b64(&key),
            "range_end": b64(&end),
            "start_revision": self.next.to_string(),
            "progress_notify": true,
        }});
        let (endpoint, response) = match self.client.stream("/v3/watch", &body).await {
            Ok(opened) => opened,
            Err(e) => return End::Failed(e),
        };
        let mut body: Incoming = response.into_body();
        let mut buf: Vec<u8> = Vec::new();
        loop {
            let frame = tokio::select! {
                frame = body.frame() => frame,
                _ = self.tx.closed() => return End::Cancelled,
            };
            match frame {
                None => return End::Failed(unavailable(&endpoint, "watch stream ended")),
                Some(Err(e)) => return End::Failed(unavailable(&endpoint, &e.to_string())),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        buf.extend_from_slice(&data);
                    }
                }
            }
            // The body is a sequence of JSON objects; a frame may hold several or half of one.
            loop {
                let mut messages = serde_json::Deserializer::from_slice(&buf)
                    .into_iter::<StreamMessage<WatchResponse>>();
                let message = match messages.next() {
                    None => {
                        buf.clear();
                        break;
                    }
                    Some(Err(e)) if e.is_eof() => break,
                    Some(Err(e)) => {
                        let what = format!("unreadable watch message: {e}");
                        return End::Failed(StoreError::Internal(format!("{endpoint}: {what}")));
                    }
                    Some(Ok(message)) => message,
                };
                let used = messages.byte_offset();
                buf.drain(..used);
                if let Some(end) = self.handle(&endpoint, message).await {
                    return end;
                }
            }
        }
    }

    /// Handles one message; `Some` ends the stream.
    async fn handle(&mut self, endpoint: &str, msg: StreamMessage<WatchResponse>) -> Option<End> {
        if let Some(error) = msg.error {
            if is_token_error(&error.message) {
                return Some(self.reauthenticate().await);
            }
            return Some(End::Failed(unavailable(endpoint, &error.message)));
        }
        let result = msg.result?;
        if result.canceled {
            if result.compact_revision > 0 {
                return Some(self.resync().await);
            }
            let reason = result.cancel_reason;
            if is_token_error(&reason) {
                return Some(self.reauthenticate().await);
            }
            let lower = reason.to_ascii_lowercase();
            let error = if lower.contains("permission denied") || lower.contains("user name") {
                StoreError::Auth(format!("{endpoint}: watch refused: {reason}"))
            } else {
                unavailable(endpoint, &format!("watch cancelled: {reason}"))
            };
            return Some(End::Failed(error));
        }
        if result.created {
            self.in_outage = false;
            if let Some(ready) = self.ready.take() {
                let _ = ready.send(Ok(()));
            }
            return None;
        }
        if result.events.is_empty() {
            // A progress notification: everything up to the header revision was sent.
            self.next = self.next.max(result.header.revision + 1);
            return None;
        }
        let events: Result<Vec<Event>> = (result.events.into_iter())
            .map(|e| e.into_event())
            .collect();
        let events = match events {
            Ok(events) => events,
            Err(e) => return Some(End::Failed(e)),
        };
        let revision = events.iter().map(|e| e.kv.mod_revision).max().unwrap_or(0);
        self.next = self.next.max(revision + 1);
        let message = WatchMessage::Changes { revision, events };
        if self.tx.send(Ok(message)).await.is_err() {
            return Some(End::Cancelled);
        }
        None
    }

    /// The revision to resume from was compacted: send the whole prefix, continue after it.
    async fn resync(&mut self) -> End {
        match super::range_all(&self.client, &self.prefix).await {
            Ok(range) => {
                self.next = range.revision + 1;
                let message = WatchMessage::Resync {
                    revision: range.revision,
                    kvs: range.kvs,
                };
                if self.tx.send(Ok(message)).await.is_err() {
                    return End::Cancelled;
                }
                End::Reconnect
            }
            Err(e) => End::Failed(e),
        }
    }

    async fn reauthenticate(&mut self) -> End {
        match self.client.authenticate().await {
            Ok(()) => End::Reconnect,
            Err(e) => End::Failed(e),
        }
    }
}
