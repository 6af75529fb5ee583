//! `pool::maintenance`: the background task that manages the flock (the
//! story's Q21).
//!
//! One task per pool, spawned on the reactor (`reactor::spawn`) by the first
//! `acquire()` or by [`Pool::open`](super::Pool::open). Each round, in order:
//!
//! 1. start a reset (`ROLLBACK`) of each connection returned inside a
//!    transaction (see "Reset on release" in the module docs for why here
//!    and not in `Drop`);
//! 2. close idle connections past their max lifetime;
//! 3. close connections idle past the idle timeout, oldest first, but never
//!    below `min_size`;
//! 4. with [`Validation::Periodic`], start a ping of each connection idle
//!    for a period;
//! 5. report connections held past the leak threshold, once each;
//! 6. start opening connections until the pool is back at `min_size`.
//!
//! # A round never waits on the network
//!
//! Steps 2, 3 and 5 are bookkeeping: a scan of at most `max_size` entries.
//! Steps 1, 4 and 6 each wait on a server, and a server can take forever:
//! one that accepts and then says nothing, a backend stopped with
//! `SIGSTOP`, a network that drops everything. So each of them runs as a
//! task of its own (a reset or a ping per connection, one task that opens
//! connections one after the other), and each waits at most the acquire
//! timeout, after which its connection is closed and its slot freed. The
//! round itself never awaits: leak reports, idle trimming and lifetime
//! retirement come on time however long a connect hangs (the test
//! `a_hung_connect_does_not_delay_the_leak_report` holds a connect on a
//! server that never answers and times the report).
//!
//! The alternative not taken is one task running the steps in turn, each
//! with its own deadline: simpler to read, but a hung step still delays
//! every step behind it by up to that deadline, and two connections that
//! both need a reset would be reset one after the other.
//!
//! Between rounds the task sleeps `maintenance_interval` (`reactor::sleep`),
//! or less: a discarded connection or a dirty release wakes it at once (a
//! *kick*). It holds only a `Weak` reference while asleep and stops when the
//! pool is closed or dropped. A failed connect in step 6 is retried at the
//! next tick, not at once, so a server that is down is not hammered.

use std::collections::VecDeque;
use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::rc::{Rc, Weak};
use std::task::Poll;
use std::time::{Duration, Instant};

