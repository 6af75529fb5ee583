//! `kernel_lab`: where this kernel departs from the story, shown rather
//! than assumed. Which questions: Q13 (when does a connect give up?), Q14
//! (what happens when the accept queue overflows?), Q23 (why is a fresh
//! connection's first response slower?), Q27 (how long is FIN_WAIT_2?) and
//! Q28 (when do ephemeral ports run out?).
//!
//! ```text
//! sudo cargo run --release --example kernel_lab            # all five, about 20 s
//! sudo cargo run --release --example kernel_lab -- cookies # or syn, ports, fin-wait, slow-start
//! ```
//!
//! Each experiment changes TCP sysctls no one should change on a shared
//! machine (SYN cookies off, ten ephemeral ports, a 3 s `tcp_fin_timeout`),
//! so each runs on its own thread inside a private network namespace made
//! with `unshare(CLONE_NEWNET)`: its own loopback, sockets, sysctls and
//! `/proc/net` counters, gone when the thread ends. They run in
//! parallel and print in order. That needs root; without it the program
//! says so and exits 0 with nothing measured.
//!
//! What you will see (from this machine, Linux 6.18; the full output and
//! what it means are in docs/sockets.md):
//!
//! ```text
//! 1. SYN retransmissions until connect() gives up (Q13)
//!    measured:  SYN resent at 1.0 2.0 3.1 4.1 5.1 7.1 11.2 s; ETIMEDOUT at 19.2 s
//!    computed:  resent at 1 2 3 4 5 7 11 s; ETIMEDOUT at 19 s  (the rule, same settings)
//!    computed for this machine's tcp_syn_retries = 6: resent at 1 2 3 4 5 7 11 19 35 67 s, ETIMEDOUT at 131 s
//! 2. A full accept queue and SYN cookies (Q14)
//!    client 3  ESTAB  server: none   <- connected into the void
//!    ...
//! ```
//!
//! Syscalls shown: `unshare(2)`, `ioctl(SIOCSIFFLAGS)`, `connect(2)`,
//! `getsockopt(TCP_INFO)`, `getsockopt(SO_ERROR)`, `shutdown(2)`. Files:
//! `/proc/sys/net/ipv4/*` (`tcp(7)`), `/proc/thread-self/net/{tcp,netstat}`.

use std::io;
use std::process::ExitCode;
use std::time::Duration;

use connlab::lab::{self, cookies, fin_wait, ports, run_private, secs, slow_start, syn};
use connlab::sys::netns;

mod common;

/// `tcp_syn_retries` for the measured run: 3 shows both the linear and the
/// doubling part of the schedule in about 19 s.
const DEFAULT_SYN_RETRIES: u32 = 3;
/// `tcp_fin_timeout` inside the FIN_WAIT_2 experiment, seconds.
const FIN_TIMEOUT: u32 = 3;
/// Ports left in the narrowed ephemeral range.
const PORTS: u16 = 10;
/// How long each port experiment keeps connecting.
const PORT_RUN: Duration = Duration::from_millis(2500);

/// The four experiments, as named on the command line.
const EXPERIMENTS: [&str; 5] = ["syn", "cookies", "ports", "fin-wait", "slow-start"];

/// One experiment's name, checked.
struct Experiment(&'static str);

impl std::str::FromStr for Experiment {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        EXPERIMENTS
            .iter()
            .find(|e| **e == s)
            .map(|e| Experiment(e))
            .ok_or_else(|| format!("expected one of {}", EXPERIMENTS.join(", ")))
    }
}

