//! The `/proc/net/netstat` and `/proc/net/snmp` parser
//! (`inspect::netstat::parse_counters`): header/value line pairs such as
//! `TcpExt: ... ListenOverflows ...` / `TcpExt: ... 3 ...`, the counters the
//! accept-queue and TIME_WAIT lessons read.
//!
//! Beyond "no panic": each counter comes from a header and value line pair
//! with the same group, so there are never more counters than words on the
//! input's lines.
#![no_main]

use connlab::inspect::netstat::parse_counters;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let parsed = parse_counters(&text);
    let words = text.split_whitespace().count();
    assert!(parsed.rows.len() <= words);
    for counter in &parsed.rows {
        assert!(!counter.group.is_empty() && !counter.name.is_empty());
    }
});
