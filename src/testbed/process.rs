//! `testbed::process`: what every throwaway engine needs from the OS, once.
//!
//! - an unprivileged account to run servers as when we are root
//!   (`geteuid(2)`, `getpwnam_r(3)`): PostgreSQL and PgBouncer refuse root;
//! - a private temp directory, mode 0700, owned by that account;
//! - a free TCP port on 127.0.0.1, asked of the kernel (`bind` port 0);
//! - children in their own process group (`setpgid(2)`), so a Ctrl-C aimed
//!   at the terminal does not reach them before we are ready;
//! - a *watchdog* that stops the server and removes the directory however
//!   our process ends, even by `SIGKILL`.
//!
//! The watchdog is a tiny `sh` whose stdin is a pipe only we hold. We tell
//! it, one line at a time, which children exist (`wait PID` for a setup
//! step such as `initdb`, `server PID SIGNAL` for the long-running server
//! and the signal that stops it). When our process ends for any reason the
//! kernel closes our end of the pipe, `read` returns end-of-file, and the
//! watchdog waits for the setup step, signals the server and removes the
//! directory. The alternative, an `atexit` hook, runs neither on `SIGKILL`
//! nor for a static `OnceLock` that is never dropped.

use std::fs;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::sys::user::{self, Account};

/// How many times to try a fresh port when another process grabs ours
/// between our probe and the server's `bind`.
const PORT_ATTEMPTS: usize = 5;

/// `None` when we are not root (servers run as us); otherwise the first of
/// `names` that the name service knows (`getpwnam_r`, so LDAP and sssd
/// accounts count too).
pub fn unprivileged_user(names: &[&str]) -> io::Result<Option<Account>> {
    if user::geteuid() != 0 {
        return Ok(None);
    }
    for name in names {
        if let Some(account) = user::getpwnam(name)? {
            return Ok(Some(account));
        }
    }
    Err(io::Error::other(format!(
        "running as root, and the servers refuse root; none of the accounts {names:?} exists to run them as"
    )))
}

/// Find an engine's binary: `$env_var` (a path to the program), then
/// `$PATH`, then `/usr/sbin` (Debian puts daemons there, and a non-root
/// `PATH` often lacks it). The error names the installer script.
pub fn find_program(name: &str, env_var: &str) -> io::Result<PathBuf> {
    if let Some(path) = std::env::var_os(env_var) {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Ok(path);
        }
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{env_var}={} is not a file", path.display()),
        ));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "{name} not found on $PATH or in /usr/sbin. Install it with `scripts/install-{name}` \
                     (or `apt-get install {name}`), or point {env_var} at the program."
                ),
            )
        })
}

/// Can we open a TCP connection to `127.0.0.1:port`? The readiness test for
/// engines that write no "ready" file: listening is what ready means.
pub fn accepts(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&(Ipv4Addr::LOCALHOST, port).into(), Duration::from_millis(200)).is_ok()
}

/// `/tmp/connlab-ENGINE-PID-N`. Unix sockets may live there, so the path
/// must stay short (`sun_path` holds 108 bytes).
pub fn temp_dir_path(engine: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("connlab-{engine}-{}-{n}", std::process::id()))
}

/// Create the temp dir, mode 0700, owned by the server's account.
pub fn make_temp_dir(root: &Path, run_as: Option<Account>) -> io::Result<()> {
    // A leftover from a crashed run with a recycled pid: it is ours to remove.
    if root.exists() {
        fs::remove_dir_all(root)?;
    }
    fs::create_dir(root).map_err(|e| io::Error::new(e.kind(), format!("mkdir {}: {e}", root.display())))?;
    fs::set_permissions(root, fs::Permissions::from_mode(0o700))?;
    give_to(root, run_as)
}

/// `chown` a path to the server's account (nothing to do when not root).
pub fn give_to(path: &Path, run_as: Option<Account>) -> io::Result<()> {
    match run_as {
        Some(user) => std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid))
            .map_err(|e| io::Error::new(e.kind(), format!("chown {}: {e}", path.display()))),
        None => Ok(()),
    }
}

/// Write a file the server will read, owned by its account.
pub fn write_for(path: &Path, contents: &str, run_as: Option<Account>) -> io::Result<()> {
    fs::write(path, contents).map_err(|e| io::Error::new(e.kind(), format!("writing {}: {e}", path.display())))?;
    give_to(path, run_as)
}

