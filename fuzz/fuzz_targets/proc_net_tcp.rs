//! The `/proc/net/tcp` and `/proc/net/tcp6` parser (`inspect::proc_net`):
//! the kernel's socket table, which `inspect` reads to turn an inode into a
//! 4-tuple and a TCP state. The kernel is trusted more than a network peer,
//! but a parser that panics on a format change would take every example
//! with it; a line it cannot read must be skipped and counted.
//!
//! Beyond "no panic": every line is either a row or counted as skipped
//! (header and blank lines aside), and a row's state round-trips through
//! its names.
#![no_main]

use connlab::inspect::proc_net::{parse_tcp_table, TcpState};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let parsed = parse_tcp_table(&text);
    let lines = text.lines().filter(|l| !l.trim().is_empty()).count();
    assert!(parsed.rows.len() + parsed.skipped <= lines);
    for row in &parsed.rows {
        assert_eq!(TcpState::from_ss_name(row.state.ss_name()), Some(row.state));
    }
});
