//! `pool`: the connection pool, or "what does `pool.acquire()` do?" (the
//! story's Q9, Q20, Q21).
//!
//! A pool is three pieces of memory in your own process, and nothing on the
//! wire:
//!
//! - an **idle deque** of open, authenticated connections nobody holds;
//! - a **slot count**: connections open or being opened (idle + held +
//!   being connected, validated or reset), never above `max_size`;
//! - a **FIFO queue of waiters**: acquires that found no idle connection and
//!   no free slot.
//!
//! `acquire()` pops an idle connection; else, under `max_size`, takes a slot
//! and connects; else queues until a release hands it a connection, or the
//! acquire timeout fires. The handle it returns, [`Pooled`], derefs to the
//! connection and gives it back when dropped: dropping does not close, it
//! returns (the proxy pattern of HikariCP's `ProxyConnection.close()`).
//!
//! # Single-threaded, on purpose
//!
//! The pool's state sits in an `Rc<RefCell<..>>` with no lock and no atomic:
//! the pool lives on one reactor thread, like the connections it holds (a
//! connection's socket is registered with that thread's reactor, so it could
//! not be used elsewhere anyway). An acquire on the fast path is a
//! `RefCell` borrow, a `VecDeque::pop_back` and a clock read. A pool shared
//! by threads would need a `Mutex` (or HikariCP's lock-free `ConcurrentBag`)
//! around the same state and wakers that can cross threads; that is the
//! alternative not taken, and one pool per reactor thread is how the
//! thread-per-core servers in the Rust world use pools anyway.
//!
//! # Idle order: LIFO
//!
//! A release pushes onto the back of the idle deque and an acquire pops from
//! the back: the most recently used connection goes out first. Its backend
//! process has warm caches, and it is the least likely to have been cut by a
//! firewall's idle timeout. Just as important, the connections at the front
//! stay unused during a lull, so the idle timeout can find them and shrink
//! the pool. FIFO (deadpool's default `QueueMode::Fifo`) spreads work over
//! every connection, which keeps all of them "recently used" and the pool at
//! its peak size forever. HikariCP also favours the most recently returned
//! connection (its thread-local lists).
//!
//! # Waiters: FIFO, with ids, and cancellation that cannot leak a slot
//!
//! A release with waiters queued does not put the connection in the idle
//! deque, where a newcomer could grab it first; it hands it to the first
//! waiter directly (a *grant*) and wakes it. A freed slot (a connection
//! discarded) is granted the same way as a *permit to connect*. Each waiter
//! has an id; a waiter dropped before it was served (its acquire timed out
//! or was cancelled) removes its id from the queue, and one dropped after
//! being granted passes the grant on to the next waiter. Every slot held
//! across an `.await` (connecting, validating) is held by a guard whose
//! `Drop` gives it back. So no interleaving of timeouts, cancellations and
//! releases can lose a slot (see `waiter.rs`, `guard.rs`, and the test
//! `cancelled_and_timed_out_acquires_leave_the_counts_exact`).
//!
//! # Reset on release: in the background task, not in `Drop`
//!
//! [`Manager::check`] looks at a returned connection without I/O (for
//! Postgres: the transaction status of the last `ReadyForQuery`). Clean: it
//! goes straight back. Inside a transaction, or a failed one: it needs a
//! `ROLLBACK`, a round trip, and `Drop` cannot await. The choice made here is
//! to queue it for the pool's background task, which resets it at once and
//! then releases it, so locks the transaction holds are freed within one
//! round trip. The alternative, resetting lazily at the next `acquire()`,
//! needs no task, but leaves an open transaction (and its locks, and the
//! oldest snapshot that holds back `VACUUM`) sitting in the idle deque until
//! someone happens to ask for a connection. Broken connections are closed
//! and their slot freed; they are never handed out.
//!
//! # Files
//!
//! Cut along the seams bb8 and deadpool use: the public face, the shared
//! policy, the plain state, and each piece of machinery in a file of its own.
//!
//! - `mod.rs`: [`Pool`], `acquire`, the public face.
//! - `inner.rs`: the policy every handle shares (find, release, discard, close).
//! - `state.rs`: the idle deque, slot count and checkout table, as plain data.
//! - `waiter.rs`: the FIFO waiter queue, grants, and the future a waiter awaits.
//! - `guard.rs`: the two guards that give a slot back if a future is dropped.
//! - `pooled.rs`: [`Pooled`], the handle that returns itself on drop.
//! - `error.rs`: [`PoolError`].
//! - `config.rs`: [`Config`] and the justified defaults.
//! - `manager.rs`: the [`Manager`] trait (connect, validate, check, reset).
//! - `maintenance.rs`: the background task (resets, min size, idle timeout,
//!   max lifetime, periodic validation, leak reports).
//! - `stats.rs`: [`Stats`], [`LeakReport`] and the counters behind them.
//! - `pg.rs`: [`PgManager`](pg::PgManager), the PostgreSQL manager.
//!
//! The name `Config` is shared with `reactor::Config` and
//! `pg::config::Config` on purpose: each is read with its module
//! (`pool::Config`), the Rust convention, and a program that needs two of
//! them imports one under another name (`use connlab::pool::Config as
//! PoolConfig;`).

