//! `pg::cluster`: a throwaway PostgreSQL server for tests and examples.
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
//! A *watchdog* makes step 5 hold even when a test panics or the process is
//! killed: a tiny `sh` whose stdin is a pipe from us. We tell it, one line
//! at a time, which child is running (`wait PID` for `initdb`, `server PID`
//! for `postgres`). When our process ends for any reason the kernel closes
//! our end of the pipe, `read` returns end-of-file, and the watchdog waits
//! for `initdb`, stops the server (`SIGQUIT`, an immediate shutdown) and
//! removes the directory. (The alternative, an `atexit` hook, runs neither
//! on `SIGKILL` nor for a static `OnceLock` that is never dropped.)
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
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

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
/// How many times to try a fresh port when another process grabs ours.
const PORT_ATTEMPTS: usize = 5;
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
    run_as: Option<UnixUser>,
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
        let bin = find_bin_dir()?;
        let run_as = unprivileged_user()?;
        let root = temp_dir_path();
        // The watchdog comes before the directory exists, so that a kill at
        // any later moment leaves nothing behind.
        let mut watchdog = Watchdog::spawn(&root, run_as)?;
        let init = make_temp_dir(&root, run_as)
            .and_then(|()| init_data_dir(&bin, &root, run_as, &mut watchdog))
            .and_then(|()| start_on_free_port(&bin, &root, run_as, &mut watchdog));
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
        command(&self.bin, program, self.run_as)
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
        let psql = self.bin.join("psql");
        let psql = if psql.exists() { psql } else { PathBuf::from("psql") };
        let output = Command::new(&psql)
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.root)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                SCRAM.user,
                "-d",
                DATABASE,
                "-c",
                &sql,
            ])
            .env("PGPASSWORD", SCRAM.password.unwrap_or_default())
            .stdin(Stdio::null())
            .output()
            .map_err(|e| io::Error::new(e.kind(), format!("running {}: {e}", psql.display())))?;
        if !output.status.success() {
            return Err(io::Error::other(format!(
                "creating the test logins and table with psql failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        Ok(())
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

/// A system account to run the server as.
#[derive(Clone, Copy, Debug)]
struct UnixUser {
    uid: u32,
    gid: u32,
}

/// `None` when we are not root (the server runs as us); otherwise the
/// `postgres` account if it exists, else `nobody`.
fn unprivileged_user() -> io::Result<Option<UnixUser>> {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the process's effective uid: `geteuid(2)`
    // without an `unsafe` block outside `sys`.
    if fs::metadata("/proc/self")?.uid() != 0 {
        return Ok(None);
    }
    let passwd = fs::read_to_string("/etc/passwd")?;
    for name in ["postgres", "nobody"] {
        if let Some(user) = passwd_entry(&passwd, name) {
            return Ok(Some(user));
        }
    }
    Err(io::Error::other(
        "running as root, and initdb refuses root; no `postgres` or `nobody` account in /etc/passwd to run it as",
    ))
}

/// Look a name up in `/etc/passwd` (`name:x:uid:gid:gecos:home:shell`).
/// Simplification: accounts that only NSS knows (LDAP, sssd) are not seen;
/// `getpwnam(3)` would see them.
fn passwd_entry(passwd: &str, name: &str) -> Option<UnixUser> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != name {
            return None;
        }
        let _password = fields.next()?;
        let uid = fields.next()?.parse().ok()?;
        let gid = fields.next()?.parse().ok()?;
        Some(UnixUser { uid, gid })
    })
}

/// Where an example's server came from (see [`choose`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A URL the user gave (`--url` or `DATABASE_URL`).
    Url,
    /// The libpq-style `PG*` environment variables.
    Environment,
    /// A throwaway [`Cluster`] started for this run.
    Throwaway,
}

/// A server to talk to, and the cluster to keep alive while talking to it.
pub struct Chosen {
    /// How to connect.
    pub config: crate::pg::Config,
    /// Where `config` came from.
    pub source: Source,
    /// The throwaway cluster, when one was started: keep it alive for as
    /// long as the server is needed; dropping it stops and removes it.
    pub cluster: Option<Cluster>,
}

impl fmt::Display for Chosen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.source, &self.cluster) {
            (Source::Throwaway, Some(c)) => write!(
                f,
                "a throwaway PostgreSQL on 127.0.0.1:{} (started for this run, removed on exit)",
                c.port()
            ),
            (Source::Environment, _) => f.write_str("the server named by the PG* environment variables"),
            _ => f.write_str("the server named by --url / DATABASE_URL"),
        }
    }
}

