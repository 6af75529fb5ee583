//! Socket addresses as the kernel sees them, and the two calls that report
//! a socket's ends: `getsockname(2)` (our end) and `getpeername(2)` (theirs).
//!
//! The kernel speaks `struct sockaddr_in` (IPv4), `sockaddr_in6` (IPv6) and
//! `sockaddr_un` (Unix paths), all passed as a `struct sockaddr *` plus a
//! length (`ip(7)`, `ipv6(7)`, `unix(7)`). Ports and IPv4 addresses are in
//! network byte order (big-endian), which is why `to_be`/`from_be` appear.
//!
//! Together the two ends form the connection's identity on the network, the
//! 4-tuple: (local IP, local port, peer IP, peer port).

use std::fmt;
use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;
use std::path::PathBuf;

use super::cvt;

/// Any address a socket of ours can have.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Addr {
    /// An IPv4 or IPv6 address and port.
    Inet(SocketAddr),
    /// A Unix-domain socket path (`None` for an unnamed socket, such as the
    /// client end of a Unix connection that never called `bind`).
    Unix(Option<PathBuf>),
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Inet(sa) => write!(f, "{sa}"),
            Addr::Unix(Some(path)) => write!(f, "{}", path.display()),
            Addr::Unix(None) => f.write_str("(unnamed unix socket)"),
        }
    }
}

impl From<SocketAddr> for Addr {
    fn from(sa: SocketAddr) -> Self {
        Addr::Inet(sa)
    }
}

/// Room for any `sockaddr` the kernel may hand back. `sockaddr_storage` is
/// defined by POSIX to be large and aligned enough for every family.
pub struct RawAddr {
    /// The bytes, interpreted according to `ss_family`.
    pub storage: libc::sockaddr_storage,
    /// How many bytes of `storage` are meaningful.
    pub len: libc::socklen_t,
}

impl RawAddr {
    /// An all-zero address with `len` set to the full capacity, ready to be
    /// filled by `accept4`, `getsockname` or `getpeername`.
    pub fn empty() -> Self {
        RawAddr {
            // SAFETY: sockaddr_storage is plain old data; all-zero is a valid
            // (AF_UNSPEC) value.
            storage: unsafe { mem::zeroed() },
            len: mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t,
        }
    }

