//! `pool::inner`: the policy, the part every [`Pool`](super::Pool) clone,
//! [`Pooled`] handle and background task shares.
//!
//! [`Shared`] holds the manager, the configuration and the [`State`]; its
//! methods are the pool's moves: find a connection for an acquire
//! (`try_idle`, `obtain`), take one back (`release`), hand one to a waiter
//! or the idle deque (`make_available`), close one and pass its slot on
//! (`discard`), and shut everything (`close`). The public face in `mod.rs`
//! is a thin layer over these, as bb8's `api.rs` is over its `inner.rs`.

use std::cell::{Cell, RefCell};
use std::panic::Location;
use std::rc::Rc;
use std::time::Instant;

use super::guard::{ConnGuard, SlotGuard};
use super::state::{Checkout, Conn, Idle, State};
use super::waiter::{Grant, WaitForGrant};
use super::{CloseReason, Config, Health, Manager, PoolError, Pooled, Stats, Validation};
use super::{CONNECT_RETRY_MAX, MAX_LIFETIME_JITTER};
use crate::reactor;

pub(super) struct Shared<M: Manager> {
    pub(super) manager: M,
    pub(super) config: Config,
    pub(super) state: RefCell<State<M::Connection>>,
    /// Does `acquire()` need the time (for the validation bypass window or
    /// leak detection)? Fixed at construction.
    clock_on_acquire: bool,
    /// Live [`Pool`](super::Pool) handles. The last one dropped closes the
    /// pool; the `Rc` count cannot be used for that because [`Pooled`]
    /// handles and the background tasks also hold the shared state.
    pub(super) handles: Cell<usize>,
}

/// Where `try_idle` left an acquire.
pub(super) enum Step<C> {
    /// An idle connection, good to hand out (with the clock reading, if one
    /// was needed).
    Ready(Conn<C>, Option<Instant>),
    /// An idle connection that sat longer than the bypass window: ping first.
    Validate(Conn<C>),
    /// A free slot, now ours: connect.
    Connect,
    /// Nothing idle, no free slot: queue.
    Wait,
    /// The pool is closed.
    Closed,
}

impl<M: Manager> Shared<M> {
    pub(super) fn new(manager: M, config: Config) -> Shared<M> {
        let clock_on_acquire =
            matches!(config.validation, Validation::OnAcquire { .. }) || config.leak_threshold.is_some();
        Shared {
            manager,
            state: RefCell::new(State::new(config.max_size)),
            config,
            clock_on_acquire,
            handles: Cell::new(1),
        }
    }

    // ANCHOR: try_idle
    /// The story's Q9 in four lines: idle? pop. Room? create. Else wait.
    pub(super) fn try_idle(&self) -> Step<M::Connection> {
        let mut st = self.state.borrow_mut();
        if st.closed {
            return Step::Closed;
        }
        // Invariant: the idle deque is empty while anyone waits, because a
        // release serves the first waiter before the deque. So popping here
        // never jumps the queue.
        debug_assert!(st.idle.is_empty() || st.queue.is_empty());
        if let Some(idle) = st.idle.pop_back() {
            // The clock is the costliest step left on this path (about half
            // of it; see benches/pool.rs), so read it only when the
            // configuration needs it. Max lifetime is not checked here: a
            // release and the background task retire old connections, so an
            // idle one outlives its lifetime by one maintenance tick at most.
            let now = self.clock_on_acquire.then(Instant::now);
            if let (Some(now), Validation::OnAcquire { idle_longer_than }) = (now, self.config.validation) {
                if now.duration_since(idle.checked) >= idle_longer_than {
                    return Step::Validate(idle.conn);
                }
            }
            return Step::Ready(idle.conn, now);
        }
        if st.slots < self.config.max_size && st.queue.is_empty() {
            st.slots += 1;
            return Step::Connect;
        }
        Step::Wait
    }
    // ANCHOR_END: try_idle

