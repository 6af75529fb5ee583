//! `docs/claims.md` keeps itself honest: every row marked
//! `<!-- check:KEY ARGS -->` is re-measured here, and the test fails if the
//! value or range the page states (the ARGS, which must also appear in the
//! row's own text) no longer holds on this machine.
//!
//! The namespace rows (SYN schedule, cookies, ports, FIN_WAIT_2) need root
//! to create a network namespace; without it they print why and pass.

use std::time::Duration;

use connlab::inspect::TcpState;
use connlab::lab::{self, cookies, facts, fin_wait, ports, syn};
use connlab::sys::netns;

const PAGE: &str = include_str!("../docs/claims.md");

/// Creating and tearing down a network namespace is heavy kernel work that
/// slows every other syscall meanwhile. The namespace tests share this lock
/// (read), the timing test takes it alone (write).
static TIMING: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// Every `(args, row)` whose marker is `check:KEY`. Panics if none: a row
/// the test relies on must not vanish from the page unnoticed.
fn rows(key: &str) -> Vec<(Vec<&'static str>, String)> {
    let tag = format!("<!-- check:{key}");
    let found: Vec<_> = PAGE
        .lines()
        .filter_map(|line| {
            let at = line.find(&tag)?;
            let rest = &line[at + tag.len()..];
            let args = rest.split("-->").next()?.split_whitespace().collect();
            Some((args, normalise(line)))
        })
        .collect();
    assert!(!found.is_empty(), "docs/claims.md has no row marked check:{key}");
    found
}

/// The row as the test compares it: thousands separators and bold removed,
/// en dashes as hyphens, lower case.
fn normalise(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let chars: Vec<char> = line.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let digit = |j: Option<usize>| j.and_then(|j| chars.get(j)).is_some_and(char::is_ascii_digit);
        match c {
            ',' if digit(i.checked_sub(1)) && digit(Some(i + 1)) && digit(Some(i + 3)) => {}
            '–' => out.push('-'),
            '*' => {}
            c => out.extend(c.to_lowercase()),
        }
    }
    out
}

/// The row before its marker (the marker repeats the numbers).
fn text(row: &str) -> &str {
    row.split("<!--").next().unwrap_or(row)
}

/// `a-b` as a range of f64, or one number as a range of width 0.
fn range(arg: &str) -> (f64, f64) {
    let (lo, hi) = arg.split_once('-').unwrap_or((arg, arg));
    (
        lo.parse().expect("a number in the marker"),
        hi.parse().expect("a number in the marker"),
    )
}

/// The marker's value must be the one the row states.
fn assert_stated(row: &str, arg: &str) {
    assert!(
        text(row).contains(&arg.to_lowercase()),
        "the row does not state {arg:?} itself: {row}"
    );
}

fn within(key: &str, row: &str, arg: &str, measured: f64) {
    assert_stated(row, arg);
    let (lo, hi) = range(arg);
    assert!(
        (lo..=hi).contains(&measured),
        "docs/claims.md says {key} is {arg}; this machine measured {measured}"
    );
}

/// Run a namespace experiment, or `None` (printed) where namespaces are unavailable.
fn private<T: Send + 'static>(f: impl FnOnce() -> std::io::Result<T> + Send + 'static) -> Option<T> {
    let _shared = TIMING.read().unwrap_or_else(|e| e.into_inner());
    match lab::run_private(f) {
        Ok(v) => Some(v),
        Err(e) if lab::is_unavailable(&e) => {
            eprintln!("skipped: cannot create a network namespace here ({e})");
            None
        }
        Err(e) => panic!("experiment failed: {e}"),
    }
}

#[test]
fn read_values_match_the_page() {
    for (args, row) in rows("sysctl") {
        let (name, want) = args.split_first().expect("check:sysctl NAME VALUE...");
        let have = netns::sysctl(name).unwrap_or_else(|e| panic!("{e}"));
        for w in want {
            assert_stated(&row, w);
        }
        assert_eq!(
            have.to_lowercase(),
            want.join(" "),
            "docs/claims.md row for {name} is stale"
        );
    }
    match facts::slab_sizes() {
        Ok(slabs) => {
            for (args, row) in rows("slab") {
                let [cache, size] = args[..] else {
                    panic!("check:slab CACHE SIZE")
                };
                assert_stated(&row, size);
                let have = slabs.iter().find(|(n, _)| n == cache).map(|(_, s)| s.to_string());
                assert_eq!(
                    have.as_deref(),
                    Some(size),
                    "slab {cache}: docs/claims.md says {size} B"
                );
            }
        }
        Err(e) => eprintln!("slab rows skipped: {e}"),
    }
}

