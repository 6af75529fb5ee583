//! `pool::waiter`: the FIFO queue of acquires that found nothing, and the
//! future each of them awaits.
//!
//! A release with waiters queued does not put the connection in the idle
//! deque; it hands it to the first waiter (a *grant*) and wakes it, so a
//! newcomer cannot barge in. A freed slot is granted the same way, as a
//! permit to connect. Each waiter has an id: a [`WaitForGrant`] dropped
//! while queued (its acquire timed out or was cancelled) removes its id;
//! one dropped after its grant was made passes the grant on. So no
//! interleaving of timeouts, cancellations and releases loses a connection
//! or a slot.
//!
//! The alternative not taken is a counting semaphore (tokio's, as bb8 and
//! deadpool use): a permit handed to a future that is dropped in the same
//! instant is lost unless the semaphore handles that case itself, and the
//! connection would still need a separate hand-off. Ids make both explicit.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use super::inner::Shared;
use super::state::Conn;
use super::{Manager, PoolError};

/// What a queued waiter is handed.
pub(super) enum Grant<C> {
    /// A connection, fresh from a release.
    Conn(Conn<C>),
    /// A slot, freed by a discarded connection: connect yourself.
    Permit,
}

pub(super) struct Waiter {
    id: u64,
    waker: Waker,
}

/// The queue, and the grants made to waiters that have not polled yet.
pub(super) struct WaitQueue<C> {
    waiters: VecDeque<Waiter>,
    /// By waiter id. Short: a grant lives from a release to the waiter's
    /// next poll.
    granted: Vec<(u64, Grant<C>)>,
    next_id: u64,
}

impl<C> WaitQueue<C> {
    pub(super) fn new() -> WaitQueue<C> {
        WaitQueue {
            waiters: VecDeque::new(),
            granted: Vec::new(),
            next_id: 0,
        }
    }

    /// Waiters not yet served.
    pub(super) fn len(&self) -> usize {
        self.waiters.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.waiters.is_empty()
    }

    /// Join the back of the queue; the id is the waiter's claim ticket.
    fn push(&mut self, waker: Waker) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.waiters.push_back(Waiter { id, waker });
        id
    }

    /// The first waiter, out of the queue: the caller grants it something.
    pub(super) fn pop_first(&mut self) -> Option<Waiter> {
        self.waiters.pop_front()
    }

    /// Hand `grant` to `waiter` (just popped) and wake it.
    pub(super) fn grant(&mut self, waiter: Waiter, grant: Grant<C>) {
        self.granted.push((waiter.id, grant));
        waiter.waker.wake();
    }

    fn claim(&mut self, id: u64) -> Option<Grant<C>> {
        let i = self.granted.iter().position(|(g, _)| *g == id)?;
        Some(self.granted.swap_remove(i).1)
    }

    /// Still queued? Then remember the latest waker.
    fn still_queued(&mut self, id: u64, waker: &Waker) -> bool {
        match self.waiters.iter_mut().find(|w| w.id == id) {
            Some(waiter) => {
                if !waiter.waker.will_wake(waker) {
                    waiter.waker = waker.clone();
                }
                true
            }
            None => false,
        }
    }

    /// Leave the queue; a grant already made to `id` is returned so the
    /// caller can pass it on.
    fn leave(&mut self, id: u64) -> Option<Grant<C>> {
        if let Some(i) = self.waiters.iter().position(|w| w.id == id) {
            self.waiters.remove(i);
            return None;
        }
        self.claim(id)
    }

    /// Empty the queue (the pool is closing); wake the returned waiters
    /// outside the pool's borrow, and they find themselves gone.
    pub(super) fn take_all(&mut self) -> Vec<Waker> {
        self.waiters.drain(..).map(|w| w.waker).collect()
    }
}

/// The queued part of an acquire: resolves to the grant a release (or a
/// freed slot) made to this waiter's id.
pub(super) struct WaitForGrant<'a, M: Manager> {
    shared: &'a Shared<M>,
    /// `None` before the first poll and after the grant is claimed.
    id: Option<u64>,
}

impl<'a, M: Manager> WaitForGrant<'a, M> {
    pub(super) fn new(shared: &'a Shared<M>) -> WaitForGrant<'a, M> {
        WaitForGrant { shared, id: None }
    }
}

impl<M: Manager> Future for WaitForGrant<'_, M> {
    type Output = Result<Grant<M::Connection>, PoolError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut st = self.shared.state.borrow_mut();
        let Some(id) = self.id else {
            if st.closed {
                return Poll::Ready(Err(PoolError::Closed));
            }
            let id = st.queue.push(cx.waker().clone());
            drop(st);
            self.id = Some(id);
            return Poll::Pending;
        };
        if let Some(grant) = st.queue.claim(id) {
            drop(st);
            self.id = None;
            return Poll::Ready(Ok(grant));
        }
        if st.queue.still_queued(id, cx.waker()) {
            return Poll::Pending;
        }
        // Not queued and not granted: `close()` emptied the queue.
        drop(st);
        self.id = None;
        Poll::Ready(Err(PoolError::Closed))
    }
}

impl<M: Manager> Drop for WaitForGrant<'_, M> {
    fn drop(&mut self) {
        let Some(id) = self.id else { return };
        let left_behind = self.shared.state.borrow_mut().queue.leave(id);
        if let Some(grant) = left_behind {
            // Served, but gone before it could claim the grant: the next
            // waiter (or the idle deque) gets it instead.
            self.shared.pass_on(grant);
        }
    }
}
