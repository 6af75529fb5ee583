//! `reactor`: the event loop. One per thread, over any [`Backend`], with a
//! tiny executor so that `async fn` code (the Postgres client, the pool)
//! runs on it.
//!
//! ```
//! use connlab::poller::Backend;
//! use connlab::reactor;
//! use std::time::Duration;
//!
//! let answer = reactor::block_on(Backend::Epoll, async {
//!     let child = reactor::spawn(async { 6 * 7 });
//!     reactor::sleep(Duration::from_millis(10)).await;
//!     child.await
//! })?;
//! assert_eq!(answer, 42);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! What a reactor is: a loop that owns a [`Poller`], a table of I/O sources
//! (fds and the tasks waiting on them), a set of timer deadlines, and a run
//! queue of tasks to poll. It sleeps in the poller's wait while nothing can
//! make progress, which is the whole point (Q8: an idle server costs zero
//! CPU), and wakes exactly the tasks whose fds or deadlines are ready.
//!
//! Files:
//! - `mod.rs` (this file): [`block_on`], [`spawn`], one turn of the loop;
//! - `executor.rs`: tasks, wakers, the run queue, [`JoinHandle`];
//! - `timers.rs`: [`sleep`], [`timeout`], the deadline set;
//! - `io.rs`: [`Registration`], readiness, and how each [`Mode`] talks to the poller;
//! - `signal.rs`: [`Signals`], Ctrl-C as an awaitable fd (`signalfd`);
//! - `memory.rs`: [`with_scratch`], the read buffer all connections share, and [`bookkeeping`], what the reactor keeps per connection;
//! - `slab.rs`: the table that turns a token back into a source or a task.
//!
//! Single-threaded on purpose: tasks are `!Send`, state lives in `Cell`
//! and `RefCell`, and there are no locks except the one behind wakers
//! (which the `std::task` contract requires to be `Send`). A program that
//! wants more cores runs one reactor per thread, as Redis and nginx do.
//! `docs/reactor.md` walks through one turn of the loop with a trace.

mod executor;
mod io;
mod memory;
mod signal;
mod slab;
mod timers;

pub use executor::JoinHandle;
pub use io::{Direction, Registration};
pub use memory::{bookkeeping, with_scratch, Bookkeeping, SCRATCH_SIZE};
pub use signal::Signals;
pub use timers::{sleep, sleep_until, timeout, Elapsed, Sleep, Timeout};

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::poller::{self, Backend, Events, Interest, Mode, Poller, Token};
use executor::{Shared, Task, TaskId, TaskWaker, MAIN_TASK};
use slab::Slab;
use timers::TimerQueue;

/// The token the reactor's own eventfd is registered under. Source tokens
/// are slab keys, which count up from 0 and never reach it.
const WAKER_TOKEN: Token = Token(usize::MAX);

/// How many events one wait may return. More ready fds than this simply
/// wait for the next turn (level-triggered ones are reported again;
/// edge-triggered ones stay queued in the kernel's ready list).
const EVENTS_PER_WAIT: usize = 1024;

/// How many I/O operations a task may complete in one poll before it is
/// made to yield, even though its fds are still ready.
///
/// Without a cap, one connection whose peer never stops sending, or one
/// listener under a connection flood, would keep its task busy forever
/// ("try the syscall first" always succeeds) and starve every other task,
/// timer and fd. With it, a busy task does 128 operations, goes to the
/// back of the run queue, and the loop turns. This is also the accept
/// loop's per-turn cap: a listener drains at most 128 connections per turn.
/// 128 is tokio's number too (its "coop budget"): large enough that a
/// syscall-heavy turn amortises the loop's overhead, small enough that a
/// turn stays in the tens of microseconds.
pub const IO_BUDGET_PER_TURN: u32 = 128;

/// Counters for one reactor, read with [`stats`]. Tests use them to prove
/// "no busy loop" by counting waits rather than timing them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReactorStats {
    /// Calls to the poller's wait (one per loop turn).
    pub waits: u64,
    /// Readiness events those waits returned (including the reactor's own eventfd).
    pub events: u64,
    /// Timers whose deadline passed and woke their task.
    pub timers_fired: u64,
    /// Task polls (the `block_on` future counts as a task).
    pub tasks_polled: u64,
    /// Tasks created with [`spawn`].
    pub tasks_spawned: u64,
    /// Spawned tasks that panicked. Each ended alone (see [`JoinHandle`]);
    /// a detached one's panic is seen only here and on stderr.
    pub tasks_panicked: u64,
    /// `add`/`modify`/`delete` calls made to the poller (on epoll, each is
    /// one `epoll_ctl` syscall).
    pub poller_changes: u64,
    /// Times another thread woke the sleeping reactor through its eventfd.
    pub cross_thread_wakes: u64,
    /// Tasks alive right now (spawned, not yet finished or dropped).
    pub live_tasks: u64,
    /// I/O sources registered right now (sockets in use).
    pub live_sources: u64,
}

