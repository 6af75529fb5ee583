//! `pg::connection`: the PostgreSQL protocol run over a socket on the reactor.
//!
//! A [`Connection`] is one TCP (or Unix) socket to one server process, the
//! "backend", whose pid [`backend_pid`](Connection::backend_pid) returns. Its
//! life on the wire (protocol §55.2, "Message Flow"):
//!
//! ```text
//! connect(2) … EINPROGRESS … writable, SO_ERROR = 0          net
//! → StartupMessage user=connlab database=postgres …
//! ← AuthenticationSASL [SCRAM-SHA-256]                        pg::auth drives this
//! → SASLInitialResponse / ← SASLContinue / → SASLResponse / ← SASLFinal / ← AuthenticationOk
//! ← ParameterStatus × 14, ← BackendKeyData pid secret, ← ReadyForQuery I
//! → Parse "" "SELECT name FROM users WHERE id = $1"           one query:
//! → Bind "" "" [42] → Describe P "" → Execute "" 0 → Sync    five messages, ONE write(2)
//! ← ParseComplete ← BindComplete ← RowDescription [name] ← DataRow ["Alice"]
//! ← CommandComplete "SELECT 1" ← ReadyForQuery I
//! → Terminate                                                 close
//! ```
//!
//! The one loop to understand is `Connection::until_ready`: every request
//! ends with Sync (or is a simple Query, which implies one), the server
//! answers everything up to a ReadyForQuery, and whatever arrives on the
//! way (rows, tags, an error, a notice, a changed setting) is sorted there.
//! After an ErrorResponse the server *skips* the rest of the batch until
//! the Sync, then sends ReadyForQuery: so a failed query leaves the
//! connection ready for the next one, and a pipeline's later statements
//! are reported as [`Error::Skipped`].
//!
//! Files: `wire.rs` (the socket, its buffers and the framing), `types/`
//! (Rust values ↔ text format: scalars, times, arrays), `rows.rs` (results,
//! columns by position or name), `error.rs` (the typed error), `tap.rs` (a
//! record of the messages, for the examples), `cache.rs` (the statement
//! cache), `copy.rs` (COPY), `transaction.rs` (the `BEGIN` … `COMMIT`
//! guard), `stream.rs` (a large result in batches of rows).

use std::cell::Cell;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::net::{Stream, TcpStream, UnixStream};
use crate::pg::auth::{AuthStep, Authenticator};
use crate::pg::config::{Config, Host, MAX_STARTUP_MESSAGE_LEN};
use crate::pg::protocol::backend::sqlstate;
use crate::pg::protocol::backend::Message;
use crate::pg::protocol::frontend::{self, Target};
use crate::pg::protocol::{DbError, Format, Oid, TransactionStatus};

mod cache;
mod copy;
mod error;
mod rows;
pub mod session_state;
mod stream;
pub mod tap;
mod transaction;
mod transport;
pub mod types;
mod wire;

use cache::StatementCache;
pub use cache::DEFAULT_CAPACITY as DEFAULT_STATEMENT_CACHE_SIZE;
pub use copy::{CopyIn, CopyOut, COPY_BUFFER};
pub use error::Error;
pub use rows::{Column, Row, RowIndex, Rows};
pub use stream::RowStream;
pub use transaction::Transaction;
pub use transport::TlsInfo;
pub use types::{FromSql, ToSql, Value};
use wire::{ResultLimits, Wire, READ_BUFFER};

/// Keep at most this many unread notices: a chatty server must not grow
/// our memory without bound.
const MAX_QUEUED_NOTICES: usize = 64;
/// Keep at most this many undelivered notifications. Past it the oldest is
/// dropped and counted ([`Connection::notifications_dropped`]): a reader
/// that falls behind loses the stalest news, never the connection, and
/// never unbounded memory. (The server has its own queue, 8 GB by default,
/// and blocks NOTIFY senders when it is full; ours only covers the gap
/// between the socket and the caller.)
pub const MAX_QUEUED_NOTIFICATIONS: usize = 1024;
/// Keep at most this many distinct server settings (ParameterStatus). A
/// PostgreSQL 15 server reports 14, PostgreSQL 17 about 16; a server that
/// invents thousands of names is not one we know, and a list searched per
/// message made 80,000 of them cost 19 s of CPU. So settings live in a map,
/// and names past this many are ignored (changes to known ones still count).
pub const MAX_PARAMETERS: usize = 256;
/// How long [`CancelToken::cancel`] may take when the connection has no
/// `connect_timeout`: a server that accepts the cancel socket and then never
/// closes it must not hang the caller.
pub const DEFAULT_CANCEL_TIMEOUT: Duration = Duration::from_secs(10);
/// Show at most this many characters of SQL or a value in the narrator.
const NARRATE_MAX: usize = 80;

/// How long each phase of opening the connection took.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConnectTimings {
    /// The TCP (or Unix) handshake: `connect(2)` until writable.
    pub connect: Duration,
    /// SSLRequest, the server's one-byte answer and, if it said `S`, the
    /// TLS handshake (zero with `sslmode=disable` or over a Unix socket).
    pub tls: Duration,
    /// StartupMessage until the first ReadyForQuery: authentication (SCRAM
    /// is two round trips plus a deliberately slow PBKDF2) and settings.
    pub startup: Duration,
}

/// Where a connection goes: kept for the CancelRequest, which must reach
/// the same server on a *new* socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A Unix socket path (`/dir/.s.PGSQL.5432`).
    Unix(PathBuf),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp(addr) => write!(f, "{addr}"),
            Endpoint::Unix(path) => write!(f, "{}", path.display()),
        }
    }
}

impl Endpoint {
    async fn connect(&self, timeout: Option<Duration>) -> Result<Stream, Error> {
        Ok(match (self, timeout) {
            (Endpoint::Tcp(addr), Some(t)) => Stream::Tcp(TcpStream::connect_timeout(*addr, t).await?),
            (Endpoint::Tcp(addr), None) => Stream::Tcp(TcpStream::connect(*addr).await?),
            (Endpoint::Unix(path), _) => Stream::Unix(UnixStream::connect(path).await?),
        })
    }
}

/// What a CancelRequest needs: where the server is and which backend to
/// interrupt, with the secret that proves we own it. Cheap to clone, and
/// usable while the connection itself is busy with the query to cancel.
#[derive(Clone)]
pub struct CancelToken {
    endpoint: Endpoint,
    process_id: i32,
    secret_key: i32,
    timeout: Option<Duration>,
}

impl fmt::Debug for CancelToken {
    // The secret key is what stops strangers cancelling our queries.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelToken")
            .field("endpoint", &self.endpoint)
            .field("process_id", &self.process_id)
            .finish_non_exhaustive()
    }
}

