//! `pool::maintenance`: the background task that manages the flock (the
//! story's Q21).
//!
//! One task per pool, spawned on the reactor (`reactor::spawn`) by the first
//! `acquire()` or by [`Pool::open`](super::Pool::open). Each round, in order:
//!
//! 1. roll back connections returned inside a transaction (see "Reset on
//!    release" in the module docs for why here and not in `Drop`);
//! 2. close idle connections past their max lifetime;
//! 3. close connections idle past the idle timeout, oldest first, but never
//!    below `min_size`;
//! 4. with [`Validation::Periodic`], ping connections idle for a period;
//! 5. report connections held past the leak threshold, once each;
//! 6. open connections until the pool is back at `min_size`.
//!
//! Between rounds it sleeps `maintenance_interval` (`reactor::sleep`), or
//! less: a discarded connection or a dirty release wakes it at once (a
//! *kick*). It holds only a `Weak` reference while asleep and stops when the
//! pool is closed or dropped. A failed connect in step 6 is retried at the
//! next tick, not at once, so a server that is down is not hammered.

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::rc::{Rc, Weak};
use std::task::Poll;
use std::time::{Duration, Instant};

use super::stats::Short;
use super::{CloseReason, Health, Idle, LeakReport, Manager, Shared, SlotGuard, Validation, LEAK_REPORTS_KEPT};
use crate::reactor;

impl<M: Manager> Shared<M> {
    /// Spawn the background task on the current reactor unless it runs.
    pub(super) fn ensure_maintenance(self: &Rc<Self>) {
        {
            let mut st = self.state.borrow_mut();
            if st.maintenance.running || st.closed {
                return;
            }
            st.maintenance.running = true;
        }
        // The JoinHandle is dropped: the task is detached and ends on its own.
        drop(reactor::spawn(run(Rc::downgrade(self))));
    }

    async fn round(&self) {
        self.reset_dirty().await;
        let now = Instant::now();
        self.retire_and_trim(now);
        if let Validation::Periodic { every } = self.config.validation {
            self.validate_idle(every).await;
        }
        self.report_leaks(Instant::now());
        self.replenish().await;
    }

    // ANCHOR: reset
    /// Step 1: `ROLLBACK` (or whatever the manager's reset is) each
    /// connection returned dirty, then release it like a clean one.
    async fn reset_dirty(&self) {
        loop {
            let Some(conn) = self.state.borrow_mut().dirty.pop_front() else {
                break;
            };
            let id = conn.id;
            let mut held = SlotGuard::holding(self, conn);
            let result = self.manager.reset(held.raw_mut()).await;
            match result {
                Ok(()) if self.manager.check(held.raw_mut()) == Health::Clean => {
                    crate::narrate!("pool: connection #{id} rolled back, back in the pool");
                    self.make_available(held.into_conn());
                }
                Ok(()) => held.discard(CloseReason::ResetFailed),
                Err(e) => {
                    crate::narrate!("pool: reset of connection #{id} failed, closing it: {e}");
                    held.discard(CloseReason::ResetFailed);
                }
            }
        }
    }
    // ANCHOR_END: reset

    /// Steps 2 and 3: max lifetime, then idle timeout down to `min_size`.
    fn retire_and_trim(&self, now: Instant) {
        let mut st = self.state.borrow_mut();
        let mut i = 0;
        while i < st.idle.len() {
            if st.idle[i].conn.retire_at.is_some_and(|t| now >= t) {
                if let Some(idle) = st.idle.remove(i) {
                    self.discard_locked(&mut st, idle.conn, CloseReason::MaxLifetime);
                }
            } else {
                i += 1;
            }
        }
        let Some(limit) = self.config.idle_timeout else { return };
        // The deque is mostly ordered by `since` (releases push at the back),
        // but periodic validation puts entries back at the front, so find
        // the oldest by scanning: at most `max_size` entries.
        while st.slots > self.config.effective_min() {
            let oldest = (st.idle.iter().enumerate())
                .filter(|(_, e)| now.duration_since(e.since) >= limit)
                .min_by_key(|(_, e)| e.since)
                .map(|(i, _)| i);
            let Some(idle) = oldest.and_then(|i| st.idle.remove(i)) else {
                break;
            };
            self.discard_locked(&mut st, idle.conn, CloseReason::IdleTimeout);
        }
    }

