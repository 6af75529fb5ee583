//! The kernel's protocol counters: `/proc/net/netstat` (`TcpExt:`, `IpExt:`,
//! ...) and `/proc/net/snmp` (`Tcp:`, `Udp:`, the RFC 1213 MIB), the numbers
//! `nstat` and `netstat -s` print (`proc(5)`).
//!
//! Both files come in line pairs: a header line naming the counters, then a
//! value line with the same prefix and one number per name:
//!
//! ```text
//! TcpExt: SyncookiesSent SyncookiesRecv ... ListenOverflows ListenDrops ...
//! TcpExt: 0 0 ... 3 3 ...
//! ```
//!
//! The ones this crate's lessons watch: `TcpExt:ListenOverflows` (a SYN
//! or final ACK dropped because the accept queue was full), `TcpExt:TW`
//! (sockets that finished TIME_WAIT), `Tcp:ActiveOpens`/`PassiveOpens`
//! (connections started by `connect` / completed for `accept`),
//! `Tcp:CurrEstab`.
//!
//! These counters are machine-wide (per network namespace), so a test that
//! reads them must expect other processes to move them too.

use std::io;

use super::proc_net::read_proc_text;
use super::Parsed;

/// The extended counters (`TcpExt`, `IpExt`, `MPTcpExt`).
pub const PROC_NET_NETSTAT: &str = "/proc/net/netstat";
/// The SNMP MIB counters (`Ip`, `Icmp`, `Tcp`, `Udp`).
pub const PROC_NET_SNMP: &str = "/proc/net/snmp";

/// One counter: `group:name = value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    /// The prefix, e.g. `TcpExt`.
    pub group: String,
    /// The counter's name, e.g. `ListenOverflows`.
    pub name: String,
    /// Its value. Signed because one MIB entry is: `Tcp:MaxConn` is -1,
    /// "no limit" (RFC 2012).
    pub value: i64,
}

/// Parse a `/proc/net/netstat` or `/proc/net/snmp` text into counters.
///
/// A line that has no `Group:` prefix, a value line without its header, a
/// header without its value line, or a value line whose count or group
/// disagrees with its header is skipped and counted; the pairing restarts at
/// the next line, so one bad line costs at most its own pair.
pub fn parse_counters(text: &str) -> Parsed<Counter> {
    let mut parsed = Parsed::default();
    let mut header: Option<(&str, Vec<&str>)> = None;
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        // A group is a name (`TcpExt`, `IcmpMsg`): a line starting with `:`
        // or with spaces before its colon has no group, whatever follows.
        let Some((group, rest)) = line.split_once(':').filter(|(group, _)| is_group_name(group)) else {
            parsed.skipped += 1;
            continue;
        };
        let words: Vec<&str> = rest.split_whitespace().collect();
        let values: Option<Vec<i64>> = words.iter().map(|w| w.parse::<i64>().ok()).collect();
        match (header.take(), values) {
            (Some((header_group, names)), Some(values)) if header_group == group && names.len() == values.len() => {
                for (name, value) in names.into_iter().zip(values) {
                    parsed.rows.push(Counter {
                        group: group.to_string(),
                        name: name.to_string(),
                        value,
                    });
                }
            }
            (orphan, values) => {
                parsed.skipped += usize::from(orphan.is_some());
                if values.is_some() {
                    parsed.skipped += 1;
                } else {
                    header = Some((group, words));
                }
            }
        }
    }
    parsed.skipped += usize::from(header.is_some());
    parsed
}

fn is_group_name(word: &str) -> bool {
    !word.is_empty() && word.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// All counters from both files.
pub fn counters() -> io::Result<Parsed<Counter>> {
    let mut all = parse_counters(&read_proc_text(PROC_NET_NETSTAT)?);
    all.extend(parse_counters(&read_proc_text(PROC_NET_SNMP)?));
    Ok(all)
}

/// One counter by group and name, e.g. `netstat_counter("TcpExt",
/// "ListenOverflows")` or `netstat_counter("Tcp", "ActiveOpens")`. An
/// unknown name is an error that says where we looked.
pub fn netstat_counter(group: &str, name: &str) -> io::Result<i64> {
    counters()?
        .rows
        .into_iter()
        .find(|c| c.group == group && c.name == name)
        .map(|c| c.value)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("counter {group}:{name} is in neither {PROC_NET_NETSTAT} nor {PROC_NET_SNMP}"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SAMPLE: &str = "TcpExt: SyncookiesSent ListenOverflows ListenDrops
TcpExt: 0 3 4
IpExt: InNoRoutes InOctets
IpExt: 0 123456789012
Tcp: RtoAlgorithm MaxConn ActiveOpens
Tcp: 1 -1 42
";

    #[test]
    fn pairs_become_named_counters() {
        let parsed = parse_counters(SAMPLE);
        assert_eq!(parsed.skipped, 0);
        let get = |g: &str, n: &str| {
            parsed
                .rows
                .iter()
                .find(|c| c.group == g && c.name == n)
                .map(|c| c.value)
        };
        assert_eq!(get("TcpExt", "ListenOverflows"), Some(3));
        assert_eq!(get("IpExt", "InOctets"), Some(123_456_789_012));
        assert_eq!(get("Tcp", "MaxConn"), Some(-1));
    }

    #[test]
    fn a_short_value_line_is_skipped_and_the_next_pair_still_parses() {
        let text = "TcpExt: A B C\nTcpExt: 1 2\nTcp: X\nTcp: 7\n";
        let parsed = parse_counters(text);
        assert_eq!(parsed.skipped, 2, "the header and its mismatched value line");
        assert_eq!(parsed.rows.len(), 1);
        assert_eq!(parsed.rows[0].value, 7);
    }

    /// Found by the `proc_net_counters` fuzz target: a pair of lines that
    /// begin with `:` became counters with an empty group.
    #[test]
    fn a_line_without_a_group_name_is_skipped_not_a_nameless_group() {
        let parsed = parse_counters(":0 -00 12Ip: For\n:0 -00 12000 0\n Tcp: A\n Tcp: 1\n");
        assert!(parsed.rows.is_empty(), "{:?}", parsed.rows);
        assert_eq!(parsed.skipped, 4);
    }

    #[test]
    fn this_machines_counters_include_listen_overflows() {
        let all = counters().unwrap();
        assert_eq!(all.skipped, 0);
        assert!(netstat_counter("TcpExt", "ListenOverflows").unwrap() >= 0);
        assert!(netstat_counter("Tcp", "ActiveOpens").unwrap() >= 0);
        let err = netstat_counter("TcpExt", "NoSuchCounter").unwrap_err();
        assert!(err.to_string().contains("TcpExt:NoSuchCounter"), "{err}");
    }

    proptest! {
        #[test]
        fn parser_never_panics_and_never_invents_lines(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let text = String::from_utf8_lossy(&bytes);
            let parsed = parse_counters(&text);
            prop_assert!(parsed.skipped <= text.lines().count());
        }

        #[test]
        fn parser_survives_mutated_real_text(at in 0usize..200, byte in any::<u8>()) {
            let mut bytes = SAMPLE.as_bytes().to_vec();
            let at = at % bytes.len();
            bytes[at] = byte;
            let parsed = parse_counters(&String::from_utf8_lossy(&bytes));
            prop_assert!(parsed.rows.len() <= 8);
        }
    }
}
