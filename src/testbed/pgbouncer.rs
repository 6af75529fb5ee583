//! `testbed::pgbouncer`: a throwaway PgBouncer in front of a throwaway
//! PostgreSQL.
//!
//! PgBouncer is the other architecture of pooling (Q30): not a library in
//! the application, but a single-threaded proxy (libevent over epoll) that
//! accepts many client connections and hands each *transaction* (or each
//! session) one of a few server connections. [`PgBouncer::start`] runs
//! Debian's `pgbouncer` the way a deployment does, on loopback:
//!
//! 1. a temp dir with `pgbouncer.ini` and a `userlist.txt` holding the
//!    login's SCRAM secret exactly as the server stores it (read from
//!    `pg_authid`), so clients authenticate to PgBouncer with SCRAM and
//!    PgBouncer logs in to PostgreSQL with the same secret;
//! 2. `pgbouncer pgbouncer.ini` in the foreground on a free port (as the
//!    `postgres` or `nobody` account when we are root: it refuses root);
//! 3. ready when the port accepts; on drop (or, through the watchdog, on
//!    any exit) it is stopped and the directory removed.
//!
//! Its admin console is the virtual database `pgbouncer`: `SHOW POOLS`,
//! `SHOW CLIENTS`, `SHOW SERVERS` answer over the ordinary protocol (simple
//! queries only). References: `pgbouncer(1)`, `pgbouncer(5)` (the ini file),
//! and the "Features" page's table of what breaks in transaction pooling.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io;
use std::path::Path;

use super::postgres::{Cluster, DATABASE, SCRAM};
use super::process::{self, Daemon, DaemonSpec};
use crate::pg::connection::Error;
use crate::pg::Connection;

/// When PgBouncer gives a client's server connection back to its pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolMode {
    /// When the client disconnects: one server connection per client, as
    /// direct, and every session feature works.
    Session,
    /// When a transaction ends: a client holds a server connection only
    /// from its first statement to its COMMIT (or, outside a transaction,
    /// for one statement). Many clients share few server connections, and
    /// session state (`SET`, `PREPARE`, `LISTEN`, session advisory locks)
    /// stays behind on a server connection someone else gets next.
    Transaction,
}

impl PoolMode {
    /// The `pool_mode` value in `pgbouncer.ini`.
    pub fn as_str(self) -> &'static str {
        match self {
            PoolMode::Session => "session",
            PoolMode::Transaction => "transaction",
        }
    }
}

/// The settings a run chooses; the rest of the ini file is fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// `pool_mode`.
    pub mode: PoolMode,
    /// `default_pool_size`: server connections per (database, user) pair.
    pub default_pool_size: u32,
    /// `max_client_conn`: client connections PgBouncer accepts.
    pub max_client_conn: u32,
}

impl Default for Settings {
    /// Transaction pooling onto 20 server connections, PgBouncer's own
    /// default pool size; room for 1000 clients.
    fn default() -> Settings {
        Settings {
            mode: PoolMode::Transaction,
            default_pool_size: 20,
            max_client_conn: 1000,
        }
    }
}

/// The name of the admin console's virtual database.
pub const ADMIN_DATABASE: &str = "pgbouncer";

/// A running throwaway PgBouncer. Dropping it stops it and deletes its files.
pub struct PgBouncer {
    daemon: Daemon,
    settings: Settings,
}

impl std::fmt::Debug for PgBouncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgBouncer")
            .field("port", &self.port())
            .field("pid", &self.pid())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl PgBouncer {
    /// Start PgBouncer in front of `cluster`'s database with `settings`.
    pub fn start(cluster: &Cluster, settings: Settings) -> io::Result<PgBouncer> {
        let program = process::find_program("pgbouncer", "PGBOUNCER_BIN")?;
        let secret = cluster.psql(&format!(
            "SELECT rolpassword FROM pg_authid WHERE rolname = '{}'",
            SCRAM.user
        ))?;
        if !secret.starts_with("SCRAM-SHA-256$") {
            return Err(io::Error::other(format!(
                "the server stores {}'s password as {secret:.14}…, not a SCRAM secret",
                SCRAM.user
            )));
        }
        let run_as = process::unprivileged_user(&["postgres", "nobody"])?;
        let spec = DaemonSpec {
            name: "pgbouncer",
            program: &program,
            run_as,
            // SIGINT waits for clients to leave; SIGTERM (1.18) stops at once.
            stop_signal: "TERM",
        };
        let daemon = Daemon::start(spec, |root, port| {
            process::write_for(
                &root.join("userlist.txt"),
                &format!("\"{}\" \"{secret}\"\n", SCRAM.user),
                run_as,
            )?;
            process::write_for(
                &root.join("pgbouncer.ini"),
                &ini(root, port, cluster.port(), settings),
                run_as,
            )?;
            Ok(vec![OsString::from("pgbouncer.ini")])
        })?;
        Ok(PgBouncer { daemon, settings })
    }

    /// `postgres://connlab:connlab@127.0.0.1:PORT/postgres`: the SCRAM
    /// login, through PgBouncer.
    pub fn url(&self) -> String {
        format!(
            "postgres://{}:{}@127.0.0.1:{}/{DATABASE}",
            SCRAM.user,
            SCRAM.password.unwrap_or_default(),
            self.port()
        )
    }

    /// The admin console (`SHOW POOLS`, `SHOW CLIENTS`, ...).
    pub fn admin_url(&self) -> String {
        format!(
            "postgres://{}:{}@127.0.0.1:{}/{ADMIN_DATABASE}",
            SCRAM.user,
            SCRAM.password.unwrap_or_default(),
            self.port()
        )
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.daemon.port()
    }

    /// PgBouncer's process id (one process, one thread).
    pub fn pid(&self) -> u32 {
        self.daemon.pid()
    }

    /// The settings it runs with.
    pub fn settings(&self) -> Settings {
        self.settings
    }

    /// The end of its log.
    pub fn log_tail(&self) -> String {
        self.daemon.log_tail()
    }
}