use super::guard::ConnGuard;
use super::inner::Shared;
use super::state::{Conn, Idle};
use super::stats::Short;
use super::{CloseReason, Health, LeakReport, Manager, Validation};
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

    /// One round. It never awaits: each step that waits on a server is
    /// started as a task of its own (see "A round never waits on the
    /// network" above).
    fn round(self: &Rc<Self>) {
        self.start_resets();
        let now = Instant::now();
        self.retire_and_trim(now);
        if let Validation::Periodic { every } = self.config.validation {
            self.start_validations(every, now);
        }
        self.report_leaks(now);
        self.start_replenish();
    }

    /// Run one step that waits on the server, for at most the acquire
    /// timeout: a background step may take as long as an acquire would
    /// wait for its result, and no longer.
    async fn bounded<E: fmt::Display>(&self, step: impl Future<Output = Result<(), E>>) -> Result<(), String> {
        let limit = self.config.acquire_timeout;
        match reactor::timeout(limit, step).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_elapsed) => Err(format!("no answer within {}", Short(limit))),
        }
    }

    // ANCHOR: reset
    /// Step 1: a task per connection returned dirty, so one slow
    /// `ROLLBACK` neither holds up the others nor the round.
    fn start_resets(self: &Rc<Self>) {
        let dirty = std::mem::take(&mut self.state.borrow_mut().dirty);
        for conn in dirty {
            let shared = Rc::clone(self);
            // Detached: the guard inside gives the slot back however the
            // task ends.
            drop(reactor::spawn(async move { shared.reset(conn).await }));
        }
    }

    /// `ROLLBACK` (or whatever the manager's reset is), then release the
    /// connection like a clean one; on an error or no answer, close it.
    async fn reset(&self, conn: Conn<M::Connection>) {
        let mut held = ConnGuard::new(self, conn);
        let id = held.id();
        let result = self.bounded(self.manager.reset(held.raw_mut())).await;
        match result {
            Ok(()) if self.manager.check(held.raw_mut()) == Health::Clean => {
                crate::narrate!("pool: connection #{id} rolled back, back in the pool");
                self.make_available(held.into_conn());
            }
            Ok(()) => held.discard(CloseReason::ResetFailed),
            Err(why) => {
                crate::narrate!("pool: reset of connection #{id} failed, closing it: {why}");
                held.discard(CloseReason::ResetFailed);
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

    /// Step 4: a ping for each connection idle for `every`. While it is
    /// being pinged it holds its slot but is not in the idle deque.
    fn start_validations(self: &Rc<Self>, every: Duration, now: Instant) {
        let due = {
            let mut st = self.state.borrow_mut();
            let idle = std::mem::take(&mut st.idle);
            let (due, fresh): (VecDeque<_>, VecDeque<_>) =
                idle.into_iter().partition(|e| now.duration_since(e.checked) >= every);
            st.idle = fresh;
            due
        };
        for Idle { conn, since, .. } in due {
            let shared = Rc::clone(self);
            drop(reactor::spawn(async move { shared.validate_idle(conn, since).await }));
        }
    }

    async fn validate_idle(&self, conn: Conn<M::Connection>, since: Instant) {
        let mut held = ConnGuard::new(self, conn);
        let result = self.bounded(self.manager.validate(held.raw_mut())).await;
        match result {
            Ok(()) => self.return_validated(held.into_conn(), since),
            Err(why) => {
                crate::narrate!(
                    "pool: background ping of connection #{} failed, closing it: {why}",
                    held.id()
                );
                held.discard(CloseReason::ValidationFailed);
            }
        }
    }

    /// Put a connection back after a background ping: at the *front* of the
    /// deque (it was the coldest, and LIFO keeps it cold so the idle timeout
    /// can still find it), keeping its last-use time; or to a waiter.
    fn return_validated(&self, conn: Conn<M::Connection>, since: Instant) {
        let mut st = self.state.borrow_mut();
        if st.closed || !st.queue.is_empty() {
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
        for checkout in st.checkouts.iter_mut() {
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
            st.counters.leaked(report);
        }
    }
    // ANCHOR_END: leaks

    /// Step 6: unless one already runs, start a task that opens
    /// connections until the pool is back at `min_size`.
    fn start_replenish(self: &Rc<Self>) {
        {
            let mut st = self.state.borrow_mut();
            if st.maintenance.replenishing || st.closed || st.slots >= self.config.effective_min() {
                return;
            }
            st.maintenance.replenishing = true;
        }
        let shared = Rc::clone(self);
        drop(reactor::spawn(async move { shared.replenish().await }));
    }

    /// Open connections one after the other until `min_size`. A failure,
    /// or a connect with no answer within the deadline, ends the task; the
    /// next tick starts another.
    async fn replenish(&self) {
        let _flag = Replenishing(self);
        loop {
            {
                let st = self.state.borrow();
                if st.closed || st.slots >= self.config.effective_min() {
                    return;
                }
            }
            if let Err(why) = self.bounded(self.open_one()).await {
                crate::narrate!("pool: background connect failed, retrying next tick: {why}");
                self.note_connect_error(why);
                // Freeing the slot kicked the task (below min_size); wait
                // the full interval instead of retrying in a tight loop.
                self.state.borrow_mut().maintenance.kicked = false;
                return;
            }
        }
    }
}

/// Clears the "replenishing" flag however the task ends (returned, or
/// dropped with its reactor).
struct Replenishing<'a, M: Manager>(&'a Shared<M>);

impl<M: Manager> Drop for Replenishing<'_, M> {
    fn drop(&mut self) {
        if let Ok(mut st) = self.0.state.try_borrow_mut() {
            st.maintenance.replenishing = false;
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
        shared.round();
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