/// How to build a reactor: which backend, and which [`Mode`] to register
/// fds in. [`block_on`] is `Config::new(backend).block_on(future)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// The poller underneath.
    pub backend: Backend,
    /// How fds are registered; `None` picks the backend's best
    /// ([`Config::default_mode`]).
    pub mode: Option<Mode>,
    /// Treat a short read as "drained" and wait for the next event instead
    /// of reading again to hear `EAGAIN` (on by default; see `io.rs`).
    /// Off, every read-until-drained costs one extra `read` that fails;
    /// `docs/sockets.md` measures the difference.
    pub short_read_means_drained: bool,
}

impl Config {
    /// A configuration for `backend` with its default mode.
    pub const fn new(backend: Backend) -> Config {
        Config {
            backend,
            mode: None,
            short_read_means_drained: true,
        }
    }

    /// Set [`Config::short_read_means_drained`].
    pub const fn short_read_means_drained(mut self, on: bool) -> Config {
        self.short_read_means_drained = on;
        self
    }

    /// Use `mode` (fails at `block_on` if the backend cannot honour it).
    pub const fn mode(mut self, mode: Mode) -> Config {
        self.mode = Some(mode);
        self
    }

    /// Edge on epoll (one `epoll_ctl` per fd for its whole life), Level on
    /// poll and select (edge-triggered readiness is epoll's alone).
    pub const fn default_mode(backend: Backend) -> Mode {
        match backend {
            Backend::Epoll => Mode::Edge,
            Backend::Poll | Backend::Select => Mode::Level,
        }
    }

    /// Run `future` to completion on a new reactor on this thread; see [`block_on`].
    pub fn block_on<F: Future>(self, future: F) -> std::io::Result<F::Output> {
        let reactor = Rc::new(Reactor::new(self)?);
        let installed = CURRENT.with(|current| {
            let mut current = current.borrow_mut();
            if current.is_some() {
                return false;
            }
            *current = Some(reactor.clone());
            true
        });
        if !installed {
            return Err(std::io::Error::other(
                "reactor::block_on called inside block_on on the same thread; spawn the future or await it instead",
            ));
        }
        let _guard = Uninstall(reactor.clone());
        reactor.run(future)
    }
}

/// Run `future` on a new reactor over `backend`, with any tasks it
/// [`spawn`]s, and return its output when it finishes.
///
/// Tasks still running when `future` finishes are dropped (their sockets
/// closed, their timers cancelled), as in tokio. Fails, without panicking,
/// if the backend cannot be opened, or if the poller's wait fails.
pub fn block_on<F: Future>(backend: Backend, future: F) -> std::io::Result<F::Output> {
    Config::new(backend).block_on(future)
}

/// Start `future` as a new task on this thread's reactor. It runs
/// concurrently with the caller (interleaved at `.await`s, on one thread).
/// Await the [`JoinHandle`] for its output, or drop it to let the task run
/// detached.
///
/// # Panics
///
/// Outside [`block_on`]: there is no reactor to run the task, and that is
/// a programming error, not a runtime condition (tokio panics too).
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    Reactor::current_or_panic("spawn").spawn_task(future)
}

/// The backend of this thread's reactor.
///
/// # Panics
///
/// Outside [`block_on`].
pub fn current_backend() -> Backend {
    Reactor::current_or_panic("current_backend").backend
}

/// The mode this thread's reactor registers fds in.
///
/// # Panics
///
/// Outside [`block_on`].
pub fn current_mode() -> Mode {
    Reactor::current_or_panic("current_mode").mode
}

/// The counters of this thread's reactor; outside [`block_on`], those of
/// the last reactor that ran on this thread (all zero if none has).
pub fn stats() -> ReactorStats {
    match Reactor::current() {
        Some(reactor) => reactor.snapshot(),
        None => LAST_STATS.with(Cell::get),
    }
}

/// Give other tasks a turn: return `Pending` once, waking ourselves first.
pub async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<Reactor>>> = const { RefCell::new(None) };
    static LAST_STATS: Cell<ReactorStats> = Cell::new(ReactorStats::default());
    /// I/O operations left for the task being polled right now.
    static BUDGET: Cell<u32> = const { Cell::new(IO_BUDGET_PER_TURN) };
}

/// Spend one unit of the running task's I/O budget; false when it is empty.
pub(crate) fn consume_budget() -> bool {
    BUDGET.with(|budget| match budget.get() {
        0 => false,
        left => {
            budget.set(left - 1);
            true
        }
    })
}

/// The reactor's state. Everything is behind `Cell`/`RefCell` because a
/// task, while being polled, calls back in (to spawn, to set a timer, to
/// wait on an fd); the rule that keeps `RefCell` from panicking is that no
/// borrow is held while a task is polled or a future is dropped.
pub(crate) struct Reactor {
    backend: Backend,
    mode: Mode,
    poller: RefCell<Box<dyn Poller>>,
    sources: RefCell<Slab<io::Source>>,
    tasks: RefCell<Slab<Task>>,
    timers: RefCell<TimerQueue>,
    shared: Arc<Shared>,
    running: Cell<bool>,
    short_read_means_drained: bool,
    next_generation: Cell<u64>,
    stats: Cell<ReactorStats>,
}