/// A command run as the server's account and in its own process group, so
/// a Ctrl-C aimed at us does not reach it (the watchdog, not the terminal,
/// decides when it stops).
pub fn command(program: &Path, run_as: Option<Account>) -> Command {
    let mut cmd = Command::new(program);
    cmd.process_group(0);
    if let Some(user) = run_as {
        cmd.uid(user.uid).gid(user.gid);
    }
    cmd
}

/// Ask the kernel for a free port: bind port 0, read the port back, close.
/// The port is free *now*; [`on_free_port`] retries if someone takes it
/// before the server binds it.
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port())
}

/// Start a server on a port the kernel says is free. Between our probe and
/// the server's `bind` another process may take that port (`start` then
/// fails with `AddrInUse`): try another, a few times. (The alternative, a
/// listening socket we bind and hand to the child, needs each engine to
/// accept an inherited fd; only some do.)
pub fn on_free_port<T>(mut start: impl FnMut(u16) -> io::Result<T>) -> io::Result<(T, u16)> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let port = free_port()?;
        match start(port) {
            Ok(started) => return Ok((started, port)),
            Err(e) if attempt < PORT_ATTEMPTS && e.kind() == io::ErrorKind::AddrInUse => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Poll `ready` every `every` until it says yes, the child exits (an error
/// carrying the log's tail, `AddrInUse` when the log says the port was
/// taken) or `timeout` passes.
pub fn wait_until_ready(
    name: &str,
    child: &mut Child,
    log: &Path,
    timeout: Duration,
    every: Duration,
    mut ready: impl FnMut() -> bool,
) -> io::Result<()> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            let log = tail(log);
            let kind = if log.contains("could not bind") || log.contains("already in use") {
                io::ErrorKind::AddrInUse
            } else {
                io::ErrorKind::Other
            };
            return Err(io::Error::new(
                kind,
                format!("{name} exited ({status}) during startup:\n{log}"),
            ));
        }
        if ready() {
            return Ok(());
        }
        if started.elapsed() > timeout {
            // Ignored: we are already reporting the more useful failure.
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{name} not ready after {timeout:?}:\n{}", tail(log)),
            ));
        }
        std::thread::sleep(every);
    }
}

