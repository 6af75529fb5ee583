//! `pool::guard`: slots held across an `.await`, given back by `Drop`.
//!
//! Between "a slot is counted as ours" and "the connection in it is handed
//! out or back", a future awaits: a connect, a ping, a `ROLLBACK`. If that
//! future is dropped there (its acquire timed out, a `select` chose another
//! branch, the reactor shut down), nothing after the `.await` runs. The
//! guards are what runs instead:
//!
//! - [`SlotGuard`]: a slot with nothing in it yet (we are connecting).
//!   Dropped, it frees the slot, which passes to the first waiter as a
//!   permit to connect. [`SlotGuard::fill`] turns it into a connection.
//! - [`ConnGuard`]: a slot with a connection in it (we are pinging or
//!   resetting it). Dropped, it closes the connection, whose protocol
//!   state is now unknown (a reply may be half read), and frees the slot.
//!
//! Two types rather than one with an `Option<Conn>` inside: each state has
//! only the methods that make sense in it, and nothing has to `expect` a
//! connection to be there.

use super::inner::Shared;
use super::state::Conn;
use super::{CloseReason, Manager};

/// A slot counted as ours, with no connection in it yet.
pub(super) struct SlotGuard<'a, M: Manager> {
    shared: &'a Shared<M>,
    /// Counted in the close statistics when the slot is freed by `Drop`
    /// with a connection in it (see [`ConnGuard`]).
    closes: Option<CloseReason>,
}

impl<'a, M: Manager> SlotGuard<'a, M> {
    /// Take a free slot (the caller checked there is one).
    pub(super) fn take(shared: &'a Shared<M>) -> SlotGuard<'a, M> {
        shared.state.borrow_mut().slots += 1;
        SlotGuard::owned(shared)
    }

    /// Guard a slot already counted as ours (a grant, or `try_idle`'s).
    pub(super) fn owned(shared: &'a Shared<M>) -> SlotGuard<'a, M> {
        SlotGuard { shared, closes: None }
    }

    /// A connection was opened in this slot: number it, and let the slot
    /// belong to it from now on.
    pub(super) fn fill(self, raw: M::Connection) -> Conn<M::Connection> {
        let conn = self.shared.adopt(raw);
        self.defuse();
        conn
    }

    /// The slot now belongs to a connection that will be handed out or
    /// released normally.
    fn defuse(self) {
        // Forgetting is safe and leaks nothing: the guard holds a
        // reference and a `Copy` enum, and its only job is its `Drop`.
        std::mem::forget(self);
    }
}

impl<M: Manager> Drop for SlotGuard<'_, M> {
    fn drop(&mut self) {
        let mut st = self.shared.state.borrow_mut();
        if let Some(reason) = self.closes {
            st.counters.closed.bump(reason);
        }
        self.shared.free_slot_locked(&mut st);
    }
}

/// A slot with a connection in it, across a ping or a reset.
///
/// No `Drop` of its own: dropping it drops `conn` first (the socket
/// closes) and then `slot`, whose `Drop` counts the close as
/// [`CloseReason::Broken`] and frees the slot.
pub(super) struct ConnGuard<'a, M: Manager> {
    conn: Conn<M::Connection>,
    slot: SlotGuard<'a, M>,
}

impl<'a, M: Manager> ConnGuard<'a, M> {
    /// Guard `conn`, whose slot is already counted.
    pub(super) fn new(shared: &'a Shared<M>, conn: Conn<M::Connection>) -> ConnGuard<'a, M> {
        ConnGuard {
            conn,
            slot: SlotGuard {
                shared,
                closes: Some(CloseReason::Broken),
            },
        }
    }

    pub(super) fn id(&self) -> u64 {
        self.conn.id
    }

    pub(super) fn raw_mut(&mut self) -> &mut M::Connection {
        &mut self.conn.raw
    }

    /// The ping or reset worked: the connection goes on, in its slot.
    pub(super) fn into_conn(self) -> Conn<M::Connection> {
        let ConnGuard { conn, slot } = self;
        slot.defuse();
        conn
    }

    /// Close the connection, counted under `reason`, and free its slot.
    pub(super) fn discard(self, reason: CloseReason) {
        let ConnGuard { conn, slot } = self;
        let shared = slot.shared;
        slot.defuse();
        shared.discard(conn, reason);
    }
}
