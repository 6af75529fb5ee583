//! `testbed::postgres`: a throwaway PostgreSQL server for tests and examples.
//!
//! [`Cluster::start`] does what a DBA does by hand, in well under two
//! seconds on loopback:
//!
//! 1. find the server binaries (`$PG_BIN`, `$PATH`, `/usr/lib/postgresql/*/bin`,
//!    highest version first);
//! 2. `initdb` a new data directory in a temp dir (as an unprivileged user
//!    when we run as root: `initdb` and `postgres` refuse to run as root);
//! 3. write a `pg_hba.conf` with one login per authentication method (see
//!    [`Login`]) and start `postgres` on a free TCP port on 127.0.0.1 and a
//!    Unix socket in the temp dir;
//! 4. wait until the server says it is ready, create the logins and a small
//!    `users` table (`(42, 'Alice')` among 1000 rows);
//! 5. on drop, stop the server and remove the directory.
//!
//! The [`Watchdog`] makes step 5 hold even when a
//! test panics or the process is killed: it waits for `initdb`, stops the
//! server with `SIGQUIT` (an immediate shutdown) and removes the directory.
//!
//! Durability is switched off (`fsync=off`, `synchronous_commit=off`,
//! `full_page_writes=off`): this data lives for seconds and must never be
//! trusted, which is exactly why it is fast.
//!
//! References: `initdb(1)`, `postgres(1)`, `pg_ctl(1)`, the `pg_hba.conf`
//! chapter of the PostgreSQL manual (§21.1), and `postmaster.pid`'s layout
//! in `src/include/miscadmin.h` (`LOCK_FILE_LINE_PM_STATUS`).

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use super::process::{self, Watchdog};
use crate::sys::user::Account;

/// One login the cluster creates, and the `pg_hba.conf` method that guards it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Login {
    /// The role name.
    pub user: &'static str,
    /// Its password (`None` for the trust login).
    pub password: Option<&'static str>,
    /// The `pg_hba.conf` method: `scram-sha-256`, `md5`, `password` or `trust`.
    pub method: &'static str,
}

impl fmt::Debug for Login {
    // The passwords here are public test fixtures, but a `Debug` that prints
    // passwords is a habit worth not having anywhere.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Login")
            .field("user", &self.user)
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

/// The default login: SCRAM-SHA-256, and the cluster's superuser.
pub const SCRAM: Login = Login {
    user: "connlab",
    password: Some("connlab"),
    method: "scram-sha-256",
};
/// A login whose password is stored as an MD5 hash and checked with `md5`.
pub const MD5: Login = Login {
    user: "connlab_md5",
    password: Some("md5-secret"),
    method: "md5",
};
/// A login checked with `password`: the client sends the password in clear.
pub const CLEARTEXT: Login = Login {
    user: "connlab_clear",
    password: Some("clear-secret"),
    method: "password",
};
/// A login with no password at all (`trust`).
pub const TRUST: Login = Login {
    user: "connlab_trust",
    password: None,
    method: "trust",
};
/// Every login, in `pg_hba.conf` order.
pub const LOGINS: [Login; 4] = [SCRAM, MD5, CLEARTEXT, TRUST];

/// The database the logins connect to (created by `initdb`).
pub const DATABASE: &str = "postgres";

/// How long to wait for the server to become ready before giving up.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How often to look at `postmaster.pid` while waiting.
const READY_POLL: Duration = Duration::from_millis(5);
/// `postmaster.pid` line 8 (1-based) holds the server's status; `ready`
/// means it accepts connections. This is what `pg_ctl -w` polls too.
const PM_STATUS_LINE: usize = 7;
const PM_STATUS_READY: &str = "ready";

/// Server settings for a fast, disposable cluster, passed as `-c name=value`.
const SETTINGS: &[(&str, &str)] = &[
    ("listen_addresses", "127.0.0.1"),
    ("max_connections", "200"),
    ("shared_buffers", "16MB"),
    ("fsync", "off"),
    ("synchronous_commit", "off"),
    ("full_page_writes", "off"),
    ("password_encryption", "scram-sha-256"),
    ("log_min_messages", "warning"),
];

/// A running throwaway PostgreSQL server. Dropping it stops the server and
/// deletes its files.
pub struct Cluster {
    bin: PathBuf,
    /// The temp dir: `data/`, the Unix socket, `server.log`.
    root: PathBuf,
    port: u16,
    run_as: Option<Account>,
    /// `None` once stopped.
    running: Mutex<Option<Running>>,
}

/// The two children of a live cluster.
struct Running {
    server: Child,
    watchdog: Watchdog,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("root", &self.root)
            .field("port", &self.port)
            .field("pid", &self.pid())
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// One cluster per process, started on first use and shared by every
    /// caller after that (a test binary then starts ONE server). It is never
    /// dropped; the watchdog removes it when the process exits.
    pub fn shared() -> io::Result<&'static Cluster> {
        static SHARED: OnceLock<Result<Cluster, String>> = OnceLock::new();
        // io::Error is not Clone, so a failure is kept as its message and
        // every caller gets the same explanation.
        match SHARED.get_or_init(|| Cluster::start().map_err(|e| e.to_string())) {
            Ok(cluster) => Ok(cluster),
            Err(msg) => Err(io::Error::other(msg.clone())),
        }
    }

