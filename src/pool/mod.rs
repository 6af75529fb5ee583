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
//! releases can lose a slot (see the test
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
//! - `mod.rs`: the pool, `acquire`, release, [`Pooled`].
//! - `config.rs`: [`Config`] and the justified defaults.
//! - `manager.rs`: the [`Manager`] trait (connect, validate, check, reset).
//! - `maintenance.rs`: the background task (resets, min size, idle timeout,
//!   max lifetime, periodic validation, leak reports).
//! - `stats.rs`: [`Stats`].
//! - `pg.rs`: [`PgManager`](pg::PgManager), the PostgreSQL manager.

mod config;
mod maintenance;
mod manager;
pub mod pg;
mod stats;

pub use config::{Config, Validation, CONNECT_RETRY_MAX, DEFAULT_VALIDATION_BYPASS, MAX_LIFETIME_JITTER};
pub use manager::{Health, Manager};
pub use stats::{CloseReason, ClosedCounts, Stats, WaitTimes, WAIT_SAMPLES};

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::io;
use std::ops::{Deref, DerefMut};
use std::panic::Location;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use crate::reactor;
use stats::{Short, WaitRecorder};

/// How many leak reports [`Pool::leak_reports`] keeps (the oldest are dropped).
pub const LEAK_REPORTS_KEPT: usize = 64;

/// Why `acquire()` (or [`Pool::open`]) failed.
#[derive(Debug)]
pub enum PoolError {
    /// No connection within the acquire timeout: every slot was held and none
    /// came back, or connecting kept failing (then `last_connect_error` says why).
    Timeout {
        /// How long the acquire waited.
        waited: Duration,
        /// The pool's ceiling, for the message.
        max_size: usize,
        /// Slots in use when it gave up.
        active: usize,
        /// The most recent connect failure in this pool, if any.
        last_connect_error: Option<String>,
    },
    /// The pool was closed (or its last [`Pool`] handle dropped).
    Closed,
    /// Opening the first connections failed ([`Pool::open`] only: `acquire()`
    /// retries a failed connect until its timeout instead).
    Connect(Box<dyn std::error::Error + Send + Sync>),
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolError::Timeout {
                waited,
                max_size,
                active,
                last_connect_error,
            } => {
                write!(
                    f,
                    "pool acquire timed out after {waited:?} ({active}/{max_size} slots in use"
                )?;
                match last_connect_error {
                    Some(e) => write!(f, "; last connect error: {e})"),
                    None => write!(f, ")"),
                }
            }
            PoolError::Closed => f.write_str("pool is closed"),
            PoolError::Connect(e) => write!(f, "pool could not open a connection: {e}"),
        }
    }
}

impl std::error::Error for PoolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PoolError::Connect(e) => Some(e.as_ref()),
            _ => None,
        }
    }
}

impl From<PoolError> for io::Error {
    fn from(e: PoolError) -> io::Error {
        let kind = match e {
            PoolError::Timeout { .. } => io::ErrorKind::TimedOut,
            PoolError::Closed => io::ErrorKind::NotConnected,
            PoolError::Connect(_) => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}

/// A connection held too long, as reported by leak detection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeakReport {
    /// The pool's number for the connection (see [`Pooled::id`]).
    pub conn_id: u64,
    /// Where `acquire()` was called (`#[track_caller]`).
    pub acquired_at: &'static Location<'static>,
    /// How long it had been held when reported.
    pub held_for: Duration,
}

impl fmt::Display for LeakReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "connection #{} acquired at {} has been held for {}: leaked?",
            self.conn_id,
            self.acquired_at,
            Short(self.held_for)
        )
    }
}

/// A connection with the pool's bookkeeping.
struct Conn<C> {
    raw: C,
    id: u64,
    /// When to close it instead of reusing it: creation + max lifetime -
    /// jitter.
    retire_at: Option<Instant>,
}

/// An entry of the idle deque.
struct Idle<C> {
    conn: Conn<C>,
    /// Last returned by a holder: the idle timeout counts from here.
    since: Instant,
    /// Last known alive (returned, or validated): the bypass window and
    /// periodic validation count from here.
    checked: Instant,
}

