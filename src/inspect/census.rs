//! The machine's TCP sockets counted by state (the story's Q28: how many
//! are in TIME_WAIT?), the ephemeral port range, and the arithmetic of
//! running out of it.
//!
//! Sources: `/proc/net/tcp{,6}` (every socket, including the TIME_WAIT ones
//! that no fd points to any more) and `/proc/sys/net/ipv4/ip_local_port_range`
//! (`ip(7)`: the ports `connect` picks from when we did not `bind`).
//!
//! The tables are per network namespace and shared by every process in it,
//! so a census is only meaningful for *your* sockets when filtered by a port
//! you own (a listener's port: both ends of each connection to it carry it).

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;

use super::proc_net::{self, TcpRow, TcpState};

/// The ephemeral range's sysctl.
pub const IP_LOCAL_PORT_RANGE: &str = "/proc/sys/net/ipv4/ip_local_port_range";

// ANCHOR: timewait_len
/// How long a socket stays in TIME_WAIT on Linux: `TCP_TIMEWAIT_LEN` in
/// `include/net/tcp.h`, `60*HZ`, a compile-time constant with no sysctl.
/// RFC 793 asks for 2 x MSL (4 minutes); Linux chose 60 s. Note that
/// `net.ipv4.tcp_fin_timeout` is *not* this: it bounds FIN_WAIT_2 for an
/// orphaned socket, though its default also happens to be 60.
pub const TIME_WAIT_SECS: u64 = 60;
// ANCHOR_END: timewait_len

/// Counts of TCP sockets per state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Census {
    /// Sockets per state (states with none are absent).
    pub by_state: BTreeMap<TcpState, usize>,
    /// Rows of the tables that did not parse.
    pub skipped: usize,
}

impl Census {
    /// Count rows, keeping those with `port` at either end (or all rows when
    /// `port` is `None`).
    pub fn from_rows<'a>(rows: impl IntoIterator<Item = &'a TcpRow>, port: Option<u16>) -> Census {
        let mut census = Census::default();
        for row in rows {
            if port.map_or(true, |p| row.local.port() == p || row.remote.port() == p) {
                *census.by_state.entry(row.state).or_insert(0) += 1;
            }
        }
        census
    }

    /// Sockets in `state`.
    pub fn count(&self, state: TcpState) -> usize {
        self.by_state.get(&state).copied().unwrap_or(0)
    }

    /// Sockets in TIME_WAIT.
    pub fn time_wait(&self) -> usize {
        self.count(TcpState::TimeWait)
    }

    /// All sockets counted.
    pub fn total(&self) -> usize {
        self.by_state.values().sum()
    }
}

/// `TCP: 35 (ESTAB 10, LISTEN 2, TIME-WAIT 23)`, in the spirit of `ss -s`.
impl fmt::Display for Census {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TCP: {} (", self.total())?;
        for (i, (state, n)) in self.by_state.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{state} {n}")?;
        }
        f.write_str(")")?;
        if self.skipped > 0 {
            write!(f, " [{} unreadable rows skipped]", self.skipped)?;
        }
        Ok(())
    }
}

/// Count the machine's TCP sockets by state, optionally only those with
/// `port` at either end.
pub fn tcp_census(port: Option<u16>) -> io::Result<Census> {
    let table = proc_net::tcp_table()?;
    let mut census = Census::from_rows(&table.rows, port);
    census.skipped = table.skipped;
    Ok(census)
}

/// The range `connect` draws source ports from (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    /// First port.
    pub low: u16,
    /// Last port.
    pub high: u16,
}

impl PortRange {
    /// How many ports the range holds (28,232 for the default 32768-60999).
    pub fn len(&self) -> u32 {
        (u32::from(self.high) + 1).saturating_sub(u32::from(self.low))
    }

    /// True if the range holds no port.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Is `port` inside the range?
    pub fn contains(&self, port: u16) -> bool {
        (self.low..=self.high).contains(&port)
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{} ({} ports)", self.low, self.high, self.len())
    }
}

/// Parse `ip_local_port_range`'s text: two numbers separated by whitespace.
pub fn parse_port_range(text: &str) -> Option<PortRange> {
    let mut words = text.split_whitespace();
    let low = words.next()?.parse().ok()?;
    let high = words.next()?.parse().ok()?;
    (words.next().is_none() && low <= high).then_some(PortRange { low, high })
}

/// `net.ipv4.ip_local_port_range`: the ephemeral ports. (It applies to IPv6
/// too, despite the `ipv4` in its name.)
pub fn ephemeral_port_range() -> io::Result<PortRange> {
    let text = proc_net::read_proc_text(IP_LOCAL_PORT_RANGE)?;
    parse_port_range(&text).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{IP_LOCAL_PORT_RANGE}: expected two ports, got {:?}", text.trim()),
        )
    })
}