    /// Encode a Rust address for `bind`/`connect`.
    pub fn from_socket_addr(sa: &SocketAddr) -> Self {
        let mut raw = RawAddr::empty();
        match sa {
            SocketAddr::V4(v4) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: v4.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(v4.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is larger than and suitably aligned
                // for sockaddr_in (POSIX guarantees both).
                unsafe { std::ptr::write(&mut raw.storage as *mut _ as *mut libc::sockaddr_in, sin) };
                raw.len = mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            }
            SocketAddr::V6(v6) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: v6.port().to_be(),
                    sin6_flowinfo: v6.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: v6.ip().octets(),
                    },
                    sin6_scope_id: v6.scope_id(),
                };
                // SAFETY: as above, for sockaddr_in6.
                unsafe { std::ptr::write(&mut raw.storage as *mut _ as *mut libc::sockaddr_in6, sin6) };
                raw.len = mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            }
        }
        raw
    }

    /// Encode a Unix socket path. Fails if the path (plus its NUL) does not
    /// fit `sun_path` (108 bytes on Linux) or contains a NUL byte.
    pub fn from_unix_path(path: &std::path::Path) -> io::Result<Self> {
        use std::os::unix::ffi::OsStrExt;
        let bytes = path.as_os_str().as_bytes();
        let mut sun = libc::sockaddr_un {
            sun_family: libc::AF_UNIX as libc::sa_family_t,
            sun_path: [0; 108],
        };
        if bytes.len() >= sun.sun_path.len() || bytes.contains(&0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "unix socket path {:?} is {} bytes; sun_path holds at most {} and no NUL (unix(7))",
                    path,
                    bytes.len(),
                    sun.sun_path.len() - 1
                ),
            ));
        }
        for (dst, src) in sun.sun_path.iter_mut().zip(bytes) {
            *dst = *src as libc::c_char;
        }
        let mut raw = RawAddr::empty();
        // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_un.
        unsafe { std::ptr::write(&mut raw.storage as *mut _ as *mut libc::sockaddr_un, sun) };
        raw.len = (mem::size_of::<libc::sa_family_t>() + bytes.len() + 1) as libc::socklen_t;
        Ok(raw)
    }

    /// Pointer for calls that read an address (`bind`, `connect`).
    pub fn as_ptr(&self) -> *const libc::sockaddr {
        &self.storage as *const _ as *const libc::sockaddr
    }

    /// Pointer for calls that fill an address (`accept4`, `getsockname`).
    pub fn as_mut_ptr(&mut self) -> *mut libc::sockaddr {
        &mut self.storage as *mut _ as *mut libc::sockaddr
    }

    /// Decode what the kernel wrote. Unknown families are an error, not a
    /// panic: the bytes come from the kernel, but we still do not assume.
    pub fn to_addr(&self) -> io::Result<Addr> {
        let len = self.len as usize;
        match self.storage.ss_family as libc::c_int {
            libc::AF_INET if len >= mem::size_of::<libc::sockaddr_in>() => {
                // SAFETY: family and length say the storage holds a sockaddr_in.
                let sin = unsafe { &*(&self.storage as *const _ as *const libc::sockaddr_in) };
                let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
                Ok(Addr::Inet(SocketAddr::V4(SocketAddrV4::new(
                    ip,
                    u16::from_be(sin.sin_port),
                ))))
            }
            libc::AF_INET6 if len >= mem::size_of::<libc::sockaddr_in6>() => {
                // SAFETY: family and length say the storage holds a sockaddr_in6.
                let sin6 = unsafe { &*(&self.storage as *const _ as *const libc::sockaddr_in6) };
                let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                Ok(Addr::Inet(SocketAddr::V6(SocketAddrV6::new(
                    ip,
                    u16::from_be(sin6.sin6_port),
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                ))))
            }
            libc::AF_UNIX => {
                use std::os::unix::ffi::OsStrExt;
                // SAFETY: the family says the storage holds a sockaddr_un, and
                // sockaddr_storage is large enough for one.
                let sun = unsafe { &*(&self.storage as *const _ as *const libc::sockaddr_un) };
                let header = mem::size_of::<libc::sa_family_t>();
                let path_len = len.saturating_sub(header).min(sun.sun_path.len());
                let raw_path: Vec<u8> = sun.sun_path[..path_len].iter().map(|&c| c as u8).collect();
                // A pathname is NUL-terminated; an unnamed socket has no bytes.
                let end = memchr::memchr(0, &raw_path).unwrap_or(raw_path.len());
                if end == 0 {
                    Ok(Addr::Unix(None))
                } else {
                    Ok(Addr::Unix(Some(PathBuf::from(std::ffi::OsStr::from_bytes(
                        &raw_path[..end],
                    )))))
                }
            }
            family => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("address family {family} with length {len} is not one connlab decodes"),
            )),
        }
    }
}

/// `getsockname(2)`: the address this socket is bound to (our end).
pub fn getsockname(fd: RawFd) -> io::Result<Addr> {
    let mut raw = RawAddr::empty();
    // SAFETY: raw.storage is writable for raw.len bytes; the kernel writes at
    // most that many and updates raw.len.
    let ret = unsafe { libc::getsockname(fd, raw.as_mut_ptr(), &mut raw.len) };
    cvt(ret, "getsockname", format_args!("fd {fd}"))?;
    raw.to_addr()
}

/// `getpeername(2)`: the address of the connected peer (their end).
/// Fails with `ENOTCONN` on a socket that is not connected.
pub fn getpeername(fd: RawFd) -> io::Result<Addr> {
    let mut raw = RawAddr::empty();
    // SAFETY: as in getsockname.
    let ret = unsafe { libc::getpeername(fd, raw.as_mut_ptr(), &mut raw.len) };
    cvt(ret, "getpeername", format_args!("fd {fd}"))?;
    raw.to_addr()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inet_addresses_round_trip_through_sockaddr() {
        for text in ["127.0.0.1:5432", "[::1]:7878", "0.0.0.0:0"] {
            let sa: SocketAddr = text.parse().unwrap();
            let raw = RawAddr::from_socket_addr(&sa);
            assert_eq!(raw.to_addr().unwrap(), Addr::Inet(sa));
        }
    }

    #[test]
    fn unix_path_round_trips_and_overlong_path_is_refused() {
        let raw = RawAddr::from_unix_path(std::path::Path::new("/tmp/.s.PGSQL.5432")).unwrap();
        assert_eq!(
            raw.to_addr().unwrap(),
            Addr::Unix(Some(PathBuf::from("/tmp/.s.PGSQL.5432")))
        );
        let long = "x".repeat(200);
        let err = RawAddr::from_unix_path(std::path::Path::new(&long)).err().unwrap();
        assert!(err.to_string().contains("sun_path"), "{err}");
    }
}
