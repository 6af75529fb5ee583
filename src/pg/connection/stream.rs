//! Streaming a large result in batches of rows, with bounded memory.
//!
//! [`query`](Connection::query) buffers every row before it returns, which
//! is right for the small results most queries have and wrong for a
//! million-row export. The extended protocol has the answer built in
//! (protocol §55.2.3, "Extended Query"): Execute takes a *row limit*, and a
//! portal that has more rows answers PortalSuspended instead of
//! CommandComplete; the next Execute on the same portal resumes it.
//!
//! ```text
//! → Parse "" sql → Bind "" "" → Describe P "" → Execute "" 1000 → Flush
//! ← ParseComplete ← BindComplete ← RowDescription ← DataRow × 1000 ← PortalSuspended
//! → Execute "" 1000 → Flush          ← DataRow × 1000 ← PortalSuspended
//! → Execute "" 1000 → Flush          ← DataRow × 321  ← CommandComplete "SELECT 2321"
//! → Sync                             ← ReadyForQuery
//! ```
//!
//! Flush, not Sync, ends each request: Sync would end the implicit
//! transaction and with it the portal. So memory holds one batch at a time,
//! and the server, not our buffer, keeps the rest (it runs the query
//! lazily, as a cursor). The price is a round trip per batch; pick a batch
//! of a few hundred to a few thousand rows. The result caps
//! ([`Config::max_result_rows`](crate::pg::config::Config::max_result_rows),
//! `max_result_bytes`) apply to each batch, not to the whole stream.
//!
//! The alternative not taken: reading DataRows one at a time from a single
//! Execute with no limit. That streams too, but the server keeps sending
//! while we stop reading, and the socket buffers fill: back-pressure through
//! TCP works, but abandoning the stream halfway means reading (or closing
//! the connection over) the rest of the result. With a row limit there is
//! never more than one batch in flight.
//!
//! A [`RowStream`] dropped before its end leaves the portal open and no
//! Sync sent. The connection remembers, and its next request sends Sync
//! first and reads the rest of that one batch (at most `rows_per_fetch`
//! rows) up to ReadyForQuery: the connection stays usable and in step.

use crate::pg::protocol::backend::Message;
use crate::pg::protocol::frontend::{self, Target};
use crate::pg::protocol::Oid;

use super::rows::{self, Column, Row, Rows};
use super::{bind, unexpected, Connection, Error, Short, ToSql};

/// A query's rows, fetched `rows_per_fetch` at a time from an open portal;
/// see the module docs.
#[derive(Debug)]
pub struct RowStream<'c> {
    conn: &'c mut Connection,
    rows_per_fetch: i32,
    /// The current batch.
    batch: Rows,
    /// The next row of `batch` to hand out.
    next: usize,
    /// Rows handed out so far, over every batch.
    read: u64,
    /// CommandComplete (or an error) and ReadyForQuery have been read.
    done: bool,
}

impl Connection {
    // ANCHOR: query_stream
    /// Run `sql` and read its rows `rows_per_fetch` at a time (at least 1),
    /// holding one batch in memory:
    ///
    /// ```no_run
    /// # async fn export(conn: &mut connlab::pg::Connection) -> Result<(), connlab::pg::Error> {
    /// let mut rows = conn.query_stream("SELECT id, body FROM events", &[], 1000).await?;
    /// while let Some(row) = rows.next().await? {
    ///     let id: i64 = row.get("id")?;
    ///     # let _ = id;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// Always the unnamed statement (the statement cache is not used): a
    /// query big enough to stream does not gain from skipping a Parse.
    pub async fn query_stream(
        &mut self,
        sql: &str,
        params: &[&dyn ToSql],
        rows_per_fetch: u32,
    ) -> Result<RowStream<'_>, Error> {
        self.refuse_session_state(sql)?;
        self.begin().await?;
        let rows_per_fetch = i32::try_from(rows_per_fetch.max(1)).unwrap_or(i32::MAX);
        let types: Vec<Oid> = params.iter().map(|p| p.type_oid()).collect();
        frontend::parse(&mut self.out, "", sql, &types)?;
        crate::narrate!("→ Parse \"\" {:?} {types:?}", Short(sql));
        bind(&mut self.out, "", params)?;
        frontend::describe(&mut self.out, Target::Portal, "")?;
        let mut stream = RowStream {
            conn: self,
            rows_per_fetch,
            batch: Rows::new(std::sync::Arc::from([])),
            next: 0,
            read: 0,
            done: false,
        };
        stream.fetch().await?;
        Ok(stream)
    }
    // ANCHOR_END: query_stream

    /// What a dropped [`RowStream`] left: Sync, then its last batch's
    /// rest, skipped, up to ReadyForQuery.
    pub(super) async fn finish_abandoned_stream(&mut self) -> Result<(), Error> {
        if !std::mem::take(&mut self.session.sync_pending) {
            return Ok(());
        }
        self.wire.check()?;
        frontend::sync(&mut self.out);
        crate::narrate!("→ Sync (a RowStream was dropped before its end; skip the rest of its batch)");
        self.wire.send(&mut self.out).await?;
        self.wire.restart_count();
        self.until_ready(|_| Ok(())).await.map(drop)
    }
}