// ANCHOR: ini
/// `pgbouncer.ini` for one database on the throwaway cluster.
fn ini(root: &Path, port: u16, server_port: u16, settings: Settings) -> String {
    let mut ini = String::new();
    let root = root.display();
    // Infallible: writing to a String.
    let _ = write!(
        ini,
        "\
[databases]
{DATABASE} = host=127.0.0.1 port={server_port} dbname={DATABASE}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {root}/userlist.txt
admin_users = {user}
pool_mode = {mode}
default_pool_size = {pool}
max_client_conn = {clients}
; no spare connections: the pool size is the whole story
min_pool_size = 0
reserve_pool_size = 0
; the log goes to stderr, which the harness keeps in pgbouncer.log
log_connections = 0
log_disconnections = 0
",
        user = SCRAM.user,
        mode = settings.mode.as_str(),
        pool = settings.default_pool_size,
        clients = settings.max_client_conn,
    );
    ini
}
// ANCHOR_END: ini

/// One row of `SHOW POOLS` on the admin console: PgBouncer's own count of
/// the two sides of one pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolCounts {
    /// `cl_active`: client connections paired with a server connection, or idle with nothing to do.
    pub cl_active: u64,
    /// `cl_waiting`: clients that sent a query and wait for a server connection.
    pub cl_waiting: u64,
    /// `sv_active`: server connections serving a client now.
    pub sv_active: u64,
    /// `sv_idle`: server connections open and free.
    pub sv_idle: u64,
    /// `sv_used`: server connections free but not yet checked again.
    pub sv_used: u64,
    /// `sv_login`: server connections still logging in.
    pub sv_login: u64,
}

impl PoolCounts {
    /// Client connections PgBouncer holds for this pool.
    pub fn clients(&self) -> u64 {
        self.cl_active + self.cl_waiting
    }

    /// Server connections PgBouncer holds open to PostgreSQL for this pool.
    pub fn servers(&self) -> u64 {
        self.sv_active + self.sv_idle + self.sv_used + self.sv_login
    }
}

/// `SHOW POOLS` over an admin-console connection ([`PgBouncer::admin_url`]),
/// the row for the throwaway database. The admin console speaks the
/// simple query protocol only; every value arrives as text.
pub async fn show_pools(admin: &mut Connection) -> Result<PoolCounts, Error> {
    let results = admin.simple_query("SHOW POOLS").await?;
    let rows = results
        .first()
        .ok_or_else(|| Error::Unexpected("SHOW POOLS returned nothing".into()))?;
    let column = |name: &str| rows.columns().iter().position(|c| c.name == name);
    let row = rows
        .iter()
        .find(|row| row.raw(0).ok().flatten() == Some(DATABASE.as_bytes()))
        .ok_or_else(|| Error::Unexpected(format!("SHOW POOLS has no row for {DATABASE}")))?;
    let number = |name: &str| -> Result<u64, Error> {
        let text = column(name)
            .and_then(|i| row.raw(i).ok().flatten())
            .ok_or_else(|| Error::Unexpected(format!("SHOW POOLS has no {name}")))?;
        std::str::from_utf8(text)
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| Error::Unexpected(format!("SHOW POOLS {name} is not a number")))
    };
    Ok(PoolCounts {
        cl_active: number("cl_active")?,
        cl_waiting: number("cl_waiting")?,
        sv_active: number("sv_active")?,
        sv_idle: number("sv_idle")?,
        sv_used: number("sv_used")?,
        sv_login: number("sv_login")?,
    })
}

/// `SHOW CLIENTS`: how many client connections PgBouncer has, one row
/// each, for the throwaway database (the admin console's own excluded).
pub async fn show_clients(admin: &mut Connection) -> Result<usize, Error> {
    let results = admin.simple_query("SHOW CLIENTS").await?;
    let rows = results
        .first()
        .ok_or_else(|| Error::Unexpected("SHOW CLIENTS returned nothing".into()))?;
    let database = rows.columns().iter().position(|c| c.name == "database");
    Ok(rows
        .iter()
        .filter(|row| database.and_then(|i| row.raw(i).ok().flatten()) == Some(DATABASE.as_bytes()))
        .count())
}