mod config;
mod error;
mod guard;
mod inner;
mod maintenance;
mod manager;
pub mod pg;
mod pooled;
mod state;
mod stats;
mod waiter;

pub use config::{Config, Validation, CONNECT_RETRY_MAX, DEFAULT_VALIDATION_BYPASS, MAX_LIFETIME_JITTER};
pub use error::PoolError;
pub use manager::{Health, Manager};
pub use pooled::Pooled;
pub use stats::{CloseReason, ClosedCounts, LeakReport, Stats, WaitTimes, LEAK_REPORTS_KEPT, WAIT_SAMPLES};

use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::rc::Rc;
use std::time::Instant;

use crate::reactor;
use inner::{Shared, Step};

/// A connection pool. Cheap to clone (an `Rc`): clone it into each task
/// that needs it. Dropping the last clone closes the pool.
///
/// ```no_run
/// use connlab::pool::{Config, Pool};
/// use connlab::pool::pg::PgManager;
/// use connlab::pg::config::Config as PgConfig;
/// use connlab::poller::Backend;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// connlab::reactor::block_on(Backend::Epoll, async {
///     let manager = PgManager::new(PgConfig::from_env()?);
///     let pool = Pool::new(manager, Config::default());
///     let mut conn = pool.acquire().await?; // a slot: idle, new, or queued
///     conn.simple_query("SELECT 1").await?;
///     Ok(())                                 // conn goes back to the pool here
/// })?
/// # }
/// ```
pub struct Pool<M: Manager> {
    shared: Rc<Shared<M>>,
}

impl<M: Manager> Clone for Pool<M> {
    fn clone(&self) -> Pool<M> {
        self.shared.handles.set(self.shared.handles.get() + 1);
        Pool {
            shared: Rc::clone(&self.shared),
        }
    }
}

impl<M: Manager> Drop for Pool<M> {
    fn drop(&mut self) {
        let left = self.shared.handles.get() - 1;
        self.shared.handles.set(left);
        if left == 0 {
            self.shared.close();
        }
    }
}

impl<M: Manager> fmt::Debug for Pool<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool").field("stats", &self.stats()).finish()
    }
}

impl<M: Manager> Pool<M> {
    /// A pool that opens nothing yet: the first `acquire()` connects, and
    /// the background task (started by that first acquire, on the current
    /// reactor) fills up to `min_size`. Use [`Pool::open`] to have `min_size`
    /// connections ready before the first request, as asyncpg's
    /// `create_pool` does.
    ///
    /// # Panics
    ///
    /// If `config.max_size` is 0: such a pool could never hand anything out.
    pub fn new(manager: M, config: Config) -> Pool<M> {
        assert!(config.max_size > 0, "pool::Config::max_size must be at least 1");
        Pool {
            shared: Rc::new(Shared::new(manager, config)),
        }
    }