fn main() -> ExitCode {
    let mut args = common::Args::from_env(env!("CARGO_CRATE_NAME"), include_str!("kernel_lab.rs"));
    let syn_retries: u32 = args.value(
        "--syn-retries N",
        DEFAULT_SYN_RETRIES,
        "tcp_syn_retries inside the SYN experiment, 1 to 8 (default 3: about 19 s)",
    );
    args.check((1..=8).contains(&syn_retries), "--syn-retries must be from 1 to 8");
    let only: Option<Experiment> = args.free(
        "EXPERIMENT",
        "syn, cookies, ports, fin-wait or slow-start (default: all five)",
    );
    args.finish();
    let chosen: Vec<&'static str> = only.map_or(EXPERIMENTS.to_vec(), |e| vec![e.0]);
    let host_retries = netns::sysctl("net/ipv4/tcp_syn_retries")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);

    let runs: Vec<_> = chosen
        .into_iter()
        .map(|name| {
            std::thread::spawn(move || match name {
                "syn" => show_syn(syn_retries, host_retries),
                "cookies" => show_cookies(),
                "ports" => show_ports(),
                "fin-wait" => show_fin_wait(),
                _ => show_slow_start(),
            })
        })
        .collect();
    let mut outcome: Result<(), String> = Ok(());
    for run in runs {
        match run.join() {
            Ok(Ok(text)) => print!("{text}"),
            Ok(Err(e)) if lab::is_unavailable(&e) => {
                println!("kernel_lab: cannot create a network namespace here ({e}); run as root. Nothing measured.");
                return ExitCode::SUCCESS;
            }
            Ok(Err(e)) => outcome = Err(e.to_string()),
            Err(_) => outcome = Err("an experiment's thread panicked".into()),
        }
    }
    common::exit("kernel_lab", outcome)
}

fn list(times: impl IntoIterator<Item = String>) -> String {
    times.into_iter().collect::<Vec<_>>().join(" ")
}

fn show_syn(retries: u32, host_retries: u32) -> io::Result<String> {
    let m = run_private(move || syn::measure(retries))?;
    let c = syn::compute(m.syn_retries, m.linear_timeouts);
    let host = syn::compute(host_retries, m.linear_timeouts);
    let classic = syn::compute(host_retries, 0);
    Ok(format!(
        "1. SYN retransmissions until connect() gives up (Q13)
   namespace: tcp_syncookies = 0, tcp_syn_retries = {r} (lowered), tcp_syn_linear_timeouts = {l} (default);
              the listener's accept queue is full, so every SYN is dropped
   measured:  SYN resent at {meas} s; connect failed with {errno} at {failed}
   computed:  resent at {comp} s; {errno} at {cg} s  (the rule below, same settings)
   the rule:  1 s timeout, kept for the first {l} resends, then doubling; the kernel gives up at the
              first timer after (2^(retries+1) - 1) s, the time pure doubling would take
   computed for this machine's tcp_syn_retries = {h} (arithmetic, not measured): resent at {hs} s
              ({n} resends), ETIMEDOUT at {hg} s
   before Linux 6.5 (no linear timeouts) the same rule gives {cs} s and {cg2} s: the story's schedule

",
        r = m.syn_retries,
        l = m.linear_timeouts,
        meas = list(m.resent_at.iter().map(|d| format!("{:.1}", d.as_secs_f64()))),
        errno = m.errno,
        failed = secs(m.failed_at),
        comp = list(c.resent_at.iter().map(u64::to_string)),
        cg = c.gives_up_at,
        h = host_retries,
        hs = list(host.resent_at.iter().map(u64::to_string)),
        n = host.resent_at.len(),
        hg = host.gives_up_at,
        cs = list(classic.resent_at.iter().map(u64::to_string)),
        cg2 = classic.gives_up_at,
    ))
}

