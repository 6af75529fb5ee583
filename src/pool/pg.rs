//! `pool::pg`: the manager that pools PostgreSQL connections.
//!
//! What each [`Manager`] step costs on the wire (protocol §55.2):
//!
//! | step | messages | cost |
//! |---|---|---|
//! | connect | TCP handshake, StartupMessage, SASL (SCRAM-SHA-256) × 3, ParameterStatus…, BackendKeyData, ReadyForQuery | a `fork()` on the server, PBKDF2 on both sides, ~4 round trips |
//! | validate | `Query("")` → EmptyQueryResponse, ReadyForQuery | one round trip, no parse, no plan |
//! | check | none: reads the status byte of the last ReadyForQuery (`I`, `T`, `E`) | nothing |
//! | reset | `Query("ROLLBACK")` if a transaction is open, `Query("UNLISTEN *")` if the holder ran LISTEN | one round trip each, none for a clean connection |
//!
//! The validation query is the empty string, as pgjdbc's `isValid()` and
//! pgx's `Ping` send: the server answers EmptyQueryResponse without
//! parsing or planning anything, so it measures exactly "is the backend
//! there and in sync". `SELECT 1` would do the same job with a parse,
//! a plan and a row.
//!
//! Simplification: the reset only ends the transaction and any LISTEN (whose
//! notifications would otherwise reach the next holder). Other session
//! state a holder may have changed (`SET`, temp tables, its own prepared
//! statements) survives into the next checkout; the statement cache's
//! statements survive on purpose, since reusing them is the point. `DISCARD ALL` would clear it
//! (PgBouncer's default `server_reset_query`, and close to asyncpg's reset),
//! at the price of a heavier statement on *every* release and of the
//! client's cached prepared statements; run it yourself before releasing if
//! your code changes session settings.
//!
//! Behind a transaction-pooling proxy (PgBouncer's `pool_mode =
//! transaction`, with [`Config::transaction_pooling`](PgConfig::transaction_pooling)
//! set), this reset is also the right one: a checked-out connection that
//! is inside a transaction still owns its server connection, so the
//! `ROLLBACK` reaches it and releases it; between transactions there is no
//! server session of ours to clean (the client refuses `LISTEN` and keeps
//! no statement cache under that setting, so the `UNLISTEN *` branch never
//! runs), and `DISCARD ALL` would only run on whichever server connection
//! the proxy picked.
//!
//! Simplification: a connection the pool closes (idle timeout, max
//! lifetime, broken) is dropped, which closes the socket without a
//! Terminate message, because `Drop` cannot await. The server logs
//! "unexpected EOF on client connection" and cleans up the same way; a
//! driver that cares would send Terminate from the background task first.

use crate::pg::config::{Config as PgConfig, ConfigError};
use crate::pg::connection::{Connection, Error};
use crate::pg::protocol::TransactionStatus;

use super::{Health, Manager};

/// The query [`PgManager::validate`](Manager::validate) sends: empty, so the
/// server has nothing to parse.
pub const VALIDATION_QUERY: &str = "";

/// The statement that cleans a connection returned inside a transaction.
pub const RESET_QUERY: &str = "ROLLBACK";

/// Opens, pings and resets [`Connection`]s to one server.
#[derive(Debug, Clone)]
pub struct PgManager {
    config: PgConfig,
}

impl PgManager {
    /// A manager for the server (and user, database, password) in `config`.
    pub fn new(config: PgConfig) -> PgManager {
        PgManager { config }
    }

    /// A manager for a `postgres://` URL.
    pub fn from_url(url: &str) -> Result<PgManager, ConfigError> {
        Ok(PgManager::new(PgConfig::from_url(url)?))
    }

    /// Where the connections go.
    pub fn config(&self) -> &PgConfig {
        &self.config
    }
}

impl Manager for PgManager {
    type Connection = Connection;
    type Error = Error;

    async fn connect(&self) -> Result<Connection, Error> {
        Connection::connect(&self.config).await
    }

    async fn validate(&self, conn: &mut Connection) -> Result<(), Error> {
        conn.simple_query(VALIDATION_QUERY).await.map(drop)
    }

    // ANCHOR: check
    fn check(&self, conn: &mut Connection) -> Health {
        if !conn.is_usable() {
            // An I/O error, a protocol error, a FATAL from the server
            // (`pg_terminate_backend`), or a query abandoned halfway.
            return Health::Broken;
        }
        if conn.is_listening() {
            // Its notifications would reach the next holder.
            return Health::NeedsReset;
        }
        match conn.transaction_status() {
            TransactionStatus::Idle => Health::Clean,
            // `BEGIN` without `COMMIT`, or a failed statement inside a
            // transaction: the next holder must not inherit either.
            TransactionStatus::InTransaction | TransactionStatus::Failed => Health::NeedsReset,
        }
    }
    // ANCHOR_END: check

    async fn reset(&self, conn: &mut Connection) -> Result<(), Error> {
        if conn.transaction_status() != TransactionStatus::Idle {
            conn.simple_query(RESET_QUERY).await?;
        }
        if conn.is_listening() {
            conn.unlisten_all().await?;
        }
        Ok(())
    }
}
