//! A private network namespace: `unshare(2)` with `CLONE_NEWNET`, the
//! loopback interface brought up with `ioctl(SIOCSIFFLAGS)`, and the
//! per-namespace sysctls under `/proc/sys/net` (`network_namespaces(7)`,
//! `netdevice(7)`, `tcp(7)`).
//!
//! A namespace gives an experiment its own TCP stack: its own sockets,
//! its own `/proc/net/*` tables and counters, and its own copy of most
//! `net.ipv4.tcp_*` sysctls. So an experiment can turn SYN cookies off or
//! narrow the ephemeral port range without touching the machine's other
//! programs, and the counters it reads move only with its own traffic.
//!
//! `unshare(CLONE_NEWNET)` moves the *calling thread* only (threads it
//! spawns afterwards inherit it). Two consequences the callers rely on:
//! - run an experiment on a thread of its own; when the thread ends, the
//!   namespace and every socket in it go away;
//! - read `/proc/thread-self/net/...`, not `/proc/net/...`: the latter is
//!   `/proc/self/net`, which follows the process's *main* thread.
//!
//! It needs `CAP_SYS_ADMIN` (root). Without it `unshare` fails with `EPERM`
//! and the caller should say so and skip, not guess.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use super::cvt;

/// `/proc/thread-self/net`: this thread's view of the network tables.
pub const THREAD_NET: &str = "/proc/thread-self/net";

/// Move the calling thread into a new, empty network namespace and bring
/// its loopback interface up (a new namespace starts with `lo` down, so
/// even `127.0.0.1` would be unreachable).
pub fn enter_private() -> io::Result<()> {
    // SAFETY: unshare takes a flags int and changes only this thread's
    // namespace membership; no memory is passed.
    let ret = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    cvt(ret, "unshare", "CLONE_NEWNET")?;
    crate::narrate!("unshare(CLONE_NEWNET) = 0");
    loopback_up()
}

/// `ioctl(SIOCGIFFLAGS)` then `ioctl(SIOCSIFFLAGS)` with `IFF_UP` on `lo`,
/// what `ip link set lo up` does, through any socket of the namespace.
fn loopback_up() -> io::Result<()> {
    // Any socket of the namespace will do as the ioctl's handle; a datagram
    // one needs no connection. The OwnedFd closes it on return.
    // SAFETY: socket takes three integers and returns a new fd or -1.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    let fd = cvt(fd, "socket", "AF_INET, SOCK_DGRAM|SOCK_CLOEXEC")?;
    // SAFETY: the kernel just returned this fd; nothing else owns it.
    let _owner = unsafe { <OwnedFd as FromRawFd>::from_raw_fd(fd) };
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the name from req and writes the flags
    // into req's union; req is a valid, writable ifreq.
    let ret = unsafe { libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) };
    cvt(ret, "ioctl", "SIOCGIFFLAGS, lo")?;
    // SAFETY: SIOCGIFFLAGS just filled ifru_flags, the union's active field.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: as above; SIOCSIFFLAGS only reads req.
    let ret = unsafe { libc::ioctl(fd, libc::SIOCSIFFLAGS, &req) };
    cvt(ret, "ioctl", "SIOCSIFFLAGS, lo, IFF_UP")?;
    crate::narrate!("ioctl(SIOCSIFFLAGS, lo, IFF_UP) = 0");
    Ok(())
}

/// Read a sysctl, e.g. `sysctl("net/ipv4/tcp_syncookies")`, trimmed and
/// with runs of whitespace (the port range's tab) folded to one space.
/// Inside a private namespace the `net/` ones are that namespace's copy.
pub fn sysctl(name: &str) -> io::Result<String> {
    let path = format!("/proc/sys/{name}");
    let text = std::fs::read_to_string(&path).map_err(|e| io::Error::new(e.kind(), format!("read {path}: {e}")))?;
    Ok(text.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// Write a sysctl. Call it only after [`enter_private`]: outside a private
/// namespace this changes the whole machine.
pub fn set_sysctl(name: &str, value: &str) -> io::Result<()> {
    let path = format!("/proc/sys/{name}");
    std::fs::write(&path, value).map_err(|e| io::Error::new(e.kind(), format!("write {value:?} to {path}: {e}")))?;
    crate::narrate!("sysctl {name} = {value}");
    Ok(())
}
