//! COPY: moving many rows as one stream instead of one statement per row.
//!
//! Protocol §55.2.6, "COPY Operations". A `COPY ... FROM STDIN` sent as a
//! Query is answered with CopyInResponse; from then on the client sends
//! CopyData messages (any split of the stream: the server concatenates
//! them), then CopyDone, and the server answers CommandComplete
//! (`COPY 1000000`) and ReadyForQuery. CopyFail instead abandons the COPY,
//! and the server answers an ErrorResponse that quotes the reason.
//! `COPY ... TO STDOUT` is the mirror image: CopyOutResponse, one CopyData
//! per row, CopyDone, CommandComplete, ReadyForQuery.
//!
//! ```text
//! → Query "COPY t FROM STDIN"        ← CopyInResponse
//! → CopyData 64 KiB → CopyData 64 KiB … → CopyDone
//!                                    ← CommandComplete "COPY 1000000" ← ReadyForQuery
//! ```
//!
//! Memory stays bounded whatever the size: [`CopyIn`] keeps at most
//! [`COPY_BUFFER`] bytes before it writes them, and a write that the socket
//! cannot take yet waits on the reactor (backpressure: a slow server slows
//! the producer down instead of filling our memory). [`CopyOut`] hands out
//! one CopyData at a time, straight from the read buffer.
//!
//! An error the server finds in the data (a malformed row, a constraint)
//! is reported when the stream ends: the server keeps reading and
//! discarding what follows, as libpq's `PQputCopyData` also leaves it to
//! `PQgetResult`. Either way the connection is usable afterwards.

use crate::pg::protocol::backend::Message;
use crate::pg::protocol::frontend;

use super::{unexpected, Connection, Error, Short};

/// How many bytes [`CopyIn::send`] gathers before it writes: large enough
/// that the per-message and per-syscall costs vanish, small enough to stay
/// in cache. (libpq flushes at 8 KiB; tokio-postgres at 4 KiB per message,
/// but sends as the sink is polled.)
pub const COPY_BUFFER: usize = 64 * 1024;

impl Connection {
    /// Start `COPY ... FROM STDIN`: send the statement and wait for the
    /// server's CopyInResponse. Feed the rows with [`CopyIn::send`], then
    /// [`CopyIn::finish`] (or [`CopyIn::fail`] to abandon the COPY).
    ///
    /// Dropping the [`CopyIn`] without either leaves the server waiting for
    /// data; the connection then reports itself broken rather than guess.
    pub async fn copy_in(&mut self, sql: &str) -> Result<CopyIn<'_>, Error> {
        self.start_copy(sql, Way::In).await?;
        Ok(CopyIn { conn: self })
    }

    /// Start `COPY ... TO STDOUT`: send the statement and wait for the
    /// server's CopyOutResponse. Read the stream with [`CopyOut::read`].
    pub async fn copy_out(&mut self, sql: &str) -> Result<CopyOut<'_>, Error> {
        self.start_copy(sql, Way::Out).await?;
        Ok(CopyOut { conn: self, rows: None })
    }

    /// Query, then read until the expected Copy*Response. A statement that
    /// fails (a syntax error, a missing table) answers ErrorResponse and
    /// ReadyForQuery instead: that error is returned and the connection
    /// stays usable.
    async fn start_copy(&mut self, sql: &str, way: Way) -> Result<(), Error> {
        self.begin().await?;
        frontend::query(&mut self.out, sql)?;
        crate::narrate!("→ Query {:?}", Short(sql));
        self.wire.send(&mut self.out).await?;
        loop {
            let frame = self.wire.next_frame().await?;
            let msg = self.wire.decode(frame)?;
            match self.session.asynchronous(msg) {
                None => {}
                Some(Message::CopyInResponse(_)) if way == Way::In => return Ok(()),
                Some(Message::CopyOutResponse(_)) if way == Way::Out => return Ok(()),
                Some(Message::ErrorResponse(db)) => {
                    if super::error::is_fatal_severity(&db) {
                        return Err(self.wire.break_with(db.into()));
                    }
                    // The statement failed before any COPY began.
                    self.until_ready(|_| Ok(())).await?;
                    return Err(db.into());
                }
                Some(other) => {
                    let expected = match way {
                        Way::In => "CopyInResponse",
                        Way::Out => "CopyOutResponse",
                    };
                    let when = format!("while waiting for {expected}");
                    return Err(self.wire.break_with(unexpected(&when, &other)));
                }
            }
        }
    }
}

/// Which way a COPY streams, and so which response starts it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Way {
    /// `FROM STDIN`: CopyInResponse.
    In,
    /// `TO STDOUT`: CopyOutResponse.
    Out,
}