impl CancelToken {
    /// Ask the server to cancel whatever this backend is running.
    ///
    /// The request goes over a *second* connection, because the first is
    /// busy (the server only reads it between queries). It is fire and
    /// forget: the server answers nothing and closes the socket; the
    /// cancelled query then fails on the first connection with SQLSTATE
    /// `57014`. If the query already finished, nothing happens.
    ///
    /// The whole exchange is bounded by the connection's `connect_timeout`
    /// (or [`DEFAULT_CANCEL_TIMEOUT`] without one), like libpq's.
    pub async fn cancel(&self) -> Result<(), Error> {
        let limit = self.timeout.unwrap_or(DEFAULT_CANCEL_TIMEOUT);
        let phase = Cell::new("the CancelRequest");
        within(Some(limit), &phase, self.send_cancel()).await
    }

    async fn send_cancel(&self) -> Result<(), Error> {
        let stream = self.endpoint.connect(on_the_clock(self.timeout)).await?;
        let mut buf = Vec::new();
        frontend::cancel_request(&mut buf, self.process_id, self.secret_key);
        crate::narrate!("→ CancelRequest pid {} (to {})", self.process_id, self.endpoint);
        stream.write_all(&buf).await?;
        // Wait for the server to close its end, so that when this returns
        // the server has read the request.
        let mut scratch = [0u8; 64];
        while stream.read(&mut scratch).await? > 0 {}
        Ok(())
    }

    /// The backend this token cancels.
    pub fn process_id(&self) -> i32 {
        self.process_id
    }
}

/// A prepared statement: a name on the server, its parameter types and
/// result columns.
#[derive(Debug, Clone)]
pub struct Statement {
    name: Arc<str>,
    params: Vec<Oid>,
    columns: Arc<[Column]>,
    /// Under transaction pooling the statement is unnamed and this is its
    /// text, parsed again in front of each execution (same batch, same
    /// transaction, so the same server connection).
    reparse: Option<Arc<str>>,
}

impl Statement {
    /// The server-side name (`s1`, `s2`, ...; empty for the unnamed
    /// statement used under transaction pooling).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The parameter types the server inferred.
    pub fn params(&self) -> &[Oid] {
        &self.params
    }

    /// The result columns.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }
}

/// An open, authenticated session with one PostgreSQL backend.
///
/// # What a server cannot make it do
///
/// The server is a peer on the network, and each of these is bounded
/// (`docs/protocol.md`, "What a server can make the client spend"):
/// memory for a message follows the bytes that arrive, not the length a
/// header announces; connecting (TCP, startup, authentication) takes at
/// most [`Config::connect_timeout`]; the methods it may authenticate with
/// are [`Config::require_auth`]'s, and its SCRAM iteration count must lie
/// in [`Config::scram_iterations`]; it can report at most [`MAX_PARAMETERS`]
/// settings; one request's rows are capped by [`Config::max_result_bytes`]
/// and [`Config::max_result_rows`] (past them the connection is closed).
///
/// # Goodbye
///
/// [`close`](Self::close) sends Terminate and waits for the write; dropping
/// the connection sends it too if the socket takes it at once, and never
/// blocks. A broken connection just closes its socket.
pub struct Connection {
    wire: Wire,
    /// Outgoing messages are encoded here and sent with one write.
    out: Vec<u8>,
    session: Session,
    /// SQL → named statements already parsed on this backend.
    cache: StatementCache,
}

/// A NOTIFY on a channel this session LISTENs to (protocol §55.2.7,
/// NotificationResponse).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The pid of the backend that ran NOTIFY (ours, if we notified ourselves).
    pub process_id: i32,
    /// The channel.
    pub channel: String,
    /// The payload; empty when NOTIFY gave none.
    pub payload: String,
}

/// What the server has told us about the session.
struct Session {
    endpoint: Endpoint,
    status: TransactionStatus,
    process_id: i32,
    secret_key: i32,
    parameters: BTreeMap<String, String>,
    notices: VecDeque<DbError>,
    notifications: VecDeque<Notification>,
    notifications_dropped: u64,
    /// This session ran LISTEN (and no `UNLISTEN *` or `DISCARD ALL` since).
    listening: bool,
    /// A [`Transaction`] was dropped open: roll back before the next request.
    rollback_pending: bool,
    /// A [`RowStream`] was dropped before its end: Sync before the next request.
    sync_pending: bool,
    timings: ConnectTimings,
    next_statement: u64,
    /// [`Config::transaction_pooling`]: keep no state in the server session.
    transaction_pooling: bool,
    /// For the [`CancelToken`]s this connection hands out.
    connect_timeout: Option<Duration>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("fd", &self.as_raw_fd())
            .field("endpoint", &self.session.endpoint)
            .field("backend_pid", &self.session.process_id)
            .field("status", &self.session.status)
            .field("broken", &self.wire.broken.borrow())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Keep what the client knows of the session in step with commands
    /// that change it behind the client's back, whichever protocol ran
    /// them: `LISTEN` (the pool must clean it up), and `DISCARD ALL` /
    /// `DEALLOCATE ALL`, which drop every prepared statement on the server,
    /// the statement cache's included (and `DISCARD ALL` every LISTEN).
    fn track(&mut self, cache: &mut StatementCache, tag: &str) {
        match tag {
            "LISTEN" => self.listening = true,
            "DISCARD ALL" | "DEALLOCATE ALL" => {
                crate::narrate!("statement cache: the server dropped every statement; forget them all");
                cache.forget_all();
                self.listening &= tag != "DISCARD ALL";
            }
            _ => {}
        }
    }

    /// The messages that may arrive at any time (protocol §55.2.7
    /// "Asynchronous Operations"). Returns the message back if it is not one.
    fn asynchronous<'m>(&mut self, msg: Message<'m>) -> Option<Message<'m>> {
        match msg {
            Message::ParameterStatus { name, value } => {
                let room = self.parameters.len() < MAX_PARAMETERS;
                match self.parameters.get_mut(name) {
                    Some(slot) => value.clone_into(slot),
                    None if room => {
                        self.parameters.insert(name.to_string(), value.to_string());
                    }
                    None => crate::narrate!("(ignored: over {MAX_PARAMETERS} distinct settings)"),
                }
                None
            }
            Message::NoticeResponse(notice) => {
                if self.notices.len() == MAX_QUEUED_NOTICES {
                    self.notices.pop_front();
                }
                self.notices.push_back(notice);
                None
            }
            // Only arrives after this session ran LISTEN: between the
            // messages of any request, or on an idle connection (read by
            // `next_notification`).
            Message::NotificationResponse {
                process_id,
                channel,
                payload,
            } => {
                if self.notifications.len() == MAX_QUEUED_NOTIFICATIONS {
                    self.notifications.pop_front();
                    self.notifications_dropped += 1;
                }
                self.notifications.push_back(Notification {
                    process_id,
                    channel: channel.to_string(),
                    payload: payload.to_string(),
                });
                None
            }
            other => Some(other),
        }
    }
}