    /// Step 4: ping each connection idle for `every`, one at a time. While
    /// it is being pinged it holds its slot but is not in the idle deque.
    async fn validate_idle(&self, every: Duration) {
        loop {
            let picked = {
                let mut st = self.state.borrow_mut();
                let now = Instant::now();
                let at = st.idle.iter().position(|e| now.duration_since(e.checked) >= every);
                at.and_then(|i| st.idle.remove(i))
            };
            let Some(Idle { conn, since, .. }) = picked else { break };
            let mut held = SlotGuard::holding(self, conn);
            let result = self.manager.validate(held.raw_mut()).await;
            match result {
                Ok(()) => self.return_validated(held.into_conn(), since),
                Err(e) => {
                    crate::narrate!("pool: background validation failed, closing: {e}");
                    held.discard(CloseReason::ValidationFailed);
                }
            }
        }
    }

    /// Put a connection back after a background ping: at the *front* of the
    /// deque (it was the coldest, and LIFO keeps it cold so the idle timeout
    /// can still find it), keeping its last-use time; or to a waiter.
    fn return_validated(&self, conn: super::Conn<M::Connection>, since: Instant) {
        let mut st = self.state.borrow_mut();
        if st.closed || !st.waiters.is_empty() {
            drop(st);
            self.make_available(conn);
            return;
        }
        st.idle.push_front(Idle {
            conn,
            since,
            checked: Instant::now(),
        });
    }

    // ANCHOR: leaks
    /// Step 5: every checkout older than the threshold is reported once,
    /// naming the `acquire()` call site that took it.
    fn report_leaks(&self, now: Instant) {
        let Some(threshold) = self.config.leak_threshold else {
            return;
        };
        let mut st = self.state.borrow_mut();
        let mut found = Vec::new();
        for checkout in st.checkouts.iter_mut().flatten() {
            let Some(since) = checkout.since else { continue };
            let held_for = now.duration_since(since);
            if !checkout.reported && held_for >= threshold {
                checkout.reported = true;
                found.push(LeakReport {
                    conn_id: checkout.conn_id,
                    acquired_at: checkout.at,
                    held_for,
                });
            }
        }
        for report in found {
            // A pool has no logger to call; stderr is where HikariCP's
            // equivalent warning would end up too. Tests and tools read
            // `Pool::leak_reports()` instead.
            eprintln!("[connlab pool] {report} (leak threshold {})", Short(threshold));
            st.leaks += 1;
            if st.leak_reports.len() == LEAK_REPORTS_KEPT {
                st.leak_reports.pop_front();
            }
            st.leak_reports.push_back(report);
        }
    }
    // ANCHOR_END: leaks

    /// Step 6: open connections until `min_size`. One failure ends the
    /// round; the next tick tries again.
    async fn replenish(&self) {
        loop {
            {
                let st = self.state.borrow();
                if st.closed || st.slots >= self.config.effective_min() {
                    return;
                }
            }
            let slot = SlotGuard::take(self);
            match self.manager.connect().await {
                Ok(raw) => {
                    let conn = self.adopt(raw);
                    slot.defuse();
                    self.make_available(conn);
                }
                Err(e) => {
                    crate::narrate!("pool: background connect failed, retrying next tick: {e}");
                    self.note_connect_error(&e);
                    drop(slot);
                    // Freeing the slot kicked us (below min_size); wait the
                    // full interval instead of retrying in a tight loop.
                    self.state.borrow_mut().maintenance.kicked = false;
                    return;
                }
            }
        }
    }
}

/// The task itself.
async fn run<M: Manager>(weak: Weak<Shared<M>>) {
    let _running = RunningFlag(weak.clone());
    loop {
        let Some(shared) = weak.upgrade() else { return };
        if shared.state.borrow().closed {
            return;
        }
        shared.round().await;
        let interval = shared.config.maintenance_interval;
        drop(shared);
        nap(&weak, interval).await;
    }
}

/// Sleep `interval`, or until kicked, or until the pool goes away.
async fn nap<M: Manager>(weak: &Weak<Shared<M>>, interval: Duration) {
    let mut sleep = pin!(reactor::sleep(interval));
    poll_fn(|cx| {
        let Some(shared) = weak.upgrade() else {
            return Poll::Ready(());
        };
        let mut st = shared.state.borrow_mut();
        if st.closed || std::mem::take(&mut st.maintenance.kicked) {
            return Poll::Ready(());
        }
        st.maintenance.waker = Some(cx.waker().clone());
        drop(st);
        sleep.as_mut().poll(cx)
    })
    .await;
}

/// Marks the task as gone when its future is dropped (it returned, or its
/// reactor was torn down), so the next `acquire()` can start a new one.
struct RunningFlag<M: Manager>(Weak<Shared<M>>);

impl<M: Manager> Drop for RunningFlag<M> {
    fn drop(&mut self) {
        if let Some(shared) = self.0.upgrade() {
            if let Ok(mut st) = shared.state.try_borrow_mut() {
                st.maintenance.running = false;
                st.maintenance.waker = None;
            }
        }
    }
}
