//! Timers: [`sleep`], [`timeout`], and the ordered set of deadlines that
//! sets how long the reactor may block in the poller.
//!
//! The poller's wait takes one timeout. With many timers, the only one that
//! matters for the next wait is the earliest, so the reactor keeps every
//! pending deadline in order and passes "earliest deadline minus now". When
//! the wait returns, every deadline that has passed fires (its task is woken).
//!
//! The set is a `BTreeMap<(deadline, id), Waker>`. A first design used
//! a `BinaryHeap`, which is the classic choice and just as fast to pop; we
//! took the tree because most timers here are *cancelled*, not fired: a
//! `connect_timeout` or a query timeout is dropped when the operation wins
//! the race. A heap cannot remove an arbitrary entry, so cancelled timers
//! would stay in it as tombstones until their deadline; the tree removes
//! them in O(log n) and its length is always the number of live timers.
//!
//! Precision: deadlines are `Instant`s (CLOCK_MONOTONIC). epoll and poll
//! take milliseconds, rounded up by the poller, so a timer fires up to 1 ms
//! late and never early.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::Reactor;
use crate::poller;

/// A timer's place in the set: its deadline, then a sequence number so two
/// timers with the same deadline are distinct keys.
pub(crate) type TimerKey = (Instant, u64);

#[derive(Default)]
pub(crate) struct TimerQueue {
    pending: BTreeMap<TimerKey, Waker>,
    next_id: u64,
}

impl TimerQueue {
    pub(crate) fn insert(&mut self, deadline: Instant, waker: Waker) -> TimerKey {
        let key = (deadline, self.next_id);
        self.next_id += 1;
        self.pending.insert(key, waker);
        key
    }

    /// Replace the waker if it would wake a different task.
    pub(crate) fn update(&mut self, key: TimerKey, waker: &Waker) -> bool {
        match self.pending.get_mut(&key) {
            Some(old) => {
                if !old.will_wake(waker) {
                    old.clone_from(waker);
                }
                true
            }
            None => false,
        }
    }

    pub(crate) fn remove(&mut self, key: TimerKey) {
        self.pending.remove(&key);
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.pending.first_key_value().map(|(&(deadline, _), _)| deadline)
    }

    /// Wake every timer whose deadline is at or before `now`; returns how many.
    pub(crate) fn fire_due(&mut self, now: Instant) -> u64 {
        let mut fired = 0;
        while let Some(entry) = self.pending.first_entry() {
            if entry.key().0 > now {
                break;
            }
            entry.remove().wake();
            fired += 1;
        }
        fired
    }

    pub(crate) fn clear(&mut self) {
        self.pending.clear();
    }
}

/// Wait until `duration` has passed, without blocking the thread: other
/// tasks run meanwhile. Must be awaited inside [`block_on`](super::block_on).
///
/// A duration too large for an `Instant` (`Duration::MAX`, a timeout of
/// 2^64 - 1 seconds from a URL) sleeps until
/// [`FAR_FUTURE`](crate::poller::FAR_FUTURE) from now, never panics.
pub fn sleep(duration: Duration) -> Sleep {
    sleep_until(poller::deadline_after(duration))
}

/// Wait until `deadline`.
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        deadline,
        registered: None,
    }
}

/// The future returned by [`sleep`]. Dropping it cancels the timer.
#[must_use = "a Sleep does nothing unless awaited"]
pub struct Sleep {
    deadline: Instant,
    registered: Option<(Weak<Reactor>, TimerKey)>,
}

impl Sleep {
    /// When this sleep ends.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    fn unregister(&mut self) {
        if let Some((reactor, key)) = self.registered.take() {
            if let Some(reactor) = reactor.upgrade() {
                reactor.timers.borrow_mut().remove(key);
            }
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            self.unregister();
            return Poll::Ready(());
        }
        if let Some((reactor, key)) = &self.registered {
            if let Some(reactor) = reactor.upgrade() {
                if reactor.timers.borrow_mut().update(*key, cx.waker()) {
                    return Poll::Pending;
                }
            }
        }
        // First poll, or the timer fired early by a clock quirk (Instant is
        // monotonic, so "early" can only mean the poller rounded): register.
        let reactor = Reactor::current_or_panic("sleep");
        let key = reactor.timers.borrow_mut().insert(self.deadline, cx.waker().clone());
        self.registered = Some((Rc::downgrade(&reactor), key));
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.unregister();
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep").field("deadline", &self.deadline).finish()
    }
}

/// Run `future`, but give up after `duration`: the output is `Ok(value)`
/// if it finished in time and `Err(Elapsed)` otherwise, in which case the
/// future is dropped (its socket closed, its timers cancelled).
pub fn timeout<F: Future>(duration: Duration, future: F) -> Timeout<F> {
    Timeout {
        // Boxed so `Timeout` needs no pin projection: projecting a pinned
        // field by hand takes `unsafe`, which this crate keeps in `sys` and
        // the poller backends. The price is one allocation per timeout.
        future: Box::pin(future),
        sleep: sleep(duration),
        duration,
    }
}

/// The future returned by [`timeout`].
#[must_use = "a Timeout does nothing unless awaited"]
pub struct Timeout<F> {
    future: Pin<Box<F>>,
    sleep: Sleep,
    duration: Duration,
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // The operation first: if it and the deadline are both ready, the
        // work that was done wins.
        if let Poll::Ready(output) = self.future.as_mut().poll(cx) {
            return Poll::Ready(Ok(output));
        }
        match Pin::new(&mut self.sleep).poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed { after: self.duration })),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A [`timeout`] ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed {
    after: Duration,
}

impl Elapsed {
    /// How long the timeout was.
    pub fn duration(&self) -> Duration {
        self.after
    }
}

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "timed out after {:?}", self.after)
    }
}

impl std::error::Error for Elapsed {}

impl From<Elapsed> for io::Error {
    fn from(elapsed: Elapsed) -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, elapsed)
    }
}
