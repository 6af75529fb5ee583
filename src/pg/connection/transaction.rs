//! Transactions: `BEGIN`, then `COMMIT` or `ROLLBACK`, and what a dropped
//! one leaves behind.
//!
//! A transaction on the wire is nothing but three statements: `BEGIN`
//! opens a block, every later statement runs inside it (ReadyForQuery says
//! `T`, or `E` once one failed), and `COMMIT` or `ROLLBACK` ends it
//! (ReadyForQuery says `I` again). [`Transaction`] is a guard that holds
//! the connection for the block's lifetime and ends it one way or the
//! other:
//!
//! ```text
//! conn.transaction()   → Query "BEGIN"     ← CommandComplete BEGIN    ← ReadyForQuery T
//! tx.query(...)        → Bind/Execute/Sync ← ... rows ...             ← ReadyForQuery T
//! tx.commit()          → Query "COMMIT"    ← CommandComplete COMMIT   ← ReadyForQuery I
//! ```
//!
//! # Dropped without `commit()` or `rollback()`
//!
//! `Drop` cannot wait for the server, so a transaction dropped while still
//! open (an early `?` return, a panic) cannot roll back on the spot. It
//! marks the connection instead, and the connection's **next request sends
//! `ROLLBACK` first** (one extra round trip, before anything else runs).
//! No statement can therefore run inside an abandoned transaction by
//! accident. A pooled connection is rolled back by the pool's reset on
//! release, which sees the open block in the transaction status (that
//! `ROLLBACK` then serves for both). tokio-postgres instead sends the
//! `ROLLBACK` from `Drop` without waiting, which needs its background task
//! to read the answer; a connection read by its caller cannot do that.
//!
//! Not here: nested transactions (`SAVEPOINT`), isolation levels as
//! arguments (run `SET TRANSACTION ISOLATION LEVEL ...` as the first
//! statement), retry loops for `40001` (the caller knows whether the work
//! may be repeated).
//!
//! Spec: the PostgreSQL manual, "Transactions" (tutorial), `BEGIN`,
//! `COMMIT`, `ROLLBACK` in the SQL commands reference.

use std::ops::{Deref, DerefMut};

use crate::pg::protocol::TransactionStatus;

use super::{Connection, Error};

/// An open transaction block on a borrowed [`Connection`], which it
/// dereferences to: run queries on it as on the connection. End it with
/// [`commit`](Self::commit) or [`rollback`](Self::rollback); dropping it
/// open rolls it back at the connection's next request (see the module
/// docs).
#[derive(Debug)]
pub struct Transaction<'c> {
    conn: &'c mut Connection,
    /// `commit` or `rollback` ran: nothing left to do on drop.
    ended: bool,
}

impl Connection {
    // ANCHOR: transaction
    /// `BEGIN`, and a guard to `commit()` or `rollback()` with:
    ///
    /// ```no_run
    /// # async fn transfer(conn: &mut connlab::pg::Connection) -> Result<(), connlab::pg::Error> {
    /// let mut tx = conn.transaction().await?;
    /// tx.execute("UPDATE accounts SET balance = balance - 10 WHERE id = $1", &[&1i32]).await?;
    /// tx.execute("UPDATE accounts SET balance = balance + 10 WHERE id = $1", &[&2i32]).await?;
    /// tx.commit().await // any `?` above drops `tx`: the next request rolls it back first
    /// # }
    /// ```
    ///
    /// Refused (nothing sent) if a transaction block is already open:
    /// PostgreSQL would only warn and carry on, and the inner `commit()`
    /// would commit the outer block.
    pub async fn transaction(&mut self) -> Result<Transaction<'_>, Error> {
        self.roll_back_abandoned().await?;
        if self.session.status != TransactionStatus::Idle {
            return Err(Error::Unsupported(
                "transaction() inside a transaction block (nested transactions need SAVEPOINT)",
            ));
        }
        self.simple_query("BEGIN").await?;
        Ok(Transaction {
            conn: self,
            ended: false,
        })
    }
    // ANCHOR_END: transaction

    /// Run the `ROLLBACK` a dropped [`Transaction`] left for the next
    /// request, if its block is still open (the user may have ended it by
    /// hand through the guard).
    pub(super) async fn roll_back_abandoned(&mut self) -> Result<(), Error> {
        if !std::mem::take(&mut self.session.rollback_pending) || self.session.status == TransactionStatus::Idle {
            return Ok(());
        }
        crate::narrate!("a Transaction was dropped open: ROLLBACK before the next request");
        self.run_simple_query("ROLLBACK").await.map(drop)
    }
}

impl Transaction<'_> {
    /// `COMMIT`. If a statement in the block failed, the server has
    /// already aborted it, answers `COMMIT` with the tag `ROLLBACK`, and
    /// this returns [`Error::RolledBack`]: nothing was committed.
    pub async fn commit(mut self) -> Result<(), Error> {
        self.ended = true;
        let results = self.conn.simple_query("COMMIT").await?;
        match results.last().map(|rows| rows.tag()) {
            Some("ROLLBACK") => Err(Error::RolledBack),
            _ => Ok(()),
        }
    }

    /// `ROLLBACK`: undo everything the block did.
    pub async fn rollback(mut self) -> Result<(), Error> {
        self.ended = true;
        self.conn.simple_query("ROLLBACK").await.map(drop)
    }
}

impl Deref for Transaction<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl DerefMut for Transaction<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        self.conn
    }
}

/// Leave a note for the connection: roll back before the next request.
impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if !self.ended {
            crate::narrate!("(Transaction dropped open: ROLLBACK deferred to the next request)");
            self.conn.session.rollback_pending = true;
        }
    }
}
