//! `sys`: the thin, visible boundary between connlab and the Linux kernel.
//!
//! Every system call connlab makes is written out here (or in a poller
//! backend file) as a plain `libc::name(...)` call inside an `unsafe` block
//! with a `// SAFETY:` comment, so a reader can find each one with grep and
//! check it against its man page.
//!
//! The one idea of this file is the error convention. The kernel reports a
//! failure as `-1` plus a thread-local `errno` (see `errno(3)`). A bare
//! `Os { code: 17 }` tells a reader nothing, so [`cvt`] turns `-1` into an
//! [`io::Error`] whose message names the call, its key argument and the
//! symbolic errno:
//!
//! ```text
//! epoll_ctl(EPOLL_CTL_ADD, fd 7): EEXIST (File exists)
//! ```
//!
//! The [`io::ErrorKind`] is kept (`WouldBlock`, `ConnectionRefused`, ...)
//! and [`errno_of`] recovers the raw number, so callers can still branch on
//! what happened.
//!
//! Files:
//! - `addr.rs`: `sockaddr_in`/`sockaddr_in6`/`sockaddr_un` <-> Rust addresses,
//!   `getsockname(2)`, `getpeername(2)`.
//! - `fd.rs`: `fcntl(2)` flags, `close(2)`, `eventfd(2)`, `getrlimit(2)`/`setrlimit(2)`.
//! - `socket.rs`: `socket(2)`, `bind(2)`, `listen(2)`, `accept4(2)`, `connect(2)`,
//!   `shutdown(2)`, `read(2)`/`write(2)`, `getsockopt(2)`/`setsockopt(2)`.
//! - `signal.rs`: `pthread_sigmask(2)`, `signalfd(2)` (Ctrl-C as a readable fd).
//! - `info.rs`: `TCP_INFO`, buffer sizes, `ioctl(SIOCINQ/SIOCOUTQ)`, `fstat(2)`.
//! - `netns.rs`: `unshare(CLONE_NEWNET)`, `ioctl(SIOCSIFFLAGS)` on `lo`, and the
//!   per-namespace sysctls, for experiments that change the kernel's TCP settings.
//! - `user.rs`: `geteuid(2)`, `getpwnam_r(3)` (who to run a throwaway server as).

#[cfg(not(target_os = "linux"))]
compile_error!("connlab teaches Linux's syscalls (epoll, accept4, TCP_INFO, /proc) and builds only on Linux.");

pub mod addr;
pub mod fd;
pub mod info;
pub mod netns;
pub mod signal;
pub mod socket;
pub mod user;

use std::fmt;
use std::io;

/// A failed system call: which call, on what, and the kernel's errno.
///
/// This is the payload inside every `io::Error` that [`cvt`] produces.
/// Its `Display` is the one line a reader should see:
/// `connect(fd 7, 127.0.0.1:1): ECONNREFUSED (Connection refused)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysError {
    /// The system call's name, e.g. `"epoll_ctl"`.
    pub call: &'static str,
    /// Its key arguments, already formatted, e.g. `"EPOLL_CTL_ADD, fd 7"`.
    pub args: String,
    /// The raw errno value, e.g. `libc::EEXIST`.
    pub errno: i32,
}

impl fmt::Display for SysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}({}): {} ({})",
            self.call,
            self.args,
            errno_name(self.errno),
            describe_errno(self.errno)
        )
    }
}

impl std::error::Error for SysError {}

impl SysError {
    /// Turn this into an `io::Error` whose kind matches the errno.
    pub fn into_io(self) -> io::Error {
        let kind = io::Error::from_raw_os_error(self.errno).kind();
        io::Error::new(kind, self)
    }
}

/// Build the error for a call that just failed, reading `errno` now.
///
/// Call it immediately after the failing syscall: any other libc call in
/// between may overwrite `errno`.
pub fn last_error(call: &'static str, args: impl fmt::Display) -> io::Error {
    let errno = io::Error::last_os_error().raw_os_error().unwrap_or(0);
    error_from_errno(call, args, errno)
}

/// Build the error for `call` failing with a known `errno` (for example one
/// read back with `getsockopt(SO_ERROR)` rather than returned directly).
pub fn error_from_errno(call: &'static str, args: impl fmt::Display, errno: i32) -> io::Error {
    SysError {
        call,
        args: args.to_string(),
        errno,
    }
    .into_io()
}

/// The C convention, made Rust: `-1` means "look at errno".
///
/// `args` is formatted only on failure, so passing `format_args!` costs
/// nothing on the success path.
pub fn cvt<T: IsMinusOne>(ret: T, call: &'static str, args: impl fmt::Display) -> io::Result<T> {
    if ret.is_minus_one() {
        Err(last_error(call, args))
    } else {
        Ok(ret)
    }
}

