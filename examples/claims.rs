//! Which of the story's kernel numbers hold on *this* machine?
//!
//! The post states a dozen facts about the Linux kernel: `socket()` costs
//! about 2 µs, a `tcp_sock` is about 2,300 bytes, there are 28,232
//! ephemeral ports, SYNs are retried 6 times over about 127 s, TIME_WAIT
//! lasts 60 s, the congestion window starts at 10 segments, and so on. This
//! example measures or reads each one from the running kernel and prints it
//! beside the story's figure, with where the value came from. A value that
//! is computed rather than measured (the SYN schedule, from the sysctls and
//! the rule `kernel_lab` measures) says "computed". `tests/claims.rs`
//! re-runs these and fails when `docs/claims.md` no longer matches.
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
//! Syscalls used: `socket(2)`, `close(2)`, `getsockopt(2)` with `TCP_INFO`
//! (the measuring code is in `src/lab/facts.rs`).
//! Man pages: `tcp(7)` (the sysctls), `proc(5)` (`/proc/net/tcp`, `slabinfo`).

use std::process::ExitCode;

use common::sysctl;
use connlab::inspect;
use connlab::lab::{facts, syn};
use connlab::sys;

mod common;

fn main() -> ExitCode {
    common::Args::from_env(env!("CARGO_CRATE_NAME"), include_str!("claims.rs")).finish();
    let mut rows: Vec<[String; 4]> = Vec::new();
    let mut row = |claim: &str, story: &str, here: String, source: &str| {
        rows.push([claim.into(), story.into(), here, source.into()]);
    };

    row(
        "socket() cost",
        "~2 µs",
        match facts::socket_cost_ns() {
            Ok(ns) => format!("{} (median of 20 batches of 500)", common::show_ns(ns)),
            Err(e) => format!("could not measure: {e}"),
        },
        "timed socket(AF_INET, SOCK_STREAM) calls",
    );
    row(
        "first fd a process opens",
        "3 (0, 1, 2 are stdio)",
        match facts::lowest_free_fd() {
            Ok((freed, reused)) if freed == reused => {
                format!("lowest free slot reused: closed fd {freed}, next socket got fd {reused}")
            }
            Ok((freed, reused)) => {
                format!("closed fd {freed}, next socket got fd {reused} (another thread opened one)")
            }
            Err(e) => format!("could not check: {e}"),
        },
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
    let linear = sysctl("net/ipv4/tcp_syn_linear_timeouts").parse::<u32>().unwrap_or(0);
    row(
        "SYN resends until connect() gives up",
        "6 retries: 1, 3, 7 ... ~127 s",
        match syn_retries.parse::<u32>() {
            Ok(n) => {
                let c = syn::compute(n, linear);
                let at: Vec<String> = c.resent_at.iter().map(u64::to_string).collect();
                format!(
                    "computed: {} resends at {} s, ETIMEDOUT at {} s",
                    c.resent_at.len(),
                    at.join(", "),
                    c.gives_up_at
                )
            }
            Err(_) => format!("unreadable: {syn_retries:?}"),
        },
        "tcp_syn_retries, tcp_syn_linear_timeouts; the rule: kernel_lab -- syn",
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
        format!(
            "{} s, for orphans only (closed or crashed); shutdown() waits forever",
            sysctl("net/ipv4/tcp_fin_timeout")
        ),
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
    match facts::loopback_facts() {
        Ok(facts) => {
            row(
                "initial congestion window",
                "10 segments (~14 KB)",
                // The story's 14 KB assumes Ethernet's 1,460 B MSS. Loopback's
                // MSS is capped at half the largest window the peer has
                // advertised (`tcp_bound_to_half_wnd`): 32,741 is half of its
                // initial 65,483-byte window, not a property of the 64 KiB MTU.
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
                match facts.time_wait_secs {
                    Some(t) => format!("{t:.0} s left on a just-closed socket"),
                    None => "not found in /proc/net/tcp".into(),
                },
                "/proc/net/tcp timer column (tr 03 = TIME_WAIT)",
            );
        }
        Err(e) => row("loopback connection facts", "-", format!("failed: {e}"), "-"),
    }
    let slabs = facts::slab_sizes();
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
