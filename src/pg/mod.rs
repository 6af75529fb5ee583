//! `pg`: a minimal but real PostgreSQL client, in three layers.
//!
//! - [`protocol`]: the wire protocol with no I/O (bytes in, messages out).
//! - [`auth`]: cleartext, MD5 and SCRAM-SHA-256 (RFC 5802/7677).
//! - [`Connection`]: the protocol run over a `net` stream on the reactor
//!   (module [`connection`]).
//!
//! Plus [`config`] (URLs and `PG*` variables) and [`tls`] (`sslmode` and
//! the certificate checks each mode makes). The throwaway local server
//! the tests and examples talk to is not part of the client: it lives in
//! [`crate::testbed`]. `docs/client.md` follows one query through all of
//! them.

pub mod auth;
pub mod config;
pub mod connection;
pub mod protocol;
pub mod tls;

pub use config::Config;
pub use connection::{Connection, Error, FromSql, Notification, Row, RowIndex, Rows, ToSql, Transaction, Value};
/// The SQLSTATE codes a program most often matches on
/// ([`Error::code`]): `connlab::pg::sqlstate::UNIQUE_VIOLATION`. They are
/// defined beside the decoder that reads them, in
/// [`protocol::backend::sqlstate`].
pub use protocol::backend::sqlstate;
