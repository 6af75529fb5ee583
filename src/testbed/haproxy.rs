//! `testbed::haproxy`: a throwaway HAProxy in front of connlab backends.
//!
//! The story's load balancer (Q7): the client's connection ends at the
//! balancer, which opens its own connections to the backends, chooses one
//! per connection (TCP mode) or per request (HTTP mode), checks their
//! health, and in HTTP mode keeps its backend connections alive to reuse
//! them for other clients' requests. [`HaProxy::start`] runs Debian's
//! `haproxy` that way on loopback:
//!
//! 1. a temp dir with `haproxy.cfg`: one frontend on a free port, one
//!    backend section listing the servers, health checks every
//!    [`Settings::check_interval`], and an admin socket (`admin.sock`);
//! 2. `haproxy -db -f haproxy.cfg`: foreground, no daemon, as the
//!    `nobody` account when we are root;
//! 3. ready when the frontend accepts; removed on drop or by the watchdog.
//!
//! [`HaProxy::stats`] reads `show stat` from the admin socket: HAProxy's
//! own per-server counts (current and total sessions, UP/DOWN, failed
//! checks, reused connections). References: HAProxy 2.6 "Configuration
//! Manual" (`balance`, `default-server`, `http-reuse`) and "Management
//! Guide" §9.3 (`show stat` and its CSV fields).

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::process::{self, Daemon, DaemonSpec};

/// What the balancer reads of the traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Layer 4: bytes. Each client connection is paired with one backend
    /// connection for its whole life.
    Tcp,
    /// Layer 7: HTTP requests. Each request is routed on its own, and idle
    /// backend connections are kept and reused (`http-reuse always`).
    Http,
}

/// How a backend is chosen (`balance`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    /// Each server in turn.
    RoundRobin,
    /// The server with the fewest connections open now.
    LeastConn,
}

impl Balance {
    /// The `balance` keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            Balance::RoundRobin => "roundrobin",
            Balance::LeastConn => "leastconn",
        }
    }
}

/// The settings a run chooses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// TCP or HTTP.
    pub mode: Mode,
    /// Round-robin or least-connections.
    pub balance: Balance,
    /// The backends, named `b0`, `b1`, ... in this order.
    pub servers: Vec<SocketAddr>,
    /// Time between health checks of each server (`inter`).
    pub check_interval: Duration,
    /// Failed checks in a row before a server is marked DOWN (`fall`).
    pub fall: u32,
}

impl Settings {
    /// TCP mode, round-robin, checks every 100 ms, DOWN after 2 failures.
    pub fn tcp(servers: Vec<SocketAddr>) -> Settings {
        Settings {
            mode: Mode::Tcp,
            balance: Balance::RoundRobin,
            servers,
            check_interval: Duration::from_millis(100),
            fall: 2,
        }
    }
}

/// A running throwaway HAProxy. Dropping it stops it and deletes its files.
pub struct HaProxy {
    daemon: Daemon,
    settings: Settings,
}

impl std::fmt::Debug for HaProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HaProxy")
            .field("port", &self.port())
            .field("pid", &self.pid())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// One server's line of `show stat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerStats {
    /// `svname`: `b0`, `b1`, ...
    pub name: String,
    /// `status`: `UP`, `DOWN`, `UP 1/2` (going down), `no check`...
    pub status: String,
    /// `scur`: connections open to it now.
    pub current: u64,
    /// `stot`: connections (TCP) or requests (HTTP) sent to it so far.
    pub total: u64,
    /// `chkfail`: failed health checks.
    pub check_failures: u64,
    /// `lastchg`: seconds since its status last changed.
    pub last_change_s: u64,
    /// `connect`: backend connections HAProxy opened to it (HTTP mode
    /// counts; 0 when the field is absent).
    pub connects: u64,
    /// `reuse`: requests sent over an already open backend connection.
    pub reuses: u64,
}

impl HaProxy {
    /// Start HAProxy in front of `settings.servers`.
    pub fn start(settings: Settings) -> io::Result<HaProxy> {
        let program = process::find_program("haproxy", "HAPROXY_BIN")?;
        let run_as = process::unprivileged_user(&["nobody"])?;
        let spec = DaemonSpec {
            name: "haproxy",
            program: &program,
            run_as,
            // SIGTERM: hard stop, connections closed at once.
            stop_signal: "TERM",
        };
        let daemon = Daemon::start(spec, |root, port| {
            let config = root.join("haproxy.cfg");
            process::write_for(&config, &config_text(root, port, &settings), run_as)?;
            Ok(vec![
                OsString::from("-db"),
                OsString::from("-f"),
                config.into_os_string(),
            ])
        })?;
        // The frontend can accept a moment before the admin socket exists.
        let admin = daemon.root().join("admin.sock");
        let started = std::time::Instant::now();
        while !admin.exists() {
            if started.elapsed() > ADMIN_TIMEOUT {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "haproxy made no {} in {ADMIN_TIMEOUT:?}:\n{}",
                        admin.display(),
                        daemon.log_tail()
                    ),
                ));
            }
            std::thread::sleep(STATUS_POLL);
        }
        Ok(HaProxy { daemon, settings })
    }

    /// The frontend's address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port()))
    }

    /// The frontend's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.daemon.port()
    }

    /// HAProxy's process id.
    pub fn pid(&self) -> u32 {
        self.daemon.pid()
    }

    /// The settings it runs with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The end of its log.
    pub fn log_tail(&self) -> String {
        self.daemon.log_tail()
    }

    /// The admin socket's path.
    pub fn admin_socket(&self) -> PathBuf {
        self.daemon.root().join("admin.sock")
    }

    /// Ask the admin socket a command; its whole answer.
    pub fn admin(&self, command: &str) -> io::Result<String> {
        let path = self.admin_socket();
        let mut socket = UnixStream::connect(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("connect({}): {e}", path.display())))?;
        socket.set_read_timeout(Some(ADMIN_TIMEOUT))?;
        // One command per connection: HAProxy answers and closes.
        socket.write_all(format!("{command}\n").as_bytes())?;
        let mut answer = String::new();
        socket.take(ADMIN_ANSWER_LIMIT).read_to_string(&mut answer)?;
        Ok(answer)
    }

    /// `show stat` for the backend servers, in `b0`, `b1`, ... order.
    pub fn stats(&self) -> io::Result<Vec<ServerStats>> {
        Ok(parse_stats(&self.admin("show stat")?))
    }

    /// Poll `show stat` every [`STATUS_POLL`] until `server` is in a state
    /// that starts with `status` (`UP`, `DOWN`); how long that took, or
    /// `None` after `limit`.
    pub fn wait_for_status(&self, server: &str, status: &str, limit: Duration) -> io::Result<Option<Duration>> {
        let started = std::time::Instant::now();
        while started.elapsed() < limit {
            if self
                .stats()?
                .iter()
                .any(|s| s.name == server && s.status.starts_with(status))
            {
                return Ok(Some(started.elapsed()));
            }
            std::thread::sleep(STATUS_POLL);
        }
        Ok(None)
    }
}

