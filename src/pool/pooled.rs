//! `pool::pooled`: the handle `acquire()` returns.
//!
//! [`Pooled`] is the proxy pattern (HikariCP's `ProxyConnection`, bb8's
//! and deadpool's `Object`): it derefs to the connection, and dropping it
//! returns the connection to the pool instead of closing it. Two ways out
//! of the pool on purpose: [`Pooled::detach`] keeps the connection,
//! [`Pooled::discard`] closes it.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::panic::Location;
use std::rc::Rc;

use super::inner::Shared;
use super::state::Conn;
use super::{CloseReason, Manager};

/// A checked-out connection. Derefs to it; dropping it returns it to the
/// pool (it does not close it). Hold it only as long as you need the
/// connection: a held `Pooled` is a slot nobody else can use.
pub struct Pooled<M: Manager> {
    /// `Some` until `drop`, `detach` or `discard` takes it: an `Option`
    /// because those move the connection out of a type with a `Drop`.
    conn: Option<Conn<M::Connection>>,
    shared: Rc<Shared<M>>,
    /// Our entry in the pool's checkout table (for leak detection).
    checkout: usize,
    at: &'static Location<'static>,
}

/// The message of the one invariant the accessors rely on.
const HELD: &str = "a Pooled holds its connection until it is dropped";

impl<M: Manager> Pooled<M> {
    pub(super) fn new(
        conn: Conn<M::Connection>,
        shared: Rc<Shared<M>>,
        checkout: usize,
        at: &'static Location<'static>,
    ) -> Pooled<M> {
        Pooled {
            conn: Some(conn),
            shared,
            checkout,
            at,
        }
    }

    fn inner(&self) -> &Conn<M::Connection> {
        self.conn.as_ref().expect(HELD)
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
        let conn = self.conn.take().expect(HELD);
        self.shared.end_checkout(self.checkout);
        let mut st = self.shared.state.borrow_mut();
        st.counters.closed.bump(CloseReason::Detached);
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
        &mut self.conn.as_mut().expect(HELD).raw
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
