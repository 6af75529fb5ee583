//! The kernel's own socket tables: `/proc/net/tcp`, `/proc/net/tcp6` and
//! `/proc/net/unix` (`proc(5)`, "/proc/net/tcp"; the row format is
//! `tcp4_seq_show` in `net/ipv4/tcp_ipv4.c`).
//!
//! These files are what `netstat` read before `ss` switched to the
//! `NETLINK_INET_DIAG` socket. They are slower (text, one line per socket,
//! regenerated on every read) but need no netlink code, and a reader can
//! `cat` them and check every number we parse. One row of `/proc/net/tcp`:
//!
//! ```text
//!   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
//!    0: 0100007F:1538 0100007F:B2F4 01 00000000:00000000 00:00000000 00000000  1000        0 53214 ...
//! ```
//!
//! is 127.0.0.1:5432 talking to 127.0.0.1:45812 in state 01 (ESTABLISHED),
//! nothing queued either way, owned by uid 1000, socket inode 53214 (the
//! number `/proc/self/fd/N` shows as `socket:[53214]`).
//!
//! The content is untrusted text: every parser here skips a line it cannot
//! read and counts it, and never panics (property tests in this file feed
//! them random bytes and mutated real rows).

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::Parsed;

/// The IPv4 TCP table.
pub const PROC_NET_TCP: &str = "/proc/net/tcp";
/// The IPv6 TCP table (also holds IPv4-mapped `::ffff:a.b.c.d` sockets of
/// dual-stack listeners).
pub const PROC_NET_TCP6: &str = "/proc/net/tcp6";
/// The Unix-domain socket table.
pub const PROC_NET_UNIX: &str = "/proc/net/unix";

/// The `tr` value of [`TcpRow::timer`] for a socket in TIME_WAIT: its
/// `when` is the time the socket has left to live.
pub const TIMER_TIME_WAIT: u8 = 3;

// ANCHOR: tcp_state
/// A TCP socket's state, numbered as the kernel numbers it
/// (`include/net/tcp_states.h`). The same number appears in
/// `TCP_INFO.tcpi_state` and, in hex, in the `st` column of `/proc/net/tcp`.
/// [`TcpState::ss_name`] is the word `ss` prints for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum TcpState {
    /// 1 `TCP_ESTABLISHED`: the handshake is done; data flows both ways. ss: `ESTAB`.
    Established = 1,
    /// 2 `TCP_SYN_SENT`: `connect` sent a SYN and waits for the SYN-ACK.
    SynSent = 2,
    /// 3 `TCP_SYN_RECV`: a SYN arrived and we answered; waiting for the final ACK.
    SynRecv = 3,
    /// 4 `TCP_FIN_WAIT1`: we closed (sent FIN); waiting for its ACK.
    FinWait1 = 4,
    /// 5 `TCP_FIN_WAIT2`: our FIN was acknowledged; waiting for the peer's FIN.
    /// A socket we `shutdown(SHUT_WR)` sits here while the peer keeps sending.
    FinWait2 = 5,
    /// 6 `TCP_TIME_WAIT`: both sides closed, we closed first; the 4-tuple is
    /// held for 60 s (`TCP_TIMEWAIT_LEN`). No fd points here any more.
    TimeWait = 6,
    /// 7 `TCP_CLOSE`: a fresh or finished socket. ss: `UNCONN`.
    Close = 7,
    /// 8 `TCP_CLOSE_WAIT`: the peer closed (its FIN arrived); we have not yet.
    CloseWait = 8,
    /// 9 `TCP_LAST_ACK`: we closed after the peer did; waiting for the last ACK.
    LastAck = 9,
    /// 10 `TCP_LISTEN`: a listener; it owns the SYN and accept queues.
    Listen = 10,
    /// 11 `TCP_CLOSING`: both sides sent FIN at the same time.
    Closing = 11,
    /// 12 `TCP_NEW_SYN_RECV`: a lightweight request socket (Linux 4.4+); the
    /// tables show it as `SYN_RECV`, so it rarely appears by this number.
    NewSynRecv = 12,
}
// ANCHOR_END: tcp_state

impl TcpState {
    /// Every state, in the kernel's order.
    pub const ALL: [TcpState; 12] = [
        TcpState::Established,
        TcpState::SynSent,
        TcpState::SynRecv,
        TcpState::FinWait1,
        TcpState::FinWait2,
        TcpState::TimeWait,
        TcpState::Close,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::Listen,
        TcpState::Closing,
        TcpState::NewSynRecv,
    ];