/// How many ephemeral ports are taken toward one destination: sockets of
/// any state (TIME_WAIT included) whose peer is `dest` and whose local port
/// lies in the ephemeral range. A source port only has to be unique per
/// destination, so this, not the machine-wide total, is what runs out first
/// when one client hammers one server.
pub fn ports_in_use_toward(dest: SocketAddr) -> io::Result<usize> {
    let range = ephemeral_port_range()?;
    let table = proc_net::tcp_table()?;
    Ok(table
        .rows
        .iter()
        .filter(|r| r.remote == dest && range.contains(r.local.port()))
        .count())
}

// ANCHOR: budget
/// The story's Q28 arithmetic for one connection rate: each short-lived
/// connection leaves its port in TIME_WAIT for [`TIME_WAIT_SECS`], so at
/// `rate` new connections per second the steady state holds
/// `rate x 60` ports toward that destination. If that exceeds the range,
/// `connect` starts failing with `EADDRNOTAVAIL` once the range is used up,
/// unless `net.ipv4.tcp_tw_reuse` lets it recycle a TIME_WAIT port (a
/// mitigation with its own caveats; reuse of the connection avoids the
/// problem instead).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PortBudget {
    /// New connections per second.
    pub rate: u64,
    /// TIME_WAIT sockets held at steady state: `rate x TIME_WAIT_SECS`.
    pub steady_time_wait: u64,
    /// Ports available toward one destination.
    pub ports: u32,
    /// Seconds until the range is used up, if it ever is.
    pub exhausted_after_secs: Option<f64>,
}

impl PortBudget {
    /// Compute the budget for `rate` connections/s over `range`.
    pub fn new(rate: u64, range: PortRange) -> PortBudget {
        let steady_time_wait = rate.saturating_mul(TIME_WAIT_SECS);
        let ports = range.len();
        let exhausted_after_secs =
            (rate > 0 && steady_time_wait > u64::from(ports)).then(|| f64::from(ports) / rate as f64);
        PortBudget {
            rate,
            steady_time_wait,
            ports,
            exhausted_after_secs,
        }
    }
}
// ANCHOR_END: budget

impl fmt::Display for PortBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:>5}/s x {TIME_WAIT_SECS} s = {:>6} in TIME_WAIT vs {} ports: ",
            self.rate, self.steady_time_wait, self.ports
        )?;
        match self.exhausted_after_secs {
            Some(secs) => write!(f, "range used up after {secs:.1} s"),
            None => write!(
                f,
                "fits ({:.0}% of the range)",
                self.steady_time_wait as f64 * 100.0 / f64::from(self.ports.max(1))
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn story_figures_follow_from_the_default_range() {
        let range = parse_port_range("32768\t60999\n").unwrap();
        assert_eq!(range.len(), 28_232);
        let slow = PortBudget::new(100, range);
        assert_eq!(slow.steady_time_wait, 6_000);
        assert_eq!(slow.exhausted_after_secs, None);
        let fast = PortBudget::new(500, range);
        assert_eq!(fast.steady_time_wait, 30_000);
        let secs = fast.exhausted_after_secs.unwrap();
        assert!((secs - 56.464).abs() < 0.01, "{secs}");
    }

    #[test]
    fn malformed_port_ranges_are_refused() {
        for bad in ["", "1", "60999 32768", "1 2 3", "a b", "1 70000"] {
            assert_eq!(parse_port_range(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn this_machines_range_is_readable() {
        let range = ephemeral_port_range().unwrap();
        assert!(!range.is_empty());
    }

    #[test]
    fn census_filters_by_either_end() {
        let text = "   0: 0100007F:1538 0100007F:B2F4 01 00000000:00000000 00:00000000 00000000 0 0 1 1\n   \
                    1: 0100007F:B2F4 0100007F:1538 01 00000000:00000000 00:00000000 00000000 0 0 2 1\n   \
                    2: 0100007F:B2F6 0100007F:1538 06 00000000:00000000 00:00000000 00000000 0 0 0 1\n   \
                    3: 0100007F:0050 0100007F:B2F8 06 00000000:00000000 00:00000000 00000000 0 0 0 1\n";
        let rows = proc_net::parse_tcp_table(text).rows;
        assert_eq!(rows.len(), 4);
        let port = u16::from_str_radix("1538", 16).unwrap();
        let census = Census::from_rows(&rows, Some(port));
        assert_eq!(census.count(TcpState::Established), 2);
        assert_eq!(census.time_wait(), 1);
        assert_eq!(Census::from_rows(&rows, None).time_wait(), 2);
        assert_eq!(census.to_string(), "TCP: 3 (ESTAB 2, TIME-WAIT 1)");
    }

    proptest! {
        #[test]
        fn port_range_parser_never_panics(text in ".{0,40}") {
            if let Some(r) = parse_port_range(&text) {
                prop_assert!(r.low <= r.high);
            }
        }
    }
}