/// The rule every example that needs PostgreSQL follows (DESIGN.md, "the
/// embedded default"): `url` (the example's `--url`), else `DATABASE_URL`,
/// else the `PG*` variables if any is set, else a throwaway [`Cluster`]
/// started now, so that a fresh machine needs no setup.
pub fn choose(url: Option<String>) -> io::Result<Chosen> {
    if let Some(url) = url.or_else(|| std::env::var("DATABASE_URL").ok()) {
        let config = crate::pg::Config::from_url(&url)?;
        return Ok(Chosen {
            config,
            source: Source::Url,
            cluster: None,
        });
    }
    const PG_VARS: [&str; 5] = ["PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE"];
    if PG_VARS.iter().any(|v| std::env::var_os(v).is_some()) {
        return Ok(Chosen {
            config: crate::pg::Config::from_env()?,
            source: Source::Environment,
            cluster: None,
        });
    }
    let cluster = Cluster::start()?;
    Ok(Chosen {
        config: crate::pg::Config::from_url(&cluster.url())?,
        source: Source::Throwaway,
        cluster: Some(cluster),
    })
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

/// `/tmp/connlab-pg-PID-N`. The Unix socket lives there, so the path must
/// stay short (`sun_path` holds 108 bytes).
fn temp_dir_path() -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("connlab-pg-{}-{n}", std::process::id()))
}

/// Create the temp dir, mode 0700, owned by the server's account.
fn make_temp_dir(root: &Path, run_as: Option<UnixUser>) -> io::Result<()> {
    // A leftover from a crashed run with a recycled pid: it is ours to remove.
    if root.exists() {
        fs::remove_dir_all(root)?;
    }
    fs::create_dir(root).map_err(|e| io::Error::new(e.kind(), format!("mkdir {}: {e}", root.display())))?;
    fs::set_permissions(root, fs::Permissions::from_mode(0o700))?;
    give_to(root, run_as)
}

fn give_to(path: &Path, run_as: Option<UnixUser>) -> io::Result<()> {
    match run_as {
        Some(user) => std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid))
            .map_err(|e| io::Error::new(e.kind(), format!("chown {}: {e}", path.display()))),
        None => Ok(()),
    }
}

/// A command from the server's bin dir, run as the server's account and in
/// its own process group, so a Ctrl-C aimed at us does not reach it (the
/// watchdog, not the terminal, decides when it stops).
fn command(bin: &Path, program: &str, run_as: Option<UnixUser>) -> Command {
    let mut cmd = Command::new(bin.join(program));
    cmd.process_group(0);
    if let Some(user) = run_as {
        cmd.uid(user.uid).gid(user.gid);
    }
    cmd
}

/// `initdb` with the SCRAM superuser, then our own `pg_hba.conf`.
fn init_data_dir(bin: &Path, root: &Path, run_as: Option<UnixUser>, watchdog: &mut Watchdog) -> io::Result<()> {
    let pwfile = root.join("pwfile");
    fs::write(&pwfile, SCRAM.password.unwrap_or_default())?;
    give_to(&pwfile, run_as)?;
    let data = root.join("data");
    let initdb = command(bin, "initdb", run_as)
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
    watchdog.watch("wait", initdb.id())?;
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
    let mut hba = String::from("# TYPE  DATABASE  USER  ADDRESS  METHOD  (written by connlab's pg::cluster)\n");
    for login in [MD5, CLEARTEXT, TRUST] {
        hba.push_str(&format!("local all {} {}\n", login.user, login.method));
        hba.push_str(&format!("host  all {} 127.0.0.1/32 {}\n", login.user, login.method));
    }
    hba.push_str("local all all scram-sha-256\nhost  all all 127.0.0.1/32 scram-sha-256\n");
    fs::write(data.join("pg_hba.conf"), hba)
}

/// Ask the kernel for a free port: bind port 0, read the port back, close.
/// The port is free *now*; the caller retries if someone takes it before
/// the server binds it.
fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port())
}