    /// The state for a kernel number, or `None` for a number this kernel
    /// version may have added after this list was written.
    pub fn from_kernel(n: u8) -> Option<TcpState> {
        TcpState::ALL.into_iter().find(|s| *s as u8 == n)
    }

    /// The word `ss` prints (iproute2's `sstate_name`).
    pub fn ss_name(self) -> &'static str {
        match self {
            TcpState::Established => "ESTAB",
            TcpState::SynSent => "SYN-SENT",
            TcpState::SynRecv | TcpState::NewSynRecv => "SYN-RECV",
            TcpState::FinWait1 => "FIN-WAIT-1",
            TcpState::FinWait2 => "FIN-WAIT-2",
            TcpState::TimeWait => "TIME-WAIT",
            TcpState::Close => "UNCONN",
            TcpState::CloseWait => "CLOSE-WAIT",
            TcpState::LastAck => "LAST-ACK",
            TcpState::Listen => "LISTEN",
            TcpState::Closing => "CLOSING",
        }
    }

    /// The state for an `ss` word (the inverse of [`TcpState::ss_name`]).
    pub fn from_ss_name(word: &str) -> Option<TcpState> {
        TcpState::ALL
            .into_iter()
            .filter(|s| *s != TcpState::NewSynRecv)
            .find(|s| s.ss_name() == word)
    }

    /// The kernel's C name, `TCP_ESTABLISHED` and so on.
    pub fn kernel_name(self) -> &'static str {
        match self {
            TcpState::Established => "TCP_ESTABLISHED",
            TcpState::SynSent => "TCP_SYN_SENT",
            TcpState::SynRecv => "TCP_SYN_RECV",
            TcpState::FinWait1 => "TCP_FIN_WAIT1",
            TcpState::FinWait2 => "TCP_FIN_WAIT2",
            TcpState::TimeWait => "TCP_TIME_WAIT",
            TcpState::Close => "TCP_CLOSE",
            TcpState::CloseWait => "TCP_CLOSE_WAIT",
            TcpState::LastAck => "TCP_LAST_ACK",
            TcpState::Listen => "TCP_LISTEN",
            TcpState::Closing => "TCP_CLOSING",
            TcpState::NewSynRecv => "TCP_NEW_SYN_RECV",
        }
    }
}

impl fmt::Display for TcpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.ss_name())
    }
}

/// One row of `/proc/net/tcp` or `/proc/net/tcp6`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpRow {
    /// Our end.
    pub local: SocketAddr,
    /// The peer's end (`0.0.0.0:0` / `[::]:0` for a listener).
    pub remote: SocketAddr,
    /// The `st` column.
    pub state: TcpState,
    /// `tx_queue`: bytes sent and not yet acknowledged (0 for a listener).
    pub tx_queue: u32,
    /// `rx_queue`: bytes received and not yet read; for a LISTEN socket,
    /// connections waiting in the accept queue.
    pub rx_queue: u32,
    /// The pending timer, from the `tr:tm->when` column: which one (`tr`:
    /// 0 none, 1 retransmit, 2 keepalive, 3 TIME_WAIT, 4 zero-window probe)
    /// and the clock ticks (`USER_HZ`, 100 a second) until it fires.
    pub timer: (u8, u64),
    /// The owner's uid.
    pub uid: u32,
    /// The socket inode, 0 for TIME_WAIT and request sockets (no fd, no
    /// inode: only the 4-tuple is left).
    pub inode: u64,
}

/// `hex` as a number, accepting only 1 to 8 hex digits (no sign, no spaces:
/// `u32::from_str_radix` would also take a leading `+`).
fn hex_u32(hex: &str) -> Option<u32> {
    if hex.is_empty() || hex.len() > 8 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(hex, 16).ok()
}