/// What a queued waiter is handed.
enum Grant<C> {
    /// A connection, fresh from a release.
    Conn(Conn<C>),
    /// A slot, freed by a discarded connection: connect yourself.
    Permit,
}

struct Waiter {
    id: u64,
    waker: Waker,
}

/// A checked-out connection, for leak detection.
struct Checkout {
    conn_id: u64,
    at: &'static Location<'static>,
    /// `None` when leak detection is off and nothing else needed the clock.
    since: Option<Instant>,
    reported: bool,
}

#[derive(Default)]
struct MaintenanceState {
    running: bool,
    kicked: bool,
    waker: Option<Waker>,
}

struct State<C> {
    idle: VecDeque<Idle<C>>,
    /// Idle + checked out + granted + connecting + validating + resetting.
    slots: usize,
    waiters: VecDeque<Waiter>,
    /// Grants made to waiters that have not polled yet, by waiter id.
    granted: Vec<(u64, Grant<C>)>,
    next_waiter: u64,
    /// Returned inside a transaction; waiting for the background task's reset.
    dirty: VecDeque<Conn<C>>,
    /// Checked-out connections (a slab: `free` lists the vacant entries).
    checkouts: Vec<Option<Checkout>>,
    free_checkouts: Vec<usize>,
    closed: bool,
    next_conn_id: u64,
    /// xorshift64 state for the lifetime jitter.
    rng: u64,
    maintenance: MaintenanceState,
    acquires: u64,
    created: u64,
    connect_errors: u64,
    last_connect_error: Option<String>,
    closed_counts: ClosedCounts,
    timeouts: u64,
    leaks: u64,
    leak_reports: VecDeque<LeakReport>,
    waits: WaitRecorder,
}