/// The last lines of a log file, for error messages.
pub fn tail(path: &Path) -> String {
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
pub struct Watchdog {
    child: Child,
    pipe: ChildStdin,
}

impl Watchdog {
    // ANCHOR: watchdog
    /// `$1` is the directory. `kill -0` only asks "does it exist?"; the
    /// waits are bounded (100 × 50 ms) because an exited child of a
    /// dead parent may linger as a zombie if PID 1 does not reap it.
    const SCRIPT: &'static str = r#"
        while read -r what pid sig; do
            case "$what" in wait) w="$pid" ;; server) s="$pid"; k="$sig" ;; esac
        done
        gone() { n=0; while kill -0 "$1" 2>/dev/null && [ $n -lt 100 ]; do sleep 0.05; n=$((n+1)); done; }
        [ -n "$w" ] && gone "$w"
        [ -n "$s" ] && kill -"$k" "$s" 2>/dev/null && gone "$s"
        rm -rf "$1"
    "#;
    // ANCHOR_END: watchdog

    /// Start a watchdog for `root`, before `root` exists, so that a kill at
    /// any later moment leaves nothing behind.
    pub fn spawn(root: &Path, run_as: Option<Account>) -> io::Result<Watchdog> {
        let mut child = command(Path::new("sh"), run_as)
            .args(["-c", Self::SCRIPT, "connlab-watchdog"])
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

    /// A setup step to wait for before removing the directory (`initdb`
    /// would otherwise recreate what the watchdog just removed).
    pub fn wait_for(&mut self, pid: u32) -> io::Result<()> {
        self.tell(&format!("wait {pid}"))
    }

    /// The server to stop with `signal` (a name such as `QUIT` or `TERM`).
    /// A later call replaces an earlier one (a restarted server).
    pub fn server(&mut self, pid: u32, signal: &str) -> io::Result<()> {
        self.tell(&format!("server {pid} {signal}"))
    }

    fn tell(&mut self, line: &str) -> io::Result<()> {
        writeln!(self.pipe, "{line}")
            .map_err(|e| io::Error::new(e.kind(), format!("telling the cleanup watchdog `{line}`: {e}")))
    }

    /// Send it away without letting it act: we are cleaning up ourselves.
    pub fn dismiss(mut self) {
        // Ignored: it may already be gone, which is all we want.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A throwaway server that needs no setup step: write its configuration
/// into a fresh temp dir, start it in the foreground on a free port, wait
/// until that port accepts, and on drop kill it and remove the directory
/// (the [`Watchdog`] does the same if we never get to drop). PgBouncer and
/// HAProxy run this way; PostgreSQL needs `initdb` first and has its own.
pub struct Daemon {
    name: &'static str,
    root: PathBuf,
    port: u16,
    child: Child,
    watchdog: Option<Watchdog>,
}

/// What a [`Daemon`] is: its name, program, the account it runs as, the
/// signal that stops it, and how to write its configuration for a port.
pub struct DaemonSpec<'a> {
    /// Short name, used for the temp dir and the log file (`pgbouncer`).
    pub name: &'static str,
    /// The program to run.
    pub program: &'a Path,
    /// `Some` when we are root and the program must not be.
    pub run_as: Option<Account>,
    /// The signal name the watchdog sends (`TERM`, `INT`, `USR1`).
    pub stop_signal: &'static str,
}

impl Daemon {
    /// Start it. `configure(root, port)` writes the config files into
    /// `root` and returns the command-line arguments.
    pub fn start(
        spec: DaemonSpec<'_>,
        mut configure: impl FnMut(&Path, u16) -> io::Result<Vec<std::ffi::OsString>>,
    ) -> io::Result<Daemon> {
        let root = temp_dir_path(spec.name);
        let mut watchdog = Watchdog::spawn(&root, spec.run_as)?;
        let log_path = root.join(format!("{}.log", spec.name));
        let started = make_temp_dir(&root, spec.run_as).and_then(|()| {
            on_free_port(|port| {
                let args = configure(&root, port)?;
                let log = fs::OpenOptions::new().create(true).append(true).open(&log_path)?;
                give_to(&log_path, spec.run_as)?;
                let mut child = command(spec.program, spec.run_as)
                    .args(&args)
                    .current_dir(&root)
                    .stdin(Stdio::null())
                    .stdout(log.try_clone()?)
                    .stderr(log)
                    .spawn()
                    .map_err(|e| io::Error::new(e.kind(), format!("running {}: {e}", spec.program.display())))?;
                watchdog.server(child.id(), spec.stop_signal)?;
                let ready = wait_until_ready(
                    spec.name,
                    &mut child,
                    &log_path,
                    DAEMON_READY,
                    Duration::from_millis(10),
                    || accepts(port),
                );
                ready.map(|()| child)
            })
        });
        match started {
            Ok((child, port)) => Ok(Daemon {
                name: spec.name,
                root,
                port,
                child,
                watchdog: Some(watchdog),
            }),
            Err(e) => {
                watchdog.dismiss();
                // Ignored: the start error is the one worth reporting.
                let _ = fs::remove_dir_all(&root);
                Err(e)
            }
        }
    }

    /// The TCP port on 127.0.0.1 it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its private directory (configuration, log, Unix sockets).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The end of its log, for error messages.
    pub fn log_tail(&self) -> String {
        tail(&self.root.join(format!("{}.log", self.name)))
    }
}

/// How long a daemon may take to listen.
const DAEMON_READY: Duration = Duration::from_secs(15);

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(watchdog) = self.watchdog.take() {
            watchdog.dismiss();
        }
        // SIGKILL: the data is throwaway and nothing needs a clean exit.
        // Ignored results: it may have exited already.
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Err(e) = fs::remove_dir_all(&self.root) {
            eprintln!("connlab: removing {}: {e}", self.root.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_signals_the_server_and_removes_the_directory_when_we_vanish() {
        let root = temp_dir_path("watchdog-test");
        let mut watchdog = Watchdog::spawn(&root, None).unwrap();
        make_temp_dir(&root, None).unwrap();
        let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
        watchdog.server(sleeper.id(), "TERM").unwrap();
        // Closing our end is what the kernel does when we die.
        drop(watchdog.pipe);
        let status = sleeper.wait().unwrap();
        assert!(!status.success(), "sleep was stopped by the watchdog");
        watchdog.child.wait().unwrap();
        assert!(!root.exists(), "{} removed", root.display());
    }
}
