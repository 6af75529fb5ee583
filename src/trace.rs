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
//!
//! A leaf: this file imports nothing from the rest of the crate, so every
//! layer, `sys` included, may narrate without an import running up the
//! stack. What a line *says* belongs to the layer that makes the call: the
//! epoll flag names are decoded in `poller/epoll.rs` (`IN|OUT|RDHUP|ET`), a
//! wait's events are shown by [`Events`](crate::poller::Events)' `Display`,
//! a protocol message's name comes from `pg::protocol`.

use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};

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
