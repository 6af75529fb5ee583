//! `trace`: the narrator. With `CONNLAB_TRACE=1` in the environment (or
//! [`set_enabled`]`(true)`), every syscall and protocol message connlab makes
//! is told on stderr as it happens, with decoded flags and the result:
//!
//! ```text
//! [trace] socket(AF_INET, SOCK_STREAM|SOCK_NONBLOCK|SOCK_CLOEXEC) = 7
//! [trace] connect(7, 127.0.0.1:5432) = -1 EINPROGRESS
//! [trace] epoll_ctl(EPOLL_CTL_ADD, 7, OUT|RDHUP|ONESHOT) = 0
//! [trace] epoll_wait = 1 [token 3: OUT]
//! ```
//!
//! It is `strace` with the meaning attached: where strace shows numbers, the
//! narrator can say which token, which connection, which protocol message.
//!
//! Cost when off: the [`narrate!`](crate::narrate) macro is `if enabled() { ... }`, and
//! `enabled()` is one relaxed atomic load. The message's arguments are not
//! evaluated and nothing is formatted. (A function taking `fmt::Arguments`
//! would look the same but evaluate its arguments first; that is why the
//! call sites use the macro.)

use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::poller::Events;

const UNKNOWN: u8 = 0;
const OFF: u8 = 1;
const ON: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(UNKNOWN);

/// Is the narrator on? The first call reads `CONNLAB_TRACE` (on when set to
/// anything but empty or `0`); later calls are one atomic load.
#[inline]
pub fn enabled() -> bool {
    match STATE.load(Ordering::Relaxed) {
        ON => true,
        OFF => false,
        _ => init_from_env(),
    }
}

#[cold]
fn init_from_env() -> bool {
    let on = std::env::var_os("CONNLAB_TRACE").is_some_and(|v| !v.is_empty() && v != "0");
    STATE.store(if on { ON } else { OFF }, Ordering::Relaxed);
    on
}

/// Turn the narrator on or off, overriding `CONNLAB_TRACE`.
pub fn set_enabled(on: bool) {
    STATE.store(if on { ON } else { OFF }, Ordering::Relaxed);
}

/// Tell one line, if the narrator is on. Its arguments are evaluated only
/// when it is.
///
/// ```
/// connlab::narrate!("socket(AF_INET, SOCK_STREAM) = {}", 7);
/// ```
#[macro_export]
macro_rules! narrate {
    ($($arg:tt)*) => {
        if $crate::trace::enabled() {
            $crate::trace::emit(format_args!($($arg)*));
        }
    };
}

/// Write one narrated line to stderr. Use [`narrate!`](crate::narrate), which checks
/// [`enabled`] first; this writes unconditionally.
#[cold]
pub fn emit(line: fmt::Arguments<'_>) {
    let stderr = std::io::stderr();
    let mut out = stderr.lock();
    // The narrator must never turn a working program into a failing one, so
    // a closed or full stderr is ignored rather than reported.
    let _ = writeln!(out, "[trace] {line}");
}

/// Narrate the result of a wait: `epoll_wait = 2 [token 3: IN, token 5: OUT|HUP]`.
#[cold]
pub fn narrate_events(call: &str, events: &Events) {
    use std::fmt::Write as _;
    let mut line = String::new();
    for (i, ev) in events.iter().enumerate() {
        if i > 0 {
            line.push_str(", ");
        }
        let mut flags = Vec::new();
        if ev.readable {
            flags.push("IN");
        }
        if ev.writable {
            flags.push("OUT");
        }
        if ev.error {
            flags.push("ERR");
        }
        if ev.hangup {
            flags.push("HUP");
        }
        if ev.read_closed {
            flags.push("RDHUP");
        }
        let _ = write!(line, "token {}: {}", ev.token.0, flags.join("|"));
    }
    emit(format_args!("{call} = {} [{line}]", events.len()));
}

/// `EPOLL*` bits, decoded lazily for the narrator: `IN|OUT|RDHUP|ET`.
#[derive(Clone, Copy)]
pub struct EpollFlags(pub u32);

impl fmt::Display for EpollFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [(libc::c_int, &str); 8] = [
            (libc::EPOLLIN, "IN"),
            (libc::EPOLLPRI, "PRI"),
            (libc::EPOLLOUT, "OUT"),
            (libc::EPOLLERR, "ERR"),
            (libc::EPOLLHUP, "HUP"),
            (libc::EPOLLRDHUP, "RDHUP"),
            (libc::EPOLLET, "ET"),
            (libc::EPOLLONESHOT, "ONESHOT"),
        ];
        let mut first = true;
        for (bit, name) in NAMES {
            if self.0 & bit as u32 != 0 {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if first {
            f.write_str("0")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoll_flags_decode_by_name() {
        let bits = (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLET) as u32;
        assert_eq!(EpollFlags(bits).to_string(), "IN|RDHUP|ET");
        assert_eq!(EpollFlags(0).to_string(), "0");
    }
}
