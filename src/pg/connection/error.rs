//! What can go wrong on a PostgreSQL connection, as one typed error.
//!
//! The split that matters to a caller: a [`Error::Db`] is the *server*
//! refusing one statement (a syntax error, a unique violation, a cancel);
//! the connection is still good and the next query works. Everything else
//! that comes from the wire ([`Io`](Error::Io), [`Protocol`](Error::Protocol),
//! a `FATAL` server error) breaks the connection: later calls answer
//! [`Error::Closed`] at once instead of hanging.

use std::fmt;
use std::io;

use crate::pg::auth::AuthError;
use crate::pg::config::ConfigError;
use crate::pg::protocol::{DbError, EncodeError, ProtocolError};

/// A failed connection attempt or query.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The server's ErrorResponse: SQLSTATE, message, detail, hint, position.
    Db(Box<DbError>),
    /// A socket error (connect refused, reset, EOF mid-message, ...).
    Io(io::Error),
    /// The server's bytes broke the protocol; the stream cannot be trusted.
    Protocol(ProtocolError),
    /// Something we were asked to send cannot be encoded (a NUL in a string).
    Encode(EncodeError),
    /// Authentication could not even be attempted or was not trusted
    /// (an unsupported method, a server that failed to prove itself). A
    /// *wrong password* is the server's verdict instead: [`Error::Db`], `28P01`.
    Auth(AuthError),
    /// The URL or `PG*` settings are invalid.
    Config(ConfigError),
    /// TLS could not be set up as `sslmode` asks: the server refused it,
    /// broke the SSLRequest exchange, or failed the certificate check.
    Tls(String),
    /// The server sent a valid message that makes no sense at this point.
    Unexpected(String),
    /// The connection broke earlier (the reason is given) or was closed.
    Closed(String),
    /// In a pipeline: this statement never ran, because an earlier one in
    /// the same batch failed and the server skipped ahead to Sync.
    Skipped,
    /// Refused before sending: the statement would leave state in the
    /// server session, and the connection is configured for a
    /// transaction-pooling proxy ([`Config::transaction_pooling`](crate::pg::Config::transaction_pooling)).
    SessionState(super::session_state::SessionState),
    /// A request's rows went past a configured limit
    /// ([`Config::max_result_bytes`](crate::pg::config::Config::max_result_bytes)
    /// or [`max_result_rows`](crate::pg::config::Config::max_result_rows)).
    /// The rest of the result was not read and the connection is closed.
    ResultTooLarge {
        /// The limit's name, `max_result_bytes` or `max_result_rows`.
        limit: &'static str,
        /// Its value.
        max: u64,
    },
    /// This call cannot serve that statement; the connection is still
    /// usable and the message names the call that can (a `COPY` sent
    /// through `query`, say).
    Unsupported(&'static str),
    /// `COMMIT` found the transaction already failed (a statement in it
    /// was refused), so the server rolled it back instead: nothing was
    /// committed. The connection is usable.
    RolledBack,
    /// A column value could not become the Rust type asked for.
    Conversion {
        /// The column's name (or `value`).
        column: String,
        /// Why not.
        reason: String,
    },
}

impl Error {
    /// The SQLSTATE, when the server reported the error (`57014` for a
    /// cancelled query, `28P01` for a wrong password).
    pub fn code(&self) -> Option<&str> {
        self.db().map(|db| db.code.as_str())
    }

    /// The server's error, if this is one.
    pub fn db(&self) -> Option<&DbError> {
        match self {
            Error::Db(db) => Some(db),
            _ => None,
        }
    }

    /// Does this error leave the connection unusable?
    pub fn is_fatal(&self) -> bool {
        match self {
            Error::Db(db) => is_fatal_severity(db),
            Error::Io(_)
            | Error::Protocol(_)
            | Error::Unexpected(_)
            | Error::Closed(_)
            | Error::Auth(_)
            | Error::Tls(_)
            | Error::ResultTooLarge { .. } => true,
            Error::Encode(_)
            | Error::Config(_)
            | Error::Skipped
            | Error::RolledBack
            | Error::Unsupported(_)
            | Error::Conversion { .. }
            | Error::SessionState(_) => false,
        }
    }

    pub(crate) fn conversion(column: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::Conversion {
            column: column.into(),
            reason: reason.into(),
        }
    }
}

/// `FATAL` and `PANIC` end the session: the server closes the socket
/// right after sending the error. The non-localized severity (`V`, since
/// PostgreSQL 9.6) is checked first because `S` may be translated.
pub(crate) fn is_fatal_severity(db: &DbError) -> bool {
    let severity = db.severity_nonlocalized.as_deref().unwrap_or(&db.severity);
    matches!(severity, "FATAL" | "PANIC")
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Db(db) => write!(f, "{db}"),
            Error::Io(e) => write!(f, "{e}"),
            Error::Protocol(e) => write!(f, "{e}"),
            Error::Encode(e) => write!(f, "{e}"),
            Error::Auth(e) => write!(f, "authentication failed: {e}"),
            Error::Config(e) => write!(f, "{e}"),
            Error::Tls(why) => write!(f, "TLS: {why}"),
            Error::Unexpected(what) => write!(f, "protocol error: unexpected {what}"),
            Error::Closed(why) => write!(f, "connection is closed: {why}"),
            Error::ResultTooLarge { limit, max } => write!(
                f,
                "the result is larger than {limit} ({max}); the connection was closed without reading the rest"
            ),
            Error::Skipped => f.write_str("not executed: an earlier statement in the pipeline failed"),
            Error::SessionState(refused) => write!(f, "{refused}"),
            Error::Unsupported(what) => write!(f, "not supported by this call: {what}"),
            Error::RolledBack => f.write_str("COMMIT rolled back: an earlier statement in the transaction failed"),
            Error::Conversion { column, reason } => write!(f, "column {column} {reason}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Db(db) => Some(&**db),
            Error::Io(e) => Some(e),
            Error::Protocol(e) => Some(e),
            Error::Encode(e) => Some(e),
            Error::Config(e) => Some(e),
            Error::Auth(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::Io(e)
    }
}

impl From<ProtocolError> for Error {
    fn from(e: ProtocolError) -> Error {
        Error::Protocol(e)
    }
}

impl From<EncodeError> for Error {
    fn from(e: EncodeError) -> Error {
        Error::Encode(e)
    }
}

impl From<AuthError> for Error {
    fn from(e: AuthError) -> Error {
        Error::Auth(e)
    }
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Error {
        Error::Config(e)
    }
}

impl From<DbError> for Error {
    fn from(e: DbError) -> Error {
        Error::Db(Box::new(e))
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        match e {
            Error::Io(e) => e,
            other => {
                let kind = match &other {
                    Error::Protocol(_) => io::ErrorKind::InvalidData,
                    Error::Encode(_) | Error::Config(_) => io::ErrorKind::InvalidInput,
                    Error::Closed(_) => io::ErrorKind::NotConnected,
                    Error::Auth(_) | Error::Tls(_) => io::ErrorKind::PermissionDenied,
                    _ => io::ErrorKind::Other,
                };
                io::Error::new(kind, other)
            }
        }
    }
}
