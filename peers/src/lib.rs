//! connlab's peers, measured side by side: mio, tokio, tokio-postgres,
//! libpq (through `pgbench`) and deadpool-postgres.
//!
//! This crate is a workspace member but not a default member, so `cargo
//! test` at the root never builds it. Each comparison is one binary that
//! runs every contestant in the same run, interleaved, and prints medians
//! and ratios:
//!
//! | command | compares | see |
//! |---|---|---|
//! | `cargo run --release -p connlab-peers --bin echo_bench` | echo servers: connlab, mio, tokio | `docs/comparisons.md` |
//! | `cargo run --release -p connlab-peers --bin pg_bench` | one PostgreSQL connection: connlab, tokio-postgres, libpq | `docs/comparisons.md` |
//! | `cargo run --release -p connlab-peers --bin pool_bench` | pools: connlab, deadpool-postgres | `docs/comparisons.md` |
//! | `cargo run --release -p connlab-peers --bin copy_bench` | COPY FROM STDIN: connlab, tokio-postgres | `docs/comparisons.md` |
//!
//! This file holds what the comparisons share: the statistics, a process's
//! CPU time from `/proc/<pid>/stat` (proc(5)), a seeded shuffle for
//! interleaving, and the child-process plumbing for servers that run in
//! their own process so their CPU time can be read apart from the load
//! generator's.

// The examples' command-line layer (`--help` from the file's header, exit 2
// on a usage error, quiet SIGPIPE), shared rather than copied.
#[path = "../../examples/common/mod.rs"]
pub mod common;

use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The line a server binary prints on stdout once it listens, followed by
/// its address: `LISTENING 127.0.0.1:40123`.
pub const LISTENING: &str = "LISTENING";

/// The median of some samples (the mean of the middle two for an even
/// count); `NaN` for none. Medians, not means: on a shared 2-core machine
/// one descheduled run would drag a mean anywhere.
pub fn median(samples: &[f64]) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => sorted[n / 2],
        _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// The `p`-th percentile (0..=100) of already **sorted** samples, by the
/// nearest-rank method; `NaN` for none.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// CPU time a process has used so far, user plus system: fields 14
/// (`utime`) and 15 (`stime`) of `/proc/<pid>/stat`, in clock ticks
/// (`sysconf(_SC_CLK_TCK)`, 100 per second on Linux). A tick is 10 ms, so
/// read it around runs of seconds, not milliseconds.
pub fn process_cpu(pid: u32) -> io::Result<Duration> {
    stat_cpu(pid, UTIME_FIELD)
}

/// CPU time used by the children of this process that have been waited
/// for (`pgbench` runs, say): fields 16 (`cutime`) and 17 (`cstime`) of
/// `/proc/self/stat`.
pub fn children_cpu() -> io::Result<Duration> {
    stat_cpu(std::process::id(), CUTIME_FIELD)
}

/// CPU time the whole machine has spent busy so far, every CPU summed:
/// the first line of `/proc/stat` (proc(5)), all columns but `idle` and
/// `iowait`. Around a run, it catches work done by processes we did not
/// start and cannot name, such as the PostgreSQL backends a server forks.
pub fn machine_busy_cpu() -> io::Result<Duration> {
    const IDLE_COLUMNS: [usize; 2] = [3, 4];
    // `guest` and `guest_nice` (columns 8 and 9) are already counted in `user` and `nice`.
    const FIRST_GUEST_COLUMN: usize = 8;
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "/proc/stat: no `cpu` line"))?;
    let mut ticks = 0u64;
    for (i, field) in line.split_ascii_whitespace().skip(1).enumerate() {
        if i >= FIRST_GUEST_COLUMN {
            break;
        }
        if !IDLE_COLUMNS.contains(&i) {
            ticks += field
                .parse::<u64>()
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("/proc/stat: bad field {field:?}")))?;
        }
    }
    Ok(ticks_to_duration(ticks))
}

