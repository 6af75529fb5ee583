//! `pool::state`: the pool's memory, as plain data.
//!
//! Everything the pool knows sits in one [`State`] behind the pool's
//! `RefCell`: the idle deque, the slot count, the waiter queue, the
//! connections waiting for a reset, the checkout table that leak detection
//! reads, and the background task's flags. The counters that only feed
//! [`Stats`](super::Stats) live apart, in [`Counters`],
//! so a reader can tell the state that decides what happens next from the
//! numbers that merely record what happened (bb8 keeps the same line
//! between its `PoolInternals` and its statistics).
//!
//! No method here does I/O or awaits; the policy that moves connections
//! between these fields is in `inner.rs`.

use std::collections::VecDeque;
use std::panic::Location;
use std::task::Waker;
use std::time::Instant;

use super::stats::Counters;
use super::waiter::WaitQueue;

/// A connection with the pool's bookkeeping.
pub(super) struct Conn<C> {
    pub(super) raw: C,
    pub(super) id: u64,
    /// When to close it instead of reusing it: creation + max lifetime -
    /// jitter.
    pub(super) retire_at: Option<Instant>,
}

/// An entry of the idle deque.
pub(super) struct Idle<C> {
    pub(super) conn: Conn<C>,
    /// Last returned by a holder: the idle timeout counts from here.
    pub(super) since: Instant,
    /// Last known alive (returned, or validated): the bypass window and
    /// periodic validation count from here.
    pub(super) checked: Instant,
}

/// A checked-out connection, for leak detection.
pub(super) struct Checkout {
    pub(super) conn_id: u64,
    pub(super) at: &'static Location<'static>,
    /// `None` when leak detection is off and nothing else needed the clock.
    pub(super) since: Option<Instant>,
    pub(super) reported: bool,
}

/// The checked-out connections: a slab, so a [`Pooled`](super::Pooled)
/// finds its entry by index and a release is O(1) with no allocation once
/// the table has grown to `max_size`.
pub(super) struct Checkouts {
    entries: Vec<Option<Checkout>>,
    /// Indices of the vacant entries, reused first.
    free: Vec<usize>,
}

impl Checkouts {
    pub(super) fn with_capacity(n: usize) -> Checkouts {
        Checkouts {
            entries: Vec::with_capacity(n),
            free: Vec::with_capacity(n),
        }
    }

    /// Record a checkout; the index is the holder's key to [`Checkouts::remove`].
    pub(super) fn insert(&mut self, record: Checkout) -> usize {
        match self.free.pop() {
            Some(i) => {
                self.entries[i] = Some(record);
                i
            }
            None => {
                self.entries.push(Some(record));
                self.entries.len() - 1
            }
        }
    }

    pub(super) fn remove(&mut self, index: usize) {
        if let Some(entry @ Some(_)) = self.entries.get_mut(index) {
            *entry = None;
            self.free.push(index);
        }
    }

    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Checkout> {
        self.entries.iter_mut().flatten()
    }
}

/// What the background task and the pool tell each other.
#[derive(Default)]
pub(super) struct MaintenanceState {
    /// The task exists (on some reactor).
    pub(super) running: bool,
    /// Someone asked for a round before the next tick.
    pub(super) kicked: bool,
    /// The sleeping task, to wake on a kick.
    pub(super) waker: Option<Waker>,
    /// A replenishing task is opening connections up to `min_size`.
    pub(super) replenishing: bool,
}

/// The pool's state: what decides the next step.
pub(super) struct State<C> {
    pub(super) idle: VecDeque<Idle<C>>,
    /// Idle + checked out + granted + connecting + validating + resetting.
    pub(super) slots: usize,
    pub(super) queue: WaitQueue<C>,
    /// Returned inside a transaction; waiting for the background task's reset.
    pub(super) dirty: VecDeque<Conn<C>>,
    pub(super) checkouts: Checkouts,
    pub(super) closed: bool,
    pub(super) next_conn_id: u64,
    /// xorshift64 state for the lifetime jitter.
    pub(super) rng: u64,
    pub(super) maintenance: MaintenanceState,
    /// What happened so far, for [`Stats`](super::Stats).
    pub(super) counters: Counters,
}

impl<C> State<C> {
    pub(super) fn new(max_size: usize) -> State<C> {
        State {
            idle: VecDeque::with_capacity(max_size),
            slots: 0,
            queue: WaitQueue::new(),
            dirty: VecDeque::new(),
            checkouts: Checkouts::with_capacity(max_size),
            closed: false,
            next_conn_id: 1,
            rng: jitter_seed(),
            maintenance: MaintenanceState::default(),
            counters: Counters::default(),
        }
    }

    /// Slots in use by something other than the idle deque.
    pub(super) fn active(&self) -> usize {
        self.slots - self.idle.len()
    }

    /// Wake the background task now rather than at its next tick.
    pub(super) fn kick(&mut self) {
        self.maintenance.kicked = true;
        if let Some(waker) = self.maintenance.waker.take() {
            waker.wake();
        }
    }

    /// A uniform random number in [0, 1) from xorshift64 (Marsaglia, 2003):
    /// jitter needs spread, not cryptographic quality, so no crate for it.
    pub(super) fn unit_random(&mut self) -> f64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A nonzero xorshift seed from the kernel (`getrandom(2)`), so two pools
/// started together do not jitter in lockstep.
fn jitter_seed() -> u64 {
    // A fixed seed is only a worse spread, not an error, if the kernel
    // refuses (it does not on any supported Linux).
    getrandom::u64().unwrap_or(0x9E37_79B9_7F4A_7C15) | 1
}