fn show_cookies() -> io::Result<String> {
    let variants = [
        ("cookies on (default), the server catches up", cookies::Setup::default()),
        (
            "cookies on, the server never accepts again",
            cookies::Setup {
                server_catches_up: false,
                ..Default::default()
            },
        ),
        (
            "cookies on, tcp_abort_on_overflow = 1",
            cookies::Setup {
                abort_on_overflow: true,
                ..Default::default()
            },
        ),
        (
            "cookies off (tcp_syncookies = 0)",
            cookies::Setup {
                syncookies: false,
                ..Default::default()
            },
        ),
    ];
    let runs: Vec<_> = variants
        .iter()
        .map(|&(label, setup)| {
            (
                label,
                std::thread::spawn(move || run_private(move || cookies::run(setup))),
            )
        })
        .collect();
    let mut out = String::from("2. A full accept queue and SYN cookies (Q14)\n");
    for (i, (label, run)) in runs.into_iter().enumerate() {
        let r = run.join().map_err(|_| io::Error::other("cookie run panicked"))??;
        out += &format!(
            "   run {}: {label}; backlog {}, {} clients, tcp_retries2 = {}\n",
            i + 1,
            r.setup.backlog,
            r.setup.clients,
            r.setup.retries2
        );
        if i == 0 {
            out += &format!(
                "   a) all connect, nobody accepts ({:?} later): {} queued\n",
                cookies::SETTLE,
                r.before_accept.queued
            );
            out += &clients_table(&r.before_accept);
            out += &format!("      counters: {}\n", counters(&r.before_accept.counters));
            out += &format!(
                "   b) the server accepts {} (one pass), then waits {:?} for the resent SYNs: {} queued\n",
                r.first_drain,
                cookies::AFTER_FIRST_RESEND,
                r.after_resend.queued
            );
            out += &clients_table(&r.after_resend);
        } else {
            let void = r.after_resend.clients.iter().filter(|c| c.in_void()).count();
            out += &format!("   b) after the first accept pass and the resent SYNs: {void} client(s) in the void\n");
        }
        out += &format!("      counters: {}\n", counters(&r.after_resend.counters));
        if r.fates.is_empty() {
            out += "   c) nobody is in the void: the extra SYNs were dropped and those clients are still in SYN-SENT\n";
        } else {
            out += &format!(
                "   c) each client in the void writes {} bytes:\n",
                cookies::MESSAGE.len()
            );
        }
        for (port, fate) in &r.fates {
            out += &format!(
                "      client port {port}: {}\n",
                match fate {
                    cookies::Fate::Accepted(t, n) =>
                        format!("accepted by the server {} after it wrote, with its {n} bytes", secs(*t)),
                    cookies::Fate::Failed(t, e) => format!("{e} {} after it wrote; the server never knew it", secs(*t)),
                    cookies::Fate::StillWaiting => format!("still waiting after {:?}", cookies::WATCH),
                }
            );
        }
        if !r.fates.is_empty() {
            out += &format!("      counters: {}\n", counters(&r.counters_after_send));
        }
    }
    out.push('\n');
    Ok(out)
}

fn clients_table(s: &cookies::Snapshot) -> String {
    let name = |st: Option<connlab::inspect::TcpState>| st.map_or("none".to_string(), |s| s.to_string());
    s.clients
        .iter()
        .enumerate()
        .map(|(i, c)| {
            format!(
                "      client {}  port {}  {:<9} server side: {:<6}{}\n",
                i + 1,
                c.port,
                name(c.state),
                name(c.server),
                if c.in_void() {
                    "  <- connected into the void"
                } else {
                    ""
                }
            )
        })
        .collect()
}

fn counters(moves: &[(&str, i64)]) -> String {
    let moved: Vec<String> = moves
        .iter()
        .filter(|(_, v)| *v != 0)
        .map(|(k, v)| format!("{k} +{v}"))
        .collect();
    if moved.is_empty() {
        "none moved".into()
    } else {
        moved.join(", ")
    }
}