fn ticks_to_duration(ticks: u64) -> Duration {
    // SAFETY: sysconf has no preconditions; it only reads a constant.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let per_second = u64::try_from(per_second).ok().filter(|&t| t > 0).unwrap_or(100);
    Duration::from_nanos(ticks * 1_000_000_000 / per_second)
}

/// proc(5) numbers the fields of `/proc/<pid>/stat` from 1.
const UTIME_FIELD: usize = 14;
const CUTIME_FIELD: usize = 16;
/// Field 3 (state) is the first one after the command name.
const FIRST_FIELD_AFTER_COMM: usize = 3;

/// The sum of two consecutive tick fields of `/proc/<pid>/stat`, from `first`.
fn stat_cpu(pid: u32, first: usize) -> io::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Field 2, the command name, is in parentheses and may itself contain
    // spaces or ')', so count fields from the *last* ')'.
    let after_comm = stat
        .rfind(')')
        .map(|i| &stat[i + 1..])
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("/proc/{pid}/stat: no ')'")))?;
    let mut fields = after_comm.split_ascii_whitespace().skip(first - FIRST_FIELD_AFTER_COMM);
    let mut next_ticks = || -> io::Result<u64> {
        fields
            .next()
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("/proc/{pid}/stat: field {first}")))
    };
    let ticks = next_ticks()? + next_ticks()?;
    Ok(ticks_to_duration(ticks))
}