/// `hex` as a number of 1 to 16 hex digits (the kernel prints timers with
/// `%08lX`, so a long one can pass 8 digits).
fn hex_u64(hex: &str) -> Option<u64> {
    if hex.is_empty() || hex.len() > 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

// ANCHOR: decode_addr
/// Decode a `/proc/net/tcp{,6}` address such as `0100007F` (127.0.0.1) or
/// `00000000000000000000000001000000` (::1).
///
/// The kernel prints the address as it holds it in memory, in network byte
/// order, but one 32-bit word at a time with `%08X`, which reads each word as
/// a *host-endian* integer. On a little-endian machine that reverses the
/// bytes inside each word: 127.0.0.1 is the bytes `7F 00 00 01`, read as the
/// little-endian integer `0x0100007F`. So we undo exactly that: parse each
/// 8-digit word as a `u32` and take its native-endian bytes. (The port, by
/// contrast, is converted with `ntohs` before printing, so `1538` is 5432.)
pub fn decode_hex_ip(hex: &str) -> Option<IpAddr> {
    let word = |i: usize| hex.get(i * 8..i * 8 + 8).and_then(hex_u32).map(u32::to_ne_bytes);
    match hex.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(word(0)?))),
        32 => {
            let mut octets = [0u8; 16];
            for (i, chunk) in octets.chunks_exact_mut(4).enumerate() {
                chunk.copy_from_slice(&word(i)?);
            }
            Some(IpAddr::V6(Ipv6Addr::from(octets)))
        }
        _ => None,
    }
}
// ANCHOR_END: decode_addr

/// `ADDR:PORT` in the tables' hex form.
fn decode_hex_socket_addr(field: &str) -> Option<SocketAddr> {
    let (ip, port) = field.split_once(':')?;
    let port = u16::try_from(hex_u32(port)?).ok()?;
    Some(SocketAddr::new(decode_hex_ip(ip)?, port))
}

/// Parse one data row of `/proc/net/tcp{,6}`; `None` if it is malformed.
pub fn parse_tcp_row(line: &str) -> Option<TcpRow> {
    let mut fields = line.split_whitespace();
    let slot = fields.next()?;
    if !slot.ends_with(':') || slot.len() < 2 || !slot[..slot.len() - 1].bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let local = decode_hex_socket_addr(fields.next()?)?;
    let remote = decode_hex_socket_addr(fields.next()?)?;
    let st = fields.next()?;
    if st.len() != 2 {
        return None;
    }
    let state = TcpState::from_kernel(u8::try_from(hex_u32(st)?).ok()?)?;
    let (tx, rx) = fields.next()?.split_once(':')?;
    let (tx_queue, rx_queue) = (hex_u32(tx)?, hex_u32(rx)?);
    let (tr, when) = fields.next()?.split_once(':')?;
    let timer = (u8::try_from(hex_u32(tr)?).ok()?, hex_u64(when)?);
    let _retransmits = fields.next()?;
    let uid = fields.next()?.parse().ok()?;
    let _timeout = fields.next()?;
    let inode = fields.next()?.parse().ok()?;
    if local.is_ipv4() != remote.is_ipv4() {
        return None;
    }
    Some(TcpRow {
        local,
        remote,
        state,
        tx_queue,
        rx_queue,
        timer,
        uid,
        inode,
    })
}

/// Is this the column-title line that opens each table?
fn is_header(line: &str, first_word: &str) -> bool {
    line.split_whitespace().next() == Some(first_word)
}

/// Parse a whole `/proc/net/tcp` or `/proc/net/tcp6` text.
pub fn parse_tcp_table(text: &str) -> Parsed<TcpRow> {
    let mut parsed = Parsed::default();
    for line in text.lines() {
        if line.trim().is_empty() || is_header(line, "sl") {
            continue;
        }
        match parse_tcp_row(line) {
            Some(row) => parsed.rows.push(row),
            None => parsed.skipped += 1,
        }
    }
    parsed
}