impl Connection {
    /// Start recording every message sent and received (see [`tap`]);
    /// any earlier records are discarded.
    pub fn start_wire_tap(&mut self, keep_bytes: bool) {
        *self.wire.tap.borrow_mut() = Some(tap::Tap {
            records: Vec::new(),
            keep_bytes,
        });
    }

    /// Stop the wire tap and return what it recorded (empty if none ran).
    pub fn take_wire_tap(&mut self) -> Vec<tap::WireRecord> {
        self.wire.tap.borrow_mut().take().map(|t| t.records).unwrap_or_default()
    }

    /// Connect with a `postgres://` URL (plus `PG*` variables for what it
    /// leaves out).
    pub async fn connect_url(url: &str) -> Result<Connection, Error> {
        Connection::connect(&Config::from_url(url)?).await
    }

    /// Open the socket, then run startup and authentication.
    pub async fn connect(config: &Config) -> Result<Connection, Error> {
        Connection::establish(config, None).await
    }

    /// [`Connection::connect`] with the wire tap already running, so the
    /// startup and authentication messages are recorded too (keeping their
    /// bytes when `keep_bytes`). Read them with [`Connection::take_wire_tap`].
    pub async fn connect_tapped(config: &Config, keep_bytes: bool) -> Result<Connection, Error> {
        Connection::establish(config, Some(keep_bytes)).await
    }

    // ANCHOR: establish
    /// Connect within `connect_timeout`: the deadline covers the TCP
    /// handshake *and* the conversation after it, as libpq's does, because a
    /// server that accepts and then says nothing (or one byte a second)
    /// would otherwise hang us forever. The error names the phase it cut.
    async fn establish(config: &Config, tap_bytes: Option<bool>) -> Result<Connection, Error> {
        let phase = Cell::new("the TCP handshake");
        within(
            config.connect_timeout,
            &phase,
            Connection::handshake(config, tap_bytes, &phase),
        )
        .await
    }

    async fn handshake(
        config: &Config,
        tap_bytes: Option<bool>,
        phase: &Cell<&'static str>,
    ) -> Result<Connection, Error> {
        let started = Instant::now();
        let (stream, endpoint) = open(config).await?;
        let connect = started.elapsed();
        if let Stream::Tcp(tcp) = &stream {
            // Each request is one write and we wait for its answer: Nagle's
            // algorithm could only delay it (libpq sets TCP_NODELAY too).
            tcp.set_nodelay(true)?;
            set_keepalive(tcp.as_raw_fd(), &config.keepalive)?;
        }
        let tls_started = Instant::now();
        phase.set("the SSLRequest and TLS handshake");
        let host = match &config.host {
            Host::Tcp(name) => name.as_str(),
            Host::Unix(_) => "",
        };
        let (transport, ssl_answer) = transport::negotiate(stream, host, &config.tls).await?;
        let tls = tls_started.elapsed();
        let mut wire = Wire::new(transport);
        // Until the server has proved who it is, no message may be big.
        wire.set_max_message_len(config.max_message_len.min(MAX_STARTUP_MESSAGE_LEN));
        let mut conn = Connection {
            wire,
            out: Vec::with_capacity(READ_BUFFER),
            session: Session {
                endpoint,
                status: TransactionStatus::Idle,
                process_id: 0,
                secret_key: 0,
                parameters: BTreeMap::new(),
                notices: VecDeque::new(),
                notifications: VecDeque::new(),
                notifications_dropped: 0,
                listening: false,
                rollback_pending: false,
                sync_pending: false,
                timings: ConnectTimings::default(),
                next_statement: 0,
                transaction_pooling: config.transaction_pooling,
                connect_timeout: config.connect_timeout,
            },
            // Behind a transaction pooler a cached name would live on a
            // server connection the next transaction may not get.
            cache: StatementCache::new(if config.transaction_pooling {
                0
            } else {
                config.statement_cache_size
            }),
        };
        if let Some(keep_bytes) = tap_bytes {
            conn.start_wire_tap(keep_bytes);
            if let (Some(answer), Some(tap)) = (ssl_answer, conn.wire.tap.get_mut().as_mut()) {
                tap.ssl_negotiation(answer);
            }
        }
        let startup = Instant::now();
        phase.set("startup");
        conn.startup(config).await?;
        phase.set("authentication");
        conn.authenticate(config).await?;
        phase.set("reading the server's parameters");
        conn.wire.set_max_message_len(config.max_message_len);
        conn.read_parameters().await?;
        conn.wire.set_result_limits(ResultLimits {
            rows: config.max_result_rows,
            bytes: config.max_result_bytes,
        });
        conn.session.timings = ConnectTimings {
            connect,
            tls,
            startup: startup.elapsed(),
        };
        Ok(conn)
    }
    // ANCHOR_END: establish

    // ANCHOR: startup
    /// The handshake's first phase: the StartupMessage says who we are and
    /// which database we want. The server answers with an authentication
    /// request (or an ErrorResponse, e.g. for an unknown database).
    async fn startup(&mut self, config: &Config) -> Result<(), Error> {
        let mut params = vec![
            ("user", config.user.as_str()),
            ("database", config.dbname.as_str()),
            // Our decoder insists on UTF-8 text, so ask for it.
            ("client_encoding", "UTF8"),
        ];
        if let Some(app) = &config.application_name {
            params.push(("application_name", app));
        }
        if let Some(options) = &config.options {
            params.push(("options", options));
        }
        frontend::startup_message(&mut self.out, &params)?;
        crate::narrate!("→ StartupMessage {params:?}");
        self.wire.send(&mut self.out).await
    }

    /// The second phase: answer each Authentication request until
    /// AuthenticationOk. [`Authenticator`] decides every answer (and which
    /// requests to refuse); this loop only carries messages back and forth.
    async fn authenticate(&mut self, config: &Config) -> Result<(), Error> {
        let password = config.password.as_ref().map(|p| p.expose());
        let mut auth = Authenticator::new(&config.user, password)
            .require(config.require_auth)
            .scram_iterations(config.scram_iterations.clone())
            .channel_binding(
                config.tls.channel_binding,
                self.wire.transport.tls_info().map(|tls| tls.server_certificate),
            );
        loop {
            let frame = self.wire.next_frame().await?;
            let step = match self.wire.decode(frame)? {
                Message::Authentication(request) => auth
                    .respond(&request, &mut self.out)
                    .map_err(|e| self.wire.break_with(e.into()))?,
                Message::ErrorResponse(db) => return Err(self.wire.break_with(db.into())),
                other => return Err(self.wire.break_with(unexpected("during authentication", &other))),
            };
            match step {
                AuthStep::Send => {
                    // The password (or SCRAM proof) is never narrated.
                    crate::narrate!(
                        "→ {} response ({} bytes)",
                        auth.method().unwrap_or("auth"),
                        self.out.len()
                    );
                    self.wire.send(&mut self.out).await?;
                }
                AuthStep::Wait => {}
                AuthStep::Done => return Ok(()),
            }
        }
    }