struct Shared<M: Manager> {
    manager: M,
    config: Config,
    state: RefCell<State<M::Connection>>,
    /// Does `acquire()` need the time (for the validation bypass window or
    /// leak detection)? Fixed at construction.
    clock_on_acquire: bool,
    /// Live [`Pool`] handles. The last one dropped closes the pool; the
    /// `Rc` count cannot be used for that because [`Pooled`] handles and the
    /// background task also hold the shared state.
    handles: Cell<usize>,
}

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
        let state = State {
            idle: VecDeque::with_capacity(config.max_size),
            slots: 0,
            waiters: VecDeque::new(),
            granted: Vec::new(),
            next_waiter: 0,
            dirty: VecDeque::new(),
            checkouts: Vec::with_capacity(config.max_size),
            free_checkouts: Vec::with_capacity(config.max_size),
            closed: false,
            next_conn_id: 1,
            rng: jitter_seed(),
            maintenance: MaintenanceState::default(),
            acquires: 0,
            created: 0,
            connect_errors: 0,
            last_connect_error: None,
            closed_counts: ClosedCounts::default(),
            timeouts: 0,
            leaks: 0,
            leak_reports: VecDeque::new(),
            waits: WaitRecorder::new(),
        };
        let clock_on_acquire =
            matches!(config.validation, Validation::OnAcquire { .. }) || config.leak_threshold.is_some();
        let shared = Shared {
            manager,
            config,
            state: RefCell::new(state),
            clock_on_acquire,
            handles: Cell::new(1),
        };
        Pool {
            shared: Rc::new(shared),
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
            let slot = SlotGuard::take(shared);
            match shared.manager.connect().await {
                Ok(raw) => {
                    let conn = shared.adopt(raw);
                    slot.defuse();
                    shared.make_available(conn);
                }
                Err(e) => {
                    shared.note_connect_error(&e);
                    return Err(PoolError::Connect(Box::new(e)));
                }
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
                shared.state.borrow_mut().waits.record(now - started);
                Ok(shared.hand_out(conn, at, Some(now)))
            }
            Ok(Err(e)) => Err(e),
            Err(_elapsed) => {
                let mut st = shared.state.borrow_mut();
                st.timeouts += 1;
                let active = st.slots - st.idle.len();
                crate::narrate!(
                    "pool: acquire timed out after {limit:?} ({active}/{} in use)",
                    shared.config.max_size
                );
                Err(PoolError::Timeout {
                    waited: started.elapsed(),
                    max_size: shared.config.max_size,
                    active,
                    last_connect_error: st.last_connect_error.clone(),
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
        self.shared.state.borrow().leak_reports.iter().cloned().collect()
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

/// Where `try_idle` left an acquire.
enum Step<C> {
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
    // ANCHOR: try_idle
    /// The story's Q9 in four lines: idle? pop. Room? create. Else wait.
    fn try_idle(&self) -> Step<M::Connection> {
        let mut st = self.state.borrow_mut();
        if st.closed {
            return Step::Closed;
        }
        // Invariant: the idle deque is empty while anyone waits, because a
        // release serves the first waiter before the deque. So popping here
        // never jumps the queue.
        debug_assert!(st.idle.is_empty() || st.waiters.is_empty());
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
        if st.slots < self.config.max_size && st.waiters.is_empty() {
            st.slots += 1;
            return Step::Connect;
        }
        Step::Wait
    }
    // ANCHOR_END: try_idle

    /// Drive one acquire to a connection: validate, connect, or queue, as
    /// many times as it takes. Every slot it holds across an `.await` is in
    /// a [`SlotGuard`], so dropping this future at any point frees it.
    async fn obtain(&self, first: Step<M::Connection>) -> Result<Conn<M::Connection>, PoolError> {
        let mut step = first;
        loop {
            step = match step {
                Step::Ready(conn, _) => return Ok(conn),
                Step::Closed => return Err(PoolError::Closed),
                Step::Validate(conn) => {
                    let mut held = SlotGuard::holding(self, conn);
                    let checked = self.manager.validate(held.raw_mut()).await;
                    match checked {
                        Ok(()) => return Ok(held.into_conn()),
                        Err(e) => {
                            crate::narrate!("pool: validation failed, closing connection: {e}");
                            held.discard(CloseReason::ValidationFailed);
                            self.try_idle()
                        }
                    }
                }
                Step::Connect => return self.connect_in_slot(SlotGuard::owned(self)).await,
                Step::Wait => match self.wait_for_grant().await? {
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
                Ok(raw) => {
                    let conn = self.adopt(raw);
                    slot.defuse();
                    return Ok(conn);
                }
                Err(e) => {
                    crate::narrate!("pool: connect failed, retrying in {pause:?}: {e}");
                    self.note_connect_error(&e);
                    reactor::sleep(pause).await;
                    pause = (pause * 2).min(CONNECT_RETRY_MAX);
                }
            }
        }
    }

    fn wait_for_grant(&self) -> WaitForGrant<'_, M> {
        WaitForGrant { shared: self, id: None }
    }

    /// Wrap a freshly opened connection: give it an id and a retirement time.
    fn adopt(&self, raw: M::Connection) -> Conn<M::Connection> {
        let mut st = self.state.borrow_mut();
        st.created += 1;
        let id = st.next_conn_id;
        st.next_conn_id += 1;
        let retire_at = self.config.max_lifetime.map(|life| {
            let jitter = life.mul_f64(MAX_LIFETIME_JITTER * unit_random(&mut st.rng));
            Instant::now() + life - jitter
        });
        crate::narrate!(
            "pool: opened connection #{id} ({} of {})",
            st.slots,
            self.config.max_size
        );
        Conn { raw, id, retire_at }
    }

    fn note_connect_error(&self, e: &M::Error) {
        let mut st = self.state.borrow_mut();
        st.connect_errors += 1;
        st.last_connect_error = Some(e.to_string());
    }

    fn hand_out(
        self: &Rc<Self>,
        conn: Conn<M::Connection>,
        at: &'static Location<'static>,
        now: Option<Instant>,
    ) -> Pooled<M> {
        let mut st = self.state.borrow_mut();
        st.acquires += 1;
        let record = Checkout {
            conn_id: conn.id,
            at,
            since: now,
            reported: false,
        };
        let checkout = match st.free_checkouts.pop() {
            Some(i) => {
                st.checkouts[i] = Some(record);
                i
            }
            None => {
                st.checkouts.push(Some(record));
                st.checkouts.len() - 1
            }
        };
        crate::narrate!(
            "pool: acquire at {at} -> connection #{} ({} idle, {} waiting)",
            conn.id,
            st.idle.len(),
            st.waiters.len()
        );
        Pooled {
            conn: Some(conn),
            shared: Rc::clone(self),
            checkout,
            at,
        }
    }

    // ANCHOR: release
    /// A holder gave a connection back (its [`Pooled`] was dropped).
    fn release(&self, mut conn: Conn<M::Connection>, checkout: usize) {
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
    fn make_available(&self, conn: Conn<M::Connection>) {
        self.make_available_at(conn, Instant::now());
    }

    fn make_available_at(&self, conn: Conn<M::Connection>, now: Instant) {
        let mut st = self.state.borrow_mut();
        if st.closed {
            self.discard_locked(&mut st, conn, CloseReason::PoolClosed);
            return;
        }
        match st.waiters.pop_front() {
            Some(waiter) => {
                crate::narrate!(
                    "pool: connection #{} handed to the first of {} waiters",
                    conn.id,
                    st.waiters.len() + 1
                );
                st.granted.push((waiter.id, Grant::Conn(conn)));
                waiter.waker.wake();
            }
            None => {
                st.idle.push_back(Idle {
                    conn,
                    since: now,
                    checked: now,
                });
            }
        }
    }
    // ANCHOR_END: release

    fn discard(&self, conn: Conn<M::Connection>, reason: CloseReason) {
        let mut st = self.state.borrow_mut();
        self.discard_locked(&mut st, conn, reason);
    }

    /// Close a connection and free its slot (passing the slot to the first
    /// waiter as a permit to connect).
    fn discard_locked(&self, st: &mut State<M::Connection>, conn: Conn<M::Connection>, reason: CloseReason) {
        crate::narrate!("pool: closing connection #{} ({reason:?})", conn.id);
        st.closed_counts.bump(reason);
        drop(conn);
        self.free_slot_locked(st);
    }

    fn free_slot_locked(&self, st: &mut State<M::Connection>) {
        st.slots -= 1;
        if st.closed {
            return;
        }
        if let Some(waiter) = st.waiters.pop_front() {
            st.slots += 1;
            st.granted.push((waiter.id, Grant::Permit));
            waiter.waker.wake();
        } else if st.slots < self.config.effective_min() {
            st.kick();
        }
    }

    /// A waiter that will never claim its grant (dropped): pass it on.
    fn pass_on(&self, grant: Grant<M::Connection>) {
        match grant {
            Grant::Conn(conn) => self.make_available(conn),
            Grant::Permit => self.free_slot_locked(&mut self.state.borrow_mut()),
        }
    }

    fn end_checkout(&self, checkout: usize) {
        let mut st = self.state.borrow_mut();
        if let Some(entry) = st.checkouts.get_mut(checkout) {
            *entry = None;
            st.free_checkouts.push(checkout);
        }
    }

    fn stats(&self) -> Stats {
        let st = self.state.borrow();
        Stats {
            idle: st.idle.len(),
            active: st.slots - st.idle.len(),
            waiting: st.waiters.len(),
            max_size: self.config.max_size,
            acquires: st.acquires,
            created: st.created,
            connect_errors: st.connect_errors,
            closed: st.closed_counts,
            timeouts: st.timeouts,
            leaks: st.leaks,
            wait: st.waits.percentiles(),
        }
    }

    fn close(&self) {
        let (idle, dirty, waiters) = {
            let mut st = self.state.borrow_mut();
            if st.closed {
                return;
            }
            st.closed = true;
            let idle = std::mem::take(&mut st.idle);
            let dirty = std::mem::take(&mut st.dirty);
            for _ in 0..idle.len() + dirty.len() {
                st.closed_counts.bump(CloseReason::PoolClosed);
            }
            st.slots -= idle.len() + dirty.len();
            let waiters = std::mem::take(&mut st.waiters);
            st.kick();
            (idle, dirty, waiters)
        };
        crate::narrate!("pool: closed ({} idle connections closed)", idle.len());
        // Sockets close and wakers run outside the borrow.
        drop(idle);
        drop(dirty);
        for waiter in waiters {
            waiter.waker.wake();
        }
    }
}

impl<C> State<C> {
    /// Wake the background task now rather than at its next tick.
    fn kick(&mut self) {
        self.maintenance.kicked = true;
        if let Some(waker) = self.maintenance.waker.take() {
            waker.wake();
        }
    }
}

/// The queued part of an acquire: resolves to the grant a release (or a
/// freed slot) made to this waiter's id.
struct WaitForGrant<'a, M: Manager> {
    shared: &'a Shared<M>,
    id: Option<u64>,
}

impl<M: Manager> Future for WaitForGrant<'_, M> {
    type Output = Result<Grant<M::Connection>, PoolError>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let mut st = self.shared.state.borrow_mut();
        let Some(id) = self.id else {
            if st.closed {
                return Poll::Ready(Err(PoolError::Closed));
            }
            let id = st.next_waiter;
            st.next_waiter += 1;
            st.waiters.push_back(Waiter {
                id,
                waker: cx.waker().clone(),
            });
            drop(st);
            self.id = Some(id);
            return Poll::Pending;
        };
        if let Some(i) = st.granted.iter().position(|(g, _)| *g == id) {
            let (_, grant) = st.granted.swap_remove(i);
            drop(st);
            self.id = None;
            return Poll::Ready(Ok(grant));
        }
        match st.waiters.iter_mut().find(|w| w.id == id) {
            Some(waiter) => {
                if !waiter.waker.will_wake(cx.waker()) {
                    waiter.waker = cx.waker().clone();
                }
                Poll::Pending
            }
            // Not queued and not granted: `close()` emptied the queue.
            None => {
                drop(st);
                self.id = None;
                Poll::Ready(Err(PoolError::Closed))
            }
        }
    }
}

impl<M: Manager> Drop for WaitForGrant<'_, M> {
    fn drop(&mut self) {
        let Some(id) = self.id else { return };
        let mut st = self.shared.state.borrow_mut();
        if let Some(i) = st.waiters.iter().position(|w| w.id == id) {
            st.waiters.remove(i);
        } else if let Some(i) = st.granted.iter().position(|(g, _)| *g == id) {
            // Served, but gone before it could claim the grant: the next
            // waiter (or the idle deque) gets it instead.
            let (_, grant) = st.granted.swap_remove(i);
            drop(st);
            self.shared.pass_on(grant);
        }
    }
}

/// A slot held across an `.await`, optionally with the connection in it. If
/// dropped before [`SlotGuard::defuse`] or [`SlotGuard::into_conn`] (the
/// future holding it was cancelled, or timed out), the connection, whose
/// protocol state is now unknown, is closed and the slot freed.
struct SlotGuard<'a, M: Manager> {
    shared: &'a Shared<M>,
    conn: Option<Conn<M::Connection>>,
    armed: bool,
}

