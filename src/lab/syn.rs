//! How long does `connect()` wait for a server that never answers, and when
//! does it resend the SYN? Measured in a private namespace, then computed
//! for the machine's default setting from the rule the measurement shows.
//!
//! The set-up: SYN cookies off, a listener with backlog 0 whose accept
//! queue already holds one connection. The kernel drops every further SYN
//! to that port (`tcp_conn_request`: accept queue full → drop), so the
//! client's SYNs go unanswered exactly as with a black-holed server. The
//! client socket is polled with `getsockopt(TCP_INFO)` every 2 ms; each
//! time `tcpi_total_retrans` grows, a SYN was resent. `SO_ERROR` turns to
//! `ETIMEDOUT` when the kernel gives up.
//!
//! The rule (`net/ipv4/tcp_timer.c`, Linux 6.5 and later): the first
//! retransmission timeout is 1 s (RFC 6298); the timer keeps 1 s for the
//! first `tcp_syn_linear_timeouts` retransmissions (default 4), then doubles
//! (capped at 120 s). The kernel does not count retries to give up: it
//! gives up at the first timer that fires once the time since the first SYN
//! reaches what `tcp_syn_retries` retransmissions would take with pure
//! doubling, (2^(retries+1) − 1) s. With linear timeouts more SYNs fit into
//! that time than `tcp_syn_retries` says. See `tcp(7)`, `tcp_syn_linear_timeouts`
//! in `Documentation/networking/ip-sysctl.rst`.

use std::io;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use super::{listener, start_connect, wait_for};
use crate::inspect::TcpState;
use crate::sys::{self, netns, socket};

/// Linux's initial SYN retransmission timeout (`TCP_TIMEOUT_INIT`), seconds.
pub const INITIAL_RTO_SECS: u64 = 1;
/// Linux's ceiling on any retransmission timeout (`TCP_RTO_MAX`), seconds.
pub const RTO_MAX_SECS: u64 = 120;

/// One measured run.
#[derive(Debug, Clone)]
pub struct Measured {
    /// `tcp_syn_retries` set in the namespace.
    pub syn_retries: u32,
    /// `tcp_syn_linear_timeouts` read in the namespace (its default).
    pub linear_timeouts: u32,
    /// When each retransmitted SYN went out, from the first SYN.
    pub resent_at: Vec<Duration>,
    /// When `SO_ERROR` became non-zero, and its errno symbol.
    pub failed_at: Duration,
    /// The errno the connect ended with (`ETIMEDOUT` expected).
    pub errno: &'static str,
}

/// The kernel's schedule for given settings, computed (not measured).
#[derive(Debug, Clone, PartialEq)]
pub struct Computed {
    /// Seconds after the first SYN at which each retransmission is sent.
    pub resent_at: Vec<u64>,
    /// Seconds after the first SYN at which connect fails with `ETIMEDOUT`.
    pub gives_up_at: u64,
}

/// The schedule [`measure`] should find, from the rule in the header.
pub fn compute(syn_retries: u32, linear_timeouts: u32) -> Computed {
    // tcp_model_timeout(): pure doubling from the initial RTO up to
    // TCP_RTO_MAX (ilog2(120) = 6 doublings), then 120 s steps.
    let doublings = (RTO_MAX_SECS / INITIAL_RTO_SECS).ilog2();
    let budget = if syn_retries <= doublings {
        ((2u64 << syn_retries) - 1) * INITIAL_RTO_SECS
    } else {
        ((2u64 << doublings) - 1) * INITIAL_RTO_SECS + u64::from(syn_retries - doublings) * RTO_MAX_SECS
    };
    let (mut rto, mut now, mut resent_at) = (INITIAL_RTO_SECS, 0u64, Vec::new());
    loop {
        now += rto; // the retransmission timer fires
        if now >= budget {
            return Computed {
                resent_at,
                gives_up_at: now,
            };
        }
        resent_at.push(now);
        if resent_at.len() as u32 > linear_timeouts {
            rto = (rto * 2).min(RTO_MAX_SECS);
        }
    }
}

/// Measure the schedule in the current (private) namespace with
/// `tcp_syn_retries` lowered to `syn_retries` so the run stays short.
pub fn measure(syn_retries: u32) -> io::Result<Measured> {
    netns::set_sysctl("net/ipv4/tcp_syncookies", "0")?;
    netns::set_sysctl("net/ipv4/tcp_syn_retries", &syn_retries.to_string())?;
    let linear_timeouts = netns::sysctl("net/ipv4/tcp_syn_linear_timeouts")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);

    let (listen_fd, addr) = listener(0)?;
    // Backlog 0 holds one finished handshake ("full" is `>`, not `>=`).
    let filler = start_connect(addr)?;
    let established = wait_for(Duration::from_secs(2), Duration::from_millis(5), || {
        let state = sys::info::tcp_info(filler.as_raw_fd())?.raw.tcpi_state;
        Ok((state == TcpState::Established as u8).then_some(()))
    })?;
    if established.is_none() {
        return Err(io::Error::other("the queue-filling connection never completed"));
    }

    let client = start_connect(addr)?;
    let start = Instant::now();
    let budget = Duration::from_secs(compute(syn_retries, linear_timeouts).gives_up_at + 10);
    let mut resent_at = Vec::new();
    let mut seen = 0u32;
    let failed = wait_for(budget, Duration::from_millis(2), || {
        let err = socket::take_error(client.as_raw_fd())?;
        if err != 0 {
            return Ok(Some(err));
        }
        let total = sys::info::tcp_info(client.as_raw_fd())?.raw.tcpi_total_retrans;
        while seen < total {
            resent_at.push(start.elapsed());
            seen += 1;
        }
        Ok(None)
    })?;
    drop((listen_fd, filler));
    let errno = failed.ok_or_else(|| io::Error::other(format!("connect still pending after {budget:?}")))?;
    Ok(Measured {
        syn_retries,
        linear_timeouts,
        resent_at,
        failed_at: start.elapsed(),
        errno: sys::errno_name(errno),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn computed_default_schedule_is_linear_then_doubling() {
        let c = compute(6, 4);
        assert_eq!(c.resent_at, [1, 2, 3, 4, 5, 7, 11, 19, 35, 67]);
        assert_eq!(c.gives_up_at, 131);
    }

    #[test]
    fn without_linear_timeouts_the_classic_schedule_returns() {
        let c = compute(6, 0);
        assert_eq!(c.resent_at, [1, 3, 7, 15, 31, 63]);
        assert_eq!(c.gives_up_at, 127);
    }
}