    /// Drive one acquire to a connection: validate, connect, or queue, as
    /// many times as it takes. Every slot it holds across an `.await` is in
    /// a guard (`guard.rs`), so dropping this future at any point frees it.
    pub(super) async fn obtain(&self, first: Step<M::Connection>) -> Result<Conn<M::Connection>, PoolError> {
        let mut step = first;
        loop {
            step = match step {
                Step::Ready(conn, _) => return Ok(conn),
                Step::Closed => return Err(PoolError::Closed),
                Step::Validate(conn) => {
                    let mut held = ConnGuard::new(self, conn);
                    match self.manager.validate(held.raw_mut()).await {
                        Ok(()) => return Ok(held.into_conn()),
                        Err(e) => {
                            crate::narrate!("pool: validation failed, closing connection #{}: {e}", held.id());
                            held.discard(CloseReason::ValidationFailed);
                            self.try_idle()
                        }
                    }
                }
                Step::Connect => return self.connect_in_slot(SlotGuard::owned(self)).await,
                Step::Wait => match WaitForGrant::new(self).await? {
                    Grant::Conn(conn) => return Ok(conn),
                    Grant::Permit => return self.connect_in_slot(SlotGuard::owned(self)).await,
                },
            };
        }
    }

    /// Connect in a slot we hold, retrying with doubling pauses: during a
    /// server restart the acquire rides it out instead of failing at once.
    /// The acquire timeout around us bounds the retries.
    async fn connect_in_slot(&self, slot: SlotGuard<'_, M>) -> Result<Conn<M::Connection>, PoolError> {
        let mut pause = self.config.connect_retry;
        loop {
            if self.state.borrow().closed {
                return Err(PoolError::Closed);
            }
            match self.manager.connect().await {
                Ok(raw) => return Ok(slot.fill(raw)),
                Err(e) => {
                    crate::narrate!("pool: connect failed, retrying in {pause:?}: {e}");
                    self.note_connect_error(e.to_string());
                    reactor::sleep(pause).await;
                    pause = (pause * 2).min(CONNECT_RETRY_MAX);
                }
            }
        }
    }

    /// Open one connection in a new slot and make it available: the fill
    /// of [`Pool::open`](super::Pool::open) and the background task's
    /// replenishing. The caller checked there is a free slot, and notes
    /// the error (its own way).
    pub(super) async fn open_one(&self) -> Result<(), M::Error> {
        let slot = SlotGuard::take(self);
        let raw = self.manager.connect().await?;
        self.make_available(slot.fill(raw));
        Ok(())
    }

    /// Number a freshly opened connection and give it a retirement time.
    /// Only [`SlotGuard::fill`] calls this: every connection is born in a slot.
    pub(super) fn adopt(&self, raw: M::Connection) -> Conn<M::Connection> {
        let mut st = self.state.borrow_mut();
        st.counters.created += 1;
        let id = st.next_conn_id;
        st.next_conn_id += 1;
        let retire_at = self.config.max_lifetime.map(|life| {
            let jitter = life.mul_f64(MAX_LIFETIME_JITTER * st.unit_random());
            // Saturating: a configured lifetime of `Duration::MAX` means
            // "never", not a panic in `Instant + Duration`.
            crate::poller::deadline_after(life - jitter)
        });
        crate::narrate!(
            "pool: opened connection #{id} ({} of {})",
            st.slots,
            self.config.max_size
        );
        Conn { raw, id, retire_at }
    }

    pub(super) fn note_connect_error(&self, why: String) {
        self.state.borrow_mut().counters.connect_failed(why);
    }

    pub(super) fn hand_out(
        self: &Rc<Self>,
        conn: Conn<M::Connection>,
        at: &'static Location<'static>,
        now: Option<Instant>,
    ) -> Pooled<M> {
        let mut st = self.state.borrow_mut();
        st.counters.acquires += 1;
        let checkout = st.checkouts.insert(Checkout {
            conn_id: conn.id,
            at,
            since: now,
            reported: false,
        });
        crate::narrate!(
            "pool: acquire at {at} -> connection #{} ({} idle, {} waiting)",
            conn.id,
            st.idle.len(),
            st.queue.len()
        );
        Pooled::new(conn, Rc::clone(self), checkout, at)
    }

