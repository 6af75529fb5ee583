//! The socket and its buffers: bytes in and out, cut into whole messages.
//!
//! This file is the connection's transport, and nothing else: it knows
//! where a message starts and ends, but not what a message *means* (that is
//! the session, in `mod.rs`). The split follows mini-redis's
//! `connection.rs`: one type owns the read buffer and the framing, so the
//! protocol code above it only ever sees whole messages.
//!
//! The framing rule itself (a tag, an `Int32` length that counts itself,
//! refused if under 4 or over a cap) is not repeated here: the decoder owns
//! it, in [`Decoder::header`], and `Wire` asks it how many bytes to wait for.
//!
//! Reading, in `read(2)`-sized pieces:
//!
//! ```text
//! rbuf: [ consumed | one message ... | the next, partly read | free      ]
//!                  ^rpos                                     ^rend       ^len
//! ```

use std::cell::{Cell, RefCell};
use std::ops::Range;

use crate::pg::protocol::backend::{Header, Message};
use crate::pg::protocol::{Decoder, HEADER_SIZE};

use super::transport::Transport;
use super::{tap, Error};

/// The read buffer's starting size, like libpq's 16 KiB: most responses
/// fit in one `read(2)`.
pub(super) const READ_BUFFER: usize = 16 * 1024;
/// A read buffer grown past this for one big message shrinks back to
/// [`READ_BUFFER`] once that message has been consumed.
const MAX_IDLE_READ_BUFFER: usize = 1024 * 1024;

/// The most rows, and DataRow bytes, one request may receive
/// ([`Config::max_result_rows`](crate::pg::config::Config::max_result_rows) and
/// [`max_result_bytes`](crate::pg::config::Config::max_result_bytes)).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ResultLimits {
    pub(super) rows: Option<u64>,
    pub(super) bytes: Option<usize>,
}

/// One whole message in the read buffer: its checked header, and where its
/// bytes (header included) sit in `rbuf`.
pub(super) struct Frame {
    header: Header,
    bytes: Range<usize>,
}

/// The socket and its buffers: bytes in and out, framing, nothing else.
pub(super) struct Wire {
    /// The socket, in clear or under TLS (see `transport.rs`).
    pub(super) transport: Transport,
    /// Received bytes; `rbuf[rpos..rend]` are not yet consumed. The Vec's
    /// length is its usable capacity, so `read(2)` writes straight into it.
    rbuf: Vec<u8>,
    rpos: usize,
    rend: usize,
    decoder: Decoder,
    /// Why the connection can no longer be used, once it cannot. A cell,
    /// so that decoding (which lends out `&self`) can still record it.
    pub(super) broken: RefCell<Option<String>>,
    /// The wire tap, when one is running (see [`tap`]).
    pub(super) tap: RefCell<Option<tap::Tap>>,
    /// A request has been sent and its ReadyForQuery not yet read. If a
    /// new request finds this set, the previous one's future was dropped
    /// halfway (a `timeout` around a query, say): its answer is still on
    /// the way, and reading it as the new request's would hand one caller
    /// another's rows. So the connection is marked broken instead.
    pub(super) in_flight: Cell<bool>,
    limits: ResultLimits,
    /// Rows and DataRow bytes received since the current request began.
    received: Cell<(u64, usize)>,
}

impl Wire {
    pub(super) fn new(transport: Transport) -> Wire {
        Wire {
            transport,
            rbuf: vec![0; READ_BUFFER],
            rpos: 0,
            rend: 0,
            decoder: Decoder::new(),
            broken: RefCell::new(None),
            tap: RefCell::new(None),
            in_flight: Cell::new(false),
            limits: ResultLimits::default(),
            received: Cell::new((0, 0)),
        }
    }

    /// Cap what one request may receive as rows from now on.
    pub(super) fn set_result_limits(&mut self, limits: ResultLimits) {
        self.limits = limits;
    }

    pub(super) fn check(&self) -> Result<(), Error> {
        match &*self.broken.borrow() {
            Some(why) => Err(Error::Closed(why.clone())),
            None => Ok(()),
        }
    }

    /// Refuse any message longer than `max` bytes from now on (see
    /// [`Decoder::with_max_message_len`]): a low cap while the server is
    /// still a stranger, the configured one after authentication.
    pub(super) fn set_max_message_len(&mut self, max: usize) {
        self.decoder = Decoder::with_max_message_len(max);
    }

    pub(super) fn is_broken(&self) -> bool {
        self.broken.borrow().is_some()
    }

    /// Start a request: refuse if the connection is broken, or if the last
    /// request was abandoned before its ReadyForQuery (see `in_flight`).
    /// The alternative, reading and discarding up to the old ReadyForQuery,
    /// would make the new caller wait for the old query (a `pg_sleep(10)`
    /// it never asked for); libpq and tokio-postgres also give up on such a
    /// connection.
    pub(super) fn begin(&self) -> Result<(), Error> {
        self.check()?;
        if self.in_flight.get() {
            let e = Error::Closed(
                "a previous request on this connection was abandoned before its reply was read \
                 (its future was dropped), so the connection is out of step with the server"
                    .to_string(),
            );
            return Err(self.break_with(e));
        }
        self.restart_count();
        Ok(())
    }

    /// Count result rows and bytes against the caps from zero again: a new
    /// request, or the next batch of a streamed one.
    pub(super) fn restart_count(&self) {
        self.received.set((0, 0));
    }

    /// Remember that the stream is unusable, and pass the error on.
    pub(super) fn break_with(&self, e: Error) -> Error {
        self.broken.borrow_mut().get_or_insert_with(|| e.to_string());
        e
    }

