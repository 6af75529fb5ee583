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
//! Files: `wire.rs` (the socket, its buffers and the framing), `types.rs`
//! (Rust values ↔ text format), `rows.rs` (results), `error.rs` (the typed
//! error), `tap.rs` (a record of the messages, for the examples).

use std::collections::VecDeque;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::net::{Stream, TcpStream, UnixStream};
use crate::pg::auth::{AuthStep, Authenticator};
use crate::pg::config::{Config, Host};
use crate::pg::protocol::backend::Message;
use crate::pg::protocol::frontend::{self, Target};
use crate::pg::protocol::{DbError, Format, Oid, TransactionStatus};

mod error;
mod rows;
pub mod tap;
pub mod types;
mod wire;

pub use error::Error;
pub use rows::{Column, Row, Rows};
use types::ToSql;
use wire::{Wire, READ_BUFFER};

/// Keep at most this many unread notices (and notifications): a chatty
/// server must not grow our memory without bound.
const MAX_QUEUED_NOTICES: usize = 64;
/// Show at most this many characters of SQL or a value in the narrator.
const NARRATE_MAX: usize = 80;

/// How long each phase of opening the connection took.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConnectTimings {
    /// The TCP (or Unix) handshake: `connect(2)` until writable.
    pub connect: Duration,
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
    pub async fn cancel(&self) -> Result<(), Error> {
        let stream = self.endpoint.connect(None).await?;
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
    name: String,
    params: Vec<Oid>,
    columns: Arc<[Column]>,
}