/// Start the server on a port the kernel says is free. Between our probe
/// and the server's `bind` another process may take that port: then try
/// another, a few times.
fn start_on_free_port(
    bin: &Path,
    root: &Path,
    run_as: Option<UnixUser>,
    watchdog: &mut Watchdog,
) -> io::Result<(Child, u16)> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let port = free_port()?;
        match start_server(bin, root, port, run_as, watchdog) {
            Ok(child) => return Ok((child, port)),
            Err(e) if attempt < PORT_ATTEMPTS && e.kind() == io::ErrorKind::AddrInUse => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Start `postgres` and wait until `postmaster.pid` says `ready`.
fn start_server(
    bin: &Path,
    root: &Path,
    port: u16,
    run_as: Option<UnixUser>,
    watchdog: &mut Watchdog,
) -> io::Result<Child> {
    let log_path = root.join("server.log");
    let log = fs::OpenOptions::new().create(true).append(true).open(&log_path)?;
    give_to(&log_path, run_as)?;
    let data = root.join("data");
    let mut cmd = command(bin, "postgres", run_as);
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
    watchdog.watch("server", child.id())?;

    let pid_file = data.join("postmaster.pid");
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            let log = tail(&log_path);
            let kind = if log.contains("could not bind") || log.contains("already in use") {
                io::ErrorKind::AddrInUse
            } else {
                io::ErrorKind::Other
            };
            return Err(io::Error::new(
                kind,
                format!("postgres exited ({status}) during startup:\n{log}"),
            ));
        }
        if let Ok(contents) = fs::read_to_string(&pid_file) {
            if contents.lines().nth(PM_STATUS_LINE).map(str::trim) == Some(PM_STATUS_READY) {
                return Ok(child);
            }
        }
        if started.elapsed() > READY_TIMEOUT {
            // Ignored: we are already reporting the more useful failure.
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("postgres not ready after {READY_TIMEOUT:?}:\n{}", tail(&log_path)),
            ));
        }
        std::thread::sleep(READY_POLL);
    }
}

/// The last lines of the server log, for error messages.
fn tail(path: &Path) -> String {
    const TAIL_BYTES: usize = 2000;
    let mut text = String::new();
    if let Ok(mut file) = fs::File::open(path) {
        // A log we cannot read just means a shorter error message.
        let _ = file.read_to_string(&mut text);
    }
    let cut = text.len().saturating_sub(TAIL_BYTES);
    let cut = (cut..text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    text[cut..].to_string()
}

/// The cleanup watchdog (see the module docs): `sh` reading lines from a
/// pipe whose other end only we hold.
struct Watchdog {
    child: Child,
    pipe: ChildStdin,
}

impl Watchdog {
    // ANCHOR: watchdog
    /// `$1` is the directory. `kill -0` only asks "does it exist?"; the
    /// waits are bounded (100 × 50 ms) because an exited child of a
    /// dead parent may linger as a zombie if PID 1 does not reap it.
    const SCRIPT: &'static str = r#"
        while read -r what pid; do
            case "$what" in wait) w="$pid" ;; server) s="$pid" ;; esac
        done
        gone() { n=0; while kill -0 "$1" 2>/dev/null && [ $n -lt 100 ]; do sleep 0.05; n=$((n+1)); done; }
        [ -n "$w" ] && gone "$w"
        [ -n "$s" ] && kill -QUIT "$s" 2>/dev/null && gone "$s"
        rm -rf "$1"
    "#;
    // ANCHOR_END: watchdog

    fn spawn(root: &Path, run_as: Option<UnixUser>) -> io::Result<Watchdog> {
        let mut cmd = Command::new("sh");
        cmd.process_group(0);
        if let Some(user) = run_as {
            cmd.uid(user.uid).gid(user.gid);
        }
        let mut child = cmd
            .args(["-c", Self::SCRIPT, "connlab-pg-watchdog"])
            .arg(root)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("starting the cleanup watchdog (sh): {e}")))?;
        // std opens the pipe with O_CLOEXEC, so no other child inherits our
        // end: when we die, the watchdog sees EOF.
        let pipe = child
            .stdin
            .take()
            .ok_or_else(|| io::Error::other("watchdog has no stdin pipe"))?;
        Ok(Watchdog { child, pipe })
    }

    /// Tell the watchdog about a child: `wait PID` or `server PID`.
    fn watch(&mut self, what: &str, pid: u32) -> io::Result<()> {
        writeln!(self.pipe, "{what} {pid}").map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("telling the cleanup watchdog about {what} {pid}: {e}"),
            )
        })
    }

    /// Send it away without letting it act: we are cleaning up ourselves.
    fn dismiss(mut self) {
        // Ignored: it may already be gone, which is all we want.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_lookup_reads_uid_and_gid_and_ignores_garbage() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\nbroken\npostgres:x:101:104:PG:/var/lib/postgresql:/bin/bash\n";
        let pg = passwd_entry(passwd, "postgres").map(|u| (u.uid, u.gid));
        assert_eq!(pg, Some((101, 104)));
        assert!(passwd_entry(passwd, "broken").is_none());
        assert!(passwd_entry(passwd, "nobody").is_none());
    }

    #[test]
    fn login_debug_hides_the_password() {
        let shown = format!("{:?}", SCRAM);
        assert!(shown.contains("connlab"));
        assert!(!shown.contains("password: Some"));
    }
}
