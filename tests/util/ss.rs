//! Run the real `ss` and parse what it
//! prints, so our reports can be checked against the tool a reader trusts.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;

use connlab::inspect::TcpState;

/// One line of `ss -tanpe`.
#[derive(Debug, Clone)]
pub struct SsRow {
    pub state: TcpState,
    pub recv_q: u64,
    pub send_q: u64,
    pub local: SocketAddr,
    pub peer: SocketAddr,
    /// `ino:N` (0 for TIME-WAIT).
    pub inode: Option<u64>,
    /// `(pid, fd)` pairs from `users:((...,pid=P,fd=F))`.
    pub owners: Vec<(u32, i32)>,
}

/// `which ss`, done by hand: the first `ss` on `PATH`.
pub fn find_ss() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("ss"))
        .find(|p| p.is_file())
}

/// `127.0.0.1:5432`, `[::1]:80`, `0.0.0.0:*`, `*:*`, `127.0.0.1%lo:22`.
pub fn parse_ss_addr(text: &str) -> Option<SocketAddr> {
    let (host, port) = text.rsplit_once(':')?;
    let port = if port == "*" { 0 } else { port.parse().ok()? };
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    let host = host.split('%').next()?;
    let ip = if host == "*" {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        host.parse().ok()?
    };
    Some(SocketAddr::new(ip, port))
}

/// The digits right after `key` in `text`, e.g. `ino:` or `pid=`.
fn number_after<T: std::str::FromStr>(text: &str, key: &str) -> Option<T> {
    let start = text.find(key)? + key.len();
    let digits: String = text[start..].chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// Parse one line of `ss -tanpe` output (not the title line).
pub fn parse_ss_line(line: &str) -> Option<SsRow> {
    let mut words = line.split_whitespace();
    let state = TcpState::from_ss_name(words.next()?)?;
    let recv_q = words.next()?.parse().ok()?;
    let send_q = words.next()?.parse().ok()?;
    let local = parse_ss_addr(words.next()?)?;
    let peer = parse_ss_addr(words.next()?)?;
    let rest: Vec<&str> = words.collect();
    let rest = rest.join(" ");
    let inode = rest
        .split_whitespace()
        .find_map(|w| w.strip_prefix("ino:"))
        .and_then(|n| n.parse().ok());
    let mut owners = Vec::new();
    let mut tail = rest.as_str();
    while let Some(at) = tail.find("pid=") {
        tail = &tail[at..];
        if let (Some(pid), Some(fd)) = (number_after(tail, "pid="), number_after(tail, "fd=")) {
            owners.push((pid, fd));
        }
        tail = &tail[4..];
    }
    Some(SsRow {
        state,
        recv_q,
        send_q,
        local,
        peer,
        inode,
        owners,
    })
}

/// Run `ss -tanpe` and parse every line. Panics with ss's stderr if it
/// fails: a test that asked for ss and got nothing must not pass quietly.
pub fn ss_tanpe(ss: &PathBuf) -> Vec<SsRow> {
    let out = Command::new(ss).arg("-tanpe").output().expect("run ss -tanpe");
    assert!(
        out.status.success(),
        "ss -tanpe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().skip(1).filter_map(parse_ss_line).collect()
}
