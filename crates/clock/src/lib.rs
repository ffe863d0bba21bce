//! The time as the request path reads it.
//!
//! Handling one request reads the time at many places: when its head arrived, when a limit
//! window is checked, when the upstream answered, for the `Date` header, when it ended. Each
//! reading is a `clock_gettime` (tens of nanoseconds), and most of them fall within the same
//! few microseconds of work. Like nginx, which reads the clock once per turn of its event loop,
//! Portico reads it once per poll of a connection's task: [`per_poll`] wraps the task, and
//! [`now`] inside that poll returns the one reading taken at its first call. A poll ends when
//! the task waits for I/O, so readings in different polls (the request's arrival and the
//! upstream's answer) are as far apart as the wait between them; only the CPU time of one poll
//! is not seen, as in nginx's `$request_time`.
//!
//! Outside a poll wrapped by [`per_poll`] (other tasks and threads, tests), [`now`] reads the
//! clock every time.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

/// The reading of this thread's current poll: `None` outside [`per_poll`]; `Some(None)` inside
/// one before the first [`now`].
#[derive(Clone, Copy)]
struct Reading(Option<Option<Instant>>);

thread_local! {
    static READING: Cell<Reading> = const { Cell::new(Reading(None)) };
}

/// The current time: inside a poll of a task wrapped by [`per_poll`], the same reading for the
/// whole poll; elsewhere a fresh one.
#[inline]
pub fn now() -> Instant {
    READING.with(|r| match r.get().0 {
        Some(Some(t)) => t,
        Some(None) => {
            let t = Instant::now();
            r.set(Reading(Some(Some(t))));
            t
        }
        None => Instant::now(),
    })
}

/// The wall-clock time of `at`, a reading of [`now`] in the past (for log records).
pub fn system_time(at: Instant) -> SystemTime {
    let ago = Instant::now().saturating_duration_since(at);
    SystemTime::now()
        .checked_sub(ago)
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// Runs `task` with one clock reading per poll (see the crate's documentation).
pub fn per_poll<F: Future>(task: Pin<&mut F>) -> PerPoll<'_, F> {
    PerPoll { task }
}

/// The future of [`per_poll`].
pub struct PerPoll<'a, F> {
    task: Pin<&'a mut F>,
}

impl<F: Future> Future for PerPoll<'_, F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // The reading of an enclosing poll (none unless nested) comes back afterwards.
        let outer = READING.with(|r| r.replace(Reading(Some(None))));
        let _restore = Restore(outer);
        self.task.as_mut().poll(cx)
    }
}

/// Puts the enclosing reading back, also when the task panics.
struct Restore(Reading);

impl Drop for Restore {
    fn drop(&mut self) {
        READING.with(|r| r.set(self.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::pin;
    use std::sync::Arc;
    use std::task::{Wake, Waker};
    use std::time::Duration;

    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }

    /// A task that reads the clock twice per poll, a millisecond apart, and is ready at its
    /// second poll.
    struct TwoPolls {
        readings: Vec<(Instant, Instant)>,
    }

    impl Future for TwoPolls {
        type Output = Vec<(Instant, Instant)>;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            let first = now();
            std::thread::sleep(Duration::from_millis(1));
            let second = now();
            self.readings.push((first, second));
            if self.readings.len() == 2 {
                Poll::Ready(std::mem::take(&mut self.readings))
            } else {
                cx.waker().wake_by_ref();
                std::thread::sleep(Duration::from_millis(1));
                Poll::Pending
            }
        }
    }

    fn run<F: Future>(fut: F) -> F::Output {
        let waker = Waker::from(Arc::new(Noop));
        let mut cx = Context::from_waker(&waker);
        let mut fut = pin!(fut);
        loop {
            if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
                return out;
            }
        }
    }

    #[test]
    fn one_reading_per_poll_and_a_new_one_at_the_next() {
        let mut task = pin!(TwoPolls {
            readings: Vec::new()
        });
        let readings = run(per_poll(task.as_mut()));
        let [(a1, a2), (b1, b2)] = readings[..] else {
            panic!("two polls: {readings:?}");
        };
        assert_eq!(a1, a2, "the same reading within a poll");
        assert_eq!(b1, b2, "the same reading within a poll");
        assert!(
            b1 >= a1 + Duration::from_millis(2),
            "the next poll reads the clock again"
        );
    }

    #[test]
    fn outside_a_wrapped_poll_every_call_reads_the_clock() {
        let readings = run(TwoPolls {
            readings: Vec::new(),
        });
        for (first, second) in readings {
            assert!(second >= first + Duration::from_millis(1));
        }
        let mut task = pin!(TwoPolls {
            readings: Vec::new()
        });
        run(per_poll(task.as_mut()));
        let a = now();
        std::thread::sleep(Duration::from_millis(1));
        assert!(
            now() > a,
            "a finished wrapped poll leaves no reading behind"
        );
    }

    #[test]
    fn system_time_of_a_past_reading() {
        let at = now();
        let wall = SystemTime::now();
        std::thread::sleep(Duration::from_millis(5));
        let then = system_time(at);
        let off = wall.duration_since(then).unwrap_or_else(|e| e.duration());
        assert!(off < Duration::from_millis(2), "{off:?}");
    }
}
