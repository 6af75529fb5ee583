//! Which of the story's kernel numbers hold on *this* machine?
//!
//! The post states a dozen facts about the Linux kernel: `socket()` costs
//! about 2 µs, a `tcp_sock` is about 2,300 bytes, there are 28,232
//! ephemeral ports, SYNs are retried 6 times over about 127 s, TIME_WAIT
//! lasts 60 s, the congestion window starts at 10 segments, and so on. This
//! example measures or reads each one from the running kernel and prints it
//! beside the story's figure, with where the value came from.
//!
//! ```text
//! cargo run --release --example claims
//! ```
//!
//! What you will see: a table of `claim | story | this machine | source`.
//! Values come from `/proc/sys` (the sysctls), `/proc/slabinfo` (kernel
//! object sizes; readable by root only, otherwise the row says so),
//! `getsockopt(TCP_INFO)` on a live loopback connection, `/proc/net/tcp`'s
//! timer column for a real TIME_WAIT socket, and timed `socket(2)` calls.
//! Where the machine disagrees with the story (a newer kernel's default
//! congestion control is often BBR, not CUBIC), the row says so.
//!
//! Syscalls shown: `socket(2)`, `close(2)`, `getsockopt(2)` with `TCP_INFO`.
//! Man pages: `tcp(7)` (the sysctls), `proc(5)` (`/proc/net/tcp`, `slabinfo`).

use std::fs;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use common::sysctl;
use connlab::inspect::{self, proc_net::TIMER_TIME_WAIT, TcpState};
use connlab::sys::{self, socket};

mod common;

/// `/proc/net/tcp` reports timers in clock ticks (`USER_HZ`), which is 100
/// on every mainstream Linux build (`sysconf(_SC_CLK_TCK)`).
const TICKS_PER_SECOND: f64 = 100.0;