    /// Create and start a new cluster of our own.
    pub fn start() -> io::Result<Cluster> {
        Cluster::start_with(false)
    }

    /// [`start`](Self::start), with TLS on: a CA and a server certificate
    /// are made for the run ([`certs`](super::certs)) and `postgresql.conf`
    /// gets `ssl = on`, `ssl_cert_file`, `ssl_key_file`. Clients that
    /// verify the server use [`tls_ca`](Self::tls_ca) as `sslrootcert`.
    pub fn start_with_tls() -> io::Result<Cluster> {
        Cluster::start_with(true)
    }

    /// The CA that signed this cluster's certificate, when it runs with TLS.
    pub fn tls_ca(&self) -> Option<PathBuf> {
        Some(self.root.join(TLS_DIR).join("ca.crt")).filter(|ca| ca.exists())
    }

    fn start_with(tls: bool) -> io::Result<Cluster> {
        let bin = find_bin_dir()?;
        let run_as = process::unprivileged_user(&["postgres", "nobody"])?;
        let root = process::temp_dir_path("pg");
        // The watchdog comes before the directory exists, so that a kill at
        // any later moment leaves nothing behind.
        let mut watchdog = Watchdog::spawn(&root, run_as)?;
        let init = process::make_temp_dir(&root, run_as)
            .and_then(|()| init_data_dir(&bin, &root, run_as, &mut watchdog))
            .and_then(|()| if tls { enable_tls(&root, run_as) } else { Ok(()) })
            .and_then(|()| process::on_free_port(|port| start_server(&bin, &root, port, run_as, &mut watchdog)));
        let (server, port) = match init {
            Ok(started) => started,
            Err(e) => {
                // Clean up now rather than leave it to the watchdog, so a
                // caller that retries does not find our leftovers. Ignored
                // result: the error we return matters more.
                watchdog.dismiss();
                let _ = fs::remove_dir_all(&root);
                return Err(e);
            }
        };
        // From here on, Drop cleans up.
        let cluster = Cluster {
            bin,
            root,
            port,
            run_as,
            running: Mutex::new(Some(Running { server, watchdog })),
        };
        cluster.create_fixtures()?;
        Ok(cluster)
    }

    /// `postgres://connlab:connlab@127.0.0.1:PORT/postgres`: the default
    /// [`SCRAM`] login over TCP.
    pub fn url(&self) -> String {
        self.url_for(&SCRAM)
    }