    /// The third phase: after AuthenticationOk the server starts the
    /// backend and reports its settings (ParameterStatus) and the key a
    /// CancelRequest must quote (BackendKeyData), then the first
    /// ReadyForQuery.
    async fn read_parameters(&mut self) -> Result<(), Error> {
        loop {
            let frame = self.wire.next_frame().await?;
            let msg = self.wire.decode(frame)?;
            match self.session.asynchronous(msg) {
                None => {}
                Some(Message::BackendKeyData { process_id, secret_key }) => {
                    self.session.process_id = process_id;
                    self.session.secret_key = secret_key;
                }
                Some(Message::ReadyForQuery(status)) => {
                    self.session.status = status;
                    self.wire.in_flight.set(false);
                    return Ok(());
                }
                Some(Message::ErrorResponse(db)) => return Err(self.wire.break_with(db.into())),
                Some(other) => return Err(self.wire.break_with(unexpected("during startup", &other))),
            }
        }
    }
    // ANCHOR_END: startup

    /// Start a request: first settle what a dropped [`RowStream`] or
    /// [`Transaction`] left for it (a Sync, a ROLLBACK; nothing in the
    /// usual case), then check the connection is usable and in step.
    async fn begin(&mut self) -> Result<(), Error> {
        self.finish_abandoned_stream().await?;
        self.roll_back_abandoned().await?;
        self.wire.begin()
    }

