use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use super::*;

/// Records batches; fails the first `failures` sends.
#[derive(Default)]
struct Recorder {
    batches: Mutex<Vec<Vec<Value>>>,
    failures: AtomicUsize,
}

impl Sink for Recorder {
    fn send(self: Arc<Self>, entries: Arc<[Value]>, _max: usize) -> SendFuture {
        let failed = self
            .failures
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok();
        if !failed {
            self.batches
                .lock()
                .unwrap()
                .push(entries.iter().cloned().collect());
        }
        Box::pin(async move {
            if failed {
                Err("refused".into())
            } else {
                Ok(())
            }
        })
    }
}

fn config(conf: Value) -> BatchConfig {
    BatchConfig::from_conf(&conf).unwrap()
}

async fn until(what: &str, f: impl Fn() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn batches_are_sent_when_full_and_when_inactive() {
    let sink = Arc::new(Recorder::default());
    let pending = Arc::new(AtomicUsize::new(0));
    let b = Batcher::new(
        config(json!({"batch_max_size": 2, "inactive_timeout": 1})),
        sink.clone(),
        pending.clone(),
        100,
    );
    for i in 0..3 {
        b.push(json!(i));
    }
    until("the full batch", || sink.batches.lock().unwrap().len() == 1).await;
    assert_eq!(sink.batches.lock().unwrap()[0], vec![json!(0), json!(1)]);
    until("the inactive batch", || {
        sink.batches.lock().unwrap().len() == 2
    })
    .await;
    assert_eq!(sink.batches.lock().unwrap()[1], vec![json!(2)]);
    until("nothing pending", || pending.load(Ordering::Relaxed) == 0).await;
}

#[tokio::test]
async fn a_failed_batch_is_retried_then_dropped() {
    let sink = Arc::new(Recorder {
        failures: AtomicUsize::new(1),
        ..Recorder::default()
    });
    let pending = Arc::new(AtomicUsize::new(0));
    let b = Batcher::new(
        config(json!({"batch_max_size": 1, "max_retry_count": 1, "retry_delay": 0})),
        sink.clone(),
        pending.clone(),
        100,
    );
    b.push(json!("a"));
    until("the retried batch", || {
        sink.batches.lock().unwrap().len() == 1
    })
    .await;
    sink.failures.store(5, Ordering::Relaxed);
    b.push(json!("b"));
    until("dropped", || pending.load(Ordering::Relaxed) == 0).await;
    assert_eq!(sink.batches.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn entries_over_the_backlog_are_discarded() {
    let sink = Arc::new(Recorder::default());
    let pending = Arc::new(AtomicUsize::new(0));
    let b = Batcher::new(
        config(json!({"batch_max_size": 10, "inactive_timeout": 1})),
        sink.clone(),
        pending.clone(),
        2,
    );
    for i in 0..5 {
        b.push(json!(i));
    }
    until("the batch", || sink.batches.lock().unwrap().len() == 1).await;
    assert_eq!(sink.batches.lock().unwrap()[0], vec![json!(0), json!(1)]);
}

#[tokio::test]
async fn what_is_buffered_is_sent_when_the_instance_goes() {
    let sink = Arc::new(Recorder::default());
    let b = Batcher::new(
        config(json!({"inactive_timeout": 100})),
        sink.clone(),
        Arc::new(AtomicUsize::new(0)),
        100,
    );
    b.push(json!(1));
    drop(b);
    until("the last batch", || sink.batches.lock().unwrap().len() == 1).await;
}