#[test]
fn measured_values_match_the_page() {
    let _alone = TIMING.write().unwrap_or_else(|e| e.into_inner());
    for (args, row) in rows("socket_cost_us") {
        within(
            "socket() cost",
            &row,
            args[0],
            facts::socket_cost_ns().unwrap() / 1000.0,
        );
    }
    for (_, row) in rows("lowest_free_fd") {
        let (freed, reused) = facts::lowest_free_fd().unwrap();
        assert_eq!(freed, reused, "the row says the lowest free fd is reused: {row}");
    }
    let loopback = facts::loopback_facts().unwrap();
    for (args, row) in rows("initial_cwnd") {
        within("the initial cwnd", &row, args[0], f64::from(loopback.cwnd));
    }
    for (args, row) in rows("time_wait_secs") {
        let left = loopback
            .time_wait_secs
            .expect("the client's TIME_WAIT socket in /proc/net/tcp");
        within("TIME_WAIT's timer", &row, args[0], left.round());
    }
}

#[test]
fn computed_syn_schedule_matches_the_page() {
    let read = |name| netns::sysctl(name).ok().and_then(|v| v.parse().ok());
    let retries = read("net/ipv4/tcp_syn_retries").expect("tcp_syn_retries");
    let linear = read("net/ipv4/tcp_syn_linear_timeouts").unwrap_or(0);
    let c = syn::compute(retries, linear);
    let times: Vec<String> = c.resent_at.iter().map(u64::to_string).collect();
    for (_, row) in rows("syn_default") {
        assert_stated(&row, &format!("{} s", times.join(", ")));
        assert_stated(&row, &format!("{} s", c.gives_up_at));
    }
}

#[test]
fn measured_syn_schedule_follows_the_rule() {
    for (args, row) in rows("syn_measured") {
        let retries: u32 = args[0].parse().unwrap();
        assert_stated(&row, &format!("tcp_syn_retries` = {retries}"));
        let Some(m) = private(move || syn::measure(retries)) else {
            return;
        };
        let c = syn::compute(retries, m.linear_timeouts);
        assert_eq!(m.errno, "ETIMEDOUT");
        assert_eq!(m.resent_at.len(), c.resent_at.len(), "measured {m:?}, computed {c:?}");
        let slack = Duration::from_millis(500);
        for (got, want) in m.resent_at.iter().zip(&c.resent_at) {
            let want = Duration::from_secs(*want);
            assert!(
                *got >= want && *got <= want + slack,
                "resend at {got:?}, rule says {want:?}"
            );
        }
        let gives_up = Duration::from_secs(c.gives_up_at);
        assert!(
            m.failed_at >= gives_up && m.failed_at <= gives_up + slack,
            "{m:?} vs {c:?}"
        );
    }
}

#[test]
fn cookie_clients_land_in_the_void_and_recover_by_sending() {
    for (args, row) in rows("cookie_void") {
        let Some(r) = private(|| cookies::run(cookies::Setup::default())) else {
            return;
        };
        let void = r.after_resend.clients.iter().filter(|c| c.in_void()).count();
        within("clients in the void", &row, args[0], void as f64);
        for (port, fate) in &r.fates {
            assert!(
                matches!(fate, cookies::Fate::Accepted(_, n) if *n == cookies::MESSAGE.len()),
                "client {port} sent from the void and was not accepted with its bytes: {fate:?}"
            );
        }
    }
}

#[test]
fn only_the_orphan_leaves_fin_wait_2() {
    for (args, row) in rows("fin_wait") {
        let timeout: u32 = args[0].parse().unwrap();
        assert_stated(&row, &format!("{timeout} s"));
        let Some(looks) = private(move || fin_wait::run(timeout)) else {
            return;
        };
        let (first, last) = (&looks[0], &looks[looks.len() - 1]);
        assert_eq!(
            (first.orphan, first.shut),
            (Some(TcpState::FinWait2), Some(TcpState::FinWait2))
        );
        assert_eq!(last.orphan, None, "the orphan outlived tcp_fin_timeout: {looks:?}");
        assert_eq!(last.shut, Some(TcpState::FinWait2), "{looks:?}");
        assert_eq!(last.orphan_peer, Some(TcpState::CloseWait), "{looks:?}");
    }
}

#[test]
fn ports_run_out_without_reuse_and_come_back_with_it() {
    for (args, row) in rows("port_exhaustion") {
        let n: u16 = args[0].parse().unwrap();
        assert_stated(&row, &format!("{n} ports"));
        let setup = ports::Setup {
            ports: n,
            tw_reuse: 0,
            timestamps: true,
            duration: Duration::from_millis(1500),
        };
        let Some(off) = private(move || ports::run(setup)) else {
            return;
        };
        assert_eq!(off.before_first_failure, usize::from(n), "{off:?}");
        assert_eq!(off.first_failure.map(|(e, _)| e), Some("EADDRNOTAVAIL"));
        assert_eq!(off.first_reuse, None, "{off:?}");
        let setup = ports::Setup {
            tw_reuse: 1,
            duration: Duration::from_millis(2500),
            ..setup
        };
        let on = private(move || ports::run(setup)).expect("namespaces worked a moment ago");
        let back = on.first_reuse.expect("tcp_tw_reuse = 1 recycled no port");
        assert!(
            back >= Duration::from_secs(1) && back < Duration::from_millis(1600),
            "{on:?}"
        );
        assert_stated(&row, "1.0 s later");
    }
}