/// How often [`HaProxy::wait_for_status`] asks.
pub const STATUS_POLL: Duration = Duration::from_millis(10);
/// How long the admin socket may take to answer.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(2);
/// The most of an answer we read: `show stat` for a few servers is a few kB.
const ADMIN_ANSWER_LIMIT: u64 = 1 << 20;
/// The backend section's name in the config.
const BACKEND: &str = "backends";

// ANCHOR: config
/// `haproxy.cfg` for one frontend and one backend section.
fn config_text(root: &Path, port: u16, settings: &Settings) -> String {
    let inter = settings.check_interval.as_millis().max(1);
    let (mode, http) = match settings.mode {
        Mode::Tcp => ("tcp", ""),
        // Keep backend connections open between requests and let any
        // client's request use any idle one: the balancer's own pool.
        Mode::Http => (
            "http",
            "    option http-keep-alive\n    http-reuse always\n    timeout http-keep-alive 10s\n",
        ),
    };
    let mut text = format!(
        "\
global
    maxconn 4096
    stats socket {root}/admin.sock mode 600 level admin

defaults
    mode {mode}
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    retries 1
{http}
frontend front
    bind 127.0.0.1:{port}
    default_backend {BACKEND}

backend {BACKEND}
    balance {balance}
    default-server check inter {inter}ms fall {fall} rise 2
",
        root = root.display(),
        balance = settings.balance.as_str(),
        fall = settings.fall,
    );
    for (i, server) in settings.servers.iter().enumerate() {
        // Infallible: writing to a String.
        let _ = writeln!(text, "    server b{i} {server}");
    }
    text
}
// ANCHOR_END: config

/// The server rows of `show stat`'s CSV (`# pxname,svname,...` header),
/// read by column name, so a version with more columns still parses. A
/// row or field that does not parse is skipped or 0, never a panic.
pub fn parse_stats(csv: &str) -> Vec<ServerStats> {
    let mut lines = csv.lines();
    let Some(header) = lines.next().and_then(|line| line.strip_prefix("# ")) else {
        return Vec::new();
    };
    let names: Vec<&str> = header.split(',').collect();
    let column = |name: &str| names.iter().position(|n| *n == name);
    let (px, sv) = (column("pxname"), column("svname"));
    lines
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            let field = |name: &str| column(name).and_then(|i| fields.get(i).copied()).unwrap_or("");
            let number = |name: &str| field(name).parse().unwrap_or(0);
            let server = sv.and_then(|i| fields.get(i))?;
            let backend = px.and_then(|i| fields.get(i))?;
            (*backend == BACKEND && *server != "BACKEND" && *server != "FRONTEND").then(|| ServerStats {
                name: server.to_string(),
                status: field("status").to_string(),
                current: number("scur"),
                total: number("stot"),
                check_failures: number("chkfail"),
                last_change_s: number("lastchg"),
                connects: number("connect"),
                reuses: number("reuse"),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn stats_rows_are_read_by_column_name() {
        let csv = "# pxname,svname,scur,stot,status,chkfail,lastchg,connect,reuse,\n\
                   front,FRONTEND,1,9,OPEN,,,,,\n\
                   backends,b0,2,5,UP,0,12,5,40,\n\
                   backends,b1,0,4,DOWN,3,1,4,0,\n\
                   backends,BACKEND,2,9,UP,,12,,,\n";
        let stats = parse_stats(csv);
        assert_eq!(stats.len(), 2);
        assert_eq!((stats[0].name.as_str(), stats[0].current, stats[0].total), ("b0", 2, 5));
        assert_eq!((stats[1].status.as_str(), stats[1].check_failures), ("DOWN", 3));
        assert_eq!(stats[0].reuses, 40);
    }

    proptest! {
        #[test]
        fn any_answer_parses_without_panicking(text in "\\PC{0,300}") {
            let _ = parse_stats(&text);
            let _ = parse_stats(&format!("# pxname,svname,scur\n{text}"));
        }
    }
}