impl Reactor {
    fn new(config: Config) -> std::io::Result<Reactor> {
        let mut poller = config.backend.open()?;
        let mode = config.mode.unwrap_or(Config::default_mode(config.backend));
        if !poller.supports(mode) {
            return Err(poller::unsupported_mode(config.backend, mode));
        }
        let shared = Arc::new(Shared::new()?);
        use std::os::fd::AsRawFd;
        poller.add(shared.eventfd.as_raw_fd(), WAKER_TOKEN, Interest::READABLE, Mode::Level)?;
        Ok(Reactor {
            backend: config.backend,
            mode,
            poller: RefCell::new(poller),
            sources: RefCell::new(Slab::new()),
            tasks: RefCell::new(Slab::new()),
            timers: RefCell::new(TimerQueue::default()),
            shared,
            running: Cell::new(true),
            short_read_means_drained: config.short_read_means_drained,
            next_generation: Cell::new(1),
            stats: Cell::new(ReactorStats::default()),
        })
    }

    pub(crate) fn current() -> Option<Rc<Reactor>> {
        CURRENT.with(|current| current.borrow().clone())
    }

    pub(crate) fn current_or_panic(what: &str) -> Rc<Reactor> {
        Reactor::current().unwrap_or_else(|| {
            panic!("connlab::reactor::{what} called outside reactor::block_on: there is no reactor on this thread")
        })
    }

    pub(crate) fn is_running(&self) -> bool {
        self.running.get()
    }

    pub(crate) fn bump(&self, change: impl FnOnce(&mut ReactorStats)) {
        let mut stats = self.stats.get();
        change(&mut stats);
        self.stats.set(stats);
    }

    fn snapshot(&self) -> ReactorStats {
        let mut stats = self.stats.get();
        stats.live_tasks = self.tasks.borrow().len() as u64;
        stats.live_sources = self.sources.borrow().len() as u64;
        stats
    }

    fn next_generation(&self) -> u64 {
        let generation = self.next_generation.get();
        self.next_generation.set(generation + 1);
        generation
    }

    fn refill_budget(&self) {
        BUDGET.with(|budget| budget.set(IO_BUDGET_PER_TURN));
    }

    /// The loop. Each turn: run ready tasks, compute the timeout, wait,
    /// dispatch events, fire timers.
    fn run<F: Future>(&self, future: F) -> std::io::Result<F::Output> {
        let mut main = pin!(future);
        let main_state = TaskWaker::new(MAIN_TASK, self.shared.clone());
        let main_waker = Waker::from(main_state.clone());
        let mut events = Events::with_capacity(EVENTS_PER_WAIT);
        let mut batch: Vec<TaskId> = Vec::new();
        main_waker.wake_by_ref();
        // ANCHOR: turn
        loop {
            // 1. Run every task that was woken since the last turn. Tasks
            //    woken *during* this step wait for the next turn, so one
            //    task that keeps waking itself cannot starve the poller.
            self.shared.take_queue(&mut batch);
            for id in batch.drain(..) {
                if id == MAIN_TASK {
                    main_state.unschedule();
                    self.refill_budget();
                    self.bump(|s| s.tasks_polled += 1);
                    if let Poll::Ready(output) = main.as_mut().poll(&mut Context::from_waker(&main_waker)) {
                        return Ok(output);
                    }
                } else {
                    self.poll_task(id);
                }
            }

            // 2. How long may we sleep? Not at all if a task is already
            //    queued; until the earliest deadline if there is a timer;
            //    otherwise until an fd (or another thread) wakes us.
            let now = Instant::now();
            let mut timeout = self
                .timers
                .borrow()
                .next_deadline()
                .map(|deadline| deadline.saturating_duration_since(now));
            if timeout != Some(Duration::ZERO) && !self.shared.prepare_to_sleep() {
                timeout = Some(Duration::ZERO);
            }

            // 3. Wait: the one place the thread blocks.
            let waited = self.poller.borrow_mut().wait(&mut events, timeout);
            self.shared.woke_up();
            waited?;
            self.bump(|s| {
                s.waits += 1;
                s.events += events.len() as u64;
            });

            // 4. Dispatch: mark each fd's readiness and wake its tasks.
            for event in &events {
                if event.token == WAKER_TOKEN {
                    self.shared.eventfd.reset()?;
                    self.bump(|s| s.cross_thread_wakes += 1);
                } else {
                    self.dispatch(event);
                }
            }

            // 5. Timers: wake every task whose deadline has passed.
            let fired = self.timers.borrow_mut().fire_due(Instant::now());
            self.bump(|s| s.timers_fired += fired);
        }
        // ANCHOR_END: turn
    }
}

/// Restores the thread to "no reactor" when `block_on` ends, even by panic.
struct Uninstall(Rc<Reactor>);

impl Drop for Uninstall {
    fn drop(&mut self) {
        // Tasks are dropped while the reactor is still current, because
        // their destructors deregister sockets and cancel timers.
        self.0.drop_all_tasks();
        self.0.timers.borrow_mut().clear();
        self.0.running.set(false);
        LAST_STATS.with(|last| last.set(self.0.snapshot()));
        CURRENT.with(|current| current.borrow_mut().take());
    }
}