    /// The TCP URL for one of the [`LOGINS`].
    pub fn url_for(&self, login: &Login) -> String {
        match login.password {
            Some(pw) => format!("postgres://{}:{pw}@127.0.0.1:{}/{DATABASE}", login.user, self.port),
            None => format!("postgres://{}@127.0.0.1:{}/{DATABASE}", login.user, self.port),
        }
    }

    /// The same login over the Unix socket: `postgres://…@/postgres?host=/tmp/…&port=PORT`.
    pub fn unix_url_for(&self, login: &Login) -> String {
        let auth = match login.password {
            Some(pw) => format!("{}:{pw}", login.user),
            None => login.user.to_string(),
        };
        format!(
            "postgres://{auth}@/{DATABASE}?host={}&port={}",
            self.root.display(),
            self.port
        )
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the Unix socket `.s.PGSQL.PORT`.
    pub fn socket_dir(&self) -> &Path {
        &self.root
    }

    /// The server's log file (startup errors end up here).
    pub fn log_path(&self) -> PathBuf {
        self.root.join("server.log")
    }

    /// The postmaster's process id (it changes on [`restart`](Self::restart)),
    /// or `None` once stopped.
    pub fn pid(&self) -> Option<u32> {
        self.lock().as_ref().map(|running| running.server.id())
    }

    /// Stop the server (fast shutdown: every connection is closed) and start
    /// it again on the same port with the same data. For tests of what a
    /// client or a pool does when the server goes away under it.
    pub fn restart(&self) -> io::Result<()> {
        let mut guard = self.lock();
        let running = guard
            .as_mut()
            .ok_or_else(|| io::Error::other("the cluster was stopped"))?;
        self.stop_server(&mut running.server, "fast")?;
        running.server = start_server(&self.bin, &self.root, self.port, self.run_as, &mut running.watchdog)?;
        Ok(())
    }

    /// Stop the server now and remove its files (what drop does, with the
    /// error reported instead of swallowed).
    pub fn stop(mut self) -> io::Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> io::Result<()> {
        let Some(mut running) = self.lock().take() else {
            return Ok(());
        };
        // We do the watchdog's job ourselves, so it must not race us.
        running.watchdog.dismiss();
        // The data is thrown away, so skip the shutdown checkpoint.
        let stopped = self.stop_server(&mut running.server, "immediate");
        let removed = fs::remove_dir_all(&self.root);
        stopped?;
        removed.map_err(|e| io::Error::new(e.kind(), format!("removing {}: {e}", self.root.display())))
    }

    /// A poisoned lock only means another thread panicked while holding it;
    /// the state inside is still accurate, so carry on.
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Running>> {
        self.running.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `pg_ctl stop -m MODE -W` sends the signal (SIGINT for fast, SIGQUIT
    /// for immediate) and returns; we then reap our child, which returns the
    /// moment the postmaster exits (no polling, unlike `pg_ctl -w`).
    fn stop_server(&self, server: &mut Child, mode: &str) -> io::Result<()> {
        if server.try_wait()?.is_some() {
            return Ok(());
        }
        let status = self
            .command("pg_ctl")
            .arg("stop")
            .arg("-D")
            .arg(self.root.join("data"))
            .args(["-m", mode, "-W"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !matches!(status, Ok(s) if s.success()) {
            // pg_ctl failed (it may find no postmaster.pid): fall back to
            // SIGKILL, which always works on our own child.
            server.kill()?;
        }
        server.wait()?;
        Ok(())
    }

    fn command(&self, program: &str) -> Command {
        process::command(&self.bin.join(program), self.run_as)
    }

    /// Create the non-default logins and the `users` table, with `psql` as
    /// the superuser over the Unix socket.
    fn create_fixtures(&self) -> io::Result<()> {
        let mut sql = String::new();
        // The MD5 login's password must be *stored* as an MD5 hash, or the
        // server cannot run the md5 exchange for it; the others use SCRAM.
        for login in [MD5, CLEARTEXT] {
            let encryption = if login.method == "md5" { "md5" } else { "scram-sha-256" };
            sql.push_str(&format!(
                "SET password_encryption = '{encryption}';\n\
                 CREATE ROLE {} LOGIN PASSWORD '{}';\n",
                login.user,
                login.password.unwrap_or_default()
            ));
        }
        sql.push_str(&format!("CREATE ROLE {} LOGIN;\n", TRUST.user));
        sql.push_str(
            "CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL);\n\
             INSERT INTO users SELECT i, 'user ' || i FROM generate_series(1, 1000) AS i WHERE i <> 42;\n\
             INSERT INTO users VALUES (42, 'Alice');\n\
             GRANT SELECT ON users TO PUBLIC;\n",
        );
        self.psql(&sql)
            .map(drop)
            .map_err(|e| io::Error::new(e.kind(), format!("creating the test logins and table: {e}")))
    }

    /// Run `sql` with `psql` as the superuser over the Unix socket and
    /// return its unaligned, tuples-only output (`-At`): one line per row,
    /// columns separated by `|`. For fixtures and for reading what a test
    /// needs from the catalogue, not for anything measured.
    pub fn psql(&self, sql: &str) -> io::Result<String> {
        let psql = self.bin.join("psql");
        let psql = if psql.exists() { psql } else { PathBuf::from("psql") };
        let output = Command::new(&psql)
            .args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.root)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                SCRAM.user,
                "-d",
                DATABASE,
                "-c",
                sql,
            ])
            .env("PGPASSWORD", SCRAM.password.unwrap_or_default())
            .stdin(Stdio::null())
            .output()
            .map_err(|e| io::Error::new(e.kind(), format!("running {}: {e}", psql.display())))?;
        if !output.status.success() {
            return Err(io::Error::other(format!(
                "psql failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim_end().to_string())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            // Drop cannot return an error; say it rather than hide it.
            eprintln!(
                "connlab: stopping the throwaway PostgreSQL at {}: {e}",
                self.root.display()
            );
        }
    }
}

/// Where are `initdb`, `postgres` and `pg_ctl`? `$PG_BIN`, then `$PATH`
/// (following symlinks, so `/usr/local/bin/initdb -> …/15/bin/initdb` finds
/// the real directory with its siblings), then the highest
/// `/usr/lib/postgresql/N/bin` (Debian's layout).
pub fn find_bin_dir() -> io::Result<PathBuf> {
    let has_server = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    if let Some(dir) = std::env::var_os("PG_BIN") {
        let dir = PathBuf::from(dir);
        if has_server(&dir) {
            return Ok(dir);
        }
        return Err(missing_binaries(&format!(
            "PG_BIN={} has no initdb and postgres",
            dir.display()
        )));
    }
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        if let Ok(initdb) = fs::canonicalize(dir.join("initdb")) {
            if let Some(real_dir) = initdb.parent() {
                if has_server(real_dir) {
                    return Ok(real_dir.to_path_buf());
                }
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, dir)| has_server(dir))
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, dir)) => Ok(dir),
        None => Err(missing_binaries(
            "initdb and postgres are not in $PG_BIN, on $PATH or under /usr/lib/postgresql/*/bin",
        )),
    }
}

fn missing_binaries(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!(
            "PostgreSQL server binaries not found: {what}. Install them with `scripts/install-postgres` \
             (or `apt-get install postgresql`), or point PG_BIN at the directory holding initdb."
        ),
    )
}

/// `initdb` with the SCRAM superuser, then our own `pg_hba.conf`.
fn init_data_dir(bin: &Path, root: &Path, run_as: Option<Account>, watchdog: &mut Watchdog) -> io::Result<()> {
    let pwfile = root.join("pwfile");
    process::write_for(&pwfile, SCRAM.password.unwrap_or_default(), run_as)?;
    let data = root.join("data");
    let initdb = process::command(&bin.join("initdb"), run_as)
        .arg("-D")
        .arg(&data)
        .args([
            "-U",
            SCRAM.user,
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        ])
        .args(["--auth-local=scram-sha-256", "--auth-host=scram-sha-256"])
        .arg(format!("--pwfile={}", pwfile.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("running {}: {e}", bin.join("initdb").display())))?;
    // If we die now, initdb carries on (and would recreate the directory
    // the watchdog just removed): the watchdog must wait for it first.
    watchdog.wait_for(initdb.id())?;
    let output = initdb.wait_with_output()?;
    fs::remove_file(&pwfile)?;
    if !output.status.success() {
        return Err(io::Error::other(format!(
            "initdb -D {} failed: {}",
            data.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    // Overwrite initdb's file (keeping its owner): first match wins, so the
    // per-login lines come before the catch-all SCRAM lines.
    let mut hba = String::from("# TYPE  DATABASE  USER  ADDRESS  METHOD  (written by connlab's testbed::postgres)\n");
    for login in [MD5, CLEARTEXT, TRUST] {
        hba.push_str(&format!("local all {} {}\n", login.user, login.method));
        hba.push_str(&format!("host  all {} 127.0.0.1/32 {}\n", login.user, login.method));
    }
    hba.push_str("local all all scram-sha-256\nhost  all all 127.0.0.1/32 scram-sha-256\n");
    fs::write(data.join("pg_hba.conf"), hba)
}

/// Where a TLS cluster keeps its certificates, under the temp dir.
const TLS_DIR: &str = "tls";

/// Make the run's certificates and turn TLS on in `postgresql.conf` (so a
/// [`Cluster::restart`] keeps it). The key must be mode 0600 and owned by
/// the server's account, or the server refuses to start.
fn enable_tls(root: &Path, run_as: Option<Account>) -> io::Result<()> {
    let dir = root.join(TLS_DIR);
    fs::create_dir(&dir)?;
    process::give_to(&dir, run_as)?;
    let files = super::certs::server_certificate(&dir, run_as)?;
    let conf = root.join("data").join("postgresql.conf");
    let mut settings = fs::OpenOptions::new().append(true).open(&conf)?;
    use std::io::Write;
    writeln!(
        settings,
        "\n# TLS, with certificates made for this run (connlab's testbed)\nssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'",
        files.cert.display(),
        files.key.display()
    )
}

/// Start `postgres` and wait until `postmaster.pid` says `ready`.
fn start_server(
    bin: &Path,
    root: &Path,
    port: u16,
    run_as: Option<Account>,
    watchdog: &mut Watchdog,
) -> io::Result<Child> {
    let log_path = root.join("server.log");
    let log = fs::OpenOptions::new().create(true).append(true).open(&log_path)?;
    process::give_to(&log_path, run_as)?;
    let data = root.join("data");
    let mut cmd = process::command(&bin.join("postgres"), run_as);
    cmd.arg("-D")
        .arg(&data)
        .arg("-p")
        .arg(port.to_string())
        .arg("-k")
        .arg(root);
    for (name, value) in SETTINGS {
        let mut setting = OsString::from(*name);
        setting.push("=");
        setting.push(value);
        cmd.arg("-c").arg(setting);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("running {}: {e}", bin.join("postgres").display())))?;
    // SIGQUIT is PostgreSQL's immediate shutdown: no checkpoint for data
    // that is thrown away anyway.
    watchdog.server(child.id(), "QUIT")?;
    let pid_file = data.join("postmaster.pid");
    let ready = || {
        fs::read_to_string(&pid_file)
            .is_ok_and(|contents| contents.lines().nth(PM_STATUS_LINE).map(str::trim) == Some(PM_STATUS_READY))
    };
    process::wait_until_ready("postgres", &mut child, &log_path, READY_TIMEOUT, READY_POLL, ready)?;
    Ok(child)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_debug_hides_the_password() {
        let shown = format!("{:?}", SCRAM);
        assert!(shown.contains("connlab"));
        assert!(!shown.contains("password: Some"));
    }
}