    // ANCHOR: release
    /// A holder gave a connection back (its [`Pooled`] was dropped).
    pub(super) fn release(&self, mut conn: Conn<M::Connection>, checkout: usize) {
        self.end_checkout(checkout);
        match self.manager.check(&mut conn.raw) {
            Health::Clean => {
                // One clock read serves both the lifetime check and the
                // idle timestamp: on the hot path the clock is the biggest
                // cost left (see benches/pool.rs).
                let now = Instant::now();
                if conn.retire_at.is_some_and(|t| now >= t) {
                    self.discard(conn, CloseReason::MaxLifetime);
                } else {
                    self.make_available_at(conn, now);
                }
            }
            Health::NeedsReset => {
                // The slot stays held: the connection is neither idle nor
                // usable until the background task has rolled it back.
                crate::narrate!(
                    "pool: connection #{} returned inside a transaction: queued for ROLLBACK",
                    conn.id
                );
                let mut st = self.state.borrow_mut();
                st.dirty.push_back(conn);
                st.kick();
            }
            Health::Broken => self.discard(conn, CloseReason::Broken),
        }
    }

    /// A usable connection is free: to the first waiter if anyone waits
    /// (FIFO, no barging), else onto the back of the idle deque.
    pub(super) fn make_available(&self, conn: Conn<M::Connection>) {
        self.make_available_at(conn, Instant::now());
    }

    fn make_available_at(&self, conn: Conn<M::Connection>, now: Instant) {
        let mut st = self.state.borrow_mut();
        if st.closed {
            self.discard_locked(&mut st, conn, CloseReason::PoolClosed);
            return;
        }
        match st.queue.pop_first() {
            Some(waiter) => {
                crate::narrate!(
                    "pool: connection #{} handed to the first of {} waiters",
                    conn.id,
                    st.queue.len() + 1
                );
                st.queue.grant(waiter, Grant::Conn(conn));
            }
            None => st.idle.push_back(Idle {
                conn,
                since: now,
                checked: now,
            }),
        }
    }
    // ANCHOR_END: release

    pub(super) fn discard(&self, conn: Conn<M::Connection>, reason: CloseReason) {
        let mut st = self.state.borrow_mut();
        self.discard_locked(&mut st, conn, reason);
    }

    /// Close a connection and free its slot (passing the slot to the first
    /// waiter as a permit to connect).
    pub(super) fn discard_locked(&self, st: &mut State<M::Connection>, conn: Conn<M::Connection>, reason: CloseReason) {
        crate::narrate!("pool: closing connection #{} ({reason:?})", conn.id);
        st.counters.closed.bump(reason);
        drop(conn);
        self.free_slot_locked(st);
    }

    pub(super) fn free_slot_locked(&self, st: &mut State<M::Connection>) {
        st.slots -= 1;
        if st.closed {
            return;
        }
        if let Some(waiter) = st.queue.pop_first() {
            st.slots += 1;
            st.queue.grant(waiter, Grant::Permit);
        } else if st.slots < self.config.effective_min() {
            st.kick();
        }
    }

    /// A waiter that will never claim its grant (dropped): pass it on.
    pub(super) fn pass_on(&self, grant: Grant<M::Connection>) {
        match grant {
            Grant::Conn(conn) => self.make_available(conn),
            Grant::Permit => self.free_slot_locked(&mut self.state.borrow_mut()),
        }
    }

    pub(super) fn end_checkout(&self, checkout: usize) {
        self.state.borrow_mut().checkouts.remove(checkout);
    }

    pub(super) fn stats(&self) -> Stats {
        let st = self.state.borrow();
        (st.counters).snapshot(st.idle.len(), st.active(), st.queue.len(), self.config.max_size)
    }

    pub(super) fn close(&self) {
        let (idle, dirty, waiters) = {
            let mut st = self.state.borrow_mut();
            if st.closed {
                return;
            }
            st.closed = true;
            let idle = std::mem::take(&mut st.idle);
            let dirty = std::mem::take(&mut st.dirty);
            for _ in 0..idle.len() + dirty.len() {
                st.counters.closed.bump(CloseReason::PoolClosed);
            }
            st.slots -= idle.len() + dirty.len();
            let waiters = st.queue.take_all();
            st.kick();
            (idle, dirty, waiters)
        };
        crate::narrate!("pool: closed ({} idle connections closed)", idle.len());
        // Sockets close and wakers run outside the borrow.
        drop(idle);
        drop(dirty);
        for waker in waiters {
            waker.wake();
        }
    }
}