/// Pin a process (all its threads, and the children it forks from now on)
/// to one CPU, with `taskset -a -p -c` from util-linux.
///
/// Why the comparisons pin: on this 2-vCPU virtual machine a ping-pong
/// between two processes costs about three times more when the scheduler
/// puts them on different CPUs (each wake-up of the other, idle, vCPU is
/// an inter-processor interrupt that traps to the hypervisor) than when
/// it puts them on the same one, and it changes its mind every few
/// seconds. Unpinned, a run measures where the scheduler put things more
/// than which client is faster. Pinned, every contestant gets the same
/// placement.
pub fn pin_to_cpu(pid: u32, cpu: usize) -> io::Result<()> {
    let out = Command::new("taskset")
        .args(["-a", "-p", "-c", &cpu.to_string(), &pid.to_string()])
        .stdout(Stdio::null())
        .output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "taskset -a -p -c {cpu} {pid}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Where the comparisons put things: this process (the load generator or
/// client, and any `pgbench` it starts) on CPU 0, the server on CPU 1; or
/// everything on CPU 0 with `--same-cpu`. Returns a line describing what
/// was done, for the report; pinning is skipped (and said so) on a
/// one-CPU machine or where `taskset` is missing.
pub fn pin_client_and_server(server_pids: &[u32], same: bool) -> String {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus < 2 {
        return "not pinned (one CPU)".to_string();
    }
    let server_cpu = if same { 0 } else { 1 };
    let result = pin_to_cpu(std::process::id(), 0)
        .and_then(|()| server_pids.iter().try_for_each(|&pid| pin_to_cpu(pid, server_cpu)));
    match result {
        Ok(()) if same => "client and server pinned together on CPU 0 (--same-cpu)".to_string(),
        Ok(()) => "client pinned to CPU 0, server to CPU 1 (--same-cpu to share one)".to_string(),
        Err(e) => format!("not pinned ({e})"),
    }
}

/// A small seeded pseudo-random sequence (xorshift64*), enough to shuffle
/// the order of contestants in each round without a `rand` dependency.
pub struct Shuffler(u64);

impl Shuffler {
    /// Seeded from the clock, or from `CONNLAB_PEERS_SEED` to replay an order.
    pub fn from_env_or_clock() -> Shuffler {
        let seed = std::env::var("CONNLAB_PEERS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
        Shuffler(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Fisher–Yates, in place.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

/// The path of another binary of this crate, built next to the running one
/// (`target/release/echo_mio` beside `target/release/echo_bench`).
pub fn sibling_bin(name: &str) -> io::Result<PathBuf> {
    let me = std::env::current_exe()?;
    let path = me.with_file_name(name);
    if path.exists() {
        Ok(path)
    } else {
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "{} not found; build every peer binary first: cargo build --release -p connlab-peers",
                path.display()
            ),
        ))
    }
}

/// A server running in its own process. Killed (and reaped) on drop.
pub struct ServerProcess {
    /// The name it was started as (`echo_mio`).
    pub name: String,
    /// Where it listens, as it announced on stdout.
    pub addr: SocketAddr,
    child: Child,
    // Kept open so the server never gets EPIPE writing to stdout.
    _stdout: BufReader<ChildStdout>,
}

impl ServerProcess {
    /// Start the sibling binary `name` with `args` and wait for its
    /// `LISTENING <addr>` line.
    pub fn start(name: &str, args: &[&str]) -> io::Result<ServerProcess> {
        let mut child = Command::new(sibling_bin(name)?)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("child stdout not piped"))?;
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let addr = line
            .strip_prefix(LISTENING)
            .and_then(|rest| rest.trim().parse().ok())
            .ok_or_else(|| io::Error::other(format!("{name}: expected `{LISTENING} <addr>`, got {line:?}")));
        match addr {
            Ok(addr) => Ok(ServerProcess {
                name: name.to_string(),
                addr,
                child,
                _stdout: stdout,
            }),
            Err(e) => {
                // Best effort: the child is ours and useless now.
                let _ = child.kill();
                let _ = child.wait();
                Err(e)
            }
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time the server has used so far.
    pub fn cpu(&self) -> io::Result<Duration> {
        process_cpu(self.pid())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // Errors here mean the child already exited; nothing to clean up.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Announce a listening address the way [`ServerProcess::start`] expects.
pub fn announce(addr: SocketAddr) {
    use std::io::Write;
    let mut out = io::stdout().lock();
    // If the parent is gone there is nobody to serve; exiting is right.
    if writeln!(out, "{LISTENING} {addr}").and_then(|()| out.flush()).is_err() {
        std::process::exit(1);
    }
}

/// A plain-text table: a header row, then rows, columns padded to fit.
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headings.
    pub fn new(header: &[&str]) -> Table {
        Table {
            rows: vec![header.iter().map(|h| h.to_string()).collect()],
        }
    }

    /// Append one row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Render as a Markdown table (so it can be pasted into `docs/`).
    pub fn render(&self) -> String {
        let cols = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let width: Vec<usize> = (0..cols)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for (i, row) in self.rows.iter().enumerate() {
            out.push('|');
            for (c, w) in width.iter().enumerate() {
                let cell = row.get(c).map_or("", String::as_str);
                let _ = write!(out, " {cell:<w$} |");
            }
            out.push('\n');
            if i == 0 {
                out.push('|');
                for w in &width {
                    let _ = write!(out, "{}|", "-".repeat(w + 2));
                }
                out.push('\n');
            }
        }
        out
    }
}

/// A ratio as `1.07×`.
pub fn fmt_ratio(r: f64) -> String {
    format!("{r:.2}×")
}

/// A rate with thousands separators: `131 204`.
pub fn fmt_rate(per_second: f64) -> String {
    let n = per_second.round() as u64;
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{202f}');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn percentile_by_nearest_rank() {
        let s: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&s, 50.0), 50.0);
        assert_eq!(percentile(&s, 99.0), 99.0);
        assert_eq!(percentile(&s, 0.0), 1.0);
    }

    #[test]
    fn own_and_childrens_cpu_time_are_readable() {
        assert!(process_cpu(std::process::id()).is_ok());
        assert!(children_cpu().is_ok());
        assert!(machine_busy_cpu().is_ok());
    }

    #[test]
    fn shuffle_keeps_every_item() {
        let mut v: Vec<u32> = (0..10).collect();
        Shuffler(42).shuffle(&mut v);
        v.sort();
        assert_eq!(v, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn table_renders_markdown() {
        let mut t = Table::new(&["a", "bb"]);
        t.row(vec!["xyz".into(), "1".into()]);
        assert_eq!(t.render(), "| a   | bb |\n|-----|----|\n| xyz | 1  |\n");
    }
}
