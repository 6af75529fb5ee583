//! `pool::error`: why an acquire failed.
//!
//! Three answers, each with what a caller needs to act on it: a timeout
//! says how full the pool was and the last connect error (so "the server is
//! down" and "the pool is too small" read differently), `Closed` says the
//! pool is gone, and `Connect` carries the manager's own error from
//! [`Pool::open`](super::Pool::open).

use std::fmt;
use std::io;
use std::time::Duration;

/// Why `acquire()` (or [`Pool::open`](super::Pool::open)) failed.
#[derive(Debug)]
pub enum PoolError {
    /// No connection within the acquire timeout: every slot was held and none
    /// came back, or connecting kept failing (then `last_connect_error` says why).
    Timeout {
        /// How long the acquire waited.
        waited: Duration,
        /// The pool's ceiling, for the message.
        max_size: usize,
        /// Slots in use when it gave up.
        active: usize,
        /// The most recent connect failure in this pool, if any.
        last_connect_error: Option<String>,
    },
    /// The pool was closed (or its last [`Pool`](super::Pool) handle dropped).
    Closed,
    /// Opening the first connections failed ([`Pool::open`](super::Pool::open) only: `acquire()`
    /// retries a failed connect until its timeout instead).
    Connect(Box<dyn std::error::Error + Send + Sync>),
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolError::Timeout {
                waited,
                max_size,
                active,
                last_connect_error,
            } => {
                write!(
                    f,
                    "pool acquire timed out after {waited:?} ({active}/{max_size} slots in use"
                )?;
                match last_connect_error {
                    Some(e) => write!(f, "; last connect error: {e})"),
                    None => write!(f, ")"),
                }
            }
            PoolError::Closed => f.write_str("pool is closed"),
            PoolError::Connect(e) => write!(f, "pool could not open a connection: {e}"),
        }
    }
}

impl std::error::Error for PoolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PoolError::Connect(e) => Some(e.as_ref()),
            _ => None,
        }
    }
}

impl From<PoolError> for io::Error {
    fn from(e: PoolError) -> io::Error {
        let kind = match e {
            PoolError::Timeout { .. } => io::ErrorKind::TimedOut,
            PoolError::Closed => io::ErrorKind::NotConnected,
            PoolError::Connect(_) => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}