impl<'a, M: Manager> SlotGuard<'a, M> {
    /// Take a free slot (the caller checked there is one).
    fn take(shared: &'a Shared<M>) -> SlotGuard<'a, M> {
        shared.state.borrow_mut().slots += 1;
        SlotGuard::owned(shared)
    }

    /// Guard a slot already counted as ours.
    fn owned(shared: &'a Shared<M>) -> SlotGuard<'a, M> {
        SlotGuard {
            shared,
            conn: None,
            armed: true,
        }
    }

    fn holding(shared: &'a Shared<M>, conn: Conn<M::Connection>) -> SlotGuard<'a, M> {
        SlotGuard {
            shared,
            conn: Some(conn),
            armed: true,
        }
    }

    fn raw_mut(&mut self) -> &mut M::Connection {
        &mut self
            .conn
            .as_mut()
            .expect("SlotGuard::holding always has a connection")
            .raw
    }

    fn into_conn(mut self) -> Conn<M::Connection> {
        self.armed = false;
        self.conn.take().expect("SlotGuard::holding always has a connection")
    }

    fn discard(mut self, reason: CloseReason) {
        self.armed = false;
        match self.conn.take() {
            Some(conn) => self.shared.discard(conn, reason),
            None => self.shared.free_slot_locked(&mut self.shared.state.borrow_mut()),
        }
    }

    /// The slot now belongs to a connection that will be handed out or
    /// released normally.
    fn defuse(mut self) {
        self.armed = false;
    }
}

impl<M: Manager> Drop for SlotGuard<'_, M> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        match self.conn.take() {
            Some(conn) => self.shared.discard(conn, CloseReason::Broken),
            None => self.shared.free_slot_locked(&mut self.shared.state.borrow_mut()),
        }
    }
}