fn show_ports() -> io::Result<String> {
    let variants = [(0u8, true), (1, true), (1, false), (2, true)];
    let runs: Vec<_> = variants
        .iter()
        .map(|&(tw_reuse, timestamps)| {
            let setup = ports::Setup {
                ports: PORTS,
                tw_reuse,
                timestamps,
                duration: PORT_RUN,
            };
            std::thread::spawn(move || run_private(move || ports::run(setup)))
        })
        .collect();
    let mut out = format!(
        "3. Ephemeral ports running out (Q28)\n   namespace: ip_local_port_range = {} {} ({PORTS} ports); each connection closed by the client\n   (TIME_WAIT on its side), all to one server address, for {:?}\n",
        ports::FIRST_PORT,
        ports::FIRST_PORT + PORTS - 1,
        PORT_RUN
    );
    for run in runs {
        let r = run.join().map_err(|_| io::Error::other("port run panicked"))??;
        out += &format!(
            "   tcp_tw_reuse = {}, tcp_timestamps = {}: {} connected, then {}; {} in all, {} attempts failed, {}\n",
            r.setup.tw_reuse,
            u8::from(r.setup.timestamps),
            r.before_first_failure,
            r.first_failure
                .map_or("no failure".into(), |(e, t)| format!("{e} at {}", secs(t))),
            r.total_ok,
            r.total_failed,
            r.first_reuse.map_or("no port recycled".into(), |t| format!(
                "first recycled port at {}",
                secs(t)
            ))
        );
    }
    out += "   (2 means 1 for loopback traffic only, the default since Linux 4.19: loopback already recycles)\n\n";
    Ok(out)
}

fn show_fin_wait() -> io::Result<String> {
    let looks = run_private(|| fin_wait::run(FIN_TIMEOUT))?;
    let name = |st: Option<connlab::inspect::TcpState>| st.map_or("gone".to_string(), |s| s.to_string());
    let mut out = format!(
        "4. FIN_WAIT_2: an orphan vs a shutdown() socket (Q27)\n   namespace: tcp_fin_timeout = {FIN_TIMEOUT} s; the server never closes its ends\n"
    );
    for l in looks {
        out += &format!(
            "   at {}: close()d client {:<10} shutdown(SHUT_WR) client {:<10} server end of the closed one {}\n",
            secs(l.at),
            name(l.orphan),
            name(l.shut),
            name(l.orphan_peer)
        );
    }
    out += "   only the orphan (no fd left) is timed out; a process that crashes leaves orphans, and its peer sits in CLOSE_WAIT\n\n";
    Ok(out)
}

fn show_slow_start() -> io::Result<String> {
    let variants = [("cubic", true), ("cubic", false), ("bbr", true)];
    let runs: Vec<_> = variants
        .iter()
        .map(|&(cc, restart)| std::thread::spawn(move || run_private(move || slow_start::run(cc, restart))))
        .collect();
    let mut out = format!(
        "5. Slow start: one {} KB response, fresh, at once again, and after {:?} idle (Q23)\n",
        slow_start::RESPONSE / 1024,
        slow_start::IDLE
    );
    for (i, run) in runs.into_iter().enumerate() {
        let r = run.join().map_err(|_| io::Error::other("slow-start run panicked"))??;
        if i == 0 {
            out += &format!(
                "   namespace: the server's MSS {} B (TCP_MAXSEG {}), {} segments per response; cwnd = tcpi_snd_cwnd\n",
                r.mss,
                slow_start::ETHERNET_MSS,
                r.responses[0].segments
            );
        }
        let [fresh, warm, idle] = r.responses;
        out += &format!(
            "   {:<5} tcp_slow_start_after_idle = {}: cwnd fresh {} -> {}, warm {} -> {}, after idle {} -> {}\n",
            r.congestion_control,
            u8::from(r.restart_after_idle),
            fresh.cwnd_before,
            fresh.cwnd_after,
            warm.cwnd_before,
            warm.cwnd_after,
            idle.cwnd_before,
            idle.cwnd_after
        );
    }
    let segments = (slow_start::RESPONSE as u32).div_ceil(1448);
    let (cold, warm) = (
        slow_start::slow_start_rounds(segments, 10),
        slow_start::slow_start_rounds(segments, 79),
    );
    out += &format!(
        "   arithmetic: {segments} segments from a window of 10 take {cold} round trips, from 79 take {warm}:\n   \
         at a 0.5 ms RTT, {} ms against {} ms\n\n",
        f64::from(cold) * 0.5,
        f64::from(warm) * 0.5
    );
    Ok(out)
}