    // ANCHOR: until_ready
    /// Read until ReadyForQuery, handing every message that is not
    /// asynchronous to `on`. The first ErrorResponse is kept and returned
    /// once the server is ready again, so the connection stays usable. A
    /// FATAL error, EOF or garbage ends the connection instead.
    async fn until_ready(
        &mut self,
        mut on: impl FnMut(Message<'_>) -> Result<(), Error>,
    ) -> Result<Option<DbError>, Error> {
        let mut failure = None;
        let mut misuse = None;
        loop {
            let frame = self.wire.next_frame().await?;
            let msg = self.wire.decode(frame)?;
            match self.session.asynchronous(msg) {
                None => {}
                Some(Message::ReadyForQuery(status)) => {
                    self.session.status = status;
                    self.wire.in_flight.set(false);
                    return misuse.map_or(Ok(failure), Err);
                }
                // A COPY sent through query() or simple_query(): refuse it
                // without losing step (CopyFail makes the server give up;
                // an outgoing stream is read and dropped), then say which
                // call to use.
                Some(Message::CopyInResponse(_)) => {
                    frontend::copy_fail(&mut self.out, "COPY FROM STDIN needs Connection::copy_in")?;
                    self.wire.send(&mut self.out).await?;
                    misuse = Some(Error::Unsupported("COPY ... FROM STDIN: use Connection::copy_in"));
                }
                Some(Message::CopyOutResponse(_)) => {
                    misuse = Some(Error::Unsupported("COPY ... TO STDOUT: use Connection::copy_out"));
                }
                Some(Message::CopyData(_) | Message::CopyDone) if misuse.is_some() => {}
                Some(Message::ErrorResponse(db)) => {
                    if error::is_fatal_severity(&db) {
                        return Err(self.wire.break_with(db.into()));
                    }
                    on(Message::ErrorResponse(db.clone())).map_err(|e| self.wire.break_with(e))?;
                    failure.get_or_insert(db);
                }
                Some(Message::CommandComplete { tag }) => {
                    self.session.track(&mut self.cache, tag);
                    on(Message::CommandComplete { tag }).map_err(|e| self.wire.break_with(e))?;
                }
                Some(other) => on(other).map_err(|e| self.wire.break_with(e))?,
            }
        }
    }
    // ANCHOR_END: until_ready

    /// Wait for the next notification: one already queued, or the next to
    /// arrive on this idle connection (the reactor wakes us when the socket
    /// turns readable; nothing is sent). Run `LISTEN channel` first.
    ///
    /// Cancel-safe: drop the future (a `timeout` around it, say) and no
    /// byte is lost; a partly read message stays buffered for the next call.
    /// A FATAL error (the backend was terminated) or EOF ends the
    /// connection as it would during a query.
    pub async fn next_notification(&mut self) -> Result<Notification, Error> {
        self.finish_abandoned_stream().await?;
        self.roll_back_abandoned().await?;
        self.wire.check()?;
        if self.wire.in_flight.get() {
            return Err(self.wire.break_with(Error::Unexpected(
                "next_notification while a request's answer is still unread".into(),
            )));
        }
        loop {
            if let Some(n) = self.session.notifications.pop_front() {
                return Ok(n);
            }
            let frame = self.wire.next_frame().await?;
            let msg = self.wire.decode(frame)?;
            match self.session.asynchronous(msg) {
                None => {}
                Some(Message::ErrorResponse(db)) => return Err(self.wire.break_with(db.into())),
                Some(other) => return Err(self.wire.break_with(unexpected("on an idle connection", &other))),
            }
        }
    }

    /// The notifications that arrived while other requests ran, oldest
    /// first (bounded by [`MAX_QUEUED_NOTIFICATIONS`]).
    pub fn take_notifications(&mut self) -> Vec<Notification> {
        self.session.notifications.drain(..).collect()
    }

    /// How many notifications were dropped because nobody took them in time.
    pub fn notifications_dropped(&self) -> u64 {
        self.session.notifications_dropped
    }

    /// This session has run LISTEN (and not `DISCARD ALL` since): a pool
    /// must run `UNLISTEN *` before lending it to someone else.
    pub fn is_listening(&self) -> bool {
        self.session.listening
    }

    /// `UNLISTEN *`: stop every LISTEN of this session and drop the
    /// notifications not yet taken.
    pub async fn unlisten_all(&mut self) -> Result<(), Error> {
        self.simple_query("UNLISTEN *").await?;
        self.session.listening = false;
        self.session.notifications.clear();
        Ok(())
    }

    /// Run one or more SQL statements with the simple query protocol
    /// (one Query message, text results, no parameters). One [`Rows`] per
    /// statement; the first error stops the rest (the server runs the
    /// string as one implicit transaction).
    pub async fn simple_query(&mut self, sql: &str) -> Result<Vec<Rows>, Error> {
        self.refuse_session_state(sql)?;
        if sql.trim().eq_ignore_ascii_case("ROLLBACK") {
            // The caller (a pool's reset, say) rolls back itself: a dropped
            // Transaction's deferred ROLLBACK would only draw a warning.
            self.session.rollback_pending = false;
        }
        self.begin().await?;
        self.run_simple_query(sql).await
    }

    /// [`simple_query`](Self::simple_query) without first settling what a
    /// dropped [`Transaction`] or [`RowStream`] left behind (the settling
    /// itself runs through here).
    async fn run_simple_query(&mut self, sql: &str) -> Result<Vec<Rows>, Error> {
        self.wire.begin()?;
        frontend::query(&mut self.out, sql)?;
        crate::narrate!("→ Query {:?}", Short(sql));
        self.wire.send(&mut self.out).await?;
        let mut results = Vec::new();
        let mut current: Option<Rows> = None;
        let failure = self
            .until_ready(|msg| {
                match msg {
                    Message::RowDescription(desc) => current = Some(Rows::new(rows::columns_of(&desc))),
                    Message::DataRow(row) => match current.as_mut() {
                        Some(rows) => rows.push(&row)?,
                        None => return Err(Error::Unexpected("DataRow without RowDescription".into())),
                    },
                    Message::CommandComplete { tag } => {
                        let mut rows = current.take().unwrap_or_else(|| Rows::new(Arc::from([])));
                        rows.set_tag(tag);
                        results.push(rows);
                    }
                    Message::EmptyQueryResponse | Message::ErrorResponse(_) => {}
                    other => return Err(unexpected("in a simple query", &other)),
                }
                Ok(())
            })
            .await?;
        match failure {
            Some(db) => Err(db.into()),
            None => Ok(results),
        }
    }

    /// Run one statement with parameters (`$1`, `$2`, ...) through the
    /// extended protocol, answered in one round trip.
    ///
    /// With the statement cache on (the default; see
    /// [`Config::statement_cache_size`]), the first call of a given SQL
    /// sends Parse + Describe of a *named* statement before
    /// Bind/Execute/Sync, and every later call sends only
    /// Bind/Execute/Sync. With it off, each call sends Parse + Bind +
    /// Describe + Execute + Sync on the unnamed statement. Either way it is
    /// one write and one round trip.
    ///
    /// If the server says a cached statement is stale (a table it reads was
    /// altered, so "cached plan must not change result type", or it was
    /// deallocated behind our back) and no transaction is open, the call is
    /// retried once with a fresh Parse: the failed attempt did nothing.
    /// Inside a transaction the error is returned (the transaction is
    /// aborted anyway) and the next call prepares again.
    pub async fn query(&mut self, sql: &str, params: &[&dyn ToSql]) -> Result<Rows, Error> {
        let batch = [Item::Sql(sql, params)];
        let (mut results, stale) = self.run_batch(&batch).await?;
        if stale && self.session.status == TransactionStatus::Idle {
            crate::narrate!("statement cache: retry once with a fresh Parse");
            results = self.run_batch(&batch).await?.0;
        }
        results.pop().unwrap_or(Err(Error::Skipped))
    }

    /// Like [`query`](Self::query), for statements without rows: returns
    /// the count in the command tag (`UPDATE 3` → 3).
    pub async fn execute(&mut self, sql: &str, params: &[&dyn ToSql]) -> Result<u64, Error> {
        Ok(self.query(sql, params).await?.rows_affected())
    }

    // ANCHOR: pipeline
    /// Several statements in one batch: each one's messages (Parse and
    /// Describe only if it is not in the statement cache yet, then Bind and
    /// Execute), then ONE Sync, all in one write. The server runs them in
    /// order as one implicit transaction. If one fails, the server skips
    /// everything up to the Sync: that statement's slot holds its error,
    /// the later ones [`Error::Skipped`], and the earlier ones their rows,
    /// although their writes were rolled back with the transaction.
    ///
    /// The outer `Err` is for the connection itself (I/O, protocol).
    pub async fn pipeline(&mut self, batch: &[(&str, &[&dyn ToSql])]) -> Result<Vec<Result<Rows, Error>>, Error> {
        let items: Vec<Item<'_>> = batch.iter().map(|&(sql, params)| Item::Sql(sql, params)).collect();
        Ok(self.run_batch(&items).await?.0)
    }
    // ANCHOR_END: pipeline

    /// A batch over statements prepared with [`prepare`](Self::prepare):
    /// Bind + Execute for each, one Sync, one write. The cheapest way to
    /// send many queries: no Parse, no Describe, one round trip. Errors
    /// behave as in [`pipeline`](Self::pipeline).
    pub async fn pipeline_prepared(
        &mut self,
        batch: &[(&Statement, &[&dyn ToSql])],
    ) -> Result<Vec<Result<Rows, Error>>, Error> {
        let items: Vec<Item<'_>> = batch.iter().map(|&(st, params)| Item::Prepared(st, params)).collect();
        Ok(self.run_batch(&items).await?.0)
    }

    /// The engine under `query`, `pipeline` and the prepared forms: encode
    /// a batch, send it in one write, sort the answers. Also says whether a
    /// cached statement turned out stale.
    async fn run_batch(&mut self, items: &[Item<'_>]) -> Result<(Vec<Result<Rows, Error>>, bool), Error> {
        for item in items {
            if let Item::Sql(sql, _) = item {
                self.refuse_session_state(sql)?;
            }
        }
        self.begin().await?;
        let plan = self.plan(items)?;
        // Statements evicted from the cache are closed at the end of this
        // batch, before its Sync: no extra round trip. If an error earlier
        // in the batch makes the server skip them, they are queued again.
        let closes = self.cache.take_to_close();
        for name in &closes {
            frontend::close(&mut self.out, Target::Statement, name)?;
            crate::narrate!("→ Close S {name:?}");
        }
        frontend::sync(&mut self.out);
        crate::narrate!("→ Sync ({} bytes in one write)", self.out.len());
        self.wire.send(&mut self.out).await?;

        let mut reader = BatchReader::new(plan, items.len());
        let failure = self.until_ready(|msg| reader.on(msg)).await?;
        if failure.is_some() && !reader.late_error {
            self.cache.retry_close(closes);
        }
        let stale = self.settle(items, &reader);
        let mut results = reader.results;
        results.resize_with(items.len(), || Err(Error::Skipped));
        Ok((results, stale))
    }

    /// Write each item's messages into `self.out` and say, per item, which
    /// statement it runs and what is known of its columns.
    fn plan(&mut self, items: &[Item<'_>]) -> Result<Vec<Planned>, Error> {
        let mut plan: Vec<Planned> = Vec::with_capacity(items.len());
        for item in items {
            let planned = match *item {
                Item::Prepared(st, _) => {
                    if let Some(sql) = &st.reparse {
                        // Unnamed under transaction pooling: parsed again
                        // here, in the same batch as its execution.
                        frontend::parse(&mut self.out, "", sql, &st.params)?;
                        crate::narrate!("→ Parse \"\" {:?} (unnamed: transaction pooling)", Short(sql));
                    }
                    Planned::known(st.name.clone(), st.columns.clone(), false)
                }
                Item::Sql(sql, params) => self.plan_sql(sql, params, &plan)?,
            };
            bind(&mut self.out, &planned.name, item.params())?;
            if planned.name.is_empty() {
                // The unnamed path learns the columns from the portal.
                frontend::describe(&mut self.out, Target::Portal, "")?;
            }
            frontend::execute(&mut self.out, "", 0)?;
            crate::narrate!("→ Execute \"\" 0");
            plan.push(planned);
        }
        Ok(plan)
    }

    /// One SQL item: a cache hit (Bind only), a repeat of a statement parsed
    /// earlier in the same batch, a new named statement (Parse + Describe
    /// S), or, with the cache off, the unnamed statement.
    fn plan_sql(&mut self, sql: &str, params: &[&dyn ToSql], earlier: &[Planned]) -> Result<Planned, Error> {
        let types: Vec<Oid> = params.iter().map(|p| p.type_oid()).collect();
        if !self.cache.enabled() {
            frontend::parse(&mut self.out, "", sql, &types)?;
            crate::narrate!("→ Parse \"\" {:?} {types:?}", Short(sql));
            return Ok(Planned::known(Arc::from(""), Arc::from([]), false));
        }
        if let Some(hit) = self.cache.get(sql, &types) {
            crate::narrate!("statement cache hit: {:?} is {:?}", Short(sql), hit.name);
            return Ok(Planned::known(hit.name.clone(), hit.columns.clone(), true));
        }
        if let Some(first) = earlier.iter().position(|p| p.parses(sql, &types)) {
            return Ok(Planned {
                name: earlier[first].name.clone(),
                columns: None,
                from_cache: false,
                parses: None,
                described_by: Some(first),
            });
        }
        self.session.next_statement += 1;
        let name: Arc<str> = Arc::from(format!("s{}", self.session.next_statement));
        frontend::parse(&mut self.out, &name, sql, &types)?;
        frontend::describe(&mut self.out, Target::Statement, &name)?;
        crate::narrate!("→ Parse {name:?} {:?} {types:?} → Describe S {name:?}", Short(sql));
        Ok(Planned {
            name,
            columns: None,
            from_cache: false,
            parses: Some((sql.to_string(), types)),
            described_by: None,
        })
    }

    /// After a batch: cache the statements the server parsed and described,
    /// and forget the cached ones it called stale. Returns whether any was.
    fn settle(&mut self, items: &[Item<'_>], reader: &BatchReader) -> bool {
        for (i, planned) in reader.plan.iter().enumerate() {
            if let (Some((sql, types)), Some(columns), true) = (&planned.parses, &reader.described[i], reader.parsed[i])
            {
                self.cache
                    .insert(sql, planned.name.clone(), types.clone(), columns.clone());
            }
        }
        let mut stale = false;
        for (i, result) in reader.results.iter().enumerate() {
            if let (Some(Item::Sql(sql, _)), Err(e)) = (items.get(i), result) {
                if reader.plan[i].from_cache && e.db().is_some_and(is_stale_statement) {
                    self.cache.invalidate(sql);
                    stale = true;
                }
            }
        }
        stale
    }
    /// Prepare a named statement: Parse, Describe (to learn its parameter
    /// types and result columns), Sync. Reuse it with
    /// [`query_prepared`](Self::query_prepared) to skip parsing and
    /// planning on every call.
    ///
    /// Under [`Config::transaction_pooling`] the statement is the unnamed
    /// one: this Parse only learns the types and columns, and each
    /// execution sends the Parse again in its own batch, because a name
    /// would live on a server connection the next transaction may not get.
    pub async fn prepare(&mut self, sql: &str) -> Result<Statement, Error> {
        self.refuse_session_state(sql)?;
        self.begin().await?;
        let (name, reparse): (Arc<str>, _) = if self.session.transaction_pooling {
            (Arc::from(""), Some(Arc::from(sql)))
        } else {
            self.session.next_statement += 1;
            (Arc::from(format!("s{}", self.session.next_statement)), None)
        };
        frontend::parse(&mut self.out, &name, sql, &[])?;
        frontend::describe(&mut self.out, Target::Statement, &name)?;
        frontend::sync(&mut self.out);
        crate::narrate!("→ Parse {name:?} {:?} → Describe S {name:?} → Sync", Short(sql));
        self.wire.send(&mut self.out).await?;
        let mut params = Vec::new();
        let mut columns: Arc<[Column]> = Arc::from([]);
        let failure = self
            .until_ready(|msg| {
                match msg {
                    Message::ParameterDescription(desc) => params = desc.types().collect(),
                    Message::RowDescription(desc) => columns = rows::columns_of(&desc),
                    Message::ParseComplete | Message::NoData | Message::ErrorResponse(_) => {}
                    other => return Err(unexpected("after Parse/Describe", &other)),
                }
                Ok(())
            })
            .await?;
        match failure {
            Some(db) => Err(db.into()),
            None => Ok(Statement {
                name,
                params,
                columns,
                reparse,
            }),
        }
    }

    // ANCHOR: query_prepared
    /// Run a prepared statement: Bind, Execute, Sync in one write. No
    /// Parse and no Describe: the columns are already known from
    /// [`prepare`](Self::prepare).
    pub async fn query_prepared(&mut self, statement: &Statement, params: &[&dyn ToSql]) -> Result<Rows, Error> {
        let mut results = self.run_batch(&[Item::Prepared(statement, params)]).await?.0;
        results.pop().unwrap_or(Err(Error::Skipped))
    }
    // ANCHOR_END: query_prepared

    /// Free a prepared statement on the server (Close, Sync).
    pub async fn close_statement(&mut self, statement: Statement) -> Result<(), Error> {
        if statement.reparse.is_some() {
            // Unnamed: nothing of it is kept on the server.
            return Ok(());
        }
        self.begin().await?;
        frontend::close(&mut self.out, Target::Statement, &statement.name)?;
        frontend::sync(&mut self.out);
        crate::narrate!("→ Close S {:?} → Sync", statement.name);
        self.wire.send(&mut self.out).await?;
        let failure = self
            .until_ready(|msg| match msg {
                Message::CloseComplete | Message::ErrorResponse(_) => Ok(()),
                other => Err(unexpected("after Close", &other)),
            })
            .await?;
        failure.map_or(Ok(()), |db| Err(db.into()))
    }

    /// Say goodbye properly: Terminate, then close the socket, waiting
    /// for the write. (Dropping a connection sends Terminate too, but only
    /// if the socket takes it at once; see the `Drop` impl.)
    pub async fn close(mut self) -> Result<(), Error> {
        if self.wire.is_broken() {
            return Ok(());
        }
        frontend::terminate(&mut self.out);
        crate::narrate!("→ Terminate");
        let sent = self.wire.send(&mut self.out).await;
        // Closed now: Drop must not say goodbye a second time.
        self.wire
            .break_with(Error::Closed("closed by Connection::close".to_string()));
        sent
    }

    /// How many statements the statement cache holds parsed on the server.
    pub fn cached_statements(&self) -> usize {
        self.cache.len()
    }

    /// Whether this connection keeps no state in the server session
    /// ([`Config::transaction_pooling`]); the statement cache is then off.
    pub fn transaction_pooling(&self) -> bool {
        self.session.transaction_pooling
    }

    /// Under [`Config::transaction_pooling`], refuse a statement that would
    /// leave state in the session (see [`session_state`]) before sending it.
    fn refuse_session_state(&self, sql: &str) -> Result<(), Error> {
        match self
            .session
            .transaction_pooling
            .then(|| session_state::find(sql))
            .flatten()
        {
            Some(refused) => Err(Error::SessionState(refused)),
            None => Ok(()),
        }
    }

    /// The transaction state from the last ReadyForQuery: idle, in a
    /// transaction block, or in a failed one (which only ROLLBACK ends).
    pub fn transaction_status(&self) -> TransactionStatus {
        self.session.status
    }

    /// The server process serving this connection (`pg_backend_pid()`).
    pub fn backend_pid(&self) -> i32 {
        self.session.process_id
    }

    /// A server setting reported by ParameterStatus (`server_version`,
    /// `TimeZone`, `application_name`, ...).
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.session.parameters.get(name).map(String::as_str)
    }

    /// Every server setting reported so far (at most [`MAX_PARAMETERS`]),
    /// by name.
    pub fn parameters(&self) -> impl Iterator<Item = (&str, &str)> {
        self.session.parameters.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The notices (warnings, `RAISE NOTICE`) received since the last call.
    pub fn take_notices(&mut self) -> Vec<DbError> {
        self.session.notices.drain(..).collect()
    }

    /// What [`CancelToken::cancel`] needs to interrupt this connection's query.
    pub fn cancel_token(&self) -> CancelToken {
        CancelToken {
            endpoint: self.session.endpoint.clone(),
            process_id: self.session.process_id,
            secret_key: self.session.secret_key,
            timeout: self.session.connect_timeout,
        }
    }

    /// Where this connection goes.
    pub fn endpoint(&self) -> &Endpoint {
        &self.session.endpoint
    }

    /// How long connecting took, by phase.
    pub fn timings(&self) -> ConnectTimings {
        self.session.timings
    }

    /// The TLS session's protocol, cipher suite and server certificate, or
    /// `None` for a plaintext connection (`sslmode=disable`, a server that
    /// answered `N` under `prefer`, a Unix socket).
    pub fn tls(&self) -> Option<TlsInfo> {
        self.wire.transport.tls_info()
    }

    /// `Some(reason)` once the connection can no longer be used.
    pub fn broken(&self) -> Option<String> {
        self.wire.broken.borrow().clone()
    }

    /// Still usable: not broken by an I/O, protocol or FATAL error, and no
    /// request was abandoned before its reply was read.
    pub fn is_usable(&self) -> bool {
        !self.wire.is_broken() && !self.wire.in_flight.get()
    }
}

/// Say goodbye on the way out, best effort: one non-blocking `send(2)` of
/// the 5-byte Terminate, so the server sees a clean disconnection rather
/// than an "unexpected EOF" (logged at DEBUG1, unseen by default, or as an
/// error if a transaction was open). Drop can neither wait nor fail, so a
/// full send buffer (`EAGAIN`) or a dead peer (`EPIPE`, no SIGPIPE thanks
/// to `MSG_NOSIGNAL`) just means no goodbye: the `close(2)` that follows
/// ends the session either way. A connection with a request in flight gets
/// one too; the server reads it after the request.
impl Drop for Connection {
    fn drop(&mut self) {
        if self.wire.is_broken() {
            return;
        }
        let mut goodbye = Vec::with_capacity(5);
        frontend::terminate(&mut goodbye);
        // A partial write cannot happen on a socket with room for a few
        // bytes; if it did, the server would read a cut message and log
        // it, which is no worse than no goodbye.
        if self.wire.transport.send_now(&goodbye) {
            crate::narrate!("→ Terminate (on drop)");
        } else {
            crate::narrate!("(no Terminate on drop: the socket would not take it)");
        }
    }
}

impl AsRawFd for Connection {
    fn as_raw_fd(&self) -> RawFd {
        self.wire.transport.as_raw_fd()
    }
}

/// One item of an extended-protocol batch: SQL text (through the statement
/// cache when it is on) or a statement prepared earlier.
#[derive(Clone, Copy)]
enum Item<'a> {
    Sql(&'a str, &'a [&'a dyn ToSql]),
    Prepared(&'a Statement, &'a [&'a dyn ToSql]),
}

impl<'a> Item<'a> {
    fn params(&self) -> &'a [&'a dyn ToSql] {
        match *self {
            Item::Sql(_, params) | Item::Prepared(_, params) => params,
        }
    }
}

/// What one item of a batch runs.
struct Planned {
    /// The statement's name; empty for the unnamed statement.
    name: Arc<str>,
    /// The result columns, when known before the answer arrives (a cache
    /// hit or a prepared statement).
    columns: Option<Arc<[Column]>>,
    /// Taken from the cache, so a "stale" error invalidates it.
    from_cache: bool,
    /// This item parses a new named statement: the key to cache it under.
    parses: Option<(String, Vec<Oid>)>,
    /// An earlier item of the same batch parses and describes this item's
    /// statement.
    described_by: Option<usize>,
}

impl Planned {
    fn known(name: Arc<str>, columns: Arc<[Column]>, from_cache: bool) -> Planned {
        Planned {
            name,
            columns: Some(columns),
            from_cache,
            parses: None,
            described_by: None,
        }
    }

    fn parses(&self, sql: &str, types: &[Oid]) -> bool {
        self.parses.as_ref().is_some_and(|(s, t)| s == sql && t == types)
    }
}

/// Sorts the answers to a batch, item by item. Each item ends with
/// CommandComplete, EmptyQueryResponse, PortalSuspended or ErrorResponse;
/// after an error the server skips the rest up to the Sync, so fewer
/// results than items may come back.
struct BatchReader {
    plan: Vec<Planned>,
    results: Vec<Result<Rows, Error>>,
    current: Rows,
    /// Per item: ParseComplete arrived, so its named statement exists.
    parsed: Vec<bool>,
    /// Per item: the columns its Describe reported (NoData: none).
    described: Vec<Option<Arc<[Column]>>>,
    /// An ErrorResponse arrived after every item had finished: one of the
    /// trailing Close messages failed.
    late_error: bool,
}

impl BatchReader {
    fn new(plan: Vec<Planned>, items: usize) -> BatchReader {
        let mut reader = BatchReader {
            plan,
            results: Vec::with_capacity(items),
            current: Rows::new(Arc::from([])),
            parsed: vec![false; items],
            described: vec![None; items],
            late_error: false,
        };
        reader.start_item();
        reader
    }

    /// Give the item about to be answered the columns known for it.
    fn start_item(&mut self) {
        let Some(planned) = self.plan.get(self.results.len()) else {
            return;
        };
        let columns = match (&planned.columns, planned.described_by) {
            (Some(columns), _) => Some(columns.clone()),
            (None, Some(first)) => self.described[first].clone(),
            (None, None) => None,
        };
        self.current = Rows::new(columns.unwrap_or_else(|| Arc::from([])));
    }

    fn finish(&mut self, result: Result<(), Error>) {
        let rows = std::mem::replace(&mut self.current, Rows::new(Arc::from([])));
        self.results.push(result.map(|()| rows));
        self.start_item();
    }

    fn on(&mut self, msg: Message<'_>) -> Result<(), Error> {
        let i = self.results.len();
        match msg {
            Message::ParseComplete => {
                if let Some(parsed) = self.parsed.get_mut(i) {
                    *parsed = true;
                }
            }
            Message::ParameterDescription(_) | Message::BindComplete | Message::CloseComplete => {}
            Message::NoData => {
                if let Some(described) = self.described.get_mut(i) {
                    *described = Some(Arc::from([]));
                }
            }
            Message::RowDescription(desc) => {
                let columns = rows::columns_of(&desc);
                if let Some(described) = self.described.get_mut(i) {
                    *described = Some(columns.clone());
                }
                self.current.set_columns(columns);
            }
            Message::DataRow(row) => self.current.push(&row)?,
            Message::CommandComplete { tag } => {
                self.current.set_tag(tag);
                self.finish(Ok(()));
            }
            Message::EmptyQueryResponse | Message::PortalSuspended => self.finish(Ok(())),
            Message::ErrorResponse(db) if i >= self.plan.len() => {
                crate::narrate!("a trailing Close failed: {}", db.message);
                self.late_error = true;
            }
            Message::ErrorResponse(db) => self.finish(Err(db.into())),
            other => return Err(unexpected("in an extended query", &other)),
        }
        Ok(())
    }
}

/// The errors that mean a cached statement no longer fits: its result type
/// changed under it (`0A000` "cached plan must not change result type",
/// after an ALTER TABLE), or it no longer exists (`26000`, after a
/// `DEALLOCATE`, or on another backend behind a transaction pooler).
fn is_stale_statement(db: &DbError) -> bool {
    db.code == sqlstate::INVALID_SQL_STATEMENT_NAME
        || (db.code == sqlstate::FEATURE_NOT_SUPPORTED
            && db.message.contains("cached plan must not change result type"))
}
/// Bind with every parameter in text format and every result in text.
fn bind(buf: &mut Vec<u8>, statement: &str, params: &[&dyn ToSql]) -> Result<(), Error> {
    frontend::bind(
        buf,
        "",
        statement,
        &[Format::Text],
        params,
        |p, out| p.to_text(out),
        &[Format::Text],
    )?;
    if crate::trace::enabled() {
        let shown: Vec<String> = params
            .iter()
            .map(|p| {
                let mut text = Vec::new();
                match p.to_text(&mut text) {
                    frontend::IsNull::Yes => "NULL".to_string(),
                    frontend::IsNull::No => format!("{:?}", Short(&String::from_utf8_lossy(&text))),
                }
            })
            .collect();
        crate::narrate!("→ Bind \"\" {statement:?} [{}]", shown.join(", "));
    }
    Ok(())
}

fn unexpected(when: &str, msg: &Message<'_>) -> Error {
    Error::Unexpected(format!("{msg} {when}"))
}

/// Resolve the configured host and connect to the first address that
/// answers. Simplification: the name lookup is `getaddrinfo(3)` through
/// std's `ToSocketAddrs`, which blocks the thread (a real async driver
/// hands it to a thread pool); an IP address or Unix path never blocks.
async fn open(config: &Config) -> Result<(Stream, Endpoint), Error> {
    match &config.host {
        Host::Unix(dir) => {
            let endpoint = Endpoint::Unix(dir.join(format!(".s.PGSQL.{}", config.port)));
            Ok((endpoint.connect(None).await?, endpoint))
        }
        Host::Tcp(name) => {
            let mut last = None;
            for addr in (name.as_str(), config.port).to_socket_addrs()? {
                let endpoint = Endpoint::Tcp(addr);
                match endpoint.connect(on_the_clock(config.connect_timeout)).await {
                    Ok(stream) => return Ok((stream, endpoint)),
                    Err(e) => last = Some(e),
                }
            }
            Err(last.unwrap_or_else(|| {
                Error::Io(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("{name} resolves to no address"),
                ))
            }))
        }
    }
}

/// Run `attempt` within `limit` (none: no limit), turning a timeout into an
/// `ETIMEDOUT`-kind error that names the phase that was cut short. A limit
/// too large for the clock (`Instant + limit` would overflow) is no limit.
async fn within<T>(
    limit: Option<Duration>,
    phase: &Cell<&'static str>,
    attempt: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    match on_the_clock(limit) {
        None => attempt.await,
        Some(limit) => crate::reactor::timeout(limit, attempt).await.unwrap_or_else(|_| {
            Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("timed out after {limit:?} during {} (connect_timeout)", phase.get()),
            )))
        }),
    }
}

/// `limit`, unless it is too large for the clock (`Instant + limit` would
/// overflow): such a limit is no limit.
fn on_the_clock(limit: Option<Duration>) -> Option<Duration> {
    limit.filter(|t| Instant::now().checked_add(*t).is_some())
}

/// Turn TCP keepalive on or off, with libpq's optional timings.
fn set_keepalive(fd: RawFd, keepalive: &crate::pg::config::Keepalive) -> Result<(), Error> {
    use crate::sys::socket;
    let secs = |d: Duration| libc::c_int::try_from(d.as_secs()).unwrap_or(libc::c_int::MAX);
    socket::set_keepalive(fd, keepalive.enabled)?;
    if keepalive.enabled {
        if let Some(idle) = keepalive.idle {
            socket::set_keepalive_idle(fd, secs(idle))?;
        }
        if let Some(interval) = keepalive.interval {
            socket::set_keepalive_interval(fd, secs(interval))?;
        }
        if let Some(count) = keepalive.count {
            socket::set_keepalive_count(fd, libc::c_int::try_from(count).unwrap_or(libc::c_int::MAX))?;
        }
    }
    Ok(())
}

/// Text cut short for the narrator.
struct Short<'a>(&'a str);

impl fmt::Debug for Short<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.char_indices().nth(NARRATE_MAX) {
            Some((cut, _)) => write!(f, "{:?}…", &self.0[..cut]),
            None => write!(f, "{:?}", self.0),
        }
    }
}