fn main() -> ExitCode {
    common::Args::from_env(env!("CARGO_CRATE_NAME"), include_str!("claims.rs")).finish();
    let mut rows: Vec<[String; 4]> = Vec::new();
    let mut row = |claim: &str, story: &str, here: String, source: &str| {
        rows.push([claim.into(), story.into(), here, source.into()]);
    };

    row(
        "socket() cost",
        "~2 µs",
        match socket_cost() {
            Ok(cost) => format!("{} (median of 20 batches of 500)", common::show(cost)),
            Err(e) => format!("could not measure: {e}"),
        },
        "timed socket(AF_INET, SOCK_STREAM) calls",
    );
    row(
        "first fd a process opens",
        "3 (0, 1, 2 are stdio)",
        lowest_free_fd_claim(),
        "socket() after closing one low fd: the lowest free slot is reused",
    );
    row(
        "ephemeral port range",
        "32,768–60,999 = 28,232 ports",
        match inspect::ephemeral_port_range() {
            Ok(range) => format!("{}–{} = {} ports", range.low, range.high, range.len()),
            Err(e) => format!("unreadable: {e}"),
        },
        "/proc/sys/net/ipv4/ip_local_port_range",
    );
    let syn_retries = sysctl("net/ipv4/tcp_syn_retries");
    row(
        "SYN retries before connect() gives up",
        "6 retries over ~127 s",
        match syn_retries.parse::<u32>() {
            Ok(n) => format!(
                "{n} retries over ~{} s (1 s initial RTO, doubling)",
                syn_backoff_total_secs(n)
            ),
            Err(_) => format!("unreadable: {syn_retries:?}"),
        },
        "/proc/sys/net/ipv4/tcp_syn_retries",
    );
    row(
        "accept-queue cap (somaxconn)",
        "4,096 (historically 128)",
        sysctl("net/core/somaxconn"),
        "/proc/sys/net/core/somaxconn",
    );
    row(
        "accept-queue overflow behaviour",
        "final ACK silently dropped",
        match sysctl("net/ipv4/tcp_abort_on_overflow").as_str() {
            "0" => "0: drop the ACK (client thinks it is connected)".to_string(),
            "1" => "1: send RST instead".to_string(),
            other => format!("unreadable: {other:?}"),
        },
        "/proc/sys/net/ipv4/tcp_abort_on_overflow",
    );
    row(
        "congestion control",
        "CUBIC",
        {
            let cc = sysctl("net/ipv4/tcp_congestion_control");
            if cc == "cubic" {
                cc
            } else {
                format!("{cc} (differs from the story: this kernel's default)")
            }
        },
        "/proc/sys/net/ipv4/tcp_congestion_control",
    );
    row(
        "FIN_WAIT_2 timeout",
        "60 s",
        format!("{} s", sysctl("net/ipv4/tcp_fin_timeout")),
        "/proc/sys/net/ipv4/tcp_fin_timeout",
    );
    row(
        "TCP keepalive first probe",
        "after 2 hours",
        match sysctl("net/ipv4/tcp_keepalive_time").parse::<u64>() {
            Ok(s) => format!("after {s} s = {:.1} h", s as f64 / 3600.0),
            Err(_) => "unreadable".into(),
        },
        "/proc/sys/net/ipv4/tcp_keepalive_time",
    );
    match loopback_facts() {
        Ok(facts) => {
            row(
                "initial congestion window",
                "10 segments (~14 KB)",
                // The story's 14 KB assumes Ethernet's 1,460 B MSS; loopback's
                // MTU is 64 KiB, so the same 10 segments carry far more.
                format!(
                    "{} segments × {} B loopback MSS = {} KB ({} KB at Ethernet's 1460 B)",
                    facts.cwnd,
                    facts.mss,
                    facts.cwnd * facts.mss / 1024,
                    facts.cwnd * 1460 / 1024
                ),
                "getsockopt(TCP_INFO) on a fresh loopback connection",
            );
            row(
                "TIME_WAIT length",
                "60 s (Linux ignores 2×MSL = 4 min)",
                match facts.time_wait_ticks {
                    Some(t) => format!("{:.0} s left on a just-closed socket", t as f64 / TICKS_PER_SECOND),
                    None => "not found in /proc/net/tcp".into(),
                },
                "/proc/net/tcp timer column (tr 03 = TIME_WAIT)",
            );
        }
        Err(e) => row("loopback connection facts", "-", format!("failed: {e}"), "-"),
    }
    let slabs = slab_sizes();
    for (claim, story, cache) in [
        ("struct tcp_sock size", "~2,300 B", "TCP"),
        ("request_sock (SYN queue entry)", "~256 B", "request_sock_TCP"),
        ("inet_timewait_sock", "~168 B", "tw_sock_TCP"),
        ("sk_buff metadata", "~240 B", "skbuff_head_cache"),
    ] {
        let here = match &slabs {
            Ok(map) => match map.iter().find(|(name, _)| name == cache) {
                // A slab object is the struct rounded up to the cache's
                // alignment, so it is an upper bound on the struct itself.
                Some((_, size)) => format!("{size} B (slab object, incl. padding)"),
                None => format!("no `{cache}` slab"),
            },
            Err(e) => e.clone(),
        };
        row(claim, story, here, "/proc/slabinfo objsize");
    }
    row(
        "select() fd ceiling",
        "1,024",
        format!("FD_SETSIZE = {}", libc::FD_SETSIZE),
        "libc's FD_SETSIZE",
    );
    row(
        "fd limit (EMFILE past it)",
        "-",
        match sys::fd::nofile_limit() {
            Ok((soft, hard)) => format!("soft {soft}, hard {hard}"),
            Err(e) => e.to_string(),
        },
        "getrlimit(RLIMIT_NOFILE)",
    );

    print_table(&rows);
    ExitCode::SUCCESS
}

fn print_table(rows: &[[String; 4]]) {
    let headers = ["claim", "story", "this machine", "source"];
    let mut widths = headers.map(|h| h.chars().count());
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 4]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect();
        println!("| {} |", padded.join(" | "));
    };
    line(headers);
    println!("|{}|", widths.map(|w| "-".repeat(w + 2)).join("|"));
    for r in rows {
        line([&r[0], &r[1], &r[2], &r[3]]);
    }
}