/// Read a /proc file as text. Non-UTF-8 bytes (possible only in Unix socket
/// paths) become U+FFFD rather than failing the whole table.
pub(crate) fn read_proc_text(path: &str) -> io::Result<String> {
    let bytes = std::fs::read(path).map_err(|e| io::Error::new(e.kind(), format!("read {path}: {e}")))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Every TCP socket on the machine (in this network namespace): IPv4 and
/// IPv6 tables together. A kernel without IPv6 has no `tcp6`; that counts as
/// an empty table, not an error.
pub fn tcp_table() -> io::Result<Parsed<TcpRow>> {
    let mut all = parse_tcp_table(&read_proc_text(PROC_NET_TCP)?);
    match read_proc_text(PROC_NET_TCP6) {
        Ok(text) => all.extend(parse_tcp_table(&text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    Ok(all)
}

/// `__SO_ACCEPTCON` in `/proc/net/unix`'s `Flags` column: the socket is
/// listening (`include/linux/net.h`).
pub const UNIX_FLAG_ACCEPTCON: u32 = 1 << 16;

/// One row of `/proc/net/unix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixRow {
    /// `Type`: `SOCK_STREAM` (1), `SOCK_DGRAM` (2), `SOCK_SEQPACKET` (5).
    pub sock_type: u16,
    /// `St`: the generic `socket_state` (1 unconnected, 2 connecting,
    /// 3 connected, 4 disconnecting), not a TCP state.
    pub state: u8,
    /// `Flags` has `__SO_ACCEPTCON`: a listener.
    pub listening: bool,
    /// The socket inode.
    pub inode: u64,
    /// The bound path; abstract names start with `@`; `None` if unbound.
    pub path: Option<String>,
}

impl UnixRow {
    /// The state as a word: `LISTEN` for a listener, else the
    /// `socket_state` name (`UNCONNECTED`, `CONNECTING`, `CONNECTED`,
    /// `DISCONNECTING`).
    pub fn state_name(&self) -> &'static str {
        if self.listening {
            return "LISTEN";
        }
        match self.state {
            1 => "UNCONNECTED",
            2 => "CONNECTING",
            3 => "CONNECTED",
            4 => "DISCONNECTING",
            _ => "UNKNOWN",
        }
    }
}

/// Parse one data row of `/proc/net/unix`:
/// `Num: RefCount Protocol Flags Type St Inode [Path]`, all hex except the
/// inode. The path is the rest of the line and may contain spaces.
pub fn parse_unix_row(line: &str) -> Option<UnixRow> {
    let mut rest = line.trim_start();
    let mut fields = [""; 7];
    for field in fields.iter_mut() {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        *field = &rest[..end];
        rest = rest[end..].trim_start();
    }
    let [num, refcount, protocol, flags, sock_type, st, inode] = fields;
    let num_hex = num.strip_suffix(':')?;
    if num_hex.is_empty() || !num_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    hex_u32(refcount)?;
    hex_u32(protocol)?;
    let flags = hex_u32(flags)?;
    let sock_type = u16::try_from(hex_u32(sock_type)?).ok()?;
    let state = u8::try_from(hex_u32(st)?).ok()?;
    if inode.is_empty() || !inode.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let inode = inode.parse().ok()?;
    let path = (!rest.is_empty()).then(|| rest.to_string());
    Some(UnixRow {
        sock_type,
        state,
        listening: flags & UNIX_FLAG_ACCEPTCON != 0,
        inode,
        path,
    })
}

/// Parse a whole `/proc/net/unix` text.
pub fn parse_unix_table(text: &str) -> Parsed<UnixRow> {
    let mut parsed = Parsed::default();
    for line in text.lines() {
        if line.trim().is_empty() || is_header(line, "Num") {
            continue;
        }
        match parse_unix_row(line) {
            Some(row) => parsed.rows.push(row),
            None => parsed.skipped += 1,
        }
    }
    parsed
}

/// Every Unix-domain socket on the machine.
pub fn unix_table() -> io::Result<Parsed<UnixRow>> {
    Ok(parse_unix_table(&read_proc_text(PROC_NET_UNIX)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A real row, captured from this kernel: 127.0.0.1:5432 <-> 127.0.0.1:45812.
    const LOOPBACK_ROW: &str = "   3: 0100007F:1538 0100007F:B2F4 01 00000000:00000000 00:00000000 00000000  1000        0 53214 1 0000000000000000 20 4 30 10 -1";
    const TIME_WAIT_ROW: &str = "   7: 0100007F:B2F6 0100007F:1538 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000";
    const V6_ROW: &str = "   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000002 00:00000000 00000000  1000        0 99 1 0000000000000000 100 0 0 10 0";
    const UNIX_ROWS: &str = "Num       RefCount Protocol Flags    Type St Inode Path
0000000000000000: 00000002 00000000 00010000 0001 01 20480 /tmp/.s.PGSQL.5432
0000000000000000: 00000003 00000000 00000000 0001 03 20481
0000000000000000: 00000002 00000000 00000000 0002 01 20482 @abstract name
";

    #[test]
    fn loopback_row_decodes_host_endian_address_words() {
        let row = parse_tcp_row(LOOPBACK_ROW).unwrap();
        if cfg!(target_endian = "little") {
            assert_eq!(row.local, "127.0.0.1:5432".parse().unwrap());
            assert_eq!(row.remote, "127.0.0.1:45812".parse().unwrap());
        }
        assert_eq!(row.state, TcpState::Established);
        assert_eq!((row.uid, row.inode), (1000, 53214));
    }

    #[test]
    fn time_wait_row_has_no_inode() {
        let row = parse_tcp_row(TIME_WAIT_ROW).unwrap();
        assert_eq!(row.state, TcpState::TimeWait);
        assert_eq!(row.inode, 0);
    }

    #[test]
    fn ipv6_loopback_listener_decodes_word_by_word() {
        let row = parse_tcp_row(V6_ROW).unwrap();
        if cfg!(target_endian = "little") {
            assert_eq!(row.local, "[::1]:8080".parse().unwrap());
        }
        assert_eq!(row.state, TcpState::Listen);
        assert_eq!(row.rx_queue, 2, "two connections wait to be accepted");
    }

    #[test]
    fn table_skips_and_counts_malformed_rows() {
        let text = format!("  sl  local_address ...\n{LOOPBACK_ROW}\ngarbage\n{TIME_WAIT_ROW}\n   9: 0100007F:1538\n");
        let parsed = parse_tcp_table(&text);
        assert_eq!(parsed.rows.len(), 2);
        assert_eq!(parsed.skipped, 2);
    }

    #[test]
    fn state_numbers_and_ss_names_round_trip() {
        for state in TcpState::ALL {
            assert_eq!(TcpState::from_kernel(state as u8), Some(state));
        }
        assert_eq!(TcpState::from_kernel(0), None);
        assert_eq!(TcpState::from_ss_name("TIME-WAIT"), Some(TcpState::TimeWait));
        assert_eq!(TcpState::from_ss_name("SYN-RECV"), Some(TcpState::SynRecv));
    }

    #[test]
    fn unix_rows_keep_paths_with_spaces_and_flag_listeners() {
        let parsed = parse_unix_table(UNIX_ROWS);
        assert_eq!(parsed.skipped, 0);
        let rows = parsed.rows;
        assert_eq!(rows.len(), 3);
        assert!(rows[0].listening);
        assert_eq!(rows[0].state_name(), "LISTEN");
        assert_eq!(rows[0].path.as_deref(), Some("/tmp/.s.PGSQL.5432"));
        assert_eq!(rows[1].state_name(), "CONNECTED");
        assert_eq!(rows[1].path, None);
        assert_eq!(rows[2].path.as_deref(), Some("@abstract name"));
        assert_eq!(rows[2].sock_type, 2);
    }

    #[test]
    fn this_machines_tables_parse_without_skips() {
        let tcp = tcp_table().unwrap();
        assert_eq!(tcp.skipped, 0, "a real /proc/net/tcp row failed to parse");
        let unix = unix_table().unwrap();
        assert_eq!(unix.skipped, 0, "a real /proc/net/unix row failed to parse");
    }

    /// Replace, insert or delete one byte of a real row.
    fn mutate(row: &str, at: usize, byte: u8, how: u8) -> String {
        let mut bytes = row.as_bytes().to_vec();
        let at = at % (bytes.len() + 1);
        match how % 3 {
            0 if at < bytes.len() => bytes[at] = byte,
            1 => bytes.insert(at, byte),
            _ if at < bytes.len() => {
                bytes.remove(at);
            }
            _ => bytes.push(byte),
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    proptest! {
        #[test]
        fn tcp_parser_never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let text = String::from_utf8_lossy(&bytes);
            let parsed = parse_tcp_table(&text);
            prop_assert!(parsed.rows.len() + parsed.skipped <= text.lines().count());
        }

        #[test]
        fn tcp_parser_survives_mutated_real_rows(at in 0usize..200, byte in any::<u8>(), how in any::<u8>(),
                                                  which in 0usize..3) {
            let row = [LOOPBACK_ROW, TIME_WAIT_ROW, V6_ROW][which];
            let text = mutate(row, at, byte, how);
            let parsed = parse_tcp_table(&text);
            prop_assert!(parsed.rows.len() + parsed.skipped <= text.lines().count().max(1));
        }

        #[test]
        fn unix_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400),
                                    at in 0usize..200, byte in any::<u8>(), how in any::<u8>()) {
            let _ = parse_unix_table(&String::from_utf8_lossy(&bytes));
            let _ = parse_unix_table(&mutate(UNIX_ROWS, at, byte, how));
        }

        #[test]
        fn decoded_addresses_round_trip(ip in any::<[u8; 4]>(), port in any::<u16>()) {
            let hex = format!("{:08X}:{:04X}", u32::from_ne_bytes(ip), port);
            prop_assert_eq!(decode_hex_socket_addr(&hex), Some(SocketAddr::new(IpAddr::from(ip), port)));
        }
    }
}