/// Integer return types that use `-1` to signal failure.
pub trait IsMinusOne: Copy {
    /// True when the value is the C error sentinel `-1`.
    fn is_minus_one(self) -> bool;
}

macro_rules! impl_is_minus_one {
    ($($t:ty),*) => {$(
        impl IsMinusOne for $t {
            fn is_minus_one(self) -> bool { self == -1 }
        }
    )*};
}
impl_is_minus_one!(i32, isize, i64);

/// The errno behind an `io::Error`, whether it came from [`cvt`] (a
/// [`SysError`] inside) or from `std` (`raw_os_error`).
pub fn errno_of(err: &io::Error) -> Option<i32> {
    if let Some(code) = err.raw_os_error() {
        return Some(code);
    }
    err.get_ref()
        .and_then(|inner| inner.downcast_ref::<SysError>())
        .map(|sys| sys.errno)
}

/// The human sentence for an errno, from `strerror(3)`'s table via std.
fn describe_errno(errno: i32) -> String {
    let text = io::Error::from_raw_os_error(errno).to_string();
    // std formats as "File exists (os error 17)"; keep only the sentence.
    match text.find(" (os error") {
        Some(cut) => text[..cut].to_string(),
        None => text,
    }
}

/// The symbolic name of an errno (`EEXIST`), the word to search a man
/// page's ERRORS section for. glibc has `strerrorname_np(3)`, but a table
/// in plain sight is clearer and works on every libc.
pub fn errno_name(errno: i32) -> &'static str {
    use libc::*;
    match errno {
        EPERM => "EPERM",
        ENOENT => "ENOENT",
        ESRCH => "ESRCH",
        EINTR => "EINTR",
        EIO => "EIO",
        ENXIO => "ENXIO",
        E2BIG => "E2BIG",
        EBADF => "EBADF",
        ECHILD => "ECHILD",
        EAGAIN => "EAGAIN",
        ENOMEM => "ENOMEM",
        EACCES => "EACCES",
        EFAULT => "EFAULT",
        EBUSY => "EBUSY",
        EEXIST => "EEXIST",
        ENODEV => "ENODEV",
        ENOTDIR => "ENOTDIR",
        EISDIR => "EISDIR",
        EINVAL => "EINVAL",
        ENFILE => "ENFILE",
        EMFILE => "EMFILE",
        ENOTTY => "ENOTTY",
        ENOSPC => "ENOSPC",
        ESPIPE => "ESPIPE",
        EPIPE => "EPIPE",
        ERANGE => "ERANGE",
        ENAMETOOLONG => "ENAMETOOLONG",
        ENOSYS => "ENOSYS",
        ELOOP => "ELOOP",
        ENOTSOCK => "ENOTSOCK",
        EDESTADDRREQ => "EDESTADDRREQ",
        EMSGSIZE => "EMSGSIZE",
        EPROTOTYPE => "EPROTOTYPE",
        ENOPROTOOPT => "ENOPROTOOPT",
        EPROTONOSUPPORT => "EPROTONOSUPPORT",
        EOPNOTSUPP => "EOPNOTSUPP",
        EAFNOSUPPORT => "EAFNOSUPPORT",
        EADDRINUSE => "EADDRINUSE",
        EADDRNOTAVAIL => "EADDRNOTAVAIL",
        ENETDOWN => "ENETDOWN",
        ENETUNREACH => "ENETUNREACH",
        ECONNABORTED => "ECONNABORTED",
        ECONNRESET => "ECONNRESET",
        ENOBUFS => "ENOBUFS",
        EISCONN => "EISCONN",
        ENOTCONN => "ENOTCONN",
        ETIMEDOUT => "ETIMEDOUT",
        ECONNREFUSED => "ECONNREFUSED",
        EHOSTDOWN => "EHOSTDOWN",
        EHOSTUNREACH => "EHOSTUNREACH",
        EALREADY => "EALREADY",
        EINPROGRESS => "EINPROGRESS",
        _ => "E?",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_message_names_call_args_and_symbol() {
        let err = error_from_errno("epoll_ctl", "EPOLL_CTL_ADD, fd 7", libc::EEXIST);
        assert_eq!(err.to_string(), "epoll_ctl(EPOLL_CTL_ADD, fd 7): EEXIST (File exists)");
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(errno_of(&err), Some(libc::EEXIST));
    }

    #[test]
    fn cvt_passes_success_through() {
        assert_eq!(cvt(5i32, "read", "fd 3").ok(), Some(5));
    }

    #[test]
    fn would_block_keeps_its_kind() {
        let err = error_from_errno("read", "fd 3", libc::EAGAIN);
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    }
}