    /// A pool with `min_size` connections opened before it returns (one
    /// after the other), and its background task running. Fails with the
    /// first connect error, so a wrong URL or password shows up at startup
    /// rather than at the first request (HikariCP's
    /// `initializationFailTimeout` does the same by default).
    pub async fn open(manager: M, config: Config) -> Result<Pool<M>, PoolError> {
        let pool = Pool::new(manager, config);
        let shared = &pool.shared;
        // The background task starts after the fill, not before: running
        // beside it, its own replenishing would count as "opened" while
        // still connecting, and `open` could return short of `min_size`.
        while shared.state.borrow().slots < shared.config.effective_min() {
            if let Err(e) = shared.open_one().await {
                shared.note_connect_error(e.to_string());
                return Err(PoolError::Connect(Box::new(e)));
            }
        }
        shared.ensure_maintenance();
        Ok(pool)
    }

    /// The configuration the pool was built with.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// The manager (to read its settings, e.g. the server address).
    pub fn manager(&self) -> &M {
        &self.shared.manager
    }

    // ANCHOR: acquire
    /// Check out a connection: the most recently returned idle one; else,
    /// under `max_size`, a new one; else the next one released, in FIFO
    /// order. Fails after [`Config::acquire_timeout`].
    ///
    /// The call site is recorded (`#[track_caller]`) for leak reports.
    /// Dropping the returned future (a `select`, an outer timeout) gives up
    /// its place in the queue and any slot it held.
    #[track_caller]
    pub fn acquire(&self) -> impl Future<Output = Result<Pooled<M>, PoolError>> + '_ {
        let at = Location::caller();
        async move {
            // The fast path: one borrow, one pop, no timer, no allocation.
            let first = self.shared.try_idle();
            if let Step::Ready(conn, now) = first {
                // A pool used across two `block_on` calls lost its task with
                // the first reactor; restart it here (a flag check otherwise).
                self.shared.ensure_maintenance();
                return Ok(self.shared.hand_out(conn, at, now));
            }
            self.acquire_slow(first, at).await
        }
    }
    // ANCHOR_END: acquire

    async fn acquire_slow(
        &self,
        first: Step<M::Connection>,
        at: &'static Location<'static>,
    ) -> Result<Pooled<M>, PoolError> {
        let shared = &self.shared;
        shared.ensure_maintenance();
        let started = Instant::now();
        let limit = shared.config.acquire_timeout;
        match reactor::timeout(limit, shared.obtain(first)).await {
            Ok(Ok(conn)) => {
                let now = Instant::now();
                shared.state.borrow_mut().counters.waits.record(now - started);
                Ok(shared.hand_out(conn, at, Some(now)))
            }
            Ok(Err(e)) => Err(e),
            Err(_elapsed) => {
                let mut st = shared.state.borrow_mut();
                st.counters.timeouts += 1;
                let active = st.active();
                crate::narrate!(
                    "pool: acquire timed out after {limit:?} ({active}/{} in use)",
                    shared.config.max_size
                );
                Err(PoolError::Timeout {
                    waited: started.elapsed(),
                    max_size: shared.config.max_size,
                    active,
                    last_connect_error: st.counters.last_connect_error.clone(),
                })
            }
        }
    }

    /// A snapshot of the pool's gauges and counters.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// The most recent leak reports (at most [`LEAK_REPORTS_KEPT`]). Each is
    /// also written to stderr when made.
    pub fn leak_reports(&self) -> Vec<LeakReport> {
        self.shared
            .state
            .borrow()
            .counters
            .leak_reports
            .iter()
            .cloned()
            .collect()
    }

    /// Close the pool now: idle connections are closed, queued acquires fail
    /// with [`PoolError::Closed`], held connections are closed when their
    /// holders drop them, and the background task stops. Dropping the last
    /// [`Pool`] handle does the same.
    pub fn close(&self) {
        self.shared.close();
    }

    /// Has [`Pool::close`] been called (or the last handle dropped)?
    pub fn is_closed(&self) -> bool {
        self.shared.state.borrow().closed
    }
}