/// A checked-out connection. Derefs to it; dropping it returns it to the
/// pool (it does not close it). Hold it only as long as you need the
/// connection: a held `Pooled` is a slot nobody else can use.
pub struct Pooled<M: Manager> {
    /// `Some` until `drop`, `detach` or `discard` takes it.
    conn: Option<Conn<M::Connection>>,
    shared: Rc<Shared<M>>,
    /// Our entry in the pool's checkout table (for leak detection).
    checkout: usize,
    at: &'static Location<'static>,
}

impl<M: Manager> Pooled<M> {
    fn inner(&self) -> &Conn<M::Connection> {
        self.conn
            .as_ref()
            .expect("a Pooled holds its connection until it is dropped")
    }

    /// The pool's number for this connection: the same number means the
    /// same connection (and, for Postgres, the same server process).
    pub fn id(&self) -> u64 {
        self.inner().id
    }

    /// Where this connection was acquired (the `acquire()` call site).
    pub fn acquired_at(&self) -> &'static Location<'static> {
        self.at
    }

    /// Take the connection out of the pool for good: its slot is freed (the
    /// pool may open another) and the connection is yours to keep or close.
    pub fn detach(mut self) -> M::Connection {
        let conn = self
            .conn
            .take()
            .expect("a Pooled holds its connection until it is dropped");
        self.shared.end_checkout(self.checkout);
        let mut st = self.shared.state.borrow_mut();
        st.closed_counts.bump(CloseReason::Detached);
        self.shared.free_slot_locked(&mut st);
        conn.raw
    }