impl RowStream<'_> {
    /// The next row, `None` after the last. A row borrows the stream, so
    /// convert what you need before asking for the next one.
    pub async fn next(&mut self) -> Result<Option<Row<'_>>, Error> {
        while self.next == self.batch.len() {
            if self.done {
                return Ok(None);
            }
            self.fetch().await?;
        }
        self.next += 1;
        self.read += 1;
        Ok(self.batch.get(self.next - 1))
    }

    /// The columns (empty until the first batch is read, which
    /// `query_stream` does).
    pub fn columns(&self) -> &[Column] {
        self.batch.columns()
    }

    /// The command tag, once the last row has been read. Note that the
    /// server counts the rows of the *last Execute* only: 2321 rows in
    /// batches of 1000 end with `SELECT 321`. [`rows_read`](Self::rows_read)
    /// has the total.
    pub fn tag(&self) -> Option<&str> {
        self.done.then(|| self.batch.tag())
    }

    /// How many rows [`next`](Self::next) has handed out.
    pub fn rows_read(&self) -> u64 {
        self.read
    }

    /// Ask for the next batch (Execute with a row limit, then Flush) and
    /// read it, up to PortalSuspended (more to come) or CommandComplete
    /// (the end, which Sync and ReadyForQuery then close).
    async fn fetch(&mut self) -> Result<(), Error> {
        let conn = &mut *self.conn;
        frontend::execute(&mut conn.out, "", self.rows_per_fetch)?;
        frontend::flush(&mut conn.out);
        crate::narrate!("→ Execute \"\" {} → Flush", self.rows_per_fetch);
        conn.wire.send(&mut conn.out).await?;
        conn.wire.restart_count();
        self.batch.clear();
        self.next = 0;
        loop {
            let frame = conn.wire.next_frame().await?;
            let msg = conn.wire.decode(frame)?;
            match conn.session.asynchronous(msg) {
                None | Some(Message::ParseComplete | Message::BindComplete | Message::NoData) => {}
                Some(Message::RowDescription(desc)) => self.batch.set_columns(rows::columns_of(&desc)),
                Some(Message::DataRow(row)) => self.batch.push(&row).map_err(|e| conn.wire.break_with(e))?,
                Some(Message::PortalSuspended) => return Ok(()),
                Some(Message::CommandComplete { tag }) => {
                    self.batch.set_tag(tag);
                    conn.session.track(&mut conn.cache, tag);
                    break;
                }
                Some(Message::EmptyQueryResponse) => break,
                Some(Message::ErrorResponse(db)) => {
                    if super::error::is_fatal_severity(&db) {
                        return Err(conn.wire.break_with(db.into()));
                    }
                    self.done = true;
                    // The server skips to the Sync; send it and read the
                    // ReadyForQuery, so the connection is ready again.
                    conn.sync_and_wait().await?;
                    return Err(db.into());
                }
                Some(other) => return Err(conn.wire.break_with(unexpected("in a streamed query", &other))),
            }
        }
        self.done = true;
        conn.sync_and_wait().await
    }
}

impl Connection {
    /// End a request that was kept open with Flush: Sync, then read up to
    /// ReadyForQuery, where nothing else may arrive.
    async fn sync_and_wait(&mut self) -> Result<(), Error> {
        frontend::sync(&mut self.out);
        crate::narrate!("→ Sync");
        self.wire.send(&mut self.out).await?;
        self.until_ready(|msg| Err(unexpected("after Sync", &msg)))
            .await
            .map(drop)
    }
}

/// Leave a note for the connection: its next request must send Sync and
/// skip the rest of this stream's batch first.
impl Drop for RowStream<'_> {
    fn drop(&mut self) {
        if !self.done && !self.conn.wire.is_broken() {
            crate::narrate!("(RowStream dropped before its end: Sync deferred to the next request)");
            self.conn.session.sync_pending = true;
            self.conn.wire.in_flight.set(false);
        }
    }
}