/// Total time before connect() gives up: the first SYN, then `n` retries
/// with the retransmission timeout doubling from 1 s: 1+2+…+2^n.
fn syn_backoff_total_secs(n: u32) -> u64 {
    (0..=n.min(20)).map(|i| 1u64 << i).sum()
}

/// Median cost of one `socket(2)` call, timed in batches so the clock's
/// own cost is spread thin; the sockets are closed outside the timed part.
fn socket_cost() -> io::Result<Duration> {
    const BATCH: u32 = 500;
    let mut per_call = Vec::new();
    for _ in 0..20 {
        let mut fds = Vec::with_capacity(BATCH as usize);
        let start = Instant::now();
        for _ in 0..BATCH {
            fds.push(socket::stream_socket(libc::AF_INET)?);
        }
        per_call.push(start.elapsed() / BATCH);
        drop(fds);
    }
    Ok(common::median(&mut per_call))
}

/// The kernel hands out the lowest free fd number (POSIX requires it), so
/// closing fd N and opening a socket gives N back.
fn lowest_free_fd_claim() -> String {
    let probe = || -> io::Result<(i32, i32)> {
        let first = TcpListener::bind("127.0.0.1:0")?;
        let second = TcpListener::bind("127.0.0.1:0")?;
        let freed = first.as_raw_fd();
        drop(first);
        let third = TcpListener::bind("127.0.0.1:0")?;
        let reused = third.as_raw_fd();
        drop((second, third));
        Ok((freed, reused))
    };
    match probe() {
        Ok((freed, reused)) if freed == reused => {
            format!("lowest free slot reused: closed fd {freed}, next socket got fd {reused}")
        }
        Ok((freed, reused)) => format!("closed fd {freed}, next socket got fd {reused} (another thread opened one)"),
        Err(e) => format!("could not check: {e}"),
    }
}

struct LoopbackFacts {
    cwnd: u32,
    mss: u32,
    time_wait_ticks: Option<u64>,
}

/// Open a real loopback connection, read its TCP_INFO, then close it from
/// the client side first so the *client* enters TIME_WAIT, and read the
/// remaining TIME_WAIT time from `/proc/net/tcp`.
fn loopback_facts() -> io::Result<LoopbackFacts> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let client = TcpStream::connect(listener.local_addr()?)?;
    let (mut server, _) = listener.accept()?;
    let client_port = client.local_addr()?.port();

    let info = sys::info::tcp_info(client.as_raw_fd())?;

    // The side that closes first is the one that waits.
    drop(client);
    let mut sink = Vec::new();
    server.read_to_end(&mut sink)?;
    server.flush()?;
    drop(server);

    Ok(LoopbackFacts {
        cwnd: info.raw.tcpi_snd_cwnd,
        mss: info.raw.tcpi_snd_mss,
        time_wait_ticks: time_wait_timer(client_port),
    })
}

/// The TIME_WAIT timer (in clock ticks) of the IPv4 socket with local port
/// `port`, from `/proc/net/tcp`'s `tr:tm->when` column.
fn time_wait_timer(port: u16) -> Option<u64> {
    let table = inspect::tcp_table().ok()?;
    table
        .rows
        .iter()
        .find(|r| r.local.port() == port && r.state == TcpState::TimeWait && r.timer.0 == TIMER_TIME_WAIT)
        .map(|r| r.timer.1)
}

/// Object sizes of the kernel's slab caches. `/proc/slabinfo` is mode 0400:
/// only root may read it, so the error says so instead of guessing.
fn slab_sizes() -> Result<Vec<(String, u64)>, String> {
    let text =
        fs::read_to_string("/proc/slabinfo").map_err(|e| format!("/proc/slabinfo unreadable ({e}); run as root"))?;
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("slabinfo"))
        .filter_map(|l| {
            let mut cols = l.split_whitespace();
            let name = cols.next()?.to_string();
            let objsize = cols.nth(2)?.parse().ok()?;
            Some((name, objsize))
        })
        .collect())
}