    /// Close the connection instead of returning it, for one you know is
    /// broken (a query failed halfway, the protocol is out of sync). The
    /// pool frees the slot. Counted as [`CloseReason::Broken`].
    pub fn discard(mut self) {
        if let Some(conn) = self.conn.take() {
            self.shared.end_checkout(self.checkout);
            self.shared.discard(conn, CloseReason::Broken);
        }
    }
}

impl<M: Manager> Deref for Pooled<M> {
    type Target = M::Connection;

    fn deref(&self) -> &M::Connection {
        &self.inner().raw
    }
}

impl<M: Manager> DerefMut for Pooled<M> {
    fn deref_mut(&mut self) -> &mut M::Connection {
        &mut self
            .conn
            .as_mut()
            .expect("a Pooled holds its connection until it is dropped")
            .raw
    }
}

impl<M: Manager> Drop for Pooled<M> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.shared.release(conn, self.checkout);
        }
    }
}

impl<M: Manager> fmt::Debug for Pooled<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pooled").field("id", &self.id()).finish_non_exhaustive()
    }
}

/// A uniform random number in [0, 1) from xorshift64 (Marsaglia, 2003):
/// jitter needs spread, not cryptographic quality, so no crate for it.
fn unit_random(state: &mut u64) -> f64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// A nonzero xorshift seed from the kernel (`getrandom(2)`), so two pools
/// started together do not jitter in lockstep.
fn jitter_seed() -> u64 {
    // A fixed seed is only a worse spread, not an error, if the kernel
    // refuses (it does not on any supported Linux).
    getrandom::u64().unwrap_or(0x9E37_79B9_7F4A_7C15) | 1
}