/// A `COPY ... FROM STDIN` in progress. See [`Connection::copy_in`].
#[derive(Debug)]
pub struct CopyIn<'c> {
    conn: &'c mut Connection,
}

impl CopyIn<'_> {
    /// Append `data` to the stream, in the COPY format the statement named
    /// (text: tab-separated columns, one row per line). Rows may be split
    /// across calls. Writes whenever [`COPY_BUFFER`] bytes have gathered,
    /// waiting while the socket is full.
    pub async fn send(&mut self, data: &[u8]) -> Result<(), Error> {
        for piece in data.chunks(COPY_BUFFER) {
            frontend::copy_data(&mut self.conn.out, piece)?;
            if self.conn.out.len() >= COPY_BUFFER {
                self.conn.wire.send(&mut self.conn.out).await?;
            }
        }
        Ok(())
    }

    /// End the stream (CopyDone) and wait for the server's verdict: the
    /// number of rows copied, or the error it found in them.
    pub async fn finish(self) -> Result<u64, Error> {
        frontend::copy_done(&mut self.conn.out);
        crate::narrate!("→ CopyDone");
        self.conn.wire.send(&mut self.conn.out).await?;
        finish_copy(self.conn).await
    }

    /// Abandon the COPY (CopyFail): the server rolls it back and answers
    /// with an error quoting `reason`, which is what this returns once the
    /// connection is ready again.
    pub async fn fail(self, reason: &str) -> Result<Error, Error> {
        // Bytes gathered but not sent are part of the abandoned stream.
        self.conn.out.clear();
        frontend::copy_fail(&mut self.conn.out, reason)?;
        crate::narrate!("→ CopyFail {:?}", Short(reason));
        self.conn.wire.send(&mut self.conn.out).await?;
        match finish_copy(self.conn).await {
            Err(Error::Db(db)) => Ok(Error::Db(db)),
            Err(other) => Err(other),
            Ok(_) => Err(Error::Unexpected("the server accepted a COPY we failed".into())),
        }
    }
}

/// A `COPY ... TO STDOUT` in progress. See [`Connection::copy_out`].
#[derive(Debug)]
pub struct CopyOut<'c> {
    conn: &'c mut Connection,
    rows: Option<u64>,
}

impl CopyOut<'_> {
    /// Append the next CopyData (one row, in the server's COPY format) to
    /// `buf`. Returns `false` once the stream has ended (CopyDone and the
    /// server's CommandComplete have arrived); [`rows`](Self::rows) then
    /// says how many rows came. Reading row by row keeps memory at one
    /// row, whatever the table's size.
    pub async fn read(&mut self, buf: &mut Vec<u8>) -> Result<bool, Error> {
        if self.rows.is_some() {
            return Ok(false);
        }
        loop {
            let frame = self.conn.wire.next_frame().await?;
            let msg = self.conn.wire.decode(frame)?;
            match self.conn.session.asynchronous(msg) {
                None => {}
                Some(Message::CopyData(data)) => {
                    buf.extend_from_slice(data);
                    return Ok(true);
                }
                Some(Message::CopyDone) => {
                    self.rows = Some(finish_copy(self.conn).await?);
                    return Ok(false);
                }
                // The server failed mid-stream (a cancel, a statement timeout).
                Some(Message::ErrorResponse(db)) => {
                    if super::error::is_fatal_severity(&db) {
                        return Err(self.conn.wire.break_with(db.into()));
                    }
                    self.conn.until_ready(|_| Ok(())).await?;
                    self.rows = Some(0);
                    return Err(db.into());
                }
                Some(other) => return Err(self.conn.wire.break_with(unexpected("in COPY TO STDOUT", &other))),
            }
        }
    }

    /// The row count from CommandComplete, once [`read`](Self::read) has
    /// returned `false`.
    pub fn rows(&self) -> Option<u64> {
        self.rows
    }
}

/// After CopyDone (either way): CommandComplete `COPY n`, or an error, then
/// ReadyForQuery.
async fn finish_copy(conn: &mut Connection) -> Result<u64, Error> {
    let mut rows = 0;
    let failure = conn
        .until_ready(|msg| match msg {
            Message::CommandComplete { tag } => {
                rows = tag.rsplit(' ').next().and_then(|n| n.parse().ok()).unwrap_or(0);
                Ok(())
            }
            Message::ErrorResponse(_) => Ok(()),
            other => Err(unexpected("after CopyDone", &other)),
        })
        .await?;
    match failure {
        Some(db) => Err(db.into()),
        None => Ok(rows),
    }
}