impl Statement {
    /// The server-side name (`s1`, `s2`, ...).
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
pub struct Connection {
    wire: Wire,
    /// Outgoing messages are encoded here and sent with one write.
    out: Vec<u8>,
    session: Session,
}

/// What the server has told us about the session.
struct Session {
    endpoint: Endpoint,
    status: TransactionStatus,
    process_id: i32,
    secret_key: i32,
    parameters: Vec<(String, String)>,
    notices: VecDeque<DbError>,
    timings: ConnectTimings,
    next_statement: u64,
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
    /// The messages that may arrive at any time (protocol §55.2.7
    /// "Asynchronous Operations"). Returns the message back if it is not one.
    fn asynchronous<'m>(&mut self, msg: Message<'m>) -> Option<Message<'m>> {
        match msg {
            Message::ParameterStatus { name, value } => {
                match self.parameters.iter_mut().find(|(n, _)| n == name) {
                    Some(slot) => value.clone_into(&mut slot.1),
                    None => self.parameters.push((name.to_string(), value.to_string())),
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
            // Only arrives after this session ran LISTEN. Simplification:
            // connlab has no API to hand notifications out yet, so they are
            // narrated (by the decoder's caller) and dropped.
            Message::NotificationResponse { .. } => None,
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

    async fn establish(config: &Config, tap_bytes: Option<bool>) -> Result<Connection, Error> {
        let started = Instant::now();
        let (stream, endpoint) = open(config).await?;
        let connect = started.elapsed();
        if let Stream::Tcp(tcp) = &stream {
            // Each request is one write and we wait for its answer: Nagle's
            // algorithm could only delay it (libpq sets TCP_NODELAY too).
            tcp.set_nodelay(true)?;
        }
        let mut conn = Connection {
            wire: Wire::new(stream),
            out: Vec::with_capacity(READ_BUFFER),
            session: Session {
                endpoint,
                status: TransactionStatus::Idle,
                process_id: 0,
                secret_key: 0,
                parameters: Vec::new(),
                notices: VecDeque::new(),
                timings: ConnectTimings::default(),
                next_statement: 0,
            },
        };
        if let Some(keep_bytes) = tap_bytes {
            conn.start_wire_tap(keep_bytes);
        }
        let startup = Instant::now();
        conn.startup(config).await?;
        conn.authenticate(config).await?;
        conn.read_parameters().await?;
        conn.session.timings = ConnectTimings {
            connect,
            startup: startup.elapsed(),
        };
        Ok(conn)
    }

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
        frontend::startup_message(&mut self.out, &params)?;
        crate::narrate!("→ StartupMessage {params:?}");
        self.wire.send(&mut self.out).await
    }

    /// The second phase: answer each Authentication request until
    /// AuthenticationOk. [`Authenticator`] decides every answer (and which
    /// requests to refuse); this loop only carries messages back and forth.
    async fn authenticate(&mut self, config: &Config) -> Result<(), Error> {
        let password = config.password.as_ref().map(|p| p.expose());
        let mut auth = Authenticator::new(&config.user, password);
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
        loop {
            let frame = self.wire.next_frame().await?;
            let msg = self.wire.decode(frame)?;
            match self.session.asynchronous(msg) {
                None => {}
                Some(Message::ReadyForQuery(status)) => {
                    self.session.status = status;
                    self.wire.in_flight.set(false);
                    return Ok(failure);
                }
                Some(Message::ErrorResponse(db)) => {
                    if error::is_fatal_severity(&db) {
                        return Err(self.wire.break_with(db.into()));
                    }
                    on(Message::ErrorResponse(db.clone())).map_err(|e| self.wire.break_with(e))?;
                    failure.get_or_insert(db);
                }
                Some(other) => on(other).map_err(|e| self.wire.break_with(e))?,
            }
        }
    }
    // ANCHOR_END: until_ready

    /// Run one or more SQL statements with the simple query protocol
    /// (one Query message, text results, no parameters). One [`Rows`] per
    /// statement; the first error stops the rest (the server runs the
    /// string as one implicit transaction).
    pub async fn simple_query(&mut self, sql: &str) -> Result<Vec<Rows>, Error> {
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
    /// extended protocol with an unnamed statement: Parse, Bind, Describe,
    /// Execute, Sync, sent in one write, answered in one round trip.
    pub async fn query(&mut self, sql: &str, params: &[&dyn ToSql]) -> Result<Rows, Error> {
        let mut results = self.pipeline(&[(sql, params)]).await?;
        results.pop().unwrap_or(Err(Error::Skipped))
    }

    /// Like [`query`](Self::query), for statements without rows: returns
    /// the count in the command tag (`UPDATE 3` → 3).
    pub async fn execute(&mut self, sql: &str, params: &[&dyn ToSql]) -> Result<u64, Error> {
        Ok(self.query(sql, params).await?.rows_affected())
    }

    // ANCHOR: pipeline
    /// Several statements in one batch: Parse/Bind/Describe/Execute for
    /// each, then ONE Sync, all in one write. The server runs them in
    /// order as one implicit transaction. If one fails, the server skips
    /// everything up to the Sync: that statement's slot holds its error,
    /// the later ones [`Error::Skipped`], and the earlier ones their rows,
    /// although their writes were rolled back with the transaction.
    ///
    /// The outer `Err` is for the connection itself (I/O, protocol).
    pub async fn pipeline(&mut self, batch: &[(&str, &[&dyn ToSql])]) -> Result<Vec<Result<Rows, Error>>, Error> {
        self.wire.begin()?;
        for (sql, params) in batch {
            let types: Vec<Oid> = params.iter().map(|p| p.type_oid()).collect();
            frontend::parse(&mut self.out, "", sql, &types)?;
            crate::narrate!("→ Parse \"\" {:?} {types:?}", Short(sql));
            bind(&mut self.out, "", params)?;
            frontend::describe(&mut self.out, Target::Portal, "")?;
            frontend::execute(&mut self.out, "", 0)?;
            crate::narrate!("→ Describe P \"\" → Execute \"\" 0");
        }
        frontend::sync(&mut self.out);
        crate::narrate!("→ Sync ({} bytes in one write)", self.out.len());
        self.wire.send(&mut self.out).await?;

        let mut results: Vec<Result<Rows, Error>> = Vec::with_capacity(batch.len());
        let mut current = Rows::new(Arc::from([]));
        self.until_ready(|msg| collect(msg, &mut current, &mut results)).await?;
        results.resize_with(batch.len(), || Err(Error::Skipped));
        Ok(results)
    }
    // ANCHOR_END: pipeline

    /// Prepare a named statement: Parse, Describe (to learn its parameter
    /// types and result columns), Sync. Reuse it with
    /// [`query_prepared`](Self::query_prepared) to skip parsing and
    /// planning on every call.
    pub async fn prepare(&mut self, sql: &str) -> Result<Statement, Error> {
        self.wire.begin()?;
        self.session.next_statement += 1;
        let name = format!("s{}", self.session.next_statement);
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
            None => Ok(Statement { name, params, columns }),
        }
    }

    // ANCHOR: query_prepared
    /// Run a prepared statement: Bind, Execute, Sync in one write. No
    /// Describe: the columns are already known from [`prepare`](Self::prepare).
    pub async fn query_prepared(&mut self, statement: &Statement, params: &[&dyn ToSql]) -> Result<Rows, Error> {
        self.wire.begin()?;
        bind(&mut self.out, &statement.name, params)?;
        frontend::execute(&mut self.out, "", 0)?;
        frontend::sync(&mut self.out);
        crate::narrate!("→ Execute \"\" 0 → Sync");
        self.wire.send(&mut self.out).await?;
        let mut results = Vec::with_capacity(1);
        let mut current = Rows::new(statement.columns.clone());
        self.until_ready(|msg| collect(msg, &mut current, &mut results)).await?;
        results.pop().unwrap_or(Err(Error::Skipped))
    }
    // ANCHOR_END: query_prepared

    /// Free a prepared statement on the server (Close, Sync).
    pub async fn close_statement(&mut self, statement: Statement) -> Result<(), Error> {
        self.wire.begin()?;
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

    /// Say goodbye properly: Terminate, then close the socket. (Dropping a
    /// connection just closes the socket; the server then logs an
    /// "unexpected EOF" but is otherwise fine.)
    pub async fn close(mut self) -> Result<(), Error> {
        if self.wire.is_broken() {
            return Ok(());
        }
        frontend::terminate(&mut self.out);
        crate::narrate!("→ Terminate");
        self.wire.send(&mut self.out).await
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
        self.session
            .parameters
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every server setting reported so far.
    pub fn parameters(&self) -> &[(String, String)] {
        &self.session.parameters
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

impl AsRawFd for Connection {
    fn as_raw_fd(&self) -> RawFd {
        self.wire.stream.as_raw_fd()
    }
}

/// Sort one extended-protocol message into the statement results: each
/// statement ends with CommandComplete, EmptyQueryResponse,
/// PortalSuspended or ErrorResponse.
fn collect(msg: Message<'_>, current: &mut Rows, results: &mut Vec<Result<Rows, Error>>) -> Result<(), Error> {
    let finish = |current: &mut Rows| std::mem::replace(current, Rows::new(Arc::from([])));
    match msg {
        Message::ParseComplete | Message::BindComplete | Message::NoData => {}
        Message::RowDescription(desc) => current.set_columns(rows::columns_of(&desc)),
        Message::DataRow(row) => current.push(&row)?,
        Message::CommandComplete { tag } => {
            current.set_tag(tag);
            results.push(Ok(finish(current)));
        }
        Message::EmptyQueryResponse | Message::PortalSuspended => results.push(Ok(finish(current))),
        Message::ErrorResponse(db) => {
            finish(current);
            results.push(Err(db.into()));
        }
        other => return Err(unexpected("in an extended query", &other)),
    }
    Ok(())
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
                match endpoint.connect(config.connect_timeout).await {
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