    /// Send `out` (then empty it) with as few `write(2)`s as the kernel allows.
    pub(super) async fn send(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        self.check()?;
        if let Some(tap) = self.tap.borrow_mut().as_mut() {
            tap.sent(out);
        }
        // Set before the write: a write abandoned halfway desynchronises too.
        self.in_flight.set(true);
        let sent = self.transport.write_all(out).await;
        out.clear();
        sent.map_err(|e| self.break_with(e.into()))
    }

    // ANCHOR: next_frame
    /// Wait until one whole message is buffered, consume it and return
    /// where it is. The decoder reads the 5-byte header and says how many
    /// bytes the message needs (or that the header is one no server sends,
    /// before we wait for or make room for the bytes it promises);
    /// [`decode`](Self::decode) parses the body, once.
    pub(super) async fn next_frame(&mut self) -> Result<Frame, Error> {
        self.check()?;
        loop {
            let buffered = &self.rbuf[self.rpos..self.rend];
            match self.decoder.header(buffered) {
                Err(e) => return Err(self.break_with(e.into())),
                Ok(None) => self.make_room(HEADER_SIZE),
                Ok(Some(header)) if buffered.len() >= header.frame_len() => {
                    let bytes = self.rpos..self.rpos + header.frame_len();
                    self.rpos = bytes.end;
                    return Ok(Frame { header, bytes });
                }
                Ok(Some(header)) => self.make_room(header.frame_len()),
            }
            self.fill().await?;
        }
    }
    // ANCHOR_END: next_frame

    // ANCHOR: make_room
    /// Make space after `rend` for the next `read(2)` of a message of
    /// `total` bytes that starts at `rpos`: move the unread bytes to the
    /// front when the message would not fit behind them, and grow only when
    /// the buffer is full of a message that is still incomplete.
    ///
    /// Growth follows the bytes that have *arrived*, never the length the
    /// header announced: the buffer doubles (capped at `total`) each time
    /// it fills up. A header promising a gigabyte therefore costs nothing
    /// until the gigabyte is actually sent, and at most twice what was
    /// sent. (Allocating `total` at once would be one `resize` fewer per big
    /// message; it is also what let a 5-byte header cost 1 GiB.)
    fn make_room(&mut self, total: usize) {
        if self.rpos == self.rend {
            self.rpos = 0;
            self.rend = 0;
            // One huge result must not pin a huge buffer to a connection
            // that then sits idle in a pool for hours.
            if self.rbuf.len() > MAX_IDLE_READ_BUFFER && total <= READ_BUFFER {
                self.rbuf.truncate(READ_BUFFER);
                self.rbuf.shrink_to_fit();
            }
        }
        let fits_behind = self.rpos + total.max(HEADER_SIZE) <= self.rbuf.len();
        if self.rpos > 0 && (!fits_behind || self.rend == self.rbuf.len()) {
            self.rbuf.copy_within(self.rpos..self.rend, 0);
            self.rend -= self.rpos;
            self.rpos = 0;
        }
        if self.rend == self.rbuf.len() {
            // Full, and the message is not whole (else we would not be
            // reading): `total > rend`, so this always adds room.
            let grown = self.rbuf.len().saturating_mul(2).min(total);
            self.rbuf.resize(grown, 0);
        }
    }
    // ANCHOR_END: make_room

    /// One `read(2)` (through the reactor: it waits for readability when
    /// the kernel says EAGAIN). EOF here is always mid-conversation.
    async fn fill(&mut self) -> Result<(), Error> {
        match self.transport.read(&mut self.rbuf[self.rend..]).await {
            Ok(0) => {
                let e = Error::Io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the server closed the connection (EOF from read)",
                ));
                Err(self.break_with(e))
            }
            Ok(n) => {
                self.rend += n;
                Ok(())
            }
            Err(e) => Err(self.break_with(e.into())),
        }
    }

    /// Parse a frame from [`next_frame`](Self::next_frame) into a message
    /// that borrows from the read buffer (until the next `next_frame`).
    pub(super) fn decode(&self, frame: Frame) -> Result<Message<'_>, Error> {
        let bytes = &self.rbuf[frame.bytes];
        match frame.header.parse(&bytes[HEADER_SIZE..]) {
            Ok(msg) => {
                crate::narrate!("← {msg}");
                if let Some(tap) = self.tap.borrow_mut().as_mut() {
                    tap.received(&msg, bytes);
                }
                if let Message::DataRow(row) = &msg {
                    self.count_row(row.body().len())?;
                }
                Ok(msg)
            }
            Err(e) => Err(self.break_with(e.into())),
        }
    }

    // ANCHOR: count_row
    /// Count one DataRow against the request's limits. Past a limit the
    /// connection is closed rather than drained: the rest of the result
    /// could be as long as the query runs (or endless, from a hostile
    /// server), and stopping the server needs a CancelRequest on a second
    /// socket. Closing the socket stops it too: the backend's next send
    /// fails and it ends the query. (libpq has no such limit; its way past
    /// a big result is single-row mode, as a streaming API would be here.)
    fn count_row(&self, body_len: usize) -> Result<(), Error> {
        let (rows, bytes) = self.received.get();
        let (rows, bytes) = (rows + 1, bytes.saturating_add(body_len));
        self.received.set((rows, bytes));
        let over = match self.limits {
            ResultLimits { rows: Some(max), .. } if rows > max => Some(("max_result_rows", max)),
            ResultLimits { bytes: Some(max), .. } if bytes > max => Some(("max_result_bytes", max as u64)),
            _ => None,
        };
        match over {
            Some((limit, max)) => Err(self.break_with(Error::ResultTooLarge { limit, max })),
            None => Ok(()),
        }
    }
    // ANCHOR_END: count_row
}
