//! `pool::manager`: what the pool needs to know about the thing it pools.
//!
//! The pool is pure policy (idle deque, slot count, waiters); everything that
//! touches the wire is behind this trait: open a connection, ping it, tell
//! its state on the way back, and reset it. connlab ships one manager,
//! [`PgManager`](super::pg::PgManager) for PostgreSQL; the tests add one that
//! opens plain TCP connections to a listener they own.
//!
//! The split copies deadpool's `Manager` (`create` / `recycle`) and bb8's
//! `ManageConnection` (`connect` / `is_valid` / `has_broken`), with one
//! difference: the check on release is synchronous and separate from the
//! asynchronous reset, because a `Drop` cannot await. The pool uses the
//! cheap check to decide, without I/O, whether a returned connection can go
//! straight back to the idle deque (the common case), needs a round trip
//! first, or must be thrown away.

use std::future::Future;

/// The state of a connection coming back to the pool, as far as can be told
/// without I/O.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Ready for the next holder as it is (Postgres: `ReadyForQuery` said idle).
    Clean,
    /// Alive but carrying session state the next holder must not inherit
    /// (Postgres: inside a transaction or a failed one). The pool runs
    /// [`Manager::reset`] before anyone else gets it.
    NeedsReset,
    /// Unusable (socket closed, protocol out of sync, a query left half read).
    /// The pool closes it and frees its slot.
    Broken,
}

/// Opens, checks and resets the pool's connections.
///
/// The futures need not be `Send`: the pool lives on one reactor thread,
/// like the connections it holds.
pub trait Manager: 'static {
    /// What the pool hands out.
    type Connection: 'static;
    /// Why connecting, validating or resetting failed.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Open a new connection (Postgres: TCP connect, startup, authentication).
    fn connect(&self) -> impl Future<Output = Result<Self::Connection, Self::Error>>;

    /// Prove the connection works with one round trip (Postgres: an empty
    /// query). Called per the pool's [`Validation`](super::Validation).
    fn validate(&self, conn: &mut Self::Connection) -> impl Future<Output = Result<(), Self::Error>>;

    /// Without I/O: can this returned connection be reused as is? Called on
    /// every release, so it must be cheap.
    fn check(&self, conn: &mut Self::Connection) -> Health;

    /// Bring a [`Health::NeedsReset`] connection back to a clean state
    /// (Postgres: `ROLLBACK`). An error discards the connection.
    fn reset(&self, conn: &mut Self::Connection) -> impl Future<Output = Result<(), Self::Error>>;
}
